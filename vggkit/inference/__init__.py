"""Running a frozen VGG densely over test images: the layer under evaluation
(Sect. 3.2, :mod:`vggkit.evaluation`) and the Appendix-B descriptor
(:mod:`vggkit.features`).

* :mod:`~vggkit.inference.views` -- an image decoded once and rescaled to every
  test scale Q (uint8 tensors); aspect-ratio order; a loader dataset.
* :mod:`~vggkit.inference.batching` -- equal sizes batched together, pixel caps.
* :mod:`~vggkit.inference.pass_cap` -- crops per evaluation pass, derived on the
  running machine from memory and a cached timing probe.
* :mod:`~vggkit.inference.backends` -- the backends (eager, jit, mkldnn,
  onnxruntime), precisions, and the one resolver of 'auto'.
* :mod:`~vggkit.inference.runners` -- :func:`compile_for_inference`: one output
  of a VGG as a function on the chosen backend; :class:`CompiledNet`: a VGG's
  ``forward`` and ``dense`` each on theirs.
* :mod:`~vggkit.inference.autotune` -- 'auto' measured: the probe, its cache,
  rank 0 deciding for all ranks.
* :mod:`~vggkit.inference.distributed` -- device, process group, rank, shards
  of the work and their gathering.
"""
from __future__ import annotations

from vggkit import lazy_exports

_EXPORTS = {
    "Views": "views", "image_views": "views", "read_views": "views",
    "size_batches": "batching", "pass_cap": "pass_cap", "PassCap": "pass_cap",
    "Backend": "backends", "BACKENDS": "backends", "PRECISIONS": "backends",
    "available_backends": "backends",
    "compile_for_inference": "runners", "dense_output": "runners", "CompiledNet": "runners",
    "choose_device": "distributed", "init_distributed": "distributed",
    "rank_and_world": "distributed",
}
__all__ = sorted(_EXPORTS)


# lazy: `import vggkit.inference` must not import torch
__getattr__ = lazy_exports(__name__, _EXPORTS)
