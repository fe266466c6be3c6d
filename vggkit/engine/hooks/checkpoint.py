"""Checkpoints that survive a crash and say how their weights were trained.

:class:`VGGCheckpointHook` is mmengine's ``CheckpointHook`` plus

* atomic writes (:class:`AtomicLocalBackend`): never a truncated ``.pth``;
* mid-epoch checkpoints every ``iter_interval`` iterations (an ImageNet epoch
  of VGG-16 is hours), kept rolling, which :class:`ResumeHook` continues
  from exactly where they stopped;
* ``meta['preprocess']`` and ``meta['train_scale']`` (the contract with
  evaluation: which mean to subtract and which test scales Q the paper uses);
* ``meta['state_dict_sha256']``, the content hash of the saved weights
  (:mod:`vggkit.safe_load`), checked whenever the file is read again --
  including by ``--resume`` and ``load_from``: importing this module makes
  mmengine's runner load local checkpoints through vggkit's checked loader.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from typing import Any, Optional

from pathlib import Path
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from vggkit.engine.scales import checkpoint_train_scale
from vggkit.fileio import atomic_write_bytes, atomic_write_text
from vggkit.content_hash import with_content_hash
from vggkit.safe_load import load_verified

ITER_TMPL = "iter_{}.pth"
BACKEND_NAME = "vggkit_atomic_local"


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text``.

    mmengine saves checkpoints through ``backend.put(bytes, path)``, whose local
    backend opens the final path and writes into it: a crash (SIGKILL, power,
    full disk) leaves a truncated ``epoch_N.pth`` that the next ``--resume``
    picks up. This one writes a temporary file, fsyncs it and renames it.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = "utf-8") -> None:
        atomic_write_text(filepath, obj, encoding)


# force=True: re-importing (e.g. after a plugin reload) must not fail
register_backend(BACKEND_NAME, AtomicLocalBackend, force=True)


def load_from_vggkit(filename: str, map_location: Any = None) -> Any:
    """mmengine's local checkpoint loader, through :func:`load_verified`.

    (mmengine logs the name after ``load_from_``: "Loads checkpoint by vggkit backend".)
    """
    filename = os.path.expanduser(filename)
    return load_verified(filename, map_location=map_location)


def register_mmengine_loader() -> None:
    """Make mmengine's runner (resume, ``load_from``) load local files like vggkit does."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_vggkit, force=True)


# every runner with this hook resumes through the checked loader (one error per bad file)
register_mmengine_loader()


def preprocess_record(cfg: Any) -> dict:
    """``{'mean', 'std', 'bgr'}`` of the config's data preprocessor (0-255, RGB)."""
    pre = dict((cfg.get("model") or {}).get("data_preprocessor") or {})
    if "mean" not in pre:
        from vggkit.models.preprocess import DEFAULT_PREPROCESS
        return dict(DEFAULT_PREPROCESS)
    std = pre.get("std") or [1.0, 1.0, 1.0]
    return {"mean": [float(v) for v in pre["mean"]], "std": [float(v) for v in std],
            "bgr": bool(pre.get("bgr", False))}


class VGGCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic files, mid-epoch saves and vggkit meta.

    Args:
        iter_interval: also save ``iter_N.pth`` every this many iterations
            inside an epoch (0: only per ``interval``). Must be a multiple of
            the gradient accumulation count (a save must not fall inside an
            accumulation window, whose partial gradient is not saved).
        keep_iter_ckpts: how many mid-epoch checkpoints to keep.
        **kwargs: as mmengine's ``CheckpointHook``.
    """

    def __init__(self, *args: Any, iter_interval: int = 0, keep_iter_ckpts: int = 1,
                 backend_args: Optional[dict] = None, **kwargs: Any) -> None:
        if backend_args is None:
            backend_args = {"backend": BACKEND_NAME}
        super().__init__(*args, backend_args=backend_args, **kwargs)
        if iter_interval < 0 or keep_iter_ckpts < 1:
            raise ValueError(f"iter_interval must be >= 0 and keep_iter_ckpts >= 1, got "
                             f"{iter_interval} and {keep_iter_ckpts}")
        self.iter_interval = iter_interval
        self.keep_iter_ckpts = keep_iter_ckpts

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)
        counts = getattr(runner.optim_wrapper, "_accumulative_counts", 1)
        if self.iter_interval and self.iter_interval % counts:
            raise ValueError(f"checkpoint iter_interval={self.iter_interval} is not a multiple of "
                             f"the gradient accumulation count {counts}: a checkpoint inside an "
                             "accumulation window would lose its partial gradient. Set "
                             f"default_hooks.checkpoint.iter_interval to a multiple of {counts}.")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        model = getattr(runner.model, "module", runner.model)
        record = getattr(getattr(model, "data_preprocessor", None), "preprocess", None)
        meta["preprocess"] = dict(record) if record else preprocess_record(runner.cfg)
        scale = checkpoint_train_scale(runner.cfg)
        if scale is not None:
            meta["train_scale"] = scale
        # hashed last: this hook's VERY_LOW priority runs it after the hooks that may
        # still change the saved weights (an EMA hook swaps its averages in, ...)
        meta.update(with_content_hash({}, checkpoint["state_dict"]))

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if not (self.by_epoch and self.iter_interval):
            return
        if not self.every_n_train_iters(runner, self.iter_interval):
            return
        name = ITER_TMPL.format(runner.iter + 1)
        runner.save_checkpoint(self.out_dir, name, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler,
                               by_epoch=False, backend_args=self.backend_args, **self.args)
        if is_main_process():
            self._point_last_checkpoint(runner, osp.join(self.out_dir, name))
            self._drop_old_iter_ckpts()

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        super()._save_checkpoint_with_step(runner, step, meta)
        if is_main_process():
            # mmengine wrote 'last_checkpoint' with a plain open(); redo it atomically
            self._point_last_checkpoint(runner, self.last_ckpt)

    @staticmethod
    def _point_last_checkpoint(runner: Any, path: str) -> None:
        atomic_write_text(osp.join(runner.work_dir, "last_checkpoint"), path)

    def _drop_old_iter_ckpts(self) -> None:
        found = glob.glob(osp.join(self.out_dir, ITER_TMPL.format("*")))
        found.sort(key=lambda p: int(osp.basename(p)[5:-4]))
        for path in found[:-self.keep_iter_ckpts]:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir`` (None if there is none).

    Trusts ``last_checkpoint`` when it names an existing file; otherwise (an
    older mmengine wrote it non-atomically, or it was deleted) falls back on
    the most recently written ``*.pth`` of the work dir.
    """
    pointer = osp.join(work_dir, "last_checkpoint")
    if osp.isfile(pointer):
        with open(pointer, encoding="utf-8") as f:
            path = f.read().strip()
        if path and osp.isfile(path):
            return path
    candidates = [p for p in glob.glob(osp.join(work_dir, "*.pth")) if not osp.islink(p)]
    return max(candidates, key=osp.getmtime) if candidates else None
