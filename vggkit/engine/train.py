"""Training a config of the paper with mmengine (Sect. 3.1): :func:`load_config` applies
the options, :func:`train` runs it. ``vggkit train`` / ``tools/train.py`` parse into them.

Example::

    from vggkit.engine.train import train
    train("configs/tiny/vgg_a_tiny.py", data_root="./my_images", seed=0)
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import Any, Optional

from vggkit import renamed
from vggkit.errors import UserError

#: how training processes start (inference.names.LAUNCHERS is the frozen-net commands')
TRAIN_LAUNCHERS = ("none", "pytorch", "slurm")
#: --amp MODE: 'auto' is what a bare --amp means
AMP_CHOICES = ("auto", "bf16", "fp16")
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def load_config(config: Any, *, cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None, work_dir: Optional[str] = None,
                launcher: str = "none", weights: Optional[str] = None, amp: Optional[str] = None,
                channels_last: bool = False, seed: Optional[int] = None,
                deterministic: bool = False, resume: Optional[str] = None,
                strict_health: bool = False, layer_stats: Optional[int] = None) -> Any:
    """The config at path ``config`` with every training option applied (nothing started yet).

    The keywords are ``vggkit train``'s options: ``resume`` is a checkpoint or
    ``'auto'`` (the newest of the work dir), ``amp`` a mode of :data:`AMP_CHOICES`.
    ``config`` may still be the parsed arguments of ``vggkit train`` (deprecated:
    library callers give values, a ``Namespace`` ties them to the parser).
    """
    if isinstance(config, argparse.Namespace):
        args = config
        return load_config(args.config, **{k: getattr(args, k, None) for k in (
            "cfg_options", "data_root", "work_dir", "weights", "amp", "seed", "resume",
            "layer_stats")}, launcher=args.launcher, channels_last=bool(args.channels_last),
            deterministic=bool(args.deterministic),
            strict_health=bool(getattr(args, "strict_health", False)))
    from vggkit.config import read_config
    from vggkit.engine.batch_size import (apply_batch, check_batch_override, scale_learning_rate,
                                        world_size_from_env)
    from vggkit.engine.datacheck import apply_data_root, check_training_data

    cfg = read_config(config, cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get("work_dir") or osp.join(
        "work_dirs", osp.splitext(osp.basename(config))[0])
    if data_root:
        apply_data_root(cfg, data_root)
    if weights:
        from vggkit.engine.finetune import apply_weights
        apply_weights(cfg, weights)
    check_schedule(cfg)
    classes = check_training_data(cfg)
    num_classes = None if classes is None else len(classes)
    vgg = cfg.model.vgg
    if vgg.get("num_classes") is None:  # 'as many as the image folder has'
        if num_classes is None:
            raise ValueError("model.vgg.num_classes is None but the training set's classes "
                             "are unknown; set it with --cfg-options model.vgg.num_classes=N")
        vgg.num_classes = num_classes
    elif num_classes is not None and vgg.num_classes != num_classes:
        raise ValueError(f"model.vgg.num_classes={vgg.num_classes} but the training set has "
                         f"{num_classes} classes; fix the config or pass --cfg-options "
                         f"model.vgg.num_classes={num_classes}")
    apply_batch(cfg, world_size_from_env(launcher))
    check_batch_override(cfg, cfg_options)
    lr_factor = scale_learning_rate(cfg)
    _apply_precision(cfg, amp, channels_last)
    _apply_randomness(cfg, seed, deterministic)
    _apply_resume(cfg, resume)
    if strict_health:
        _apply_strict_health(cfg)
    if layer_stats:
        cfg.custom_hooks = [*(cfg.get("custom_hooks") or []),
                            dict(type="LayerStatsHook", iters=layer_stats)]
    _check_init_files(cfg)
    if cfg.get("resume"):
        check_resume_checkpoint(cfg, cfg.load_from, classes)
    if launcher != "none" and not _cuda():
        cfg.env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"
        # DDP of a CPU module takes no device_ids (mmengine passes LOCAL_RANK)
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                     broadcast_buffers=False)
    if lr_factor != 1.0:  # said once the run is accepted: a refusal stays one line
        print(f"vggkit train: lr {cfg.optim_wrapper.optimizer.lr:.4g} for "
              f"{cfg.get('total_batch_size', 256)} images per step (the config's lr is for "
              f"{cfg.get('base_batch_size', 256)}; lr_scaling={cfg.get('lr_scaling', 'linear')!r})",
              file=sys.stderr)
    return cfg


def check_schedule(cfg: Any) -> None:
    """The loop lengths a config (or --cfg-options) sets must be positive integers."""
    train_cfg = cfg.get("train_cfg") or {}
    for key in ("max_epochs", "max_iters", "val_interval", "val_begin"):
        value = train_cfg.get(key)
        if value is None:
            continue
        least = 0 if key == "val_begin" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"train_cfg.{key}={value!r} must be an integer >= {least}; fix the "
                            f"config '{cfg.filename}' or pass --cfg-options train_cfg.{key}=N")


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def amp_precision(asked: str | None, device: str) -> tuple[str, str | None]:
    """The training precision of ``--amp asked`` on ``device``, and why, when 'auto' keeps fp32.

    'auto' takes what pays there (:func:`vggkit.inference.backends.reduced_precision`,
    the rule of inference 'auto' too): fp16 on CUDA, bf16 on a CPU with native
    bf16, else fp32. A named dtype is taken as it is, if it can run.

    Raises:
        UserError: an unknown mode, or fp16 asked for without CUDA.
    """
    import torch

    from vggkit.inference.backends import reduced_precision
    if asked is None:
        return "fp32", None
    if asked not in AMP_CHOICES:
        raise UserError(f"--amp {asked!r} is not a mode; use one of {', '.join(AMP_CHOICES)}")
    if asked == "auto":
        paying, why = reduced_precision(torch.device(device))
        if paying is None:
            return "fp32", (f"--amp: training in fp32: this {torch.device(device).type.upper()} "
                            f"has {why}, where bf16 autocast is emulated and slower than fp32 "
                            "(--amp bf16 forces it)")
        return paying, None
    if asked == "fp16" and torch.device(device).type != "cuda":
        raise UserError(f"--amp fp16 needs CUDA (here: {device}): mmengine's fp16 AMP with loss "
                        "scaling is CUDA-only; use --amp bf16, or --amp alone for auto")
    return asked, None


def _apply_precision(cfg: Any, amp: Optional[str], channels_last: bool) -> None:
    precision, note = amp_precision(amp, "cuda" if _cuda() else "cpu")
    if note is not None:
        print(f"vggkit train: {note}", file=sys.stderr)
    if precision != "fp32" and _cuda():
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.dtype = _TORCH_DTYPES[precision]
        cfg.optim_wrapper.loss_scale = "dynamic"
    elif precision != "fp32":
        # mmengine's AmpOptimWrapper is CUDA-only; bf16 needs no loss scaling
        cfg.model.autocast = _TORCH_DTYPES[precision]
    if channels_last:
        cfg.model.channels_last = True
        cfg.model.data_preprocessor.channels_last = True


def _apply_randomness(cfg: Any, seed: Optional[int], deterministic: bool) -> None:
    randomness = dict(cfg.get("randomness") or {})
    if seed is not None:
        randomness["seed"] = seed
    if deterministic:
        randomness["deterministic"] = True
        # cuDNN autotuning picks kernels by timing: not repeatable
        cfg.env_cfg.cudnn_benchmark = False
    cfg.randomness = randomness


def _apply_resume(cfg: Any, resume: Optional[str]) -> None:
    from vggkit.engine.hooks.checkpoint import find_resume_checkpoint
    if resume is None:
        return
    path = find_resume_checkpoint(cfg.work_dir) if resume == "auto" else resume
    if path is None:
        print(f"vggkit train: --resume: no checkpoint in '{cfg.work_dir}' yet; starting afresh",
              file=sys.stderr)
        return
    if not osp.isfile(path):
        raise FileNotFoundError(f"--resume: checkpoint '{path}' does not exist")
    cfg.resume, cfg.load_from = True, path
    if cfg.model.vgg.get("init") == "from_checkpoint":
        # the resumed weights replace any initialisation: don't require net A's file
        cfg.model.vgg.init = "none"


def _apply_strict_health(cfg: Any) -> None:
    """Make the health hook raise; add it if the config's custom_hooks left it out."""
    hooks = cfg.get("custom_hooks") or []
    for hook in hooks:
        if str(hook.get("type", "")).split(".")[-1] == "TrainingHealthHook":
            hook["strict"] = True
            break
    else:
        hooks.append(dict(type="TrainingHealthHook", strict=True))
    cfg.custom_hooks = hooks


