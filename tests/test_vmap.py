"""functad.vmap: the API (in_axes, out_axes, axis_size, keyword arguments,
pytrees, nesting), its errors, and its compositions with differentiation.

JAX's ``vmap`` is the specification.  The reference for every result is a
Python loop: ``f`` applied to each example (the slice of each mapped input
along its ``in_axes``), stacked along ``out_axes``; an unmapped input is the
same for every example, and an output that does not depend on the batch is
broadcast.  Derivatives of vectorised functions are compared with loops of
derivatives, with each other (``jacfwd == jacrev``), with closed forms and
with finite differences (``check_grads``).

Bugs found in batching.py are kept as regression tests at the end of the file,
"""

import collections
import functools
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core, nn
from functad import tree_util as tu
from functad.testing import arrays, check_grads, check_vmap, pytrees, shapes

from helpers import assert_tree_same, take

FAST = settings(max_examples=10, deadline=None)

rng0 = np.random.default_rng(0)
X = rng0.normal(size=(4, 3))            # 4 examples of 3 features
W = rng0.normal(size=3)


def assert_same(got, expected, rtol=1e-12):
    """Same shape and dtype, values equal to rounding (pytrees leaf by leaf)."""
    assert_tree_same(got, expected, tol32=max(rtol, 1e-5), tol64=rtol)


def loop(f, *args, in_axes=0, out_axes=0):
    """The reference: ``f`` on each example, stacked.  ``in_axes`` is an int,
    None or one entry (int or None) per positional argument; ``out_axes`` one
    int for every output leaf."""
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    n = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    outs = [f(*[take(a, i, ax) for a, ax in zip(args, axes)]) for i in range(n)]
    return tu.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs], axis=out_axes),
                       *outs)


# --------------------------------------------------------------------------
# in_axes
# --------------------------------------------------------------------------

def test_in_axes_int_none_and_negative():
    f = lambda x, y: fnp.sin(x) * y + fnp.sum(x)
    assert_same(fd.vmap(f)(X, X), loop(f, X, X))
    assert_same(fd.vmap(f, in_axes=1)(X, X), loop(f, X, X, in_axes=1))
    assert_same(fd.vmap(f, in_axes=-1)(X, X), loop(f, X, X, in_axes=1))
    assert_same(fd.vmap(f, in_axes=-2)(X, X), loop(f, X, X, in_axes=0))
    assert_same(fd.vmap(f, in_axes=(0, None))(X, W), loop(f, X, W, in_axes=(0, None)))
    assert_same(fd.vmap(f, in_axes=(None, -1))(W, X.T), loop(f, W, X.T, in_axes=(None, 1)))
    assert_same(fd.vmap(f, in_axes=(1, 0))(X.T, X), loop(f, X.T, X, in_axes=(1, 0)))
    # a list is accepted where a tuple is expected (as in JAX)
    assert_same(fd.vmap(f, in_axes=[0, None])(X, W), loop(f, X, W, in_axes=(0, None)))


def test_in_axes_for_a_3d_argument_each_axis():
    xs = np.arange(24.0).reshape(2, 3, 4)
    f = lambda x: x * fnp.sum(x)
    for ax in range(-3, 3):
        assert_same(fd.vmap(f, in_axes=ax)(xs), loop(f, xs, in_axes=ax % 3))


def test_in_axes_dict_prefix_for_a_dict_argument():
    params = {"w": X, "b": W, "scale": np.float64(2.0)}

    def f(p):
        return p["scale"] * (p["w"] + p["b"])
    got = fd.vmap(f, in_axes=({"w": 0, "b": None, "scale": None},))(params)
    assert_same(got, np.stack([f({"w": x, "b": W, "scale": 2.0}) for x in X]))
    # the leaves of a dict prefix may be negative
    got = fd.vmap(f, in_axes=({"w": -1, "b": None, "scale": None},))(dict(params, w=X.T))
    assert_same(got, np.stack([f({"w": x, "b": W, "scale": 2.0}) for x in X]))


def test_in_axes_nested_prefix_list_and_tuple():
    args = ([X, X.T], (W, {"k": X}))

    def f(a, b):
        return a[0] * a[1] + b[0] + b[1]["k"]
    got = fd.vmap(f, in_axes=([0, 1], (None, 0)))(*args)
    assert_same(got, np.stack([f([X[i], X.T[:, i]], (W, {"k": X[i]})) for i in range(4)]))
    # a prefix leaf stands for a whole subtree
    got = fd.vmap(f, in_axes=([0, -1], (None, {"k": 0})))(*args)
    assert_same(got, np.stack([f([X[i], X.T[:, i]], (W, {"k": X[i]})) for i in range(4)]))


Params = collections.namedtuple("Params", "w b")


def test_in_axes_namedtuple_prefix_for_a_namedtuple_argument():
    p = Params(w=X, b=np.float64(0.5))

    def f(p, x):
        return fnp.tanh(p.w * x + p.b)
    got = fd.vmap(f, in_axes=(Params(w=0, b=None), None))(p, W)
    assert_same(got, np.stack([f(Params(x, 0.5), W) for x in X]))
    # the output may be a namedtuple too, with a namedtuple out_axes prefix
    out = fd.vmap(lambda p: Params(w=p.w * 2, b=p.b), in_axes=(Params(1, None),),
                  out_axes=Params(w=-1, b=None))(p)
    assert isinstance(out, Params)
    assert_same(out, Params(w=X * 2, b=np.float64(0.5)))


