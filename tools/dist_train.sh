#!/usr/bin/env bash
# Multi-GPU / multi-node training through torchrun (mmengine's 'pytorch' launcher).
#
#   tools/dist_train.sh CONFIG NGPUS [train.py options...]
#
# One node:   tools/dist_train.sh configs/vgg16_d.py 8 --data-root /data/imagenet
# Two nodes:  on each node, with the same MASTER_ADDR (node 0) and NODE_RANK 0 / 1:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/vgg16_d.py 8 ...
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 tools/dist_train.sh configs/vgg16_d.py 8 ...
# The total batch stays 256 (gradient accumulation fills the rest; see batch_per_gpu).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NGPUS [train.py options...]" >&2
    exit 2
fi
CONFIG=$1
NGPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
HERE=$(cd "$(dirname "$0")" && pwd)

exec python -m torch.distributed.run \
    --nnodes="$NNODES" --node-rank="$NODE_RANK" --nproc-per-node="$NGPUS" \
    --master-addr="$MASTER_ADDR" --master-port="$PORT" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
