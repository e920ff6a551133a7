"""Shape manipulation of functad.numpy: reshape, transpose, stack, ..."""

from __future__ import annotations

import numpy as np

from functad import core
from functad.lax import shapes as ls
from functad.numpy._ufuncs import _arr

__all__ = ["reshape", "transpose", "ravel", "expand_dims", "squeeze", "broadcast_to",
           "permute_dims", "matrix_transpose"]


def _resolve_shape(newshape, size):
    if isinstance(newshape, (int, np.integer)):
        newshape = (int(newshape),)
    newshape = [int(d) for d in newshape]
    if newshape.count(-1) > 1:
        raise ValueError(f"reshape: can only specify one unknown dimension, got {tuple(newshape)}")
    if -1 in newshape:
        known = int(np.prod([d for d in newshape if d != -1]))
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {tuple(newshape)}")
        newshape[newshape.index(-1)] = size // known
    return tuple(newshape)


def reshape(a, shape=None, order="C", *, newshape=None):
    """Give ``a`` a new shape (one dimension may be ``-1``)."""
    if order != "C":
        raise NotImplementedError("reshape: only order='C' is supported")
    shape = newshape if shape is None else shape
    a = _arr(a)
    av = core.aval_of(a)
    return ls.reshape(a, _resolve_shape(shape, av.size))


def ravel(a, order="C"):
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    a = _arr(a)
    nd = core.aval_of(a).ndim
    axes = tuple(reversed(range(nd))) if axes is None else tuple(int(i) % nd for i in axes)
    return ls.transpose(a, axes)


permute_dims = transpose


def matrix_transpose(x):
    nd = core.aval_of(x).ndim
    if nd < 2:
        raise ValueError(f"matrix_transpose: x must have at least 2 dimensions, got {nd}")
    return ls.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def expand_dims(a, axis):
    a = _arr(a)
    shape = list(core.aval_of(a).shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = len(shape) + len(axes)
    for ax in sorted(int(x) % nd for x in axes):
        shape.insert(ax, 1)
    return ls.reshape(a, tuple(shape))


def squeeze(a, axis=None):
    a = _arr(a)
    shape = core.aval_of(a).shape
    if axis is None:
        axes = {i for i, d in enumerate(shape) if d == 1}
    else:
        axes = {int(x) % len(shape) for x in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
        for ax in axes:
            if shape[ax] != 1:
                raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size "
                                 f"not equal to one (axis {ax} of shape {shape})")
    return ls.reshape(a, tuple(d for i, d in enumerate(shape) if i not in axes))


def broadcast_to(array, shape):
    return ls.broadcast_to(_arr(array), shape)
