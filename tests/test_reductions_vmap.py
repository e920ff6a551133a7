"""vmap of reductions and cumulative operations (functad.lax.reductions and the
functad.numpy functions built on them).

The law tested throughout: ``vmap(f, in_axes=a, out_axes=b)(xs)`` equals the
eager results ``f(x)`` of the examples ``x`` of ``xs`` (taken along ``a``),
stacked along ``b``; ``a`` and ``b`` are random, negative ones included.  Then
the compositions ``vmap(grad(f))``, ``grad(sum of vmap(f))``, ``jvp(vmap(f))``,
``vmap(jvp(f))`` and ``vmap(vmap(f))`` against loops, and the staged form: a
batched reduction is one equation with renumbered axes (no transpose or copy
of the operand), and unbatched operands stay unbatched.

Functions whose vmap needs a batching rule of a primitive defined elsewhere
(``reshape`` for ``keepdims``, ``sort`` for ``median``...) are skipped, naming
that primitive, until that rule exists; a missing rule of a reduction fails.
"""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad.lax import reductions as lr
from functad.testing import shapes

from helpers import assert_law, assert_same, law, out_axis_for, stacked, take, values

REDUCTIONS = [getattr(lr, row[0] + "_p") for row in lr.REDUCTIONS]
ARG_REDUCTIONS = [lr.argmax_p, lr.argmin_p]
CUMULATIVE = [getattr(lr, row[0] + "_p") for row in lr.CUMULATIVE]
ALL_PRIMS = REDUCTIONS + ARG_REDUCTIONS + CUMULATIVE
MINE = {p.name for p in ALL_PRIMS}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def test_every_primitive_of_the_module_is_covered():
    """Every primitive defined in reductions.py is tested here and has a rule."""
    defined = {p.name for p in core.primitives.values()
               if any(getattr(lr, n, None) is p for n in dir(lr))}
    assert defined == MINE
    assert all(callable(p.batch) for p in ALL_PRIMS)


