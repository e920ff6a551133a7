"""Reduction primitives over static axes."""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear

__all__ = ["reduce_sum"]


def _reduced_shape(shape, axes):
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _check_axes(a, axes, name):
    for ax in axes:
        if not 0 <= ax < a.ndim:
            raise ValueError(f"{name}: axis {ax} is out of bounds for an array of shape {a.shape}")


# -- reduce_sum ------------------------------------------------------------

reduce_sum_p = Primitive("reduce_sum")
reduce_sum_p.impl = lambda x, axes: np.sum(x, axis=axes)


def _reduce_sum_abstract_eval(a, axes):
    _check_axes(a, axes, "reduce_sum")
    dt = np.sum(np.ones((), a.dtype)).dtype if a.dtype.kind in "biu" else a.dtype
    return core._cached_aval(_reduced_shape(a.shape, axes), dt, a.weak_type)


def _reduce_sum_transpose(ct, x, axes):
    from functad.lax.shapes import broadcast_to, reshape
    shape = x.aval.shape
    return [broadcast_to(reshape(ct, _keepdims_shape(shape, axes)), shape)]


reduce_sum_p.abstract_eval = _reduce_sum_abstract_eval
deflinear(reduce_sum_p, _reduce_sum_transpose)


def reduce_sum(x, axes):
    """Sum ``x`` over the static tuple of non-negative ``axes``."""
    axes = tuple(sorted(int(a) for a in axes))
    return reduce_sum_p.bind(x, axes=axes)