def test_none_arguments_and_none_leaves():
    f = lambda x, nothing, d: x * d["a"] if nothing is None else None
    got = fd.vmap(f, in_axes=(0, None, {"a": None, "b": 0}))(X, None, {"a": W, "b": None})
    assert_same(got, X * W)


UNSET = object()


def _build(draw, node, n, forced=UNSET):
    """A value tree shaped like ``node`` (leaves become batched arrays) and an
    in_axes prefix for it; returns ``(value, prefix, leaf_axes)``.  A prefix
    leaf sometimes stands for a whole subtree (``forced``: its axis)."""
    if node is None:
        return None, draw(st.sampled_from([None, 0])), []
    if not isinstance(node, (tuple, list, dict)):
        shape = list(draw(shapes(max_dims=2, max_side=3)))
        nd = len(shape)
        ax = draw(st.none() | st.integers(-(nd + 1), nd)) if forced is UNSET else forced
        if ax is not None:
            shape.insert(ax % (nd + 1), n)
        value = draw(arrays(np.float64, tuple(shape), min_value=-3, max_value=3))
        return value, ax, [ax]
    if forced is UNSET and draw(st.booleans()):
        forced = draw(st.sampled_from([None, 0, -1]))       # valid for any rank
        prefix = forced
    else:
        prefix = UNSET
    items = node.items() if isinstance(node, dict) else enumerate(node)
    built = {k: _build(draw, child, n, forced) for k, child in items}
    if isinstance(node, dict):
        value = {k: b[0] for k, b in built.items()}
        sub = {k: b[1] for k, b in built.items()}
        keys = sorted(built)                                 # pytree order
    else:
        value = type(node)(b[0] for b in built.values())
        sub = type(node)(b[1] for b in built.values())
        keys = list(built)
    leaf_axes = [a for k in keys for a in built[k][2]]
    return value, (sub if prefix is UNSET else prefix), leaf_axes


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_pytree_arguments_with_random_in_axes_prefixes(data):
    """The law on random pytrees of arguments (tuples, lists, dicts, None) with
    random in_axes prefixes and out_axes, eagerly and staged."""
    draw = data.draw
    n = draw(st.integers(1, 3), label="batch size")
    nodes = draw(st.lists(pytrees(leaves=st.just(0), max_depth=2, max_children=3),
                          min_size=1, max_size=3), label="structures")
    built = [_build(draw, node, n) for node in nodes]
    args = tuple(b[0] for b in built)
    in_axes = tuple(b[1] for b in built)
    leaf_axes = [a for b in built for a in b[2]]
    if draw(st.booleans()):
        in_axes = list(in_axes)
    out_axes = tuple(draw(st.sampled_from([0, -1])) for _ in args)
    mapped = any(a is not None for a in leaf_axes)

    def f(*args):
        return tu.tree_map(lambda x: fnp.sin(x) * 2.0 + 1.0, args)
    vf = fd.vmap(f, in_axes=in_axes, out_axes=out_axes, axis_size=None if mapped else n)
    got = vf(*args)
    leaves, tree = tu.tree_flatten(args)
    outs = []
    for i in range(n):
        ex = [x if a is None else np.take(x, i, axis=a) for x, a in zip(leaves, leaf_axes)]
        outs.append(f(*tu.tree_unflatten(tree, ex)))
    expected = tuple(tu.tree_map(lambda *xs, ax=ax: np.stack(xs, axis=ax), *per_arg)
                     for ax, per_arg in zip(out_axes, zip(*outs)))
    assert_same(got, expected)
    closed = fd.make_jaxpr(vf)(*args)
    core.check_jaxpr(closed.jaxpr)
    assert_same(tu.tree_unflatten(tu.tree_structure(got),
                                  core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves)), got)


# --------------------------------------------------------------------------
# out_axes
# --------------------------------------------------------------------------

def test_out_axes_int_and_negative():
    xs = np.arange(24.0).reshape(2, 3, 4)
    f = lambda x: fnp.cos(x) * 3.0                     # example of shape (3, 4)
    for ax in range(-3, 3):
        assert_same(fd.vmap(f, out_axes=ax)(xs), loop(f, xs, out_axes=ax))


def test_out_axes_pytree_prefix():
    def f(x):
        return {"a": x, "b": (x * 2, fnp.sum(x)), "c": [x, x + 1]}
    out = fd.vmap(f, out_axes={"a": 1, "b": -1, "c": [0, -1]})(X)
    assert_same(out, {"a": X.T, "b": (X.T * 2, X.sum(1)), "c": [X, X.T + 1]})
    out = fd.vmap(lambda x: (x, (x, x)), out_axes=(0, 1))(X)
    assert_same(out, (X, (X.T, X.T)))


def test_out_axes_none_for_unbatched_outputs():
    a, b = fd.vmap(lambda x: (x * 2, W + 1), out_axes=(0, None))(X)
    assert_same(a, X * 2)
    assert_same(b, W + 1)


