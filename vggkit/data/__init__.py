"""Sect. 3.1 data: decoding, datasets, transforms, mean subtraction.

Modules: :mod:`~vggkit.data.io` (any file -> RGB), :mod:`~vggkit.data.datasets`
(ImageNet, ImageFolder), :mod:`~vggkit.data.transforms` (rescale, crop, flip,
fused scale-crop), :mod:`~vggkit.data.lighting` (PCA colour),
:mod:`~vggkit.data.packing` (PackInputs), :mod:`~vggkit.data.data_preprocessor`
(VGGDataPreprocessor), :mod:`~vggkit.data.bad_images` (skipped files),
:mod:`~vggkit.data.stats` (``tools/dataset_stats.py``).
"""
