"""Indexing primitives: ``gather`` (NumPy indexing ``x[idx]``) and ``scatter``
(the functional updates ``x.at[idx].set/add/mul/min/max``).

Both take a *static* description of the index, an :class:`Indexer`, plus the
integer index arrays as extra operands.  An indexer has one entry per element
of a NumPy index tuple, with ``Ellipsis`` expanded and trailing full slices
added, so that every operand dimension is consumed by exactly one entry:

* ``("s", start, stop, step)`` — a slice, normalised for the dimension's size
  (``stop`` is ``None`` when a negative step runs past the start);
* ``("i", k)`` — a static integer, ``0 <= k < size``;
* ``("n",)`` — ``None`` (``newaxis``), which consumes no dimension;
* ``("a", j)`` — the ``j``-th index-array operand;
* ``("e",)`` — an ``Ellipsis`` that covers no dimension: it consumes nothing
  but, as in NumPy, separates the advanced indices on either side of it.

NumPy's rules then decide the output shape: the index arrays (and, when any
array is present, the static integers) broadcast together to a shape ``B``,
which replaces the indexed dimensions in place if those entries are adjacent,
and goes first otherwise.

Out-of-bounds index *arrays* (only detectable at run time) follow JAX: a
gather *clamps* them (``oob="clip"``, after wrapping negative indices once)
and a scatter *drops* the updates (``oob="drop"``).  The other two modes exist
for transposition: ``gather(oob="fill")`` reads zeros out of bounds and is the
transpose of ``scatter(mode="add", oob="drop")``; ``scatter(oob="clip")`` is
the transpose of the clamping gather.

``gather`` is linear in its operand: its JVP is itself applied to the tangent,
and its transpose is a scatter-add into zeros (repeated indices accumulate).
``scatter`` has a JVP for every mode; it is transposable in ``mode="add"``
(in both the operand and the values) and ``mode="mul"`` (in the operand).

Under ``vmap`` a batched gather or scatter is still one primitive: the batch
axis of the operand gets one more indexer entry (a slice, or an ``arange``
index array paired with batched index arrays); see "Batching" below.
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import is_undefined

__all__ = ["Indexer", "gather", "scatter", "gather_shape", "GATHER_OOB", "SCATTER_MODES"]

GATHER_OOB = ("clip", "fill")
SCATTER_OOB = ("drop", "clip")
SCATTER_MODES = ("set", "add", "mul", "min", "max")
_DUAL_OOB = {"clip": "clip", "fill": "drop", "drop": "fill"}


class Indexer(tuple):
    """The static, hashable description of a NumPy index (see the module docs).

    >>> Indexer((("s", 0, 3, 1), ("a", 0), ("n",), ("i", 2)))
    [0:3, #0, None, 2]
    """

    __slots__ = ()

    def __repr__(self):
        parts = []
        for e in self:
            k = e[0]
            if k == "s":
                start, stop, step = e[1], e[2], e[3]
                s = f"{start}:{'' if stop is None else stop}"
                parts.append(s if step == 1 else f"{s}:{step}")
            elif k == "i":
                parts.append(str(e[1]))
            elif k == "n":
                parts.append("None")
            elif k == "e":
                parts.append("...")
            else:
                parts.append(f"#{e[1]}")
        return "[" + ", ".join(parts) + "]"

    @property
    def num_arrays(self):
        return sum(1 for e in self if e[0] == "a")


def _slice_len(start, stop, step):
    return len(range(start, -1 if stop is None else stop, step))


_shape_cache: dict = {}


def gather_shape(indexer, shape, array_shapes):
    """Output shape of ``operand[indexer]`` for an operand of ``shape`` and index
    arrays of ``array_shapes`` (NumPy's placement rule for advanced indices)."""
    key = (indexer, shape, tuple(array_shapes))
    out = _shape_cache.get(key)
    if out is not None:
        return out
    consumed = sum(1 for e in indexer if e[0] not in "ne")
    if consumed != len(shape):
        raise ValueError(f"gather: indexer {indexer!r} consumes {consumed} dimensions but the "
                         f"operand has shape {shape}")
    has_arrays = any(e[0] == "a" for e in indexer)
    adv = [k for k, e in enumerate(indexer) if e[0] == "a" or (has_arrays and e[0] == "i")]
    b_shape = ()
    if has_arrays:
        try:
            b_shape = np.broadcast_shapes(*(array_shapes[e[1]] for e in indexer if e[0] == "a"))
        except ValueError:
            raise IndexError("shape mismatch: indexing arrays could not be broadcast together "
                             "with shapes " + " ".join(str(tuple(array_shapes[e[1]]))
                                                       for e in indexer if e[0] == "a")) from None
    contiguous = bool(adv) and adv == list(range(adv[0], adv[-1] + 1))
    out, dim = [], 0
    for k, e in enumerate(indexer):
        kind = e[0]
        if kind == "n":
            out.append(1)
            continue
        if kind == "e":
            continue
        n = shape[dim]
        dim += 1
        if kind == "a" or (kind == "i" and has_arrays):
            if contiguous and k == adv[0]:
                out.extend(b_shape)
            continue
        if kind == "s":
            start, stop, step = e[1], e[2], e[3]
            if not 0 <= start <= n or step == 0:
                raise ValueError(f"gather: slice entry {e} does not fit a dimension of size {n}")
            out.append(_slice_len(start, stop, step))
        elif kind == "i":
            if not 0 <= e[1] < n:
                raise IndexError(f"gather: index {e[1]} is out of bounds for a dimension of "
                                 f"size {n} (operand shape {shape})")
    if adv and not contiguous:
        out = list(b_shape) + out
    if len(_shape_cache) >= 4096:       # bounded: programs with many distinct shapes
        _shape_cache.clear()
    out = _shape_cache[key] = tuple(out)
    return out


def _numpy_index(indexer, shape, arrays, oob):
    """The NumPy index tuple for ``indexer`` with index arrays normalised for
    ``oob``, and the dimensions that need an extra 'trash' slot (``fill``/``drop``:
    out-of-bounds indices are sent to position ``size`` of such a dimension)."""
    parts, extend, dim = [], [], 0
    for e in indexer:
        kind = e[0]
        if kind == "n":
            parts.append(None)
            continue
        if kind == "e":
            parts.append(Ellipsis)
            continue
        if kind == "s":
            parts.append(slice(e[1], e[2], e[3]))
        elif kind == "i":
            parts.append(e[1])
        else:
            a = np.asarray(arrays[e[1]])
            n = shape[dim]
            if a.size and (a.min() < 0 or a.max() >= n):
                a = a.astype(np.intp)
                if oob == "clip" and n > 0:
                    a = np.clip(np.where(a < 0, a + n, a), 0, n - 1)
                else:
                    a = np.where(a < 0, a + n, a)
                    bad = (a < 0) | (a >= n)
                    if bad.any():
                        a = np.where(bad, n, a)
                        extend.append(dim)
            parts.append(a)
        dim += 1
    return tuple(parts), extend


def _with_trash(x, extend):
    """``x`` with one extra zero slot at the end of each dimension in ``extend``."""
    shape = list(x.shape)
    for d in extend:
        shape[d] += 1
    out = np.zeros(shape, x.dtype)
    out[tuple(slice(0, n) for n in x.shape)] = x
    return out


def _check_index_avals(name, avals):
    for a in avals:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name}: index arrays must have an integer dtype, got "
                            f"{a.dtype.name} (shape {a.shape})")