def test_out_axes_negative_for_broadcast_outputs():
    out = fd.vmap(lambda x: W * 2, out_axes=-1)(X)
    assert_same(out, np.stack([W * 2] * 4, axis=-1))


# --------------------------------------------------------------------------
# Keyword arguments, axis_size, outputs independent of the batch
# --------------------------------------------------------------------------

def test_keyword_arguments_are_mapped_over_axis_0():
    def f(x, *, scale, shift=0.0):
        return x * scale + shift
    # whatever in_axes says about the positional arguments
    assert_same(fd.vmap(f, in_axes=(1,))(X.T, scale=X), X * X)
    assert_same(fd.vmap(f, in_axes=1)(X.T, scale=X), X * X)
    assert_same(fd.vmap(f, in_axes=-1, out_axes=1)(X.T, scale=X, shift=X[:, :1]),
                (X * X + X[:, :1]).T)
    got = fd.vmap(f, in_axes=None)(W, scale=X, shift=X[:, :1])
    assert_same(got, np.stack([W * x + x[:1] for x in X]))
    got = fd.vmap(lambda *, a, b: a - b)(a=X, b=X[::-1])
    assert_same(got, X - X[::-1])


def test_axis_size_without_mapped_inputs_broadcasts_outputs():
    out = fd.vmap(lambda w: fnp.sin(w), in_axes=None, axis_size=5)(W)
    assert_same(out, np.stack([np.sin(W)] * 5))
    out = fd.vmap(lambda: fnp.ones(2), axis_size=3, out_axes=1)()
    assert_same(out, np.ones((2, 3)))
    # with mapped inputs, a consistent axis_size is allowed
    assert_same(fd.vmap(fnp.sum, axis_size=4)(X), X.sum(1))


def test_outputs_independent_of_the_batch_are_broadcast():
    out = fd.vmap(lambda x: (fnp.sum(x), W * W, np.float32(1.5)))(X)
    assert_same(out, (X.sum(1), np.stack([W * W] * 4), np.full(4, 1.5, np.float32)))
    # an unmapped input returned as it is
    out = fd.vmap(lambda x, w: (x, w), in_axes=(0, None), out_axes=(0, 1))(X, W)
    assert_same(out, (X, np.stack([W] * 4, axis=1)))


def test_python_scalars_in_outputs():
    a, b, c = fd.vmap(lambda x: (x, 2.0, 3))(X)
    assert_same(a, X)
    np.testing.assert_array_equal(b, np.full(4, 2.0))
    np.testing.assert_array_equal(c, np.full(4, 3))
    assert np.asarray(b).dtype.kind == "f" and np.asarray(c).dtype.kind == "i"
    # a weak Python scalar does not promote a float32 batch
    x32 = X.astype(np.float32)
    assert fd.vmap(lambda x: x * 2.0 + 1)(x32).dtype == np.float32


def test_python_control_flow_on_unbatched_values_works():
    def f(x, n, mode):
        if n > 2 and mode == "sin":                 # n is not batched: a concrete value
            return fnp.sin(x) * n
        return x
    assert_same(fd.vmap(f, in_axes=(0, None, None))(X, 3, "sin"), np.sin(X) * 3)
    assert_same(fd.vmap(f, in_axes=(0, None, None))(X, 1, "sin"), X)


def test_batch_of_size_one_and_zero():
    assert_same(fd.vmap(lambda x: x * fnp.sum(x))(X[:1]), X[:1] * X[:1].sum())
    assert fd.vmap(lambda x: fnp.sin(x) * W)(np.ones((0, 3))).shape == (0, 3)
    assert fd.vmap(fnp.sum)(np.ones((0, 3))).shape == (0,)


# --------------------------------------------------------------------------
# Nesting
# --------------------------------------------------------------------------

def test_nested_vmap_three_deep_with_closures():
    """Three batch axes; each level closes over the tracers of the levels above."""
    a = np.arange(2.0) + 1             # outer batch
    b = np.arange(3.0).reshape(1, 3)   # middle batch along axis 1
    c = np.arange(20.0).reshape(4, 5)  # inner batch along axis -1 (5), examples of shape (4,)

    def outer(ai):
        def middle(bj):
            def inner(ck):
                return fnp.sum(ai * ck + bj) * ck
            return fd.vmap(inner, in_axes=-1, out_axes=0)(c)          # (5, 4)
        return fd.vmap(middle, in_axes=1, out_axes=-1)(b)             # (5, 4, 3)
    got = fd.vmap(outer, out_axes=1)(a)                                # (5, 2, 4, 3)
    expected = np.empty((5, 2, 4, 3))
    for i in range(2):
        for j in range(3):
            for k in range(5):
                ck = c[:, k]
                expected[k, i, :, j] = np.sum(a[i] * ck + b[0, j]) * ck
    assert_same(got, expected)
    closed = fd.make_jaxpr(fd.vmap(outer, out_axes=1))(a)
    core.check_jaxpr(closed.jaxpr)
    assert_same(core.eval_jaxpr(closed.jaxpr, closed.consts, a)[0], expected)


