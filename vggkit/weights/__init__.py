"""Published VGG weights by name, one line and offline-safe.

``build_vgg('D', weights='vgg16.torchvision')`` builds the net with
torchvision's weights; :func:`resolve_weights` gives the converted vggkit
checkpoint's path, fetching (progress bar, resume, checksum) and converting
once into ``weights/`` of the cache root (``$VGGKIT_CACHE``, default
``~/.cache/vggkit``); ``vggkit weights list|get`` is the command. Each entry
carries its class names (``get_weights_entry(name).categories``) and
:func:`transform` gives its preprocessing of a PIL image, the analogue of
torchvision's ``weights.transforms()``.
The catalogue is a registry (``WEIGHTS``) filled by the
``vggkit_register_weights`` hook, so plugins add entries. See docs/weights.md.
"""
# the module first: the function 'transform' below then takes the name in this package
from vggkit.weights.transform import WeightsTransform  # noqa: I001
from vggkit.weights.catalogue import (BUILTIN_WEIGHTS, UnknownWeightsError, WeightsEntry,
                                      WeightsError, get_weights_entry, imagenet_categories,
                                      list_weights, transform, weights_names)
from vggkit.weights.download import ChecksumError, DownloadError, OfflineError, offline_reason
from vggkit.weights.resolve import (cache_dir, cache_report, cached_checkpoint, cached_problem,
                                    config_for_weights, converted_path, download_path,
                                    fetch_weights, legacy_converted_path, resolve_weights,
                                    weights_dir, weights_status)

__all__ = ["BUILTIN_WEIGHTS", "ChecksumError", "DownloadError", "OfflineError",
           "UnknownWeightsError", "WeightsEntry", "WeightsError", "WeightsTransform",
           "cache_dir", "cache_report", "cached_checkpoint", "cached_problem",
           "config_for_weights", "converted_path", "download_path", "fetch_weights",
           "get_weights_entry", "imagenet_categories", "legacy_converted_path", "list_weights",
           "offline_reason", "resolve_weights", "transform", "weights_dir", "weights_names",
           "weights_status"]