def _zeros(aval):
    from functad.lax.shapes import broadcast_to
    return broadcast_to(aval.dtype.type(0), aval.shape)


# --------------------------------------------------------------------------
# gather
# --------------------------------------------------------------------------

def _check_index_operands(name, oob, allowed_oob, indexer, arrays):
    """The checks gather and scatter share: a known ``oob`` policy, as many
    index arrays as the indexer refers to, and integer index avals."""
    if oob not in allowed_oob:
        raise ValueError(f"{name}: oob must be one of {allowed_oob}, got {oob!r}")
    if len(arrays) != indexer.num_arrays:
        raise TypeError(f"{name}: indexer {indexer!r} refers to {indexer.num_arrays} index "
                        f"arrays but {len(arrays)} were given")
    _check_index_avals(name, arrays)


gather_p = Primitive("gather")


def _gather_impl(x, *arrays, indexer, oob):
    x = np.asarray(x)
    idx, extend = _numpy_index(indexer, x.shape, arrays, oob)
    if extend:
        x = _with_trash(x, extend)
    return x[idx]


def _gather_abstract_eval(a, *arrays, indexer, oob):
    _check_index_operands("gather", oob, GATHER_OOB, indexer, arrays)
    shape = gather_shape(indexer, a.shape, [b.shape for b in arrays])
    return core._cached_aval(shape, a.dtype, a.weak_type)


def _gather_jvp(primals, tangents, indexer, oob):
    x, *arrays = primals
    out = gather_p.bind(x, *arrays, indexer=indexer, oob=oob)
    t = tangents[0]
    if t is None:
        return out, None
    return out, gather_p.bind(t, *arrays, indexer=indexer, oob=oob)


def _gather_transpose(ct, x, *arrays, indexer, oob):
    if any(is_undefined(a) for a in arrays):
        raise NotImplementedError("gather is not linear in its index arrays")
    zeros = _zeros(x.aval)
    ct_x = scatter_p.bind(zeros, ct, *arrays, indexer=indexer, mode="add", oob=_DUAL_OOB[oob])
    return [ct_x] + [None] * len(arrays)


gather_p.impl = _gather_impl
gather_p.abstract_eval = _gather_abstract_eval
gather_p.jvp = _gather_jvp
gather_p.transpose = _gather_transpose
gather_p.linear_in = (0,)