def test_vmap_of_vmap_of_vmap_equals_triple_loop():
    xs = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    f = lambda x: fnp.tanh(x) / (1.0 + fnp.sum(x * x))
    got = fd.vmap(fd.vmap(fd.vmap(f, in_axes=1), in_axes=-1), in_axes=0)(xs)
    expected = np.stack([np.stack([np.stack([f(xs[i, :, j, k]) for j in range(4)])
                                   for k in range(5)]) for i in range(2)])
    assert_same(got, expected)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

def test_error_inconsistent_sizes_names_each_argument():
    with pytest.raises(ValueError, match="inconsistent sizes") as e:
        fd.vmap(lambda x, d: x, in_axes=(0, 0))(X, {"k": np.ones(3)})
    msg = str(e.value)
    assert "size 4" in msg and "args[0]" in msg and "(4, 3)" in msg
    assert "size 3" in msg and "args[1]['k']" in msg and "(3,)" in msg
    with pytest.raises(ValueError, match=re.escape("kwargs['b']")):
        fd.vmap(lambda x, *, b: x)(X, b=np.ones(5))


def test_error_axis_size_disagrees_with_inputs():
    with pytest.raises(ValueError, match="axis_size=5"):
        fd.vmap(fnp.sum, axis_size=5)(X)


def test_error_in_axes_does_not_match_argument_structure():
    with pytest.raises(ValueError, match="tree prefix") as e:
        fd.vmap(lambda d: d["a"], in_axes=({"a": 0, "c": 0},))({"a": X, "b": X})
    assert "in_axes" in str(e.value)
    with pytest.raises(ValueError, match="tree prefix"):
        fd.vmap(lambda t: t[0], in_axes=((0, 0, 0),))((X, X))


def test_error_len_in_axes_differs_from_number_of_arguments():
    with pytest.raises(ValueError, match=re.escape("len(in_axes)=1, len(args)=2")):
        fd.vmap(lambda x, y: x, in_axes=(0,))(X, X)


@pytest.mark.parametrize("ax", [2, -3])
def test_error_in_axis_out_of_range(ax):
    with pytest.raises(ValueError, match=f"axis {ax}.*rank.*at least 3.*only 2"):
        fd.vmap(lambda x: x, in_axes=ax)(X)
    with pytest.raises(ValueError, match="axis 0.*only 0"):
        fd.vmap(lambda x: x)(1.5)


def test_error_in_axes_of_a_wrong_type():
    with pytest.raises(TypeError, match="in_axes"):
        fd.vmap(lambda x: x, in_axes=0.5)(X)
    with pytest.raises(TypeError, match="out_axes"):
        fd.vmap(lambda x: x, out_axes="last")(X)


def test_error_out_axes_none_for_a_batched_output():
    with pytest.raises(ValueError, match="out_axes is None"):
        fd.vmap(lambda x: x * 2, out_axes=None)(X)
    with pytest.raises(ValueError, match="out_axes is None"):
        fd.vmap(lambda x: (W, x), out_axes=(None, None))(X)


@pytest.mark.parametrize("out_axes", [2, -3, 5])
def test_error_out_axes_out_of_range(out_axes):
    # a per-example output of rank 1: the batched output has rank 2, axes -2..1
    with pytest.raises(ValueError, match=f"out_axes={out_axes} is out of bounds.*rank 1"):
        fd.vmap(lambda x: x * 2, out_axes=out_axes)(X)
    with pytest.raises(ValueError, match=f"out_axes={out_axes} is out of bounds"):
        fd.vmap(lambda x: W, out_axes=out_axes)(X)           # a broadcast output too


def test_error_out_axes_does_not_match_output_structure():
    with pytest.raises(ValueError, match="out_axes.*tree prefix"):
        fd.vmap(lambda x: (x, x), out_axes=(0, 0, 0))(X)


def test_error_no_mapped_input_and_no_axis_size():
    with pytest.raises(ValueError, match="at least one non-None value in in_axes.*axis_size"):
        fd.vmap(lambda x: x, in_axes=None)(X)
    with pytest.raises(ValueError, match="axis_size"):
        fd.vmap(lambda: 1.0)()


@pytest.mark.parametrize("use", [
    pytest.param(lambda x: 1.0 if x[0] > 0 else 2.0, id="if"),
    pytest.param(lambda x: bool(fnp.sum(x) > 0), id="bool"),
    pytest.param(lambda x: float(fnp.sum(x)), id="float"),
    pytest.param(lambda x: int(x[0]), id="int"),
    pytest.param(lambda x: x[0].item(), id="item"),
])
def test_error_concrete_value_of_a_batched_value(use):
    with pytest.raises(fd.ConcretizationTypeError) as e:
        fd.vmap(use)(X)
    msg = str(e.value)
    assert "batched value" in msg
    assert "functad.numpy.where" in msg and "functad.lax.cond" in msg
    assert f"{__file__}:" in msg            # points at the user's line


def test_error_control_flow_on_a_batched_value_under_grad():
    f = lambda x: x if x > 0 else -x
    with pytest.raises(fd.ConcretizationTypeError, match="functad.numpy.where"):
        fd.vmap(fd.grad(f))(W)
    with pytest.raises(fd.ConcretizationTypeError, match="functad.numpy.where"):
        fd.grad(lambda w: fnp.sum(fd.vmap(f)(w)))(W)
    # the advice works: where selects per example
    g = lambda x: fnp.where(x > 0, x, -x)
    assert_same(fd.vmap(fd.grad(g))(W), np.sign(W))


