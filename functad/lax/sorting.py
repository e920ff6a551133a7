"""Sorting primitives: a stable multi-operand ``sort`` and ``searchsorted``.

``sort`` sorts several operands of one shape together along ``dimension``,
ordered by the first ``num_keys`` of them (lexicographically).  Its JVP sorts
an extra index operand alongside to get the permutation, then gathers each
tangent with it (a ``gather``, which is linear), so it can be differentiated
again.  ``searchsorted`` has an integer output and a zero derivative.

Batching: a ``sort`` with batched keys sorts along the example's dimension
of the batched operands (one primitive); with unbatched keys, the keys are
sorted once and the batched operands gathered with the permutation.
``searchsorted`` with one sorted array per example is a branch-free binary
search (``ceil(log2(m + 1))`` gathers and comparisons, NaN sorting last).
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


def _along(perm, shape, dimension):
    """The index arrays and indexer that gather ``perm`` (of ``shape``) along
    ``dimension``: ``perm`` there, and broadcasting aranges on the other axes."""
    from functad.lax.indexing import Indexer
    arrays = [perm if d == dimension else
              core._wrap(np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1)))
              for d, n in enumerate(shape)]
    return arrays, Indexer([("a", d) for d in range(len(shape))])


def take_along(x, perm, dimension):
    """``x`` gathered with the integer ``perm`` (of ``x``'s shape) along ``dimension``
    (a single ``gather``, linear in ``x``)."""
    from functad.lax.indexing import gather_p
    arrays, indexer = _along(perm, core.aval_of(x).shape, dimension)
    return gather_p.bind(x, *arrays, indexer=indexer, oob="clip")


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


def _sort_batch(vals, dims, *, dimension, is_stable, num_keys):
    from functad.lax.indexing import _gather_batch
    from functad.lax.shapes import _batch_size, _batched_axis, _example_shape, place_batch
    n = _batch_size(vals, dims)
    if all(d is None for d in dims[:num_keys]):
        # the keys, hence the permutation, are the same for every example: sort
        # the unbatched operands once (with an iota, to get the permutation) and
        # gather each batched operand with it
        shape = _example_shape(vals[0], dims[0])
        plain = [v for v, d in zip(vals, dims) if d is None]
        sorted_plain = sort_p.bind(*plain, _iota_along(shape, dimension), dimension=dimension,
                                   is_stable=is_stable, num_keys=num_keys)
        perm, it = sorted_plain[-1], iter(sorted_plain[:-1])
        outs, out_dims = [], []
        for v, d in zip(vals, dims):
            if d is None:
                outs.append(next(it))
                out_dims.append(None)
                continue
            arrays, indexer = _along(perm, shape, dimension)
            out, od = _gather_batch([v, *arrays], [d] + [None] * len(arrays), indexer=indexer,
                                    oob="clip")
            outs.append(out)
            out_dims.append(od)
        return outs, out_dims
    # batched keys: every operand is sorted along the example's dimension with
    # the batch axis at one place (unbatched values are broadcast: their order
    # differs per example)
    d = next(d for d in dims if d is not None)
    ops = [place_batch(v, e, d, n) for v, e in zip(vals, dims)]
    outs = sort_p.bind(*ops, dimension=_batched_axis(dimension, d), is_stable=is_stable,
                       num_keys=num_keys)
    return outs, [d] * len(outs)


sort_p.batch = _sort_batch


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


def _sort_less(a, b):
    """``a < b`` in the order of ``sort``, where NaN is the largest value."""
    from functad.lax import elementwise as ew
    lt = ew.lt(a, b)
    if core.aval_of(a).dtype.kind not in "fc" and core.aval_of(b).dtype.kind not in "fc":
        return lt
    return ew.logical_or(lt, ew.logical_and(ew.isnan(b), ew.logical_not(ew.isnan(a))))


def _searchsorted_batch(vals, dims, *, side):
    (a, v), (ad, vd) = vals, dims
    if ad is None:      # one sorted array: every query looks it up independently
        return searchsorted_p.bind(a, v, side=side), vd
    # One sorted array per example: a branch-free binary search, the same
    # ceil(log2(m + 1)) steps for every query, each one gather from the sorted
    # rows (indexed by example and position) and a comparison.  ``pos`` counts
    # the elements found before the query (< it for "left", <= it for "right").
    from functad.batching import moveaxis
    from functad.lax import elementwise as ew
    from functad.lax.indexing import Indexer, gather_p
    from functad.lax.shapes import broadcast_to
    a = moveaxis(a, ad, 0)
    n, m = core.shape_of(a)
    if vd is not None:
        v = moveaxis(v, vd, 0)
    rank = len(core.shape_of(v)) - (vd is not None)
    rows = core._wrap(np.arange(n).reshape((n,) + (1,) * rank))
    pos = np.zeros((), np.int64)
    step = 1 << max(m.bit_length() - 1, 0)
    by_row = Indexer([("a", 0), ("a", 1)])
    while m and step:
        cand = ew.add(pos, np.int64(step))
        ok = ew.le(cand, np.int64(m))
        probe = gather_p.bind(a, rows, ew.sub(cand, np.int64(1)), indexer=by_row, oob="clip")
        below = _sort_less(probe, v) if side == "left" else ew.logical_not(_sort_less(v, probe))
        pos = ew.select(ew.logical_and(ok, below), cand, pos)
        step >>= 1
    shape = tuple(core.shape_of(v))
    # a no-op unless m = 0 (no step was taken)
    return broadcast_to(pos, (n,) + (shape[1:] if vd is not None else shape)), 0


searchsorted_p.batch = _searchsorted_batch


def searchsorted(sorted_arr, query, side="left"):
    """Insertion indices of ``query`` into the 1-d ascending ``sorted_arr``
    (``int64``; not differentiable).

    >>> searchsorted(np.array([1.0, 2.0, 3.0]), np.array([2.5, 0.0]))
    Array([2, 0])
    """
    return searchsorted_p.bind(sorted_arr, query, side=side)


# -- Numba lowering (jit's compiled tier) ------------------------------------
#
# The operands are seen as (pre, n, post) arrays, n along ``dimension``.  A
# permutation (int64, of that shape) starts as the identity and is refined by
# one stable merge sort per key, from the last key to the first (so that the
# first key decides, ties broken by the next: a lexicographic order), NaN
# last; then every operand is gathered with it.  The helpers are in
# functad.numba_runtime (compiled once per dtype, whatever the rank).

def _sort_lower(ctx, *ops, dimension, is_stable, num_keys):
    shape = tuple(ctx.in_avals[0].shape)
    n = shape[dimension]
    pre = int(np.prod(shape[:dimension], dtype=np.int64))
    post = int(np.prod(shape[dimension + 1:], dtype=np.int64))
    if n <= 1 or pre * post == 0:       # nothing moves
        return "(" + "".join(f"{o}, " for o in ops) + ")"
    s3 = (pre, n, post)

    def view(o):
        return f"np.ascontiguousarray({o}).reshape({s3})"

    perm = ctx.fresh("perm")
    # typed constants: a bare literal would compile the helper once per value
    ctx.emit(f"{perm} = {ctx.rt('sort_iota3')}(np.int64({pre}), np.int64({n}), "
             f"np.int64({post}))")
    for k in reversed(range(num_keys)):
        ctx.emit(f"{perm} = {ctx.rt('sort_perm3')}({view(ops[k])}, {perm})")
    outs = []
    for o in ops:
        t = ctx.fresh("srt")
        ctx.emit(f"{t} = {ctx.rt('sort_take3')}({view(o)}, {perm}).reshape({shape})")
        outs.append(t)
    return "(" + "".join(f"{o}, " for o in outs) + ")"


sort_p.lower = _sort_lower


def _searchsorted_lower(ctx, a, v, side):
    right = "np.bool_(True)" if side == "right" else "np.bool_(False)"   # not a literal type
    shape = tuple(ctx.in_avals[1].shape)
    if not shape:
        return f"{ctx.rt('searchsorted_one')}({a}, {v}, {right})"
    size = int(np.prod(shape, dtype=np.int64))
    return (f"{ctx.rt('searchsorted')}({a}, np.ascontiguousarray({v}).reshape(({size},)), "
            f"{right}).reshape({shape})")


searchsorted_p.lower = _searchsorted_lower
