"""Sorting of functad.numpy: sort, argsort, lexsort, searchsorted, unique.

``sort`` is differentiable (its JVP gathers the tangent with the sorting
permutation, to any order); ``argsort``, ``lexsort`` and ``searchsorted``
have integer outputs and zero derivatives.  Sorts are always stable.
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Tracer, _wrap
from functad.lax import shapes as ls
from functad.lax import sorting as lsort
from functad.numpy._ufuncs import _arr

__all__ = ["sort", "argsort", "lexsort", "searchsorted", "unique", "unique_values",
           "unique_counts", "unique_inverse", "unique_all", "sort_complex", "msort"]


def _prep(a, axis, name):
    from functad.numpy._shapes import ravel, _axis
    x = _arr(a)
    if axis is None:
        x = ravel(x)
        axis = 0
    nd = core.aval_of(x).ndim
    return x, _axis(axis, nd, name)


def _check_kind(kind, order, name):
    if order is not None:
        raise NotImplementedError(f"{name}: order= (structured arrays) is not supported")
    if kind not in (None, "stable", "mergesort", "quicksort", "heapsort"):
        raise ValueError(f"{name}: unknown kind {kind!r}")


def sort(a, axis=-1, kind=None, order=None, *, stable=True, descending=False):
    """A sorted copy of ``a`` along ``axis`` (the flattened array if ``None``);
    differentiable: the gradient flows back to the element that moved.

    >>> import functad.numpy as fnp
    >>> fnp.sort(fnp.array([[3.0, 1.0], [0.0, 2.0]]), axis=0)
    Array([[0., 1.],
           [3., 2.]])
    """
    _check_kind(kind, order, "sort")
    if isinstance(a, np.ndarray) and not descending and (axis is None or -a.ndim <= axis < a.ndim):
        return _wrap(np.sort(a, axis=axis, kind="stable"))
    x, ax = _prep(a, axis, "sort")
    out = lsort.sort(x, ax)
    return ls.rev(out, (ax,)) if descending else out


def argsort(a, axis=-1, kind=None, order=None, *, stable=True, descending=False):
    """Indices that sort ``a`` along ``axis`` (stable: equal elements keep their
    order, also with ``descending=True``).  Integer output, no derivative.

    >>> import functad.numpy as fnp
    >>> fnp.argsort(fnp.array([3.0, 1.0, 2.0]))
    Array([1, 2, 0])
    """
    _check_kind(kind, order, "argsort")
    if isinstance(a, np.ndarray) and not descending and (axis is None or -a.ndim <= axis < a.ndim):
        return _wrap(np.argsort(a, axis=axis, kind="stable"))
    x, ax = _prep(a, axis, "argsort")
    shape = core.aval_of(x).shape
    iota = lsort._iota_along(shape, ax)
    if not descending:
        return lsort.sort((x, iota), ax, num_keys=1)[1]
    # sorting the reversed array ascending and reversing the result gives a
    # descending order in which equal elements keep their original order
    perm = ls.rev(lsort.sort((ls.rev(x, (ax,)), iota), ax, num_keys=1)[1], (ax,))
    from functad.numpy import subtract
    return subtract(shape[ax] - 1, perm)


def lexsort(keys, axis=-1):
    """Indirect stable sort by several keys: the *last* key is the primary one.

    >>> import functad.numpy as fnp
    >>> fnp.lexsort((fnp.array([2, 1, 3]), fnp.array([0, 1, 0])))
    Array([0, 2, 1])
    """
    from functad.numpy._shapes import _axis, broadcast_arrays
    ks = broadcast_arrays(*[_arr(k) for k in keys][::-1])
    if not ks:
        raise TypeError("lexsort: need at least one key")
    shape = core.aval_of(ks[0]).shape
    if not shape:
        raise ValueError("lexsort: keys must be at least 1-d")
    ax = _axis(axis, len(shape), "lexsort")
    return lsort.sort(tuple(ks) + (lsort._iota_along(shape, ax),), ax, num_keys=len(ks))[-1]


def msort(a):
    """Sort along the first axis (``sort(a, axis=0)``)."""
    return sort(a, axis=0)


def sort_complex(a):
    """Sort a real array and return it as complex, as NumPy does."""
    raise NotImplementedError("sort_complex: complex arrays are not supported yet")


def searchsorted(a, v, side="left", sorter=None, *, method=None):
    """Indices where ``v`` would be inserted into the ascending 1-d ``a`` to keep
    it sorted (``int64``; not differentiable).

    >>> import functad.numpy as fnp
    >>> fnp.searchsorted(fnp.array([1.0, 2.0, 3.0]), fnp.array([2.0, 0.5]), side="right")
    Array([2, 0])
    """
    x = _arr(a)
    if sorter is not None:
        from functad.numpy._indexing import take
        x = take(x, sorter)
    if core.aval_of(x).ndim != 1:
        raise ValueError(f"searchsorted: a must be 1-d, got shape {core.aval_of(x).shape}")
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    return lsort.searchsorted(x, _arr(v), side=side)


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, size=None, fill_value=None):
    """The sorted unique elements of ``ar`` (and optionally the index of their
    first occurrence, the inverse indices and the counts), as ``numpy.unique``.

    Needs a concrete ``ar`` (the number of unique values decides the output
    shape): it works eagerly and under ``grad`` (the unique values are then
    gathered from ``ar``, so they are differentiable), not under staging.

    >>> import functad.numpy as fnp
    >>> fnp.unique(fnp.array([3.0, 1.0, 3.0]))
    Array([1., 3.])
    """
    if size is not None or fill_value is not None:
        raise NotImplementedError("unique: size= and fill_value= are not supported yet")
    x = _arr(ar)
    from functad.numpy._indexing import _concrete_value, take
    v = _concrete_value(x, "unique", "the input", "")
    if v is None:
        raise core.ConcretizationTypeError(
            f"unique: the input ({core.aval_of(x).str_short()}) is traced under staging, so the "
            "number of unique values is unknown. Call unique outside the staged function.")
    res = np.unique(v, return_index=True, return_inverse=return_inverse,
                    return_counts=return_counts, axis=axis, equal_nan=equal_nan)
    first = res[1]
    if isinstance(x, Tracer):
        vals = take(x, first, axis=axis)
    else:
        vals = _wrap(res[0])
    extra = []
    if return_index:
        extra.append(_wrap(first))
    extra.extend(_wrap(r) for r in res[2:])
    return (vals, *extra) if extra else vals


def unique_values(x):
    """The sorted unique values of ``x`` (Array API; see :func:`unique`)."""
    return unique(x)


def unique_counts(x):
    """``(values, counts)`` of the unique values of ``x`` (Array API)."""
    return unique(x, return_counts=True)


def unique_inverse(x):
    """``(values, inverse_indices)``, with inverse indices of ``x``'s shape (Array API)."""
    vals, inv = unique(x, return_inverse=True)
    return vals, _wrap(np.reshape(inv, np.shape(x) if not isinstance(x, Tracer) else x.shape))


def unique_all(x):
    """``(values, indices, inverse_indices, counts)`` of ``x`` (Array API)."""
    vals, idx, inv, cnt = unique(x, return_index=True, return_inverse=True, return_counts=True)
    shape = x.shape if isinstance(x, Tracer) else np.shape(x)
    return vals, idx, _wrap(np.reshape(inv, shape)), cnt
