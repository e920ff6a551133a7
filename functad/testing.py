"""Tools to test differentiable code: ``check_grads`` and Hypothesis strategies.

``check_grads`` compares functad's derivatives with finite differences
(central, Richardson-extrapolated) along random directions, in forward mode
(JVP) and reverse mode (VJP, through the identity
``<vjp(c), t> == <c, jvp(t)>``), to any order.

>>> import functad.numpy as fnp
>>> from functad.testing import check_grads
>>> check_grads(fnp.sin, (fnp.array([0.5, 1.0]),), order=2)

The strategies (:func:`arrays`, :func:`shapes`, :func:`broadcastable_shapes`,
:func:`mutually_broadcastable_shapes`, :func:`float_dtypes`, :func:`floats`,
:func:`pytrees`) build on Hypothesis, which is a *test* dependency of
functad: it is imported only when a strategy is created, so
``import functad.testing`` works without it.
"""

from __future__ import annotations

import numbers

import numpy as np

from functad import tree_util as tu
from functad import core
from functad.ad import jvp, vjp

__all__ = ["check_grads", "check_jvp", "check_vjp", "check_vmap", "numerical_jvp", "default_tolerance",
           "default_eps", "arrays", "shapes", "broadcastable_shapes",
           "mutually_broadcastable_shapes", "float_dtypes", "floats", "pytrees"]


# --------------------------------------------------------------------------
# Tolerances
# --------------------------------------------------------------------------

# Central differences have a truncation error ~ eps**2 * f''' / 6, which Richardson
# extrapolation lowers to O(eps**4), and a rounding error ~ ulp(f) / eps.  These
# steps keep the rounding error well under the tolerances below while staying
# small enough not to step over a kink near the point.
_EPS = {np.dtype(np.float64): 1e-4, np.dtype(np.float32): 4e-3, np.dtype(np.float16): 3e-2,
        np.dtype(np.complex128): 1e-4, np.dtype(np.complex64): 4e-3}
_TOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 1e-2, np.dtype(np.float16): 1e-1,
        np.dtype(np.complex128): 1e-5, np.dtype(np.complex64): 1e-2}


def default_tolerance(dtype):
    """Default ``atol`` and ``rtol`` of the gradient checks for ``dtype``
    (float64: ``1e-5``, float32: ``1e-2``)."""
    return _TOL.get(np.dtype(dtype), 1e-5)


def default_eps(dtype):
    """Default finite-difference step for ``dtype`` (float64: ``1e-4``, float32: ``4e-3``)."""
    return _EPS.get(np.dtype(dtype), 1e-4)


def _leaves_dtype(tree):
    """The least precise float dtype among the leaves (float64 if there is none)."""
    dts = [core.aval_of(x).dtype for x in tu.tree_leaves(tree)]
    floats_ = [d for d in dts if d.kind in "fc"]
    return min(floats_, key=lambda d: d.itemsize) if floats_ else np.dtype(np.float64)


def _tolerances(args, eps, atol, rtol):
    dt = _leaves_dtype(args)
    tol = default_tolerance(dt)
    return (default_eps(dt) if eps is None else eps,
            tol if atol is None else atol,
            tol if rtol is None else rtol)


# --------------------------------------------------------------------------
# Helpers on pytrees of arrays
# --------------------------------------------------------------------------

def _fname(f):
    return getattr(f, "__name__", None) or type(f).__name__


def _rand_like(rng, x):
    """A random direction shaped like ``x`` (zeros for integer or boolean leaves)."""
    a = core.aval_of(x)
    if not a.is_float:
        return core._wrap(np.zeros(a.shape, a.dtype))
    return core._wrap(np.asarray(rng.standard_normal(a.shape)).astype(a.dtype))


def _axpy(a, x, y):
    """``y + a * x`` on the float leaves of ``y`` (other leaves are left alone)."""
    return tu.tree_map(lambda xi, yi: yi + a * xi if core.aval_of(yi).is_float else yi, x, y)