@st.composite
def batch_layout(draw, min_dims=0, max_dims=3, max_side=4):
    """A per-example shape, a batch size and a (maybe negative) ``in_axes``;
    returns ``(example_shape, batched_shape, in_axis)``."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    n = draw(st.integers(1, 3))
    nd = len(shape) + 1
    in_axis = draw(st.integers(-nd, nd - 1))
    full = list(shape)
    full.insert(in_axis % nd, n)
    return shape, tuple(full), in_axis


def draw_params(draw, prim, nd):
    """Random static parameters of ``prim`` for an example of rank ``nd``."""
    if prim in REDUCTIONS:
        axes = draw(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd)) if nd else []
        return dict(axes=tuple(sorted(axes)))
    if prim in ARG_REDUCTIONS:
        return dict(axis=draw(st.integers(0, nd - 1)))
    return dict(axis=draw(st.integers(0, nd - 1)), reverse=draw(st.booleans()))


def prim_dtypes(prim):
    if prim in (lr.reduce_and_p, lr.reduce_or_p):
        return [np.bool_, np.float64, np.int64]
    return [np.float64, np.float32, np.int64, np.int32, np.bool_]


def natural_out_dim(prim, params, bdim):
    """Where the batch axis lands without any moving (restated independently
    of the rules: reduced axes before the batch axis shift it down)."""
    if prim in REDUCTIONS:
        return bdim - sum(1 for a in params["axes"] if a < bdim)
    if prim in ARG_REDUCTIONS:
        return bdim - (params["axis"] < bdim)
    return bdim


# --------------------------------------------------------------------------
# Every primitive: the law, eagerly and staged
# --------------------------------------------------------------------------

@pytest.mark.parametrize("prim", ALL_PRIMS, ids=lambda p: p.name)
@law
def test_primitive_vmap_equals_stacked_loop(prim, data):
    draw = data.draw
    min_dims = 0 if prim in REDUCTIONS else 1
    shape, full, in_axis = draw(batch_layout(min_dims=min_dims))
    dtype = draw(st.sampled_from(prim_dtypes(prim)))
    xs = values(draw(st.integers(0, 2**16)), full, dtype, nans=draw(st.booleans()))
    params = draw_params(draw, prim, len(shape))

    def f(x):
        return prim.bind(x, **params)
    rank = np.ndim(f(take(xs, 0, in_axis)))
    out_axis = out_axis_for(draw, rank)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # int overflow in products
        assert_law(f, [xs], [in_axis], out_axis)        # eagerly and staged (type-checked)


@pytest.mark.parametrize("prim", ALL_PRIMS, ids=lambda p: p.name)
@law
def test_batched_primitive_is_one_equation(prim, data):
    """The rule renumbers axes and leaves the operand in place: with the batch
    axis asked where it naturally lands, the jaxpr is the primitive alone;
    elsewhere, one transpose (vmap's own, to place the output) at most."""
    draw = data.draw
    shape, full, in_axis = draw(batch_layout(min_dims=0 if prim in REDUCTIONS else 1))
    params = draw_params(draw, prim, len(shape))
    bdim = in_axis % len(full)
    nat = natural_out_dim(prim, params, bdim)
    xs = np.zeros(full)

    def f(x):
        return prim.bind(x, **params)
    closed = fd.make_jaxpr(fd.vmap(f, in_axes=in_axis, out_axes=nat))(xs)
    core.check_jaxpr(closed.jaxpr)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.primitive is prim
    assert eqn.inputs[0] is closed.jaxpr.invars[0]
    rank = len(shape) - (len(params["axes"]) if prim in REDUCTIONS else prim in ARG_REDUCTIONS)
    other = out_axis_for(draw, rank)
    closed = fd.make_jaxpr(fd.vmap(f, in_axes=in_axis, out_axes=other))(xs)
    names = [e.primitive.name for e in closed.jaxpr.eqns]
    assert names[0] == prim.name and names[1:] in ([], ["transpose"]), names


def test_rules_move_nothing_even_for_a_last_batch_axis():
    xs = np.arange(24.0).reshape(2, 3, 4)
    closed = fd.make_jaxpr(fd.vmap(lambda x: lr.cumprod(x, 0, reverse=True), in_axes=-1,
                                   out_axes=-1))(xs)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.params == dict(axis=0, reverse=True)
    closed = fd.make_jaxpr(fd.vmap(lambda x: lr.reduce_max(x, (0, 1)), in_axes=1))(xs)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.params == dict(axes=(0, 2))
    closed = fd.make_jaxpr(fd.vmap(lambda x: lr.argmin(x, 1), in_axes=0))(xs)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.params == dict(axis=2)


# --------------------------------------------------------------------------
# Unbatched operands stay unbatched
# --------------------------------------------------------------------------

def test_unbatched_operand_stays_unbatched():
    xs = np.arange(12.0).reshape(3, 4)
    c = np.arange(8.0).reshape(2, 4) - 3.0

    def f(x, c):
        return fnp.cumsum(x, axis=0) * fnp.max(c, axis=0) + fnp.sum(c, axis=0)
    got = fd.vmap(f, in_axes=(0, None))(xs, c)
    assert_same(got, np.stack([f(x, c) for x in xs]))
    jaxpr = fd.make_jaxpr(fd.vmap(f, in_axes=(0, None)))(xs, c).jaxpr
    core.check_jaxpr(jaxpr)
    names = [e.primitive.name for e in jaxpr.eqns]
    assert "broadcast_to" not in names and "transpose" not in names, names
    for e in jaxpr.eqns:
        if e.primitive.name in ("reduce_max", "reduce_sum"):
            assert e.inputs[0] is jaxpr.invars[1]          # c itself, shape (2, 4)
            assert e.params == dict(axes=(0,))
            assert e.outvars[0].aval.shape == (4,)


def test_outputs_that_do_not_depend_on_the_batch():
    """An output computed from unbatched values only is broadcast by vmap itself,
    at the end, to the requested out_axes."""
    xs = np.arange(12.0).reshape(3, 4)
    c = np.arange(6.0).reshape(2, 3)
    a, b = fd.vmap(lambda x, c: (fnp.sum(x), fnp.cumprod(c, axis=1)), in_axes=(1, None),
                   out_axes=(0, -1))(xs, c)
    assert_same(a, xs.sum(0))
    assert_same(b, np.stack([np.cumprod(c, axis=1)] * 4, axis=-1))
    out = fd.vmap(lambda c: fnp.argmax(c, axis=0), in_axes=None, axis_size=2)(c)
    assert_same(out, np.stack([np.argmax(c, axis=0)] * 2))


# --------------------------------------------------------------------------
# functad.numpy functions
# --------------------------------------------------------------------------

@st.composite
def many_axes(draw, nd):
    """``axis`` for a reduction over several axes: None, an int or a tuple (maybe negative)."""
    if nd == 0:
        return draw(st.sampled_from([None, ()]))
    one = st.integers(-nd, nd - 1)
    many = st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - nd]) for a in axes]))
    return draw(st.none() | one | many)


