"""Running a frozen VGG densely over test images: the layer under evaluation
(Sect. 3.2, :mod:`vggkit.evaluation`) and the Appendix-B descriptor
(:mod:`vggkit.features`).

* :mod:`~vggkit.inference.views` -- an image decoded once and rescaled to every
  test scale Q (uint8 tensors); aspect-ratio order; a loader dataset.
* :mod:`~vggkit.inference.batching` -- equal sizes batched together, pixel caps.
* :mod:`~vggkit.inference.pass_cap` -- crops per evaluation pass: the user's, else
  what memory allows.
* the paths a net runs on, in layers each importing only those above it here:
  :mod:`~vggkit.inference.names` (backends, precisions), :mod:`~vggkit.inference.backends`
  (what can run here), :mod:`~vggkit.inference.build` (one path's runner: bf16/fp16
  weights cast once, torch.compile, TorchScript, oneDNN, ONNX Runtime),
  :mod:`~vggkit.inference.autotune` (the one resolver: 'auto' measured at the caller's
  batch and size, cached, rank 0 deciding for all), :mod:`~vggkit.inference.runners`
  (:func:`compile_for_inference`: one output of a VGG as a function on its path;
  :class:`CompiledNet`: a VGG's ``forward`` and ``dense`` each on theirs).
  What each part buys: ``docs/inference.md``.
* :mod:`~vggkit.inference.distributed` -- device, process group, rank, shards
  of the work and their gathering.
"""
from __future__ import annotations

from vggkit import lazy_exports

_EXPORTS = {
    "Views": "views", "image_views": "views", "read_views": "views",
    "size_batches": "batching", "pass_cap": "pass_cap", "PassCap": "pass_cap",
    "Backend": "backends", "BACKENDS": "backends", "PRECISIONS": "backends",
    "available_backends": "backends", "choose": "autotune",
    "compile_for_inference": "runners", "dense_output": "runners", "CompiledNet": "runners",
    "choose_device": "distributed", "init_distributed": "distributed",
    "rank_and_world": "distributed",
}
__all__ = sorted(_EXPORTS)


# lazy: `import vggkit.inference` must not import torch
__getattr__ = lazy_exports(__name__, _EXPORTS)