def _f64(x):
    return np.asarray(x).astype(np.float64)


def _vdot_terms(x, y):
    """``sum(x * y)`` over all leaves, and ``sum(|x * y|)`` (the scale of its rounding)."""
    total, scale = 0.0, 0.0
    xs, ys = tu.tree_leaves(x), tu.tree_leaves(y)
    if len(xs) != len(ys):
        raise AssertionError(f"{len(xs)} leaves against {len(ys)}")
    for a, b in zip(xs, ys):
        p = _f64(a) * _f64(b)
        total += float(np.sum(p))
        scale += float(np.sum(np.abs(p)))
    return total, scale


def numerical_jvp(f, primals, tangents, eps, extrapolate=True):
    """Finite-difference JVP of ``f`` at the pytree ``primals`` along ``tangents``,
    in float64 (integer and boolean leaves are held fixed).

    The central difference ``D(h) = (f(x + h t) - f(x - h t)) / (2 h)`` has an
    error ``c h**2 + O(h**4)``; with ``extrapolate`` (the default) it returns
    the Richardson extrapolation ``(4 D(eps/2) - D(eps)) / 3``, whose error is
    ``O(eps**4)``: functions with large third derivatives do not raise false
    alarms, and the tolerances can stay tight.
    """
    primals, tangents = tuple(primals), tuple(tangents)

    def central(h):
        plus = f(*_axpy(h, tangents, primals))
        minus = f(*_axpy(-h, tangents, primals))
        return tu.tree_map(lambda p, m: (_f64(p) - _f64(m)) / (2 * h), plus, minus)
    if not extrapolate:
        return central(eps)
    coarse, fine = central(eps), central(eps / 2)
    return tu.tree_map(lambda c, d: (4 * d - c) / 3, coarse, fine)


def _fmt(x, limit=6):
    x = np.asarray(x)
    flat = x.ravel()
    body = np.array2string(flat[:limit], precision=8, separator=", ")
    more = f" ... ({x.size} values)" if x.size > limit else ""
    return f"{body}{more}" if x.ndim else str(x.item() if x.size == 1 else x)


def _check_close(got, expected, atol, rtol, what, labels=("functad", "finite differences")):
    """Raise an AssertionError naming ``what`` if two pytrees differ."""
    gs, gtree = tu.tree_flatten(got)
    es, etree = tu.tree_flatten(expected)
    if len(gs) != len(es):
        raise AssertionError(f"{what}: the result has {len(gs)} leaves ({gtree}) but "
                             f"{len(es)} were expected ({etree})")
    for i, (a, b) in enumerate(zip(gs, es)):
        a, b = _f64(a), _f64(b)
        if a.shape != b.shape:
            raise AssertionError(f"{what}: leaf {i} has shape {a.shape}, expected {b.shape}")
        if not np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True):
            with np.errstate(all="ignore"):
                err = np.abs(a - b).ravel()
                # the element that breaks |a - b| <= atol + rtol |b| by the largest factor
                ratio = err / (atol + rtol * np.abs(b).ravel())
                ratio[np.isnan(a.ravel()) != np.isnan(b.ravel())] = np.inf
                ratio[np.isnan(ratio) & ~np.isnan(b.ravel())] = np.inf
                ratio[a.ravel() == b.ravel()] = 0.0           # equal infinities
                bad = int(np.nanargmax(ratio))
                worst = float(err[bad])
                rel = worst / abs(float(b.ravel()[bad])) if b.ravel()[bad] else np.inf
            raise AssertionError(
                f"{what}: leaf {i} differs: at flat index {bad} of shape {a.shape}, "
                f"{a.ravel()[bad]:.10g} against {b.ravel()[bad]:.10g} (abs error {worst:.3g}, "
                f"relative {rel:.3g}; max abs error {float(np.nanmax(err)):.3g}), "
                f"with atol={atol:g}, rtol={rtol:g}\n"
                f"  {labels[0] + ':':<20}{_fmt(a)}\n  {labels[1] + ':':<20}{_fmt(b)}")