def one_axis(draw, nd):
    return draw(st.none() | st.integers(-nd, nd - 1)) if nd else None


# name -> (function, how its axis is drawn, accepts keepdims, float only)
NUMPY_FUNCS = {
    "sum": (fnp.sum, "many", True, False),
    "mean": (fnp.mean, "many", True, False),
    "prod": (fnp.prod, "many", True, False),
    "max": (fnp.max, "many", True, False),
    "min": (fnp.min, "many", True, False),
    "amax": (fnp.amax, "many", True, False),
    "ptp": (fnp.ptp, "many", True, False),
    "all": (fnp.all, "many", True, False),
    "any": (fnp.any, "many", True, False),
    "count_nonzero": (fnp.count_nonzero, "many", True, False),
    "var": (fnp.var, "many", True, False),
    "var_ddof1": (functools.partial(fnp.var, ddof=1), "many", True, True),
    "std": (fnp.std, "many", True, False),
    "average": (fnp.average, "many", True, False),
    "nansum": (fnp.nansum, "many", True, False),
    "nanmean": (fnp.nanmean, "many", True, True),
    "nanmax": (fnp.nanmax, "many", True, True),
    "nanmin": (fnp.nanmin, "many", True, True),
    "median": (fnp.median, "many", True, True),
    "sum_initial": (functools.partial(fnp.sum, initial=1.5), "many", True, True),
    "max_initial": (functools.partial(fnp.max, initial=0.0), "many", True, True),
    "argmax": (fnp.argmax, "one", True, False),
    "argmin": (fnp.argmin, "one", True, False),
    "cumsum": (fnp.cumsum, "one", False, False),
    "cumprod": (fnp.cumprod, "one", False, False),
}