# --------------------------------------------------------------------------
# Batching (vmap) of gather and scatter
# --------------------------------------------------------------------------
#
# The batch axis of the operand becomes one more entry of the indexer, so a
# batched gather or scatter is still a single primitive:
#
# * index arrays unbatched: a full slice ("s", 0, n, 1) over the operand's
#   batch axis;
# * some index arrays batched: their batch axis goes first and they broadcast
#   as NumPy does (``broadcast_batched``), so the broadcast index shape is
#   ``(n,) + B``; a batched operand then gets the index array
#   ``arange(n)[:, None, ...]`` on its batch axis, pairing example i's indices
#   with example i's operand.  An unbatched operand of a gather stays as it is.
#
# NumPy puts the broadcast index shape where the advanced entries are if they
# are adjacent, else first.  The new entry must not change that placement
# (that would reorder the example's output axes), so a slice never goes
# inside a block of adjacent advanced entries and an index array never goes
# outside it; when the operand's batch axis is at such a place, it is moved
# next to the block first.

def _advanced(entries):
    has_arrays = any(e[0] == "a" for e in entries)
    return [k for k, e in enumerate(entries) if e[0] == "a" or (has_arrays and e[0] == "i")]


def _adjacent(adv):
    return bool(adv) and adv == list(range(adv[0], adv[-1] + 1))


def _batch_entry(entries, bdim, kind):
    """Where to insert the batch entry (``kind`` ``"s"`` or ``"a"``) for an operand
    whose batch axis is ``bdim`` (None: unbatched, to be broadcast anywhere).
    Returns ``(k, t)``: the entry position, and the axis the operand's batch
    axis must be moved to first."""
    adv = _advanced(entries)
    adjacent = _adjacent(adv)

    def ok(k):
        if not adjacent:
            return True
        if kind == "a":
            return adv[0] <= k <= adv[-1] + 1
        return k <= adv[0] or k > adv[-1]

    consuming = [k for k, e in enumerate(entries) if e[0] not in "ne"]
    if bdim is not None:
        # the entries between those consuming axes bdim - 1 and bdim
        lo = consuming[bdim - 1] + 1 if bdim > 0 else 0
        hi = consuming[bdim] if bdim < len(consuming) else len(entries)
        for k in (lo, hi, max(lo, adv[0]) if adv else lo):
            if lo <= k <= hi and ok(k):
                return k, bdim
    if not adv:
        return 0, 0
    # right before the advanced block: the batch axis goes before the axis it indexes
    return adv[0], sum(1 for k in consuming if k < adv[0])


def _entry_out_axis(entries, k, b_rank):
    """The output axis of the (slice or newaxis) entry ``k``, or, for an
    advanced entry, the first axis of the broadcast index shape (of rank ``b_rank``)."""
    adv = _advanced(entries)
    if k in adv:
        return 0 if not _adjacent(adv) else sum(1 for e in entries[:adv[0]] if e[0] in "sn")
    before = sum(1 for e in entries[:k] if e[0] in "sn")
    if adv and (not _adjacent(adv) or k > adv[0]):
        before += b_rank
    return before


def _index_rank(arrays):
    return max((len(core.shape_of(a)) for a in arrays), default=0)


def _batch_index(indexer, arrays, adims, xd, n, operand_batched):
    """The batched indexer and index arrays.  ``xd`` is the operand's batch axis
    (None: unbatched); ``operand_batched`` says whether the operand is used
    batched (a scatter's always is: its output differs per example).  Returns
    ``(indexer, arrays, t, p)``: the operand's batch axis must be moved (or
    broadcast) to ``t``, and the batch axis of the indexed shape is ``p``."""
    from functad.batching import broadcast_batched
    entries = list(indexer)
    if all(d is None for d in adims):
        k, t = _batch_entry(entries, xd, "s")
        entries.insert(k, ("s", 0, n, 1))
        return Indexer(entries), list(arrays), t, _entry_out_axis(entries, k, _index_rank(arrays))
    b_rank = max(len(core.shape_of(a)) - (d is not None) for a, d in zip(arrays, adims))
    arrays = broadcast_batched(list(arrays), list(adims))
    t = None
    if operand_batched:
        k, t = _batch_entry(entries, xd, "a")
        entries.insert(k, ("a", len(arrays)))
        arrays.append(core._wrap(np.arange(n).reshape((n,) + (1,) * b_rank)))
    adv = _advanced(entries)
    return Indexer(entries), arrays, t, _entry_out_axis(entries, adv[0], b_rank + 1)


def _gather_batch(vals, dims, *, indexer, oob):
    from functad.batching import moveaxis
    from functad.lax.shapes import _batch_size
    (x, *arrays), (xd, *adims) = vals, dims
    n = _batch_size(vals, dims)
    indexer, arrays, t, p = _batch_index(indexer, arrays, adims, xd, n, xd is not None)
    if xd is not None:
        x = moveaxis(x, xd, t)
    return gather_p.bind(x, *arrays, indexer=indexer, oob=oob), p