def test_error_escaped_batch_tracer():
    box = []

    def leak(x):
        box.append(x)
        return x
    fd.vmap(leak)(X)
    with pytest.raises(fd.UnexpectedTracerError, match="vmap") as e:
        fnp.sin(box[0])
    assert "leak" in str(e.value)
    with pytest.raises(fd.UnexpectedTracerError):
        box[0] + 1.0
    with pytest.raises(fd.UnexpectedTracerError):
        fd.vmap(lambda x: x + box[0])(X)
    with pytest.raises(fd.UnexpectedTracerError):
        fd.make_jaxpr(lambda x: x * box[0])(W)
    with pytest.raises(fd.UnexpectedTracerError):
        bool(box[0][0] > 0)


def test_error_numpy_on_a_batched_value():
    with pytest.raises(fd.TracerArrayConversionError, match="functad.numpy"):
        fd.vmap(lambda x: np.asarray(x))(X)


# --------------------------------------------------------------------------
# Compositions with differentiation
# --------------------------------------------------------------------------

def smooth(x, w):
    """A scalar function of one example ``x`` and shared parameters ``w``."""
    return fnp.sum(fnp.tanh(x * w) ** 2 + fnp.sin(x) * fnp.sum(w * w)) / (1.0 + fnp.sum(x * x))


@pytest.mark.parametrize("in_axis", [0, 1, -1])
def test_vmap_of_grad_equals_loop_of_grads(in_axis):
    xs = X if in_axis == 0 else X.T
    g = fd.grad(smooth, argnums=(0, 1))
    got = fd.vmap(g, in_axes=(in_axis, None))(xs, W)
    assert_same(got, loop(g, xs, W, in_axes=(in_axis % 2, None)))


def test_grad_of_sum_of_vmap():
    def total(xs, w):
        return fnp.sum(fd.vmap(smooth, in_axes=(0, None))(xs, w))
    gx, gw = fd.grad(total, argnums=(0, 1))(X, W)
    per = [fd.grad(smooth, argnums=(0, 1))(x, W) for x in X]
    assert_same(gx, np.stack([p[0] for p in per]))
    assert_same(gw, np.sum([p[1] for p in per], axis=0), rtol=1e-11)
    # the batch along axis 1 of a transposed input: the gradient has its layout
    g = fd.grad(lambda xt: fnp.sum(fd.vmap(smooth, in_axes=(1, None))(xt, W)))(X.T)
    assert_same(g, np.stack([p[0] for p in per], axis=1))


def test_vmap_of_vmap_of_grad():
    xs = np.stack([X, X * 0.5 + 1.0])
    g = fd.grad(smooth)
    got = fd.vmap(fd.vmap(g, in_axes=(0, None)), in_axes=(0, None))(xs, W)
    assert_same(got, np.stack([np.stack([g(x, W) for x in row]) for row in xs]))


def test_jvp_of_vmap_equals_vmap_of_jvp():
    f = lambda x: fnp.sin(x) * fnp.sum(x * x) + fnp.cumsum(fnp.exp(x))
    ts = np.random.default_rng(2).normal(size=X.shape)
    y1, t1 = fd.jvp(fd.vmap(f), (X,), (ts,))
    y2, t2 = fd.vmap(lambda x, t: fd.jvp(f, (x,), (t,)))(X, ts)
    per = [fd.jvp(f, (x,), (t,)) for x, t in zip(X, ts)]
    assert_same((y1, t1), (np.stack([p[0] for p in per]), np.stack([p[1] for p in per])))
    assert_same((y2, t2), (y1, t1))
    # and with the batch along the last axis, placed back there
    y3, t3 = fd.jvp(fd.vmap(f, in_axes=1, out_axes=1), (X.T,), (ts.T,))
    assert_same((y3, t3), (y1.T, t1.T))


def vec(x):
    """R^3 -> R^2, a non-diagonal Jacobian."""
    return fnp.stack([fnp.sum(fnp.sin(x) * x), fnp.prod(fnp.tanh(x) + 2.0)])


@pytest.mark.parametrize("jac", [fd.jacfwd, fd.jacrev], ids=["jacfwd", "jacrev"])
def test_vmap_of_jacobian_equals_loop(jac):
    got = fd.vmap(jac(vec))(X)
    assert got.shape == (4, 2, 3)
    assert_same(got, loop(jac(vec), X))
    # two arguments, the second one unbatched
    J = jac(lambda x, w: fnp.sin(x * w) * fnp.sum(w), argnums=(0, 1))
    assert_same(fd.vmap(J, in_axes=(0, None))(X, W), loop(J, X, W, in_axes=(0, None)))
    # jacobian of the vectorised function: block diagonal
    big = jac(fd.vmap(vec))(X)
    assert big.shape == (4, 2, 4, 3)
    for i in range(4):
        for k in range(4):
            expected = jac(vec)(X[i]) if i == k else np.zeros((2, 3))
            assert_same(big[i, :, k, :], expected)