@pytest.mark.parametrize("name", sorted(NUMPY_FUNCS))
@law
def test_numpy_function_vmap_equals_stacked_loop(name, data):
    fn, how, has_keepdims, float_only = NUMPY_FUNCS[name]
    draw = data.draw
    shape, full, in_axis = draw(batch_layout())
    nd = len(shape)
    kwargs = {"axis": draw(many_axes(nd)) if how == "many" else one_axis(draw, nd)}
    if has_keepdims:
        kwargs["keepdims"] = draw(st.booleans())
    dtypes = [np.float64, np.float32] + ([] if float_only else [np.int64, np.bool_])
    if name == "ptp":
        dtypes.remove(np.bool_)        # NumPy cannot subtract booleans either
    dtype = draw(st.sampled_from(dtypes))
    xs = values(draw(st.integers(0, 2**16)), full, dtype, nans=draw(st.booleans()))

    def f(x):
        return fn(x, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN slices, ddof >= N
        rank = np.ndim(f(take(xs, 0, in_axis)))
        out_axis = out_axis_for(draw, rank)
        got = fd.vmap(f, in_axes=in_axis, out_axes=out_axis)(xs)
        assert_same(got, stacked(f, [xs], [in_axis], out_axis)[0])


@law
def test_cumulative_sum_include_initial(data):
    draw = data.draw
    shape, full, in_axis = draw(batch_layout(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    fn = draw(st.sampled_from([fnp.cumulative_sum, fnp.cumulative_prod]))
    xs = values(draw(st.integers(0, 2**16)), full, np.float64)

    def f(x):
        return fn(x, axis=axis, include_initial=True)
    out_axis = out_axis_for(draw, len(shape))
    assert_same(fd.vmap(f, in_axes=in_axis, out_axes=out_axis)(xs),
                stacked(f, [xs], [in_axis], out_axis)[0])


@law
def test_where_masks_batched_or_not(data):
    """A ``where=`` mask that is the same for every example, or one per example."""
    draw = data.draw
    shape, full, in_axis = draw(batch_layout(min_dims=1))
    seed = draw(st.integers(0, 2**16))
    xs = values(seed, full, np.float64)
    fn = draw(st.sampled_from([fnp.sum, fnp.mean, fnp.prod, fnp.all, fnp.any,
                               functools.partial(fnp.max, initial=-1.0)]))
    axis = draw(many_axes(len(shape)))
    if draw(st.booleans()):
        w = np.random.default_rng(seed + 1).uniform(size=shape) < 0.6     # unbatched mask
        f = (lambda x: fn(x, axis=axis, where=w))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = fd.vmap(f, in_axes=in_axis)(xs)
            assert_same(got, stacked(f, [xs], [in_axis], 0)[0])
        return
    ws = np.random.default_rng(seed + 1).uniform(size=full) < 0.6        # batched mask

    def g(x, w):
        return fn(x, axis=axis, where=w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = fd.vmap(g, in_axes=(in_axis, in_axis))(xs, ws)
        (expected,) = stacked(g, [xs, ws], [in_axis, in_axis], 0)
    assert_same(got, expected)


# --------------------------------------------------------------------------
# Compositions with differentiation and with vmap itself
# --------------------------------------------------------------------------

def _scalar(reduce):
    """A smooth scalar function of one example through the reduction ``reduce``."""
    return lambda x: fnp.sum(fnp.sin(reduce(x)) * 1.5)


# name -> function(axis) of one example, differentiable; its axis kind
GRAD_FUNCS = {
    "sum": (lambda ax: lambda x: fnp.sum(x * x, axis=ax), "many"),
    "mean": (lambda ax: lambda x: fnp.mean(x, axis=ax), "many"),
    "prod": (lambda ax: lambda x: fnp.prod(x, axis=ax), "many"),
    "max": (lambda ax: lambda x: fnp.max(x, axis=ax), "many"),
    "min": (lambda ax: lambda x: fnp.min(x, axis=ax), "many"),
    "var": (lambda ax: lambda x: fnp.var(x, axis=ax), "many"),
    "ptp": (lambda ax: lambda x: fnp.ptp(x, axis=ax), "many"),
    "median": (lambda ax: lambda x: fnp.median(x, axis=ax), "many"),
    "cumsum": (lambda ax: lambda x: fnp.cumsum(x, axis=ax), "one"),
    "cumprod": (lambda ax: lambda x: fnp.cumprod(x, axis=ax), "one"),
    "cummax": (lambda ax: lambda x: lr.cummax(x, 0 if ax is None else ax % np.ndim(x)),
               "cum"),
    "cummin_rev": (lambda ax: lambda x: lr.cummin(x, 0 if ax is None else ax % np.ndim(x),
                                                  reverse=True), "cum"),
}


@st.composite
def grad_case(draw, name):
    make, how = GRAD_FUNCS[name]
    min_dims = 1 if how == "cum" else 0
    shape, full, in_axis = draw(batch_layout(min_dims=min_dims, max_side=3))
    nd = len(shape)
    axis = draw(many_axes(nd)) if how == "many" else one_axis(draw, nd)
    xs = values(draw(st.integers(0, 2**16)), full, np.float64)
    # a few exact zeros (prod, cumprod) and ties (max, min) are kept on purpose
    return make(axis), xs, in_axis, shape


@pytest.mark.parametrize("name", sorted(GRAD_FUNCS))
@law
def test_vmap_of_grad_and_grad_of_vmap(name, data):
    f, xs, in_axis, _ = data.draw(grad_case(name))
    g = _scalar(f)
    out_axis = out_axis_for(data.draw, np.ndim(xs) - 1)
    (expected,) = stacked(fd.grad(g), [xs], [in_axis], out_axis)
    assert_same(fd.vmap(fd.grad(g), in_axes=in_axis, out_axes=out_axis)(xs), expected)
    # reverse mode through vmap: the gradient of a sum over examples is the
    # per-example gradients, in the input's layout
    total = fd.grad(lambda xs: fnp.sum(fd.vmap(g, in_axes=in_axis)(xs)))(xs)
    assert_same(total, stacked(fd.grad(g), [xs], [in_axis], in_axis)[0])


@pytest.mark.parametrize("name", sorted(GRAD_FUNCS))
@law
def test_jvp_of_vmap_and_vmap_of_jvp(name, data):
    f, xs, in_axis, _ = data.draw(grad_case(name))
    ts = values(data.draw(st.integers(0, 2**16)), np.shape(xs), np.float64)
    rank = np.ndim(f(take(xs, 0, in_axis)))
    out_axis = out_axis_for(data.draw, rank)
    n = np.shape(xs)[in_axis]
    per = [fd.jvp(f, (take(xs, i, in_axis),), (take(ts, i, in_axis),)) for i in range(n)]
    exp_y = np.stack([np.asarray(y) for y, _ in per], axis=out_axis)
    exp_t = np.stack([np.asarray(t) for _, t in per], axis=out_axis)
    y, t = fd.jvp(fd.vmap(f, in_axes=in_axis, out_axes=out_axis), (xs,), (ts,))
    assert_same(y, exp_y)
    assert_same(t, exp_t)
    y, t = fd.vmap(lambda x, t: fd.jvp(f, (x,), (t,)), in_axes=(in_axis, in_axis),
                   out_axes=out_axis)(xs, ts)
    assert_same(y, exp_y)
    assert_same(t, exp_t)


@pytest.mark.parametrize("prim", ALL_PRIMS, ids=lambda p: p.name)
@law
def test_vmap_of_vmap(prim, data):
    """Two batch axes: the inner rule's operand is a tracer of the outer vmap,
    so the outer rule batches the inner rule's output."""
    draw = data.draw
    shape, mid, in_inner = draw(batch_layout(min_dims=0 if prim in REDUCTIONS else 1))
    m = draw(st.integers(1, 3))
    in_outer = draw(st.integers(-(len(mid) + 1), len(mid)))
    full = list(mid)
    full.insert(in_outer % (len(mid) + 1), m)
    dtype = draw(st.sampled_from(prim_dtypes(prim)))
    xs = values(draw(st.integers(0, 2**16)), tuple(full), dtype)
    params = draw_params(draw, prim, len(shape))

    def f(x):
        return prim.bind(x, **params)
    rank = np.ndim(f(np.zeros(shape, dtype)))
    out_inner = out_axis_for(draw, rank)
    out_outer = out_axis_for(draw, rank + 1)
    inner = fd.vmap(f, in_axes=in_inner, out_axes=out_inner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = fd.vmap(inner, in_axes=in_outer, out_axes=out_outer)(xs)
        (expected,) = stacked(lambda y: stacked(f, [y], [in_inner], out_inner)[0], [xs],
                              [in_outer], out_outer)
    assert_same(got, expected)


@law
def test_vmap_of_vmap_of_grad(data):
    """Per-example gradients of a batch of batches: the reduction rules run at
    three levels (outer vmap, inner vmap, and the transpose of the JVP)."""
    draw = data.draw
    name = draw(st.sampled_from(sorted(GRAD_FUNCS)))
    f, ys, in_inner, shape = draw(grad_case(name))
    m = draw(st.integers(1, 3))
    xs = np.stack([ys + k for k in range(m)], axis=-1)
    g = fd.grad(_scalar(f))
    got = fd.vmap(fd.vmap(g, in_axes=in_inner), in_axes=-1)(xs)
    (expected,) = stacked(lambda y: stacked(g, [y], [in_inner], 0)[0], [xs], [-1], 0)
    assert_same(got, expected)