gather_p.batch = _gather_batch


def gather(operand, *arrays, indexer, oob="clip"):
    """``operand[index]`` for the static ``indexer`` and integer index ``arrays``.

    Out-of-bounds index arrays are clamped (``oob="clip"``) or read as zeros
    (``oob="fill"``).

    >>> gather(np.arange(5.0), np.array([4, -1, 9]), indexer=Indexer([("a", 0)]))
    Array([4., 4., 4.])
    """
    if not isinstance(indexer, Indexer):
        indexer = Indexer(indexer)
    return gather_p.bind(operand, *arrays, indexer=indexer, oob=oob)


# --------------------------------------------------------------------------
# scatter
# --------------------------------------------------------------------------

scatter_p = Primitive("scatter")

_UFUNC = {"add": np.add, "mul": np.multiply, "min": np.minimum, "max": np.maximum}


def _scatter_impl(x, values, *arrays, indexer, mode, oob):
    x = np.asarray(x)
    idx, extend = _numpy_index(indexer, x.shape, arrays, oob)
    out = _with_trash(x, extend) if extend else x.copy()
    if mode == "set":
        out[idx] = values
    elif not arrays:      # basic indices never repeat a position
        view = out[idx]
        out[idx] = _UFUNC[mode](view, values)
    else:
        # broadcast explicitly: NumPy 2.4's ufunc.at mis-broadcasts values against
        # multi-dimensional index arrays (it reads garbage)
        if np.ndim(values):
            values = np.broadcast_to(values, gather_shape(indexer, x.shape,
                                                          [np.shape(a) for a in arrays]))
        _UFUNC[mode].at(out, idx, values)
    if extend:
        out = out[tuple(slice(0, n) for n in x.shape)]
    return out


def _scatter_abstract_eval(a, v, *arrays, indexer, mode, oob):
    if mode not in SCATTER_MODES:
        raise ValueError(f"scatter: mode must be one of {SCATTER_MODES}, got {mode!r}")
    _check_index_operands("scatter", oob, SCATTER_OOB, indexer, arrays)
    if v.dtype != a.dtype:
        raise TypeError(f"scatter: the values have dtype {v.dtype.name} but the operand has "
                        f"dtype {a.dtype.name}; cast the values first")
    g = gather_shape(indexer, a.shape, [b.shape for b in arrays])
    try:
        ok = np.broadcast_shapes(v.shape, g) == g
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"scatter: values of shape {v.shape} cannot be broadcast to the "
                         f"indexed shape {g} (operand shape {a.shape}, index {indexer!r})")
    return a


def _scatter(x, v, arrays, indexer, mode, oob):
    return scatter_p.bind(x, v, *arrays, indexer=indexer, mode=mode, oob=oob)


def _gather_for(x, arrays, indexer, oob):
    return gather_p.bind(x, *arrays, indexer=indexer, oob="fill" if oob == "drop" else "clip")


def _scatter_jvp(primals, tangents, indexer, mode, oob):
    from functad.lax import elementwise as ew
    from functad.lax.shapes import broadcast_to
    x, v, *arrays = primals
    tx, tv = tangents[0], tangents[1]
    out = _scatter(x, v, arrays, indexer, mode, oob)
    if tx is None and tv is None:
        return out, None
    xa = core.aval_of(x)
    g_shape = gather_shape(indexer, xa.shape, [core.aval_of(a).shape for a in arrays])
    if tv is not None:
        tv = broadcast_to(tv, g_shape)

    if mode == "add":
        if tv is None:
            return out, tx
        return out, _scatter(_zeros(xa) if tx is None else tx, tv, arrays, indexer, "add", oob)

    if mode == "set":
        t = None
        if tx is not None:
            written = _scatter(_zeros(xa.update(dtype=np.bool_)), np.True_, arrays, indexer,
                               "set", oob)
            t = ew.select(written, xa.dtype.type(0), tx)
        if tv is not None:
            unique = not arrays or (
                not any(isinstance(a, core.Tracer) for a in arrays)
                and _update_slots(indexer, xa.shape, arrays, oob, g_shape)[3] <= 1)
            if not unique:     # with repeated indices only the update that lands survives
                ids = core._wrap(np.arange(int(np.prod(g_shape)), dtype=np.int64).reshape(g_shape))
                landed = _scatter(broadcast_to(np.int64(-1), xa.shape), ids, arrays, indexer,
                                  "set", oob)
                wins = ew.eq(_gather_for(landed, arrays, indexer, "clip"), ids)
                if isinstance(wins, core.Tracer) or not np.all(wins):
                    tv = ew.select(wins, tv, xa.dtype.type(0))
            t = _scatter(_zeros(xa) if t is None else t, tv, arrays, indexer, "add", oob)
        return out, t

    if mode == "mul":
        t = None if tx is None else _scatter(tx, v, arrays, indexer, "mul", oob)
        if tv is not None:
            tv_out = _scatter_mul_values_jvp(x, v, tv, arrays, indexer, oob, g_shape)
            t = tv_out if t is None else ew.add(t, tv_out)
        return out, t

    # min / max: the tangent follows the winning candidates, averaged over ties
    out_g = _gather_for(out, arrays, indexer, "clip")
    won = ew.eq(broadcast_to(v, g_shape), out_g)
    kept = ew.eq(x, out)
    count = _scatter(ew.convert_element_type(kept, xa.dtype),
                     ew.convert_element_type(won, xa.dtype), arrays, indexer, "add", oob)
    t = None if tx is None else ew.select(kept, tx, xa.dtype.type(0))
    if tv is not None:
        t = _scatter(_zeros(xa) if t is None else t, ew.select(won, tv, xa.dtype.type(0)),
                     arrays, indexer, "add", oob)
    return out, ew.div(t, count)


