"""Building blocks of a model's ``build``: encoder and decoder around a code, composed.

A model file's ``build(options, common, data)`` (``aejax.models.spec.ModelSpec``) picks
its code and calls ``dense_parts`` or ``conv_parts``; ``compose`` does both for the
common case of a code made from the options alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aejax.models.autoencoder import Autoencoder
from aejax.models.parts import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, check_conv_shape
from aejax.models.spec import Common, DataInfo


def out_shape(input_shape: tuple[int, ...], likelihood) -> tuple[int, ...]:
    """The decoder's output shape: the last axis times the likelihood's parameters."""
    return (*input_shape[:-1], input_shape[-1] * likelihood.params_per_element)


def dense_parts(options: Any, common: Common, data: DataInfo, code) -> dict:
    """MLP encoder (``options.hidden``) and mirrored MLP decoder around ``code``."""
    hidden = tuple(options.hidden)
    act, dtype = common.activation, common.dtype
    return {
        "encoder": MLPEncoder(hidden, code.features, act, dtype),
        "code": code,
        "decoder": MLPDecoder(
            hidden[::-1], out_shape(data.input_shape, common.likelihood), act, dtype
        ),
    }


def conv_parts(options: Any, common: Common, data: DataInfo, code, *, grid: bool = False) -> dict:
    """Stride-2 conv encoder (``options.conv_features``) and its decoder around ``code``."""
    feats = tuple(options.conv_features)
    shape = tuple(data.input_shape)
    check_conv_shape(shape, len(feats))
    act, dtype = common.activation, common.dtype
    out_channels = shape[-1] * common.likelihood.params_per_element
    return {
        "encoder": ConvEncoder(feats, code.features, grid, act, dtype),
        "code": code,
        "decoder": ConvDecoder(shape, feats, out_channels, grid, act, dtype, options.deconv),
    }


def compose(parts: Callable, code: Callable[[Any, Common], Any]) -> Callable:
    """``build(options, common, data)``: ``parts`` (``dense_parts``, ...) around ``code``.

    Args:
      parts: ``dense_parts`` or ``conv_parts``.
      code: ``code(options, common) -> code module``.
    """

    def build(options, common: Common, data: DataInfo) -> Autoencoder:
        p = parts(options, common, data, code(options, common))
        return Autoencoder(tuple(data.input_shape), likelihood=common.likelihood, **p)

    return build
