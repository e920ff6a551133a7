"""Reductions of functad.numpy: sum, mean, ... over ``axis`` with ``keepdims``."""

from __future__ import annotations

import numpy as np

from functad import core
from functad.lax import elementwise as ew
from functad.lax import reductions as lr
from functad.lax.shapes import reshape
from functad.numpy._ufuncs import _arr

__all__ = ["sum", "mean"]


def _normalize_axes(axis, ndim, name):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ValueError(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis!r}")
    return tuple(sorted(out)) if ndim else ()


def _keepdims(out, shape, axes, keepdims):
    if keepdims:
        return reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))
    return out


def sum(a, axis=None, dtype=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Sum of elements over ``axis`` (differentiable).

    >>> import functad.numpy as fnp
    >>> fnp.sum(fnp.ones((2, 3)), axis=0)
    Array([2., 2., 2.])
    """
    a = _arr(a)
    shape = core.aval_of(a).shape
    axes = _normalize_axes(axis, len(shape), "sum")
    if dtype is not None:
        from functad.numpy._core import astype
        a = astype(a, dtype)
    out = lr.reduce_sum(a, axes) if axes else ew.add(a, 0) if core.aval_of(a).dtype == np.bool_ \
        else lr.reduce_sum(a, ())
    return _keepdims(out, shape, axes, keepdims)


def mean(a, axis=None, dtype=None, keepdims=False):
    """Arithmetic mean over ``axis`` (differentiable)."""
    a = _arr(a)
    av = core.aval_of(a)
    axes = _normalize_axes(axis, av.ndim, "mean")
    n = int(np.prod([av.shape[i] for i in axes])) if axes else 1
    if av.dtype.kind in "biu" and dtype is None:
        dtype = np.float64
    s = sum(a, axis=axes, dtype=dtype, keepdims=keepdims)
    return ew.div(s, float(n)) if n else ew.mul(s, np.nan)