def _update_slots(indexer, shape, arrays, oob, g_shape):
    """For concrete indices: each update's flat target position and its rank
    among the updates hitting that position.  Returns ``(positions of the
    in-bounds updates in the flattened update array, their targets, their
    ranks, the largest multiplicity)``."""
    size = int(np.prod(shape, dtype=np.int64))
    ids = np.arange(size, dtype=np.int64).reshape(shape)
    idx, extend = _numpy_index(indexer, shape, arrays, oob)
    if extend:
        ext = np.full([n + (d in extend) for d, n in enumerate(shape)], -1, np.int64)
        ext[tuple(slice(0, n) for n in shape)] = ids
        ids = ext
    loc = np.broadcast_to(ids[idx], g_shape).ravel()
    pos = np.flatnonzero(loc >= 0)
    loc = loc[pos]
    order = np.argsort(loc, kind="stable")
    ranked = loc[order]
    rank = np.empty_like(loc)
    rank[order] = np.arange(loc.size) - np.searchsorted(ranked, ranked, side="left")
    return pos, loc, rank, int(rank.max()) + 1 if rank.size else 0


def _scatter_mul_values_jvp(x, v, tv, arrays, indexer, oob, g_shape):
    """Tangent of ``x.at[idx].multiply(v)`` along ``tv``: at each position p,
    ``x[p] * sum_j tv_j * prod_{i != j} v_i`` over the updates hitting p."""
    from functad.lax import elementwise as ew
    from functad.lax.shapes import broadcast_to, reshape
    xa = core.aval_of(x)
    one, zero = xa.dtype.type(1), xa.dtype.type(0)
    concrete = not any(isinstance(a, core.Tracer) for a in arrays)
    if concrete:
        pos, loc, rank, k = _update_slots(indexer, xa.shape, arrays, oob, g_shape)
        if k <= 1:        # no repeated index: the product of the other updates is 1
            coef = _gather_for(x, arrays, indexer, "clip")
            return _scatter(_zeros(xa), ew.mul(coef, tv), arrays, indexer, "add", oob)
        # Repeated indices: lay the updates out in a (positions, multiplicity) table
        # of ones, so that the products of the others are plain elementwise
        # products, exact (also to higher orders) when some updates are zero.
        size = xa.size
        flat = Indexer([("a", 0)])
        n_upd = int(np.prod(g_shape, dtype=np.int64))
        vv = gather_p.bind(reshape(broadcast_to(v, g_shape), (n_upd,)), core._wrap(pos),
                           indexer=flat, oob="clip")
        tvv = gather_p.bind(reshape(tv, (n_upd,)), core._wrap(pos), indexer=flat, oob="clip")
        table = Indexer([("a", 0), ("a", 1)])
        slots = (core._wrap(loc), core._wrap(rank))
        d = _scatter(broadcast_to(one, (size, k)), vv, slots, table, "set", "drop")
        td = _scatter(broadcast_to(zero, (size, k)), tvv, slots, table, "add", "drop")
        cols = [gather_p.bind(d, indexer=Indexer([("s", 0, size, 1), ("i", j)]), oob="clip")
                for j in range(k)]
        acc = None
        for j in range(k):
            term = gather_p.bind(td, indexer=Indexer([("s", 0, size, 1), ("i", j)]), oob="clip")
            for m in range(k):
                if m != j:
                    term = ew.mul(term, cols[m])
            acc = term if acc is None else ew.add(acc, term)
        return ew.mul(x, reshape(acc, xa.shape))
    # Traced indices: the product of the others is the product of the non-zero
    # updates divided by v_j, with zero updates counted separately.  Exact to
    # first order; higher orders are exact unless an update is exactly zero.
    vb = broadcast_to(v, g_shape)
    is_zero = ew.eq(vb, zero)
    safe = ew.select(is_zero, one, vb)
    prod_nz = _scatter(broadcast_to(one, xa.shape), safe, arrays, indexer, "mul", oob)
    n_zero = _scatter(_zeros(xa), ew.convert_element_type(is_zero, xa.dtype), arrays,
                      indexer, "add", oob)
    prod_g = _gather_for(prod_nz, arrays, indexer, "clip")
    nz_g = _gather_for(n_zero, arrays, indexer, "clip")
    others = ew.select(is_zero, ew.select(ew.eq(nz_g, one), prod_g, zero),
                       ew.select(ew.eq(nz_g, zero), ew.div(prod_g, safe), zero))
    coef = ew.mul(_gather_for(x, arrays, indexer, "clip"), others)
    return _scatter(_zeros(xa), ew.mul(coef, tv), arrays, indexer, "add", oob)


