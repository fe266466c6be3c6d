#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, mmengine's 'slurm' launcher.
#
#   [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=8] tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR [options...]
#
# e.g. GPUS=16 tools/slurm_train.sh gpu vgg19 configs/vgg19_jitter.py work_dirs/vgg19_jitter \
#          --data-root /data/imagenet
# Re-submitting the same command with --resume continues from the newest checkpoint.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-8}
SRUN_ARGS=${SRUN_ARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)

# shellcheck disable=SC2086
exec srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    python -u "$HERE/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
