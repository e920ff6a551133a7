"""Reductions and cumulative (scan) primitives over static axes.

Two tables define the families:

* :data:`REDUCTIONS` — ``reduce_sum``, ``reduce_prod``, ``reduce_max``,
  ``reduce_min``, ``reduce_and``, ``reduce_or`` over a sorted tuple of
  non-negative ``axes``;
* :data:`CUMULATIVE` — ``cumsum``, ``cumprod``, ``cummax``, ``cummin`` along
  one non-negative ``axis``, optionally ``reverse``.

plus ``argmax``/``argmin`` (int64, first occurrence, NaN wins as in NumPy)
and the helper ``shift`` (move values along an axis, filling zeros; built
from ``lax.slice`` and ``lax.pad``).
Derivative rules sit right after each family:

* ``reduce_max``/``reduce_min``: the tangent of the extremum; when several
  elements tie for it they share the tangent equally (the mean of their
  tangents), as JAX does;
* ``reduce_prod``: the tangent is ``sum_i t_i * prod_{j != i} x_j``, where the
  product of the *other* elements is an exclusive prefix product times an
  exclusive suffix product; no division, so it is exact when ``x`` holds zeros;
* ``cumprod``: the recurrence ``dy_i = x_i dy_{i-1} + y_{i-1} t_i`` solved by a
  log-depth linear scan (again no division: exact with zeros, to any order);
* ``cummax``/``cummin``: the tangent of the running extremum; ties share
  equally, consistently with ``reduce_max`` (the last element of ``cummax``
  has the same derivative as ``reduce_max``);
* ``cumsum`` is linear; its transpose is the reverse cumulative sum.

Batching rules (``vmap``) are one per family: every primitive here acts on
static axes of a single operand, so the rule renumbers those axes around the
batch axis and leaves the operand where it is (no transpose, no copy); see
:func:`_batched_axis`.

Numba lowering: ``functad.lowering`` fuses the reductions of arrays into its
loop nests (the rule here covers rank-0 operands: a cast); ``argmax``/``argmin``
and the cumulative operations call ``arg_extremum`` and ``cumulative`` of
:mod:`functad.numba_runtime`, which loop over a ``(before, axis, after)`` view
of the operand.

>>> import functad.numpy as fnp
>>> from functad import lax
>>> lax.reduce_max(fnp.array([[1.0, 5.0], [7.0, 2.0]]), axes=(1,))
Array([5., 7.])
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear, defjvp_zero

__all__ = ["reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "reduce_and", "reduce_or",
           "argmax", "argmin", "cumsum", "cumprod", "cummax", "cummin", "shift",
           "REDUCTIONS", "CUMULATIVE"]


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------

def _reduced_shape(shape, axes):
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _check_axes(a, axes, name):
    if tuple(sorted(set(axes))) != tuple(axes):
        raise ValueError(f"{name}: axes must be a sorted tuple of distinct axes, got {axes}")
    for ax in axes:
        if not 0 <= ax < a.ndim:
            raise ValueError(f"{name}: axis {ax} is out of bounds for an array of shape {a.shape}")


def _check_axis(a, axis, name):
    if not 0 <= axis < a.ndim:
        raise ValueError(f"{name}: axis {axis} is out of bounds for an array of shape {a.shape}"
                         + (" (a 0-d array has no axis to scan along)" if a.ndim == 0 else ""))


_SUM_DTYPE: dict = {}


def sum_dtype(dtype):
    """NumPy's result dtype of ``sum``/``prod``/``cumsum``/``cumprod``: booleans
    and small integers accumulate in the default integer (int64 or uint64)."""
    dt = _SUM_DTYPE.get(dtype)
    if dt is None:
        dtype = np.dtype(dtype)
        dt = np.sum(np.ones((), dtype)).dtype if dtype.kind in "biu" else dtype
        _SUM_DTYPE[dtype] = dt
    return dt


def _same_dtype(dtype):
    return dtype


def _bool_dtype(dtype):
    return np.dtype(np.bool_)


def _normalize(axes):
    return tuple(sorted(int(a) for a in axes))


def _batched_axis(axis, bdim):
    """Where axis ``axis`` of one example is in the batched operand, whose batch
    axis is ``bdim``: the axes at or after ``bdim`` move up by one."""
    return axis + (axis >= bdim)


def _batched_out_dim(bdim, removed):
    """The batch axis of an output from which the example axes ``removed`` (in
    the example's numbering) were reduced away: one place down for each
    removed axis that came before it."""
    return bdim - sum(1 for a in removed if a < bdim)


# --------------------------------------------------------------------------
# A zero-filled shift along one axis, from lax.slice and lax.pad (both linear)
# --------------------------------------------------------------------------

def shift(x, axis, offset, size=None):
    """A zero-filled window of ``x`` along ``axis``, moved by ``offset`` places.

    ``out[..., i, ...] = x[..., i - offset, ...]`` for ``0 <= i < size`` where
    that index of ``x`` exists, else 0; ``size`` defaults to the length of the
    axis (a plain shift).  With ``size = n + k`` and ``offset = k`` it pads
    ``k`` zeros in front.  Built from ``slice`` and ``pad``, so it is linear
    and differentiable.

    >>> import functad.numpy as fnp
    >>> shift(fnp.array([1.0, 2.0, 3.0]), axis=0, offset=1)
    Array([0., 1., 2.])
    >>> shift(fnp.array([1.0, 2.0, 3.0]), axis=0, offset=1, size=4)
    Array([0., 1., 2., 3.])
    """
    from functad.lax.shapes import pad, slice_in_dim
    aval = core.aval_of(x)
    n = aval.shape[axis]
    size = n if size is None else int(size)
    lo = min(max(0, -offset), n)          # the part of x that is kept
    hi = max(lo, min(n, size - offset))
    low = min(lo + offset, size) if hi > lo else size
    config = [(0, 0, 0)] * aval.ndim
    config[axis] = (low, size - low - (hi - lo), 0)
    return pad(slice_in_dim(x, lo, hi, axis=axis), 0, config)


def _linear_scan(a, bs, axis, reverse):
    """Solve ``z_i = a_i * z_{i-1} + b_i`` (``z_{-1} = 0``) along ``axis`` for each
    ``b`` in ``bs`` (scanning from the end if ``reverse``).

    Hillis-Steele doubling: ``ceil(log2 n)`` rounds of ``shift``, ``mul`` and
    ``add``, so the result is differentiable (and linear in ``bs``).  After a
    round, position ``i`` holds the composition over ``(i - 2d, i]``; where that
    range reaches past the start, the zero fill of ``shift`` makes the missing
    part vanish, and the coefficient ``a_i`` is never used again.
    """
    from functad.lax.elementwise import add, mul
    n = core.aval_of(a).shape[axis]
    sign = -1 if reverse else 1
    d = 1
    while d < n:
        bs = [add(b, mul(a, shift(b, axis, sign * d))) for b in bs]
        if 2 * d < n:
            a = mul(a, shift(a, axis, sign * d))
        d *= 2
    return bs


def _one_hot_start(shape, axis, reverse, dtype):
    """A constant, broadcastable along ``axis``: 1 at the first scanned position."""
    n = shape[axis]
    e = np.zeros(tuple(n if i == axis else 1 for i in range(len(shape))), dtype)
    if n:
        idx = [0] * len(shape)
        idx[axis] = n - 1 if reverse else 0
        e[tuple(idx)] = 1
    return core._wrap(e)


def _exclusive_cumprod(x, y, axis, reverse):
    """Products of the elements strictly before each position (1 at the start),
    from ``y = cumprod(x)``: a shift, no division."""
    from functad.lax.elementwise import add
    a = core.aval_of(x)
    return add(shift(y, axis, -1 if reverse else 1),
               _one_hot_start(a.shape, axis, reverse, a.dtype))


def _export(name, prim, fn, doc):
    """Publish a made primitive as ``<name>_p`` and its wrapper ``fn`` as
    ``<name>`` in this module; returns the primitive."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    globals()[name] = fn
    globals()[name + "_p"] = prim
    return prim


# --------------------------------------------------------------------------
# Reductions: one table, then the derivative rules
# --------------------------------------------------------------------------

def _make_reduction(name, impl, dtype_rule, identity):
    prim = Primitive(name)
    prim.identity = identity

    def _impl(x, axes):
        return impl(x, axis=axes)

    def abstract_eval(a, axes):
        _check_axes(a, axes, name)
        if identity is None:
            for ax in axes:
                if a.shape[ax] == 0:
                    raise ValueError(
                        f"{name}: cannot reduce over axis {ax} of an array of shape {a.shape}: "
                        "it is empty and the operation has no identity")
        dt = dtype_rule(a.dtype)
        weak = a.weak_type and dt.kind != "b"
        return core._cached_aval(_reduced_shape(a.shape, axes), dt, weak)

    prim.impl = _impl
    prim.abstract_eval = abstract_eval
    bind = prim.bind

    def batch(vals, dims, *, axes):
        # reduce the same example axes of the batched operand; the batch axis
        # survives, shifted down past the reduced axes before it
        (x,), (d,) = vals, dims
        return bind(x, axes=tuple(_batched_axis(a, d) for a in axes)), _batched_out_dim(d, axes)

    prim.batch = batch

    def fn(x, axes):
        return bind(x, axes=_normalize(axes))
    return _export(name, prim, fn,
                   f"``{name}`` of ``x`` over the static tuple of non-negative ``axes``.\n")


REDUCTIONS = [
    # name, NumPy implementation (a ufunc's reduce), output dtype rule,
    # identity (None: an empty reduction is an error)
    ("reduce_sum", np.add.reduce, sum_dtype, 0),
    ("reduce_prod", np.multiply.reduce, sum_dtype, 1),
    ("reduce_max", np.maximum.reduce, _same_dtype, None),
    ("reduce_min", np.minimum.reduce, _same_dtype, None),
    ("reduce_and", np.logical_and.reduce, _bool_dtype, True),    # any dtype: nonzero is true
    ("reduce_or", np.logical_or.reduce, _bool_dtype, False),
]

for _row in REDUCTIONS:
    _make_reduction(*_row)


# -- reduce_sum: linear; the transpose broadcasts the cotangent back -----------

def _reduce_sum_transpose(ct, x, axes):
    from functad.lax.shapes import broadcast_to, reshape
    shape = x.aval.shape
    return [broadcast_to(reshape(ct, _keepdims_shape(shape, axes)), shape)]


deflinear(reduce_sum_p, _reduce_sum_transpose)  # noqa: F821


# -- reduce_max / reduce_min: the tangent at the extremum, ties shared equally --

def _chooser_jvp(prim):
    def jvp(primals, tangents, *, axes):
        from functad.lax.elementwise import convert_element_type, div, eq, mul
        from functad.lax.shapes import reshape
        (x,), (t,) = primals, tangents
        ans = prim.bind(x, axes=axes)
        if t is None:
            return ans, None
        if not axes:
            return ans, t
        a = core.aval_of(x)
        at = eq(x, reshape(ans, _keepdims_shape(a.shape, axes)))
        loc = convert_element_type(at, a.dtype)
        # 0/0 = NaN when the extremum is NaN: a NaN output has a NaN tangent
        return ans, div(reduce_sum(mul(t, loc), axes), reduce_sum(loc, axes))  # noqa: F821
    return jvp


reduce_max_p.jvp = _chooser_jvp(reduce_max_p)  # noqa: F821
reduce_min_p.jvp = _chooser_jvp(reduce_min_p)  # noqa: F821


# -- reduce_prod: sum_i t_i * (product of the others), exact with zeros ---------

def _prod_of_others(x, axes):
    """For each element, the product of the other elements in its reduced group."""
    from functad.lax.elementwise import mul
    from functad.lax.shapes import reshape, transpose
    shape = core.aval_of(x).shape
    kept = [i for i in range(len(shape)) if i not in axes]
    perm = tuple(kept) + tuple(axes)
    n = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    flat = reshape(transpose(x, perm), tuple(shape[i] for i in kept) + (n,))
    last = len(kept)
    left = _exclusive_cumprod(flat, cumprod(flat, last), last, False)
    right = _exclusive_cumprod(flat, cumprod(flat, last, reverse=True), last, True)
    others = reshape(mul(left, right), tuple(shape[i] for i in perm))
    return transpose(others, tuple(int(i) for i in np.argsort(perm)))


def _reduce_prod_jvp(primals, tangents, *, axes):
    from functad.lax.elementwise import mul
    (x,), (t,) = primals, tangents
    ans = reduce_prod_p.bind(x, axes=axes)  # noqa: F821
    if t is None:
        return ans, None
    if not axes:
        return ans, t
    return ans, reduce_sum(mul(t, _prod_of_others(x, axes)), axes)  # noqa: F821


reduce_prod_p.jvp = _reduce_prod_jvp  # noqa: F821

# -- reduce_and / reduce_or: boolean outputs, no tangent -----------------------

defjvp_zero(reduce_and_p)  # noqa: F821
defjvp_zero(reduce_or_p)  # noqa: F821


# -- Numba lowering ------------------------------------------------------------
#
# functad.lowering fuses reductions of arrays into loop nests (its REDUCTIONS
# table); it calls this rule only for a rank-0 operand, whose reduction over
# no axes is the value itself, cast to the output dtype (reduce_and/or: to bool).

def _reduce_scalar_lower(ctx, x, axes):
    if ctx.in_avals[0].shape:
        from functad.lowering import LoweringError
        raise LoweringError("reductions of arrays are fused into loops by functad.lowering; "
                            "the lowering rule handles rank-0 operands only")
    return ctx.cast(x, ctx.in_avals[0].dtype, ctx.out_avals[0].dtype)


for _row in REDUCTIONS:
    globals()[_row[0] + "_p"].lower = _reduce_scalar_lower


def _arg(v):
    """A static parameter passed to a runtime helper, typed int64/bool: a bare
    constant would be typed as a Numba Literal, compiling the helper once per value."""
    return f"np.bool_({v})" if isinstance(v, bool) else f"np.int64({int(v)})"


def _unorderable(ctx, name):
    if ctx.in_avals[0].dtype.kind == "c":
        from functad.lowering import LoweringError
        raise LoweringError(f"{name} of complex values has no Numba lowering")


# --------------------------------------------------------------------------
# argmax / argmin
# --------------------------------------------------------------------------

def _make_arg_reduction(name, impl):
    prim = Primitive(name)
    prim.impl = lambda x, axis: impl(x, axis=axis)

    def abstract_eval(a, axis):
        _check_axis(a, axis, name)
        if a.shape[axis] == 0:
            raise ValueError(f"{name}: axis {axis} of an array of shape {a.shape} is empty, "
                             "so it has no extremum")
        return core._cached_aval(_reduced_shape(a.shape, (axis,)), np.dtype(np.int64))

    prim.abstract_eval = abstract_eval
    defjvp_zero(prim)
    bind = prim.bind

    take_max = name == "argmax"

    def lower(ctx, x, axis):
        # _rt.arg_extremum fills an int64 array (of shape (1,) for a rank-0 result)
        _unorderable(ctx, name)
        out = ctx.out_avals[0].shape
        call = (f"{ctx.rt('arg_extremum')}({x}, np.empty({out or (1,)}, np.int64), "
                f"{_arg(axis)}, {_arg(take_max)})")
        return call if out else f"{call}[0]"

    prim.lower = lower

    def batch(vals, dims, *, axis):
        (x,), (d,) = vals, dims
        return bind(x, axis=_batched_axis(axis, d)), _batched_out_dim(d, (axis,))

    prim.batch = batch

    def fn(x, axis):
        return bind(x, axis=int(axis))
    return _export(name, prim, fn,
                   f"Index (int64) of the first {name[3:]}imum of ``x`` along the non-negative "
                   "``axis``; a NaN counts as the extremum, as in NumPy.\n")


for _name, _impl in (("argmax", np.argmax), ("argmin", np.argmin)):
    _make_arg_reduction(_name, _impl)


# --------------------------------------------------------------------------
# Cumulative operations: one table, then the derivative rules
# --------------------------------------------------------------------------

def _make_cumulative(name, accumulate, dtype_rule):
    prim = Primitive(name)

    def impl(x, axis, reverse):
        x = np.asarray(x)
        dt = dtype_rule(x.dtype)
        if reverse:
            return np.flip(accumulate(np.flip(x, axis), axis, dt), axis)
        return accumulate(x, axis, dt)

    def abstract_eval(a, axis, reverse):
        _check_axis(a, axis, name)
        return core._cached_aval(a.shape, dtype_rule(a.dtype), a.weak_type)

    prim.impl = impl
    prim.abstract_eval = abstract_eval
    bind = prim.bind

    def batch(vals, dims, *, axis, reverse):
        # the scan keeps the shape, so the batch axis stays where it is
        (x,), (d,) = vals, dims
        return bind(x, axis=_batched_axis(axis, d), reverse=reverse), d

    prim.batch = batch

    def fn(x, axis, reverse=False):
        return bind(x, axis=int(axis), reverse=bool(reverse))
    return _export(name, prim, fn,
                   f"``{name}`` of ``x`` along the non-negative ``axis`` (from the end if "
                   "``reverse``).\n")


CUMULATIVE = [
    # name, accumulate(x, axis, dtype), output dtype rule
    ("cumsum", lambda x, axis, dt: np.cumsum(x, axis=axis, dtype=dt), sum_dtype),
    ("cumprod", lambda x, axis, dt: np.cumprod(x, axis=axis, dtype=dt), sum_dtype),
    ("cummax", lambda x, axis, dt: np.maximum.accumulate(x, axis=axis), _same_dtype),
    ("cummin", lambda x, axis, dt: np.minimum.accumulate(x, axis=axis), _same_dtype),
]

for _row in CUMULATIVE:
    _make_cumulative(*_row)


# -- Numba lowering: _rt.cumulative scans into an output the program allocates
# (the result dtype), combining with ``op``

_CUMULATIVE_OPS = {"cumsum": 0, "cumprod": 1, "cummax": 2, "cummin": 3}


def _cumulative_lowering(name):
    op = _CUMULATIVE_OPS[name]

    def lower(ctx, x, axis, reverse):
        if op >= 2:
            _unorderable(ctx, name)
        out = ctx.out_avals[0]
        return (f"{ctx.rt('cumulative')}({x}, np.empty({out.shape}, {ctx.dtype(out.dtype)}), "
                f"{_arg(axis)}, {_arg(op)}, {_arg(bool(reverse))})")
    return lower


for _row in CUMULATIVE:
    globals()[_row[0] + "_p"].lower = _cumulative_lowering(_row[0])


# -- cumsum: linear; the transpose sums from the other end -------------------

deflinear(cumsum_p, lambda ct, x, axis, reverse: [  # noqa: F821
    cumsum_p.bind(ct, axis=axis, reverse=not reverse)])  # noqa: F821


# -- cumprod: dy_i = x_i dy_{i-1} + y_{i-1} t_i, by a linear scan -------------

def _cumprod_jvp(primals, tangents, *, axis, reverse):
    from functad.lax.elementwise import mul
    (x,), (t,) = primals, tangents
    y = cumprod_p.bind(x, axis=axis, reverse=reverse)  # noqa: F821
    if t is None:
        return y, None
    before = _exclusive_cumprod(x, y, axis, reverse)
    (dy,) = _linear_scan(x, [mul(t, before)], axis, reverse)
    return y, dy


cumprod_p.jvp = _cumprod_jvp  # noqa: F821


# -- cummax / cummin: tangent of the running extremum, ties shared equally ----

def _cum_chooser_jvp(prim):
    def jvp(primals, tangents, *, axis, reverse):
        from functad.lax.elementwise import convert_element_type, div, eq, mul
        (x,), (t,) = primals, tangents
        y = prim.bind(x, axis=axis, reverse=reverse)
        if t is None:
            return y, None
        dt = core.aval_of(x).dtype
        # z_i = keep_i z_{i-1} + hit_i t_i: keep the running sum while the extremum
        # stays (y_i == y_{i-1}); add t_i where x_i attains it (x_i == y_i).
        keep = convert_element_type(eq(y, shift(y, axis, -1 if reverse else 1)), dt)
        hit = convert_element_type(eq(x, y), dt)
        count, total = _linear_scan(keep, [hit, mul(t, hit)], axis, reverse)
        return y, div(total, count)
    return jvp


cummax_p.jvp = _cum_chooser_jvp(cummax_p)  # noqa: F821
cummin_p.jvp = _cum_chooser_jvp(cummin_p)  # noqa: F821

del _row, _name, _impl