def _scatter_transpose(ct, x, v, *arrays, indexer, mode, oob):
    from functad.lax.elementwise import unbroadcast
    if any(is_undefined(a) for a in arrays):
        raise NotImplementedError("scatter is not linear in its index arrays")
    rest = [None] * len(arrays)
    if mode == "add":
        ct_x = ct if is_undefined(x) else None
        ct_v = None
        if is_undefined(v):
            ct_v = unbroadcast(gather_p.bind(ct, *arrays, indexer=indexer, oob=_DUAL_OOB[oob]),
                               v.aval)
        return [ct_x, ct_v] + rest
    if mode == "mul" and not is_undefined(v):
        return [_scatter(ct, v, arrays, indexer, "mul", oob), None] + rest
    raise NotImplementedError(f"scatter(mode={mode!r}) is not linear in "
                              f"{'its values' if mode == 'mul' else 'its inputs'}; only "
                              "mode='add' (and mode='mul' in the operand) can be transposed")


scatter_p.impl = _scatter_impl
scatter_p.abstract_eval = _scatter_abstract_eval
scatter_p.jvp = _scatter_jvp
scatter_p.transpose = _scatter_transpose


def _batched_values(v, vd, g_rank, p):
    """The values of a batched scatter, made to broadcast against the batched
    indexed shape (the example's indexed shape, of rank ``g_rank``, with the
    batch axis inserted at ``p``).  NumPy aligns from the right; unbatched
    values get a size-1 axis where they would otherwise meet the batch axis."""
    from functad.batching import moveaxis
    from functad.lax.shapes import reshape
    shape = tuple(core.shape_of(v))
    if vd is None:
        at = p - (g_rank - len(shape))
        return v if at <= 0 else reshape(v, shape[:at] + (1,) + shape[at:])
    at = p - (g_rank - (len(shape) - 1))
    if at >= 0:
        return moveaxis(v, vd, at)
    v = moveaxis(v, vd, 0)
    return reshape(v, shape[vd:vd + 1] + (1,) * -at + shape[:vd] + shape[vd + 1:])


def _scatter_batch(vals, dims, *, indexer, mode, oob):
    # the output is the operand updated, so it is batched: an unbatched operand
    # is broadcast (each example gets its own copy to update)
    from functad.lax.shapes import _batch_size, _example_shape, place_batch
    (x, v, *arrays), (xd, vd, *adims) = vals, dims
    n = _batch_size(vals, dims)
    g = gather_shape(indexer, _example_shape(x, xd),
                     [_example_shape(a, d) for a, d in zip(arrays, adims)])
    indexer, arrays, t, p = _batch_index(indexer, arrays, adims, xd, n, True)
    x = place_batch(x, xd, t, n)
    v = _batched_values(v, vd, len(g), p)
    return scatter_p.bind(x, v, *arrays, indexer=indexer, mode=mode, oob=oob), t


scatter_p.batch = _scatter_batch


def scatter(operand, values, *arrays, indexer, mode="set", oob="drop"):
    """A copy of ``operand`` with ``operand[index]`` updated by ``values``.

    ``mode`` is ``"set"``, ``"add"``, ``"mul"``, ``"min"`` or ``"max"``; repeated
    indices accumulate for all modes but ``"set"`` (where one update wins).
    ``values`` must have the operand's dtype and broadcast to the indexed shape.
    Out-of-bounds updates are dropped (``oob="drop"``) or clamped (``"clip"``).

    >>> scatter(np.zeros(3), np.ones(2), np.array([0, 0]), indexer=Indexer([("a", 0)]),
    ...         mode="add")
    Array([2., 0., 0.])
    """
    if not isinstance(indexer, Indexer):
        indexer = Indexer(indexer)
    return scatter_p.bind(operand, values, *arrays, indexer=indexer, mode=mode, oob=oob)