# Random vector functions built from elementwise operations, cumulative sums
# and sums (which couple the elements): a small register machine.
UNARY_OPS = [fnp.sin, fnp.cos, fnp.tanh, fnp.arctan, nn.sigmoid, nn.softplus,
             lambda a: fnp.sqrt(1.0 + a * a), lambda a: fnp.log1p(a * a),
             lambda a: fnp.exp(0.5 * fnp.sin(a)), lambda a: fnp.cumsum(a),
             lambda a: a * fnp.sum(a), lambda a: a - fnp.mean(a)]
BINARY_OPS = [fnp.add, fnp.subtract, fnp.multiply, lambda a, b: a / (1.0 + b * b),
              fnp.logaddexp, lambda a, b: fnp.arctan2(a, 2.0 + fnp.cos(b))]


@st.composite
def programs(draw):
    steps = draw(st.lists(st.tuples(st.booleans(), st.integers(0, 11), st.integers(0, 10),
                                    st.integers(0, 10)), min_size=1, max_size=6))
    n_out = draw(st.integers(1, 2))

    def f(x):
        regs = [x]
        for binary, op, i, j in steps:
            a, b = regs[i % len(regs)], regs[j % len(regs)]
            regs.append(BINARY_OPS[op % len(BINARY_OPS)](a, b) if binary
                        else UNARY_OPS[op](a))
        return regs[-1] if n_out == 1 else (regs[-1], regs[-2] * 0.5)
    return f


@settings(max_examples=30, deadline=None)
@given(f=programs(), data=st.data())
def test_jacfwd_equals_jacrev_on_random_vector_functions(f, data):
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    n = data.draw(st.integers(1, 4), label="size")
    x = data.draw(arrays(dtype, (n,), min_value=-2, max_value=2), label="x")
    jf, jr = fd.jacfwd(f)(x), fd.jacrev(f)(x)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    for a, b in zip(tu.tree_leaves(jf), tu.tree_leaves(jr)):
        assert a.shape == b.shape and a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    # and batched, against loops
    xs = np.stack([x, x * 0.5, -x]).astype(dtype)
    assert_same(fd.vmap(fd.jacfwd(f))(xs), loop(fd.jacfwd(f), xs), rtol=1e-10)
    assert_same(fd.vmap(fd.jacrev(f))(xs), loop(fd.jacrev(f), xs), rtol=1e-10)


def analytic_hessian(x):
    """Hessian of f(x) = sum(exp(x)) * sum(x**2)."""
    e = np.exp(x)
    s1, s2 = e.sum(), (x * x).sum()
    return s2 * np.diag(e) + 2 * (np.outer(e, x) + np.outer(x, e)) + 2 * s1 * np.eye(len(x))


def test_hessian_equals_the_analytic_one():
    f = lambda x: fnp.sum(fnp.exp(x)) * fnp.sum(x ** 2)
    for x in X:
        assert_same(fd.hessian(f)(x), analytic_hessian(x), rtol=1e-11)
    assert_same(fd.vmap(fd.hessian(f))(X), np.stack([analytic_hessian(x) for x in X]),
                rtol=1e-11)
    # a matrix argument: H[i, j, k, l] = d2 f / dX[i, j] dX[k, l]
    g = lambda m: fnp.sum(m ** 3)
    H = fd.hessian(g)(X)
    assert H.shape == (4, 3, 4, 3)
    assert_same(H.reshape(12, 12), np.diag(6 * X.ravel()))


def test_per_example_gradients_of_logistic_regression():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(8, 3))
    ys = (rng.uniform(size=8) < 0.5).astype(np.float64)
    params = {"w": np.array([0.5, -1.0, 2.0]), "b": np.float64(0.1)}

    def loss(params, x, y):
        z = x @ params["w"] + params["b"]
        return -(y * nn.log_sigmoid(z) + (1.0 - y) * nn.log_sigmoid(-z))
    per_example = fd.vmap(fd.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert set(per_example) == {"w", "b"}
    expected = [fd.grad(loss)(params, x, y) for x, y in zip(xs, ys)]
    assert_same(per_example, {"w": np.stack([e["w"] for e in expected]),
                              "b": np.stack([e["b"] for e in expected])})
    # closed form: (sigmoid(z) - y) * (x, 1)
    z = xs @ params["w"] + params["b"]
    r = 1.0 / (1.0 + np.exp(-z)) - ys
    assert_same(per_example, {"w": r[:, None] * xs, "b": r}, rtol=1e-10)
    # their mean is the gradient of the mean loss
    mean_grad = fd.grad(lambda p: fnp.mean(fd.vmap(loss, in_axes=(None, 0, 0))(p, xs, ys)))(
        params)
    assert_same(mean_grad, tu.tree_map(lambda g: g.mean(0), per_example), rtol=1e-10)


# --------------------------------------------------------------------------
# custom_jvp and custom_vjp
# --------------------------------------------------------------------------

def test_vmap_of_custom_jvp_relu():
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.5]])
    assert_same(fd.vmap(nn.relu)(x), np.maximum(x, 0))
    assert_same(fd.vmap(nn.relu, in_axes=1, out_axes=1)(x), np.maximum(x, 0))
    # the custom rule's derivative (0 at the kink) survives batching, both ways round
    d = (x > 0).astype(np.float64)
    assert_same(fd.vmap(fd.vmap(fd.grad(nn.relu)))(x), d)
    assert_same(fd.grad(lambda x: fnp.sum(fd.vmap(nn.relu)(x)))(x), d)
    assert_same(fd.jvp(fd.vmap(nn.relu), (x,), (np.ones_like(x),))[1], d)
    assert_same(fd.vmap(lambda x: fd.jvp(nn.relu, (x,), (fnp.ones_like(x),))[1])(x), d)
    assert_same(fd.vmap(fd.jacfwd(nn.relu))(x), np.stack([np.diag(r) for r in d]))
    assert_same(fd.vmap(fd.jacrev(nn.relu))(x), np.stack([np.diag(r) for r in d]))


