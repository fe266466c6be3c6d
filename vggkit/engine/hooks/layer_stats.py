"""Per-layer activation and gradient statistics of the first training iterations.

Where a from-scratch net collapses is visible in its first few dozen SGD
steps: a layer whose step is a large fraction of its weights, ReLUs that
stop firing, an fc7 that stops depending on the image. ``vggkit train
--layer-stats N`` records, for each of the first N iterations, per weight
layer: the std of its output, the fraction of positive outputs, the weight
norm, the gradient norm and the relative step lr·|g|/|w|; and for fc7 the
fraction of units alive and its std across the images of the batch. One JSON
object per iteration goes to ``work_dir/layer_stats.jsonl``.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn


class LayerStatsHook(Hook):
    """Log per-layer statistics for the first ``iters`` training iterations.

    Args:
        iters: how many iterations to record (then every handle is removed,
            so the rest of the run costs nothing).
        filename: JSON-lines file inside the work dir.
    """

    priority = "LOW"

    def __init__(self, iters: int = 40, filename: str = "layer_stats.jsonl") -> None:
        if iters < 1:
            raise ValueError(f"LayerStatsHook iters must be >= 1, got {iters}")
        self.iters, self.filename = iters, filename
        self._handles: list[Any] = []
        self._acts: dict[str, tuple[float, float]] = {}
        self._grads: dict[str, tuple[float, float]] = {}
        self._input: torch.Tensor | None = None

    def _vgg(self, runner: Any) -> nn.Module:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return model.vgg

    def before_train(self, runner: Any) -> None:
        if runner.iter >= self.iters:
            return
        vgg = self._vgg(runner)
        for name, module in vgg.named_modules():
            if not isinstance(module, nn.Conv2d):
                continue
            # the head applies its convs with F.linear (no forward call): gradients only
            if not name.startswith("head."):
                self._handles.append(module.register_forward_hook(self._record_act(name)))
            self._handles.append(module.weight.register_hook(self._record_grad(name, module)))
        self._handles.append(vgg.register_forward_pre_hook(self._record_input))

    def _record_act(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            out = out.detach().float()
            self._acts[name] = (out.std().item(), (out > 0).float().mean().item())
        return hook

    def _record_grad(self, name: str, module: nn.Conv2d) -> Any:
        def hook(grad: torch.Tensor) -> None:
            # the weights before this iteration's step: the step is relative to them
            self._grads[name] = (grad.detach().float().norm().item(),
                                 module.weight.detach().float().norm().item())
        return hook

    def _record_input(self, module: nn.Module, args: Any) -> None:
        if module.training and args and isinstance(args[0], torch.Tensor):
            self._input = args[0].detach()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        if runner.iter >= self.iters:  # runner.iter counts from 0 here
            return
        vgg = self._vgg(runner)
        lr = runner.optim_wrapper.get_lr()["lr"][0]
        row: dict[str, Any] = {"iter": runner.iter + 1, "loss": float((outputs or {}).get("loss", float("nan"))),
                               "lr": lr, "layers": {}}
        for name, module in vgg.named_modules():
            if isinstance(module, nn.Conv2d):
                g, w = self._grads.get(name, (float("nan"), float("nan")))
                std, alive = self._acts.get(name, (float("nan"), float("nan")))
                row["layers"][name] = {"out_std": std, "frac_positive": alive, "w_norm": w,
                                       "grad_norm": g, "rel_step": lr * g / w if w > 0 else float("nan")}
        if self._input is not None:
            row["input_std"] = self._input.float().std().item()
            was_training = vgg.training
            vgg.eval()  # dropout would fake a spread across the batch
            with torch.no_grad():
                fc7 = vgg.pre_logits(self._input).float()
            vgg.train(was_training)
            row["fc7_alive"] = (fc7 > 0).float().mean().item()
            row["fc7_std_across_images"] = fc7.std(0).mean().item()
        if is_main_process():
            with open(osp.join(runner.work_dir, self.filename), "a") as f:
                f.write(json.dumps(row) + "\n")
        if runner.iter + 1 >= self.iters:
            self._remove()

    def after_train(self, runner: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
