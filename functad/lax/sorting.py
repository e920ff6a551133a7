"""Sorting primitives: a stable multi-operand ``sort`` and ``searchsorted``.

``sort`` sorts several operands of one shape together along ``dimension``,
ordered by the first ``num_keys`` of them (lexicographically).  Its JVP sorts
an extra index operand alongside to get the permutation, then gathers each
tangent with it (a ``gather``, which is linear), so it can be differentiated
again.  ``searchsorted`` has an integer output and a zero derivative.
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import defjvp_zero

__all__ = ["sort", "sort_key_val", "searchsorted", "take_along"]


# -- sort ------------------------------------------------------------------

sort_p = Primitive("sort", multiple_results=True)


def _sort_impl(*operands, dimension, is_stable, num_keys):
    keys = [np.asarray(k) for k in operands[:num_keys]]
    if num_keys == 1:
        perm = np.argsort(keys[0], axis=dimension, kind="stable")
    else:
        moved = [np.moveaxis(k, dimension, -1) for k in reversed(keys)]
        perm = np.moveaxis(np.lexsort(moved, axis=-1), -1, dimension)
    return [np.take_along_axis(np.asarray(o), perm, axis=dimension) for o in operands]


def _sort_abstract_eval(*avals, dimension, is_stable, num_keys):
    if not avals:
        raise ValueError("sort: needs at least one operand")
    shape = avals[0].shape
    if any(a.shape != shape for a in avals):
        raise ValueError(f"sort: all operands must have the same shape, got "
                         f"{[a.shape for a in avals]}")
    if not 0 <= dimension < len(shape):
        raise ValueError(f"sort: dimension {dimension} is out of bounds for operands of shape "
                         f"{shape}")
    if not 1 <= num_keys <= len(avals):
        raise ValueError(f"sort: num_keys={num_keys} must be between 1 and the number of "
                         f"operands ({len(avals)})")
    return list(avals)


def _iota_along(shape, dimension):
    n = shape[dimension]
    ar = np.arange(n).reshape((1,) * dimension + (n,) + (1,) * (len(shape) - dimension - 1))
    return core._wrap(np.broadcast_to(ar, shape))


def take_along(x, perm, dimension):
    """``x`` gathered with the integer ``perm`` (of ``x``'s shape) along ``dimension``
    (a single ``gather``, linear in ``x``)."""
    from functad.lax.indexing import Indexer, gather_p
    shape = core.aval_of(x).shape
    arrays, entries = [], []
    for d, n in enumerate(shape):
        entries.append(("a", d))
        if d == dimension:
            arrays.append(perm)
        else:
            arrays.append(core._wrap(
                np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1))))
    return gather_p.bind(x, *arrays, indexer=Indexer(entries), oob="clip")


def _sort_jvp(primals, tangents, dimension, is_stable, num_keys):
    shape = core.aval_of(primals[0]).shape
    outs = sort_p.bind(*primals, _iota_along(shape, dimension), dimension=dimension,
                       is_stable=is_stable, num_keys=num_keys)
    perm = outs[-1]
    t_out = [None if t is None else take_along(t, perm, dimension) for t in tangents]
    return outs[:-1], t_out


sort_p.impl = _sort_impl
sort_p.abstract_eval = _sort_abstract_eval
sort_p.jvp = _sort_jvp


def sort(operand, dimension=-1, is_stable=True, num_keys=1):
    """Sort ``operand`` (an array, or a sequence of arrays of one shape sorted
    together by the first ``num_keys``) along ``dimension``.  The sort is
    always stable; NaNs sort last.

    >>> sort(np.array([3.0, 1.0, 2.0]))
    Array([1., 2., 3.])
    >>> sort((np.array([2, 1, 2]), np.array([10.0, 20.0, 30.0])), num_keys=1)
    (Array([1, 2, 2]), Array([20., 10., 30.]))
    """
    single = not isinstance(operand, (tuple, list))
    ops = (operand,) if single else tuple(operand)
    nd = len(core.aval_of(ops[0]).shape)
    if not -nd <= dimension < nd:
        raise ValueError(f"sort: dimension {dimension} is out of bounds for an operand of "
                         f"dimension {nd}")
    outs = sort_p.bind(*ops, dimension=int(dimension) % nd, is_stable=bool(is_stable),
                       num_keys=int(num_keys))
    return outs[0] if single else tuple(outs)


def sort_key_val(keys, values, dimension=-1, is_stable=True):
    """Sort ``keys`` along ``dimension`` and permute ``values`` the same way."""
    return sort((keys, values), dimension, is_stable, 1)


# -- searchsorted ----------------------------------------------------------

searchsorted_p = Primitive("searchsorted")


def _searchsorted_impl(a, v, side):
    return np.searchsorted(np.asarray(a), v, side=side).astype(np.int64)


def _searchsorted_abstract_eval(a, v, side):
    if a.ndim != 1:
        raise ValueError(f"searchsorted: the sorted array must be 1-d, got shape {a.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    return core._cached_aval(v.shape, np.int64)


searchsorted_p.impl = _searchsorted_impl
searchsorted_p.abstract_eval = _searchsorted_abstract_eval
defjvp_zero(searchsorted_p)


def searchsorted(sorted_arr, query, side="left"):
    """Insertion indices of ``query`` into the 1-d ascending ``sorted_arr``
    (``int64``; not differentiable).

    >>> searchsorted(np.array([1.0, 2.0, 3.0]), np.array([2.5, 0.0]))
    Array([2, 0])
    """
    return searchsorted_p.bind(sorted_arr, query, side=side)