@fd.custom_jvp
def scaled_sin(x, w):
    return fnp.sin(x) * w


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):
    (x, w), (tx, tw) = primals, tangents
    return scaled_sin(x, w), fnp.cos(x) * w * tx + fnp.sin(x) * tw


def test_vmap_of_custom_jvp_with_an_unbatched_argument():
    assert_same(fd.vmap(scaled_sin, in_axes=(0, None))(X, W), np.sin(X) * W)
    g = fd.grad(lambda x, w: fnp.sum(scaled_sin(x, w)), argnums=(0, 1))
    assert_same(fd.vmap(g, in_axes=(0, None))(X, W), loop(g, X, W, in_axes=(0, None)))
    gw = fd.grad(lambda w: fnp.sum(fd.vmap(scaled_sin, in_axes=(0, None))(X, w)))(W)
    assert_same(gw, np.sin(X).sum(0), rtol=1e-11)
    y, t = fd.jvp(fd.vmap(scaled_sin, in_axes=(0, None)), (X, W), (X, W))
    assert_same(t, np.cos(X) * W * X + np.sin(X) * W)


@fd.custom_vjp
def clip_gradient(x, w):
    return x * w


def _clip_fwd(x, w):
    return x * w, (x, w)


def _clip_bwd(res, g):
    x, w = res
    return fnp.clip(g * w, -1.0, 1.0), g * x


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_vmap_of_custom_vjp():
    xs = X * 3.0
    assert_same(fd.vmap(clip_gradient, in_axes=(0, None))(xs, W), xs * W)
    g = fd.grad(lambda x, w: fnp.sum(clip_gradient(x, w) * 2.0), argnums=(0, 1))
    per = loop(g, xs, W, in_axes=(0, None))
    assert_same(fd.vmap(g, in_axes=(0, None))(xs, W), per)
    assert_same(per[0], np.stack([np.clip(2.0 * W, -1, 1)] * 4))    # the custom rule ran
    # reverse mode through the vectorised function
    gx, gw = fd.grad(lambda x, w: fnp.sum(fd.vmap(clip_gradient, in_axes=(0, None))(x, w) * 2.0),
                     argnums=(0, 1))(xs, W)
    assert_same(gx, per[0])
    assert_same(gw, per[1].sum(0), rtol=1e-11)
    # nested
    xss = np.stack([xs, -xs])
    inner = fd.vmap(clip_gradient, in_axes=(0, None))
    assert_same(fd.vmap(inner, in_axes=(0, None))(xss, W), xss * W)
    gg = fd.grad(lambda a: fnp.sum(fd.vmap(inner, in_axes=(0, None))(a, W) * 2.0))(xss)
    assert_same(gg, np.stack([per[0], per[0]]))


def test_forward_mode_of_vmapped_custom_vjp_raises():
    with pytest.raises(TypeError, match="custom_vjp"):
        fd.jvp(fd.vmap(clip_gradient, in_axes=(0, None)), (X, W), (X, W))


# --------------------------------------------------------------------------
# Every functad.nn function under vmap
# --------------------------------------------------------------------------

C = np.random.default_rng(4).normal(size=3)     # weights that make sum(f(x) * C) informative

NN_CASES = {     # case -> (the functad.nn function it exercises, a function of one example)
    "relu": ("relu", nn.relu),
    "relu6": ("relu6", lambda x: nn.relu6(x * 4.0)),
    "sigmoid": ("sigmoid", nn.sigmoid),
    "log_sigmoid": ("log_sigmoid", nn.log_sigmoid),
    "softplus": ("softplus", nn.softplus),
    "silu": ("silu", nn.silu),
    "swish": ("swish", nn.swish),
    "gelu": ("gelu", nn.gelu),
    "gelu_exact": ("gelu", functools.partial(nn.gelu, approximate=False)),
    "elu": ("elu", functools.partial(nn.elu, alpha=0.5)),
    "leaky_relu": ("leaky_relu", functools.partial(nn.leaky_relu, negative_slope=0.2)),
    "tanh": ("tanh", nn.tanh),
    "softmax": ("softmax", nn.softmax),
    "softmax_axis0": ("softmax", lambda x: nn.softmax(x.reshape(3, 1) * np.ones((1, 2)), axis=0)),
    "log_softmax": ("log_softmax", nn.log_softmax),
    "logsumexp": ("logsumexp", nn.logsumexp),
    "logsumexp_b": ("logsumexp", lambda x: nn.logsumexp(x, b=np.array([1.0, 2.0, 0.5]))),
    "logsumexp_sign": ("logsumexp", lambda x: nn.logsumexp(x, b=np.array([1.0, -2.0, 0.5]),
                                                           return_sign=True)[0]),
    "standardize": ("standardize", nn.standardize),
    "standardize_given": ("standardize",
                          lambda x: nn.standardize(x, mean=0.5, variance=fnp.sum(x * x))),
}