def _check_types(outs, refs, what, kind):
    """Tangents (cotangents) must have the shape and the float dtype of the
    primal outputs (inputs) they belong to."""
    os_, otree = tu.tree_flatten(outs)
    rs, rtree = tu.tree_flatten(refs)
    if otree != rtree:
        raise AssertionError(f"{what}: the {kind}s have structure {otree}, expected {rtree}")
    for i, (o, r) in enumerate(zip(os_, rs)):
        oa, ra = core.aval_of(o), core.aval_of(r)
        if oa.shape != ra.shape:
            raise AssertionError(f"{what}: {kind} leaf {i} has shape {oa.shape}, "
                                 f"expected {ra.shape}")
        if ra.is_float and not ra.weak_type and oa.dtype != ra.dtype:
            raise AssertionError(f"{what}: {kind} leaf {i} has dtype {oa.dtype.name}, "
                                 f"expected {ra.dtype.name} (the dtype of its primal)")


def _describe(mode, order, f, eps):
    name = "forward mode (JVP)" if mode == "fwd" else "reverse mode (VJP)"
    return f"check_grads: {name}, order {order}, of {_fname(f)} (eps={eps:g})"


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

def check_jvp(f, args, eps=None, atol=None, rtol=None, rng=None, *, _what=None):
    """Check ``jvp(f)`` at ``args`` against central finite differences along a
    random direction.

    Checks that the primal output equals ``f(*args)``, that each tangent has
    the shape and dtype of its primal output, and that the tangents agree with
    finite differences within ``atol + rtol * |expected|``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    args = tuple(args)
    eps, atol, rtol = _tolerances(args, eps, atol, rtol)
    what = _what or f"check_jvp of {_fname(f)} (eps={eps:g})"
    tangents = tu.tree_map(lambda x: _rand_like(rng, x), args)
    out, t_out = jvp(f, args, tangents)
    _check_close(out, f(*args), atol, rtol, f"{what}: the primal output of jvp against f(*args)",
                 ("jvp", "f(*args)"))
    _check_types(t_out, out, what, "tangent")
    t_num = numerical_jvp(f, args, tangents, eps)
    _check_close(t_out, t_num, atol, rtol, what)


def check_vjp(f, args, eps=None, atol=None, rtol=None, rng=None, *, _what=None):
    """Check ``vjp(f)`` at ``args`` through ``<vjp(c), t> == <c, jvp(t)>``, with
    random ``c`` and ``t`` and the JVP measured by finite differences.

    Also checks that each cotangent has the shape and dtype of its input.
    """
    rng = np.random.default_rng(1) if rng is None else rng
    args = tuple(args)
    eps, atol, rtol = _tolerances(args, eps, atol, rtol)
    what = _what or f"check_vjp of {_fname(f)} (eps={eps:g})"
    out, f_vjp = vjp(f, *args)
    cts = tu.tree_map(lambda x: _rand_like(rng, x), out)
    tangents = tu.tree_map(lambda x: _rand_like(rng, x), args)
    cts_in = f_vjp(cts)
    _check_types(cts_in, args, what, "cotangent")
    t_num = numerical_jvp(f, args, tangents, eps)
    lhs, lscale = _vdot_terms(cts_in, tangents)
    rhs, rscale = _vdot_terms(cts, t_num)
    # The inner products sum many terms: their error scales with sum |terms|.
    tol = atol + rtol * max(lscale, rscale)
    if not abs(lhs - rhs) <= tol:
        raise AssertionError(
            f"{what}: <vjp(c), t> = {lhs:.10g} but <c, finite-difference jvp(t)> = {rhs:.10g} "
            f"(difference {abs(lhs - rhs):.3g} > tolerance {tol:.3g}; atol={atol:g}, "
            f"rtol={rtol:g}, scale {max(lscale, rscale):.3g})")


def check_grads(f, args, order=2, modes=("fwd", "rev"), eps=None, atol=None, rtol=None):
    """Check the derivatives of ``f`` at ``args``, up to ``order``, against
    central finite differences along random directions.

    Parameters
    ----------
    f : function of the positional arguments ``args``; arguments and outputs
        may be pytrees (tuples, lists, dicts) of arrays.  Integer and boolean
        leaves are held fixed.
    args : tuple (or list) of positional arguments.
    order : highest derivative order to check, an int ``>= 1``.  Order ``k``
        differentiates the order ``k - 1`` derivative function once more, in
        every mode: ``order=2`` with both modes checks forward, reverse,
        forward-over-forward, reverse-over-forward, forward-over-reverse and
        reverse-over-reverse.
    modes : a subset of ``("fwd", "rev")``: forward mode (``jvp``) and/or
        reverse mode (``vjp``).
    eps : finite-difference step; by default from the least precise float
        dtype among the leaves of ``args`` (float64: ``1e-4``, float32: ``4e-3``).
    atol, rtol : tolerances; by default ``1e-5`` for float64, ``1e-2`` for float32.

    Raises
    ------
    AssertionError
        naming the mode and order of the first wrong derivative, with the
        largest error and both values.  The check also fails if a tangent or
        cotangent does not have the shape and dtype of its primal.

    Example
    -------
    >>> import functad.numpy as fnp
    >>> check_grads(lambda x, y: fnp.sum(x * fnp.exp(y)), (fnp.ones(3), fnp.zeros(3)), order=2)
    """
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    unknown = [m for m in modes if m not in ("fwd", "rev")]
    if unknown or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty subset of ('fwd', 'rev'), "
                         f"got {modes!r}")
    if not isinstance(order, numbers.Integral) or isinstance(order, bool) or order < 1:
        raise ValueError(f"check_grads: order must be an int >= 1, got {order!r}")
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"check_grads: args must be a tuple of positional arguments, e.g. "
                        f"check_grads(f, (x,)); got {type(args).__name__}")
    args = tuple(args)
    eps, atol, rtol = _tolerances(args, eps, atol, rtol)
    rng = np.random.default_rng(0)

    def check(fun, k):
        if "fwd" in modes:
            check_jvp(fun, args, eps, atol, rtol, rng, _what=_describe("fwd", k, fun, eps))
            if k < order:
                t = tu.tree_map(lambda x: _rand_like(rng, x), args)

                def f_jvp(*primals):
                    return jvp(fun, primals, t)[1]
                f_jvp.__name__ = f"jvp({_fname(fun)})"
                check(f_jvp, k + 1)
        if "rev" in modes:
            check_vjp(fun, args, eps, atol, rtol, rng, _what=_describe("rev", k, fun, eps))
            if k < order:
                c = tu.tree_map(lambda x: _rand_like(rng, x), fun(*args))

                def f_vjp(*primals):
                    return vjp(fun, *primals)[1](c)
                f_vjp.__name__ = f"vjp({_fname(fun)})"
                check(f_vjp, k + 1)
    check(f, 1)


# --------------------------------------------------------------------------
# Hypothesis strategies (Hypothesis is imported only when they are built)

def _take(x, i, axis):
    return x[(slice(None),) * axis + (i,)] if axis else x[i]


def check_vmap(f, args, in_axes=0, out_axes=0, atol=None, rtol=None, staged=True):
    """Check the vmap law: ``vmap(f, in_axes, out_axes)(*args)`` equals ``f``
    applied to each example in a Python loop, stacked along ``out_axes``.

    Also checks that the batched function stages (``make_jaxpr``) into a
    jaxpr that type-checks and evaluates to the same result (``staged=True``).
    Integer and boolean results must be equal exactly; floating results within
    ``atol``/``rtol`` (by default tight: 1e-12 in float64, 1e-5 in float32).

    >>> import functad.numpy as fnp
    >>> check_vmap(lambda x, w: fnp.sum(x * w), (fnp.ones((4, 3)), fnp.arange(3.0)),
    ...            in_axes=(0, None))
    """
    from functad import core as _core
    from functad.batching import vmap, _broadcast_prefix
    args = tuple(args)
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    axes = _broadcast_prefix(in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args),
                             args, "in_axes")
    leaves, tree = tu.tree_flatten(args)
    norm = [None if a is None else a % np.ndim(x) for x, a in zip(leaves, axes)]
    sizes = {np.shape(x)[a] for x, a in zip(leaves, norm) if a is not None}
    if len(sizes) != 1:
        raise ValueError(f"check_vmap: the mapped axes must have one size, got {sorted(sizes)}")
    n = sizes.pop()
    batched_f = vmap(f, in_axes=in_axes, out_axes=out_axes)
    got = batched_f(*args)
    per_example = []
    for i in range(n):
        xs = [x if a is None else _take(np.asarray(x), i, a) for x, a in zip(leaves, norm)]
        per_example.append(tu.tree_leaves(f(*tu.tree_unflatten(tree, xs))))
    g_leaves, g_tree = tu.tree_flatten(got)
    oaxes = _broadcast_prefix(out_axes, got, "out_axes")
    expected = []
    for k in range(len(g_leaves)):
        results = [np.asarray(ex[k]) for ex in per_example]
        if oaxes[k] is None:        # not mapped: every example must give the same value
            for i, r in enumerate(results[1:], 1):
                if not np.array_equal(r, results[0], equal_nan=r.dtype.kind in "fc"):
                    raise AssertionError(f"check_vmap: output leaf {k} has out_axes=None but "
                                         f"example {i} gives a different value than example 0")
            expected.append(results[0])
        else:
            expected.append(np.stack(results, axis=oaxes[k]))

    def compare(results, what):
        for k, (r, e) in enumerate(zip(results, expected)):
            r = np.asarray(r)
            if r.shape != e.shape or r.dtype != e.dtype:
                raise AssertionError(f"{what}: output leaf {k} has shape {r.shape} and dtype "
                                     f"{r.dtype}, the loop gives {e.shape} and {e.dtype}")
            if r.dtype.kind in "fc":
                tol = 1e-5 if r.dtype.itemsize <= 4 else 1e-12
                _check_close(r, e, tol if atol is None else atol, tol if rtol is None else rtol,
                             f"{what}, output leaf {k}", labels=("vmap", "loop"))
            elif not np.array_equal(r, e):
                raise AssertionError(f"{what}: output leaf {k} differs from the loop\n"
                                     f" vmap: {r}\n loop: {e}")
    compare(g_leaves, f"vmap({_fname(f)}) with in_axes={in_axes!r}, out_axes={out_axes!r}")
    if staged:
        closed = _core.make_jaxpr(batched_f)(*args)
        _core.check_jaxpr(closed.jaxpr)
        compare(closed(*leaves), f"staged vmap({_fname(f)})")


# --------------------------------------------------------------------------

def _hyp():
    try:
        import hypothesis.strategies as st
        import hypothesis.extra.numpy as hnp
    except ImportError as e:   # pragma: no cover - depends on the environment
        raise ImportError("functad.testing's strategies need Hypothesis, a test dependency: "
                          "pip install hypothesis (or functad[test])") from e
    return st, hnp


def float_dtypes(sizes=(32, 64)):
    """Strategy for the float dtypes functad supports (``float32``, ``float64``)."""
    st, _ = _hyp()
    if isinstance(sizes, int):
        sizes = (sizes,)
    return st.sampled_from([np.dtype(f"float{s}") for s in sizes])


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Strategy for array shapes (tuples of ints); ``()`` is included by default."""
    _, hnp = _hyp()
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(shape, min_dims=0, max_dims=None, min_side=1, max_side=4):
    """Strategy for shapes that broadcast with ``shape`` (NumPy rules).

    The broadcast result ends with ``shape`` (it may have extra leading
    dimensions when ``max_dims > len(shape)``).
    """
    _, hnp = _hyp()
    return hnp.broadcastable_shapes(tuple(shape), min_dims=min_dims, max_dims=max_dims,
                                    min_side=min_side, max_side=max_side)