# --------------------------------------------------------------------------
# Numba lowering (jit's compiled tier)
# --------------------------------------------------------------------------
#
# A gather without index arrays is a view (NumPy basic indexing, which Numba
# supports: slices, integers, None).  Any other gather, and every scatter, is
# a loop nest emitted into the program, over the indexed shape (the gather's
# output, the scatter's updates) in C order; each operand dimension's index is
# a static integer, a slice position, or an index-array element (read through
# NumPy broadcasting) wrapped once if negative and then clamped (oob="clip",
# a non-empty dimension) or flagged out of bounds (read as zero / the update
# dropped), exactly as ``_numpy_index`` does.  Each index is computed in the
# outermost loop it depends on.  Scatter updates are applied in C order of
# the indexed shape, so with repeated indices the last "set" wins and the
# other modes accumulate in order (as ``ufunc.at``).

def _index_plan(indexer, shape, array_shapes):
    """``(b_shape, b_axes, dims)``: the broadcast index shape, the output axes
    it occupies, and per operand dimension ``("s", out_axis, start, step)``,
    ``("c", k)`` or ``("a", j)`` (the placement rule of :func:`gather_shape`)."""
    has_arrays = any(e[0] == "a" for e in indexer)
    adv = _advanced(list(indexer))
    b_shape = tuple(np.broadcast_shapes(*(array_shapes[e[1]] for e in indexer
                                          if e[0] == "a"))) if has_arrays else ()
    contiguous = _adjacent(adv)
    b_axes = list(range(len(b_shape))) if adv and not contiguous else []
    pos = len(b_axes)
    dims = []
    for k, e in enumerate(indexer):
        kind = e[0]
        if kind == "n":
            pos += 1
            continue
        if kind == "e":
            continue
        if contiguous and k == adv[0]:
            b_axes = list(range(pos, pos + len(b_shape)))
            pos += len(b_shape)
        if kind == "s":
            dims.append(("s", pos, e[1], e[3]))
            pos += 1
        elif kind == "i":
            dims.append(("c", e[1]))
        else:
            dims.append(("a", e[1]))
    return b_shape, b_axes, dims


def _indexed_loops(ctx, indexer, shape, arrays, array_avals, loop_shape, clip, body):
    """The source of a loop nest over ``loop_shape`` (the indexed shape) that
    computes the operand index of every element and runs ``body(idx, src, ok)``
    innermost: ``idx`` the loop variables, ``src`` the operand index
    expressions, ``ok`` an expression that is false when an index array is out
    of bounds (None when every index is in bounds by construction)."""
    b_shape, b_axes, dims = _index_plan(indexer, shape, [a.shape for a in array_avals])
    rank = len(loop_shape)
    idx = [ctx.fresh("j") for _ in range(rank)]
    at_level = [[] for _ in range(rank + 1)]     # statements after opening k loops
    src, oks = [], []

    def loop_var(axis):
        return idx[axis]

    for d, spec in enumerate(dims):
        n = shape[d]
        if spec[0] == "c":
            src.append(str(spec[1]))
        elif spec[0] == "s":
            _, axis, start, step = spec
            term = loop_var(axis) if step == 1 else f"{step} * {loop_var(axis)}"
            src.append(term if start == 0 else f"{start} + {term}")
        else:
            j = spec[1]
            a_shape = array_avals[j].shape
            lead = len(b_shape) - len(a_shape)
            used = [b_axes[lead + k] for k, m in enumerate(a_shape) if m != 1]
            at = ", ".join("0" if m == 1 else loop_var(b_axes[lead + k])
                           for k, m in enumerate(a_shape))
            read = f"{arrays[j]}[{at}]" if a_shape else arrays[j]
            level = max(used) + 1 if used else 0
            r, t = ctx.fresh("r"), ctx.fresh("t")
            # branch-free (fewer blocks for Numba to type and LLVM to optimize);
            # unsigned indices are made int64 first (uint64 + int64 is a float)
            stmts = [f"{r} = {f'np.int64({read})' if array_avals[j].dtype.kind == 'u' else read}"]
            wrapped = f"{r} + {n} * ({r} < 0)"
            if clip and n > 0:
                stmts.append(f"{t} = min(max({wrapped}, 0), {n - 1})")
            elif n > 0:
                ok = ctx.fresh("ok")
                stmts += [f"{t} = {wrapped}", f"{ok} = ({t} >= 0) & ({t} < {n})"]
                oks.append(ok)
            else:
                stmts.append(f"{t} = {r}")
                oks.append("False")
            at_level[level].extend(stmts)
            src.append(t)
    lines = list(at_level[0])
    for k in range(rank):
        pad = "    " * k
        lines.append(f"{pad}for {idx[k]} in range({loop_shape[k]}):")
        lines.extend("    " * (k + 1) + s for s in at_level[k + 1])
    pad = "    " * rank
    ok = " & ".join(oks) if oks else None
    lines.extend(pad + s for s in body(idx, src, ok))
    return "\n".join(lines)