def test_every_nn_function_is_covered():
    assert {name for name, _ in NN_CASES.values()} | {"one_hot"} == set(nn.__all__)


@pytest.mark.parametrize("case", sorted(NN_CASES))
def test_nn_function_under_vmap(case):
    _, f = NN_CASES[case]
    xs = X * 2.0
    assert_same(fd.vmap(f)(xs), loop(f, xs))
    assert_same(fd.vmap(f, in_axes=1, out_axes=-1)(xs.T), loop(f, xs.T, in_axes=1, out_axes=-1))
    assert_same(fd.vmap(f)(xs.astype(np.float32)), loop(f, xs.astype(np.float32)))

    def scalar(x):
        y = f(x)
        return fnp.sum(y * C) if fnp.shape(y) == (3,) else fnp.sum(y)
    g = fd.grad(scalar)
    assert_same(fd.vmap(g)(xs), loop(g, xs))
    assert_same(fd.grad(lambda a: fnp.sum(fd.vmap(scalar)(a)))(xs), loop(g, xs))


def test_one_hot_under_vmap():
    idx = np.array([[0, 2], [3, 1], [1, 1]])
    assert_same(fd.vmap(lambda i: nn.one_hot(i, 4))(idx), np.stack([nn.one_hot(i, 4) for i in idx]))
    assert_same(fd.vmap(lambda i: nn.one_hot(i, 4, axis=0), in_axes=1, out_axes=-1)(idx),
                np.stack([nn.one_hot(i, 4, axis=0) for i in idx.T], axis=-1))


# --------------------------------------------------------------------------
# check_grads through vmap
# --------------------------------------------------------------------------

@pytest.mark.parametrize("f", [
    pytest.param(lambda x: x * fnp.sum(fnp.sin(x)), id="coupled"),
    pytest.param(lambda x: nn.softmax(x) * C, id="softmax"),
    pytest.param(nn.gelu, id="gelu"),
    pytest.param(lambda x: scaled_sin(x, W), id="custom_jvp"),
])
def test_check_grads_of_sum_of_vmap(f):
    check_grads(lambda xs: fnp.sum(fd.vmap(f)(xs)), (X,), order=2)
    check_grads(lambda xs: fnp.sum(fd.vmap(f, in_axes=1)(xs) ** 2), (X.T,), order=1)


def test_check_grads_of_sum_of_vmap_of_custom_vjp():
    f = lambda x: clip_gradient(x, W)
    check_grads(lambda xs: fnp.sum(fd.vmap(f)(xs) * 0.1), (X,), order=1, modes=("rev",))


# --------------------------------------------------------------------------
# functad.testing.check_vmap, the law as a user-facing check
# --------------------------------------------------------------------------

def test_check_vmap_accepts_correct_batching():
    check_vmap(smooth, (X, W), in_axes=(0, None))
    check_vmap(fd.grad(smooth), (X.T, W), in_axes=(-1, None), out_axes=-1)
    check_vmap(lambda d: {"y": nn.softmax(d["x"]) * d["s"]}, ({"x": X, "s": W},),
               in_axes=({"x": 0, "s": None},), out_axes={"y": 1})


def test_check_vmap_catches_a_wrong_batching_rule():
    """A primitive whose rule forgets to move the batch axis is caught."""
    from functad.lax import elementwise as ew
    bad = core.Primitive("test_vmap_bad_exp")
    del core.primitives[bad.name]          # not one of the library's primitives
    bad.impl = np.exp
    bad.abstract_eval = ew.exp_p.abstract_eval
    bad.batch = lambda vals, dims: (bad.bind(vals[0]), 0)     # ignores dims[0]
    check_vmap(lambda x: bad.bind(x), (X,))                   # axis 0: right by luck
    with pytest.raises(AssertionError, match="vmap"):
        check_vmap(lambda x: bad.bind(x), (X.T,), in_axes=1)


# --------------------------------------------------------------------------
# Former bugs, kept as regression tests
# --------------------------------------------------------------------------

def test_error_top_level_in_axes_must_be_int_none_or_tuple():
    with pytest.raises(TypeError, match="in_axes"):
        fd.vmap(lambda d: d["a"], in_axes={"a": 0, "b": None})({"a": X, "b": W})


def test_error_non_array_output():
    with pytest.raises(TypeError):
        fd.vmap(lambda x: (lambda: x))(X)


def test_check_vmap_with_out_axes_none():
    check_vmap(lambda x: (x * 2, W + 1), (X,), out_axes=(0, None))


def test_check_vmap_with_a_list_in_axes():
    check_vmap(lambda x, w: x * w, (X, W), in_axes=[0, None])