def mutually_broadcastable_shapes(num_shapes, base_shape=(), min_dims=0, max_dims=3,
                                  min_side=1, max_side=4):
    """Strategy for ``num_shapes`` shapes that broadcast together.

    Draws a named tuple ``(input_shapes, result_shape)``.
    """
    _, hnp = _hyp()
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, base_shape=tuple(base_shape),
                                             min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side)


def _inward(bound, dtype, up):
    """``bound`` rounded to ``dtype`` without leaving the requested interval."""
    v = dtype.type(bound)
    # compare as Python floats: under NEP 50, ``v < bound`` would round ``bound`` to ``dtype``
    if up and float(v) < bound:
        v = np.nextafter(v, dtype.type(np.inf))
    elif not up and float(v) > bound:
        v = np.nextafter(v, dtype.type(-np.inf))
    return float(v)


def floats(dtype=np.float64, min_value=-10.0, max_value=10.0):
    """Strategy for finite scalars of a float ``dtype`` in ``[min_value, max_value]``
    (no NaN, infinity or subnormal), as Python floats exactly representable in
    ``dtype``."""
    st, _ = _hyp()
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"floats: dtype must be a float dtype, got {dtype.name}")
    lo = None if min_value is None else _inward(min_value, dtype, True)
    hi = None if max_value is None else _inward(max_value, dtype, False)
    return st.floats(lo, hi, width=8 * dtype.itemsize, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False)