def _basic_view(x, indexer, shape):
    """``x[...]`` for an indexer without index arrays (a Numba view)."""
    parts = []
    dims = iter(shape)
    for e in indexer:
        kind = e[0]
        if kind == "n":
            parts.append("None")
        elif kind == "i":
            next(dims)
            parts.append(str(e[1]))
        elif kind == "s":
            start, step, n = e[1], e[3], next(dims)
            length = _slice_len(start, e[2], step)
            stop = start + length * step
            if start == 0 and step == 1 and length == n:
                parts.append(":")
            elif length == 0:
                parts.append("0:0")
            elif stop < 0:
                parts.append(f"{start}::{step}")
            else:
                parts.append(f"{start}:{stop}" + ("" if step == 1 else f":{step}"))
    return f"{x}[{', '.join(parts)}]"


def _gather_lower(ctx, x, *arrays, indexer, oob):
    xa, out = ctx.in_avals[0], ctx.out_avals[0]
    if not xa.shape:                 # only None entries: a scalar in a (1, ..., 1) array
        return x if not out.shape else f"np.full({out.shape}, {x})"
    if not arrays:
        return _basic_view(x, indexer, xa.shape)
    dt = ctx.dtype(out.dtype)
    if 0 in out.shape:
        return f"np.empty({out.shape}, {dt})"
    zero = ctx.literal(0, out.dtype)
    res = ctx.fresh("g")

    def body(idx, src, ok):
        target = f"{res}[{', '.join(idx)}]" if idx else res
        read = f"{x}[{', '.join(src)}]"
        if ok is None:
            return [f"{target} = {read}"]
        return [f"if {ok}:", f"    {target} = {read}", "else:", f"    {target} = {zero}"]

    if out.shape:
        ctx.emit(f"{res} = np.empty({out.shape}, {dt})")
    ctx.emit(_indexed_loops(ctx, indexer, xa.shape, arrays, ctx.in_avals[1:], out.shape,
                            oob == "clip", body))
    return res


gather_p.lower = _gather_lower


def _combine_lines(mode, target, v, dtype):
    """Statements applying one update ``v`` to ``target`` (an array element)."""
    dt = np.dtype(dtype)
    if mode == "set":
        return [f"{target} = {v}"]
    if mode in ("add", "mul"):
        if dt.kind == "b":
            return [f"{target} = {target} {'or' if mode == 'add' else 'and'} {v}"]
        return [f"{target} {'+' if mode == 'add' else '*'}= {v}"]
    op = "<" if mode == "min" else ">"
    if dt.kind == "c":     # np.minimum/maximum of complex: the current value stays if it
        c = target         # has a NaN part or is <= (>=) v lexicographically, NaN-aware
        keep = (f"({c}.real != {c}.real) | ({c}.imag != {c}.imag) | "
                f"(({c}.real {op} {v}.real) & ({c}.imag == {c}.imag) & ({v}.imag == {v}.imag)) | "
                f"(({c}.real == {v}.real) & ({c}.imag {op}= {v}.imag))")
        return [f"if not ({keep}):", f"    {target} = {v}"]
    if dt.kind == "f":     # NaN wins, as in np.minimum/maximum
        return [f"if ({v} {op} {target}) | ({v} != {v}):", f"    {target} = {v}"]
    return [f"if {v} {op} {target}:", f"    {target} = {v}"]


def _scatter_lower(ctx, x, v, *arrays, indexer, mode, oob):
    xa, va = ctx.in_avals[0], ctx.in_avals[1]
    iavals = ctx.in_avals[2:]
    g_shape = gather_shape(indexer, xa.shape, [a.shape for a in iavals])
    if not xa.shape:                 # only None entries: one update of the scalar
        res = ctx.fresh("s")
        val = v if not va.shape else f"{v}.ravel()[0]"
        ctx.emit(f"{res} = {x}")
        ctx.emit("\n".join(_combine_lines(mode, res, val, xa.dtype)))
        return res
    res = ctx.fresh("s")
    ctx.emit(f"{res} = {x}.copy()")
    if 0 in g_shape:
        return res
    if not va.shape and not (type(v) is str and v.isidentifier()):
        val = ctx.fresh("u")         # a scalar expression, computed once
        ctx.emit(f"{val} = {v}")
        v = val
    lead = len(g_shape) - len(va.shape)

    def body(idx, src, ok):
        target = f"{res}[{', '.join(src)}]"
        if va.shape:
            at = ", ".join("0" if m == 1 else idx[lead + k] for k, m in enumerate(va.shape))
            val = f"{v}[{at}]"
            u = ctx.fresh("u")
            lines = [f"{u} = {val}"]
        else:
            u, lines = v, []
        lines += _combine_lines(mode, target, u, xa.dtype)
        if ok is None:
            return lines
        return [f"if {ok}:"] + ["    " + s for s in lines]

    ctx.emit(_indexed_loops(ctx, indexer, xa.shape, arrays, iavals, g_shape, oob == "clip",
                            body))
    return res


scatter_p.lower = _scatter_lower