def _check_init_files(cfg: Any) -> None:
    """The weights a config starts from (net A; the S=256 or S=384 model) must exist."""
    vgg = cfg.model.vgg
    if vgg.get("init") == "from_checkpoint" and not osp.isfile(str(vgg.get("init_checkpoint"))):
        raise FileNotFoundError(
            f"model.vgg.init_checkpoint '{vgg.get('init_checkpoint')}' (the trained net A that "
            "Sect. 3.1 initialises deeper nets from) does not exist: train configs/vgg11_a.py "
            "first, or pass --cfg-options model.vgg.init_checkpoint=PATH")
    if cfg.get("load_from") and not cfg.get("resume") and not osp.isfile(cfg.load_from):
        raise FileNotFoundError(
            f"load_from '{cfg.load_from}' (the model this config fine-tunes) does not exist: "
            "train the config it comes from first, or pass --cfg-options load_from=PATH")
    if cfg.get("load_from") and osp.isfile(cfg.load_from):  # also --resume's file
        # a damaged file fails now, not after the datasets and the model are built
        from vggkit.safe_load import check_checkpoint_file
        check_checkpoint_file(cfg.load_from)


def check_resume_checkpoint(cfg: Any, path: str, classes: list[str] | None) -> None:
    """``--resume path`` must continue a run of this config's net and the data's classes.

    mmengine loads a checkpoint of another class count loosely and fails in
    the first optimiser step, and one of the same count with other classes
    trains on silently, with every output meaning another class.

    Raises:
        UserError: naming the checkpoint, its classes and the config's or data's.
    """
    import zipfile

    from vggkit.safe_load import torch_load
    checkpoint = torch_load(path, mmap=zipfile.is_zipfile(path))  # the tensors are not read
    if not isinstance(checkpoint, dict):
        return  # not a checkpoint of a run: mmengine's resume says so
    state, meta = checkpoint.get("state_dict") or {}, checkpoint.get("meta") or {}
    recorded = (meta.get("dataset_meta") or {}).get("classes")
    recorded = None if recorded is None else [str(c) for c in recorded]
    fc8 = next((v for k, v in state.items() if k.endswith("head.fc8.weight")), None)
    saved = int(fc8.shape[0]) if fc8 is not None else None if recorded is None else len(recorded)
    wanted = cfg.model.vgg.get("num_classes")
    fix = ("resume a checkpoint of this config and data, or start afresh without --resume "
           "(--cfg-options load_from=CKPT fine-tunes its weights only)")
    if saved is not None and wanted is not None and saved != int(wanted):
        raise UserError(f"--resume: checkpoint '{path}' has {saved} classes but config "
                        f"'{cfg.filename}' on this training set has {wanted} "
                        f"(model.vgg.num_classes); {fix}")
    if recorded is not None and classes is not None and recorded != classes:
        diff = next((i for i, (a, b) in enumerate(zip(recorded, classes)) if a != b),
                    min(len(recorded), len(classes)))
        raise UserError(f"--resume: checkpoint '{path}' was trained on other classes than the "
                        f"training set's (class {diff}: {_class_at(recorded, diff)} in the "
                        f"checkpoint, {_class_at(classes, diff)} in the data); {fix}")


