"""Built-in plugin: registers vggkit.models components through the public hooks."""
from __future__ import annotations

from typing import Any, Callable

from vggkit.hookspecs import hookimpl


@hookimpl
def vggkit_register_backbones(register: Callable[..., Any]) -> None:
    from vggkit.models.vgg import VGG
    register(VGG)


@hookimpl
def vggkit_register_heads(register: Callable[..., Any]) -> None:
    from vggkit.models.vgg import VGGHead
    register(VGGHead)


@hookimpl
def vggkit_register_weight_converters(register: Callable[..., Any]) -> None:
    from vggkit.models.caffe import CaffeConverter
    from vggkit.models.converters import (MMPretrainConverter, TimmConverter,
                                          TorchvisionConverter)
    for converter in (TorchvisionConverter, TimmConverter, MMPretrainConverter, CaffeConverter):
        register(converter, converter.name)
