"""Published VGG weights by name, one line and offline-safe.

``build_vgg('D', weights='vgg16.torchvision')`` builds the net with
torchvision's weights; :func:`resolve_weights` gives the converted vggkit
checkpoint's path, fetching (progress bar, resume, checksum) and converting
once into ``$VGGKIT_CACHE``; ``vggkit weights list|get`` is the command.
The catalogue is a registry (``WEIGHTS``) filled by the
``vggkit_register_weights`` hook, so plugins add entries. See docs/weights.md.
"""
from vggkit.weights.catalogue import (BUILTIN_WEIGHTS, UnknownWeightsError, WeightsEntry,
                                      WeightsError, get_weights_entry, list_weights,
                                      weights_names)
from vggkit.weights.download import ChecksumError, DownloadError, OfflineError, offline_reason
from vggkit.weights.resolve import (cache_dir, config_for_weights, converted_path,
                                    download_path, resolve_weights, weights_status)

__all__ = ["BUILTIN_WEIGHTS", "ChecksumError", "DownloadError", "OfflineError",
           "UnknownWeightsError", "WeightsEntry", "WeightsError", "cache_dir",
           "config_for_weights", "converted_path", "download_path", "get_weights_entry",
           "list_weights", "offline_reason", "resolve_weights", "weights_names",
           "weights_status"]