def _default_elements(dtype, min_value, max_value):
    st, _ = _hyp()
    if dtype.kind == "f":
        return floats(dtype, min_value, max_value)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo = info.min if min_value is None else max(int(np.ceil(min_value)), info.min)
        hi = info.max if max_value is None else min(int(np.floor(max_value)), info.max)
        return st.integers(lo, hi)
    if dtype.kind == "b":
        return st.booleans()
    raise TypeError(f"arrays: no default elements for dtype {dtype.name}; pass elements=")


def arrays(dtype=np.float64, shape=None, elements=None, min_value=-10.0, max_value=10.0):
    """Strategy for NumPy arrays of ``dtype`` and ``shape``.

    Parameters
    ----------
    dtype : a dtype, or a strategy for dtypes (e.g. :func:`float_dtypes`).
    shape : an int, a tuple, or a strategy for shapes; by default :func:`shapes`.
    elements : a strategy for the values; values are cast to ``dtype`` (so a
        float64 strategy may feed a float32 array).  By default finite values
        in ``[min_value, max_value]``.
    """
    st, hnp = _hyp()
    if isinstance(dtype, st.SearchStrategy):
        return dtype.flatmap(lambda d: arrays(d, shape, elements, min_value, max_value))
    dtype = np.dtype(dtype)
    if shape is None:
        shape = shapes()
    if elements is None:
        elements = _default_elements(dtype, min_value, max_value)
    elif dtype.kind in "fc":
        elements = elements.map(dtype.type)
    return hnp.arrays(dtype, shape, elements=elements)


def pytrees(leaves=None, max_depth=2, max_children=3, allow_none=True):
    """Strategy for pytrees: nested tuples, lists and dicts (string keys), and
    ``None``, with leaves drawn from ``leaves`` (by default :func:`arrays`).

    The nesting is at most ``max_depth`` containers deep; each container has
    at most ``max_children`` children.
    """
    st, _ = _hyp()
    if leaves is None:
        leaves = arrays()
    base = st.one_of(leaves, st.none()) if allow_none else leaves
    keys = st.text(alphabet="abcdefghij", min_size=1, max_size=3)

    def containers(children):
        return st.one_of(
            st.lists(children, max_size=max_children).map(tuple),
            st.lists(children, max_size=max_children),
            st.dictionaries(keys, children, max_size=max_children),
        )
    tree = base
    for _ in range(max_depth):
        tree = st.one_of(base, containers(tree))
    return tree