def _class_at(classes: list[str], index: int) -> str:
    return repr(classes[index]) if index < len(classes) else "none"


def _init_distributed(launcher: str) -> None:
    """CPU process groups (gloo); on CUDA mmengine's init_dist joins (nccl, set_device)."""
    if launcher == "none" or _cuda():
        return
    from vggkit.inference.distributed import join_process_group
    if launcher == "slurm":  # what torchrun would have set, from Slurm's variables
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    join_process_group("cpu")


def build_runner(cfg: Any) -> Any:
    """mmengine ``Runner`` of a config from :func:`load_config`."""
    from mmengine.runner import Runner
    _init_distributed(cfg.launcher)
    return Runner.from_cfg(cfg)


def train(config: Any, **options: Any) -> Any:
    """Train: ``config`` is a config from :func:`load_config`, or a config file path whose
    ``options`` are :func:`load_config`'s keywords. Returns the mmengine ``Runner``, trained
    (its ``work_dir`` holds the checkpoints, logs and ``curves.png``).

    Example::

        from vggkit.engine.train import train
        train("configs/tiny/vgg_a_tiny.py", data_root="my_images", seed=0)
    """
    import vggkit.safe_load  # noqa: F401 - mmengine's resume loads with the allow-list
    from mmengine.config import Config
    if options and isinstance(config, Config):
        raise TypeError("train(cfg) takes no options with a loaded config: apply them with "
                        "load_config(path, **options)")
    cfg = config if isinstance(config, Config) else load_config(config, **options)
    runner = build_runner(cfg)
    runner.train()
    return runner


# two LAUNCHERS held different values (this one adds slurm): the training one was renamed
__getattr__ = renamed(__name__, {"LAUNCHERS": ("TRAIN_LAUNCHERS", lambda: TRAIN_LAUNCHERS)})
