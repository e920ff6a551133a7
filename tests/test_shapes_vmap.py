"""vmap of the shape primitives (functad.lax.shapes) and the functad.numpy shape
functions built on them.

The law tested throughout: ``vmap(f, in_axes=a, out_axes=b)(*args)`` equals
the eager results ``f(*example)`` for each example (taken along ``a``),
stacked along ``b`` with NumPy; ``a`` and ``b`` are random, negative ones
included, and some operands are unbatched (``None``).  The staged form
(``make_jaxpr`` of the vmap) type-checks and gives the same values.  Then the
compositions ``vmap(grad(f))``, ``grad(sum of vmap(f))``, ``jvp(vmap(f))``
and ``vmap(vmap(f))`` against loops, and the shape of the staged rules:
unbatched operands stay unbatched, and nothing is moved needlessly.
"""

import math

import numpy as np
import pytest
from hypothesis import strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core, tree_util as tu
from functad.lax import shapes as ls
from functad.testing import shapes

from helpers import (assert_law, assert_same, draw_slice, law, out_axis_for, stacked, take,
                     values)

PRIMS = [ls.broadcast_to_p, ls.reshape_p, ls.transpose_p, ls.concatenate_p, ls.slice_p,
         ls.pad_p, ls.rev_p]


# --------------------------------------------------------------------------
# The law
# --------------------------------------------------------------------------

def test_every_primitive_of_the_module_has_a_rule_and_a_test():
    defined = {p.name for p in core.primitives.values()
               if any(getattr(ls, n, None) is p for n in dir(ls))}
    assert defined == {p.name for p in PRIMS}
    missing = [p.name for p in PRIMS if not callable(p.batch)]
    assert not missing, f"shape primitives without a batching rule: {missing}"


def batched(draw, x, n=None):
    """``x`` (one example) as a batch of ``n`` examples along a random axis:
    returns ``(batch, in_axis)`` with a maybe negative ``in_axis``."""
    nd = np.ndim(x) + 1
    axis = draw(st.integers(-nd, nd - 1))
    n = draw(st.integers(1, 3)) if n is None else n
    xs = np.stack([values(draw(st.integers(0, 2**16)), np.shape(x), np.asarray(x).dtype)
                   for _ in range(n)], axis=axis)
    return xs, axis


DTYPES = [np.float64, np.float32, np.int64, np.bool_]


def operand(draw, shape, n, dtype=np.float64, allow_unbatched=True):
    """One operand of a primitive: batched (along a random axis) or not."""
    if allow_unbatched and draw(st.booleans()):
        return values(draw(st.integers(0, 2**16)), shape, dtype), None
    return batched(draw, np.zeros(shape, dtype), n)


# --------------------------------------------------------------------------
# Every primitive
# --------------------------------------------------------------------------

def factor_shape(draw, shape):
    """A random shape with the same number of elements as ``shape``."""
    size = math.prod(shape)
    if size == 0:
        return tuple(draw(st.permutations(list(shape))))
    factors = []
    for d in shape:
        k = 2
        while d > 1:
            while d % k == 0:
                factors.append(k)
                d //= k
            k += 1
    factors = list(draw(st.permutations(factors)))
    out = []
    while factors:
        take = draw(st.integers(1, len(factors)))
        out.append(math.prod(factors[:take]))
        factors = factors[take:]
    for _ in range(draw(st.integers(0, 2))):
        out.insert(draw(st.integers(0, len(out))), 1)
    return tuple(out)


@law
def test_broadcast_to(data):
    draw = data.draw
    shape = draw(shapes(max_dims=3))
    target = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    target += tuple(draw(st.sampled_from([1, 3])) if d == 1 else d for d in shape)
    dtype = draw(st.sampled_from(DTYPES))
    xs, a = batched(draw, np.zeros(shape, dtype))
    jaxpr = assert_law(lambda x: ls.broadcast_to(x, target), [xs], [a],
                       out_axis_for(draw, len(target)))
    if target != shape:     # one broadcast_to, then at most vmap's own transpose
        assert jaxpr.eqns[0].primitive is ls.broadcast_to_p and len(jaxpr.eqns) <= 2


@law
def test_reshape(data):
    draw = data.draw
    shape = draw(shapes(max_dims=3))
    new = factor_shape(draw, shape)
    dtype = draw(st.sampled_from(DTYPES))
    xs, a = batched(draw, np.zeros(shape, dtype))
    assert_law(lambda x: ls.reshape(x, new), [xs], [a], out_axis_for(draw, len(new)))


@law
def test_transpose(data):
    draw = data.draw
    shape = draw(shapes(max_dims=3))
    perm = draw(st.permutations(range(len(shape))))
    xs, a = batched(draw, np.zeros(shape, draw(st.sampled_from(DTYPES))))
    assert_law(lambda x: ls.transpose(x, perm), [xs], [a], out_axis_for(draw, len(shape)))


@law
def test_concatenate(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3))
    dim = draw(st.integers(0, len(shape) - 1))
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(DTYPES))
    k = draw(st.integers(2, 3))
    args, axes = [], []
    for i in range(k):
        s = list(shape)
        s[dim] = draw(st.integers(0, 3))
        x, a = operand(draw, tuple(s), n, dtype, allow_unbatched=i > 0)
        args.append(x)
        axes.append(a)
    assert_law(lambda *xs: ls.concatenate(xs, dim), args, axes, out_axis_for(draw, len(shape)))


@law
def test_slice(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=5))
    start, limit, strides = draw_slice(draw, shape)
    xs, a = batched(draw, np.zeros(shape, draw(st.sampled_from(DTYPES))))
    assert_law(lambda x: ls.slice(x, start, limit, strides), [xs], [a],
               out_axis_for(draw, len(shape)))


@law
def test_pad(data):
    """Operand and padding value each batched or not (at least one is)."""
    draw = data.draw
    shape = draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    config = [(draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
              for _ in shape]
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    kind = draw(st.sampled_from(["x", "pv", "both"]))
    if kind == "pv":
        x, xa = values(draw(st.integers(0, 2**16)), shape, dtype), None
    else:
        x, xa = batched(draw, np.zeros(shape, dtype), n)
    if kind == "x":
        pv, pa = dtype(7), None
    else:
        pv, pa = values(draw(st.integers(0, 2**16)), (n,), dtype), 0
    rank = len(shape)
    jaxpr = assert_law(lambda x, pv: ls.pad(x, pv, config), [x, pv], [xa, pa],
                       out_axis_for(draw, rank))
    if kind == "x":     # one padding value: padded as is, never broadcast
        names = [e.primitive.name for e in jaxpr.eqns]
        assert "broadcast_to" not in names and "select" not in names, names


@law
def test_rev(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3))
    dims = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    xs, a = batched(draw, np.zeros(shape, draw(st.sampled_from(DTYPES))))
    assert_law(lambda x: ls.rev(x, dims), [xs], [a], out_axis_for(draw, len(shape)))


# --------------------------------------------------------------------------
# What the rules stage: nothing moved or broadcast that need not be
# --------------------------------------------------------------------------

def eqn_names(f, *args, in_axes=0, out_axes=0):
    jaxpr = fd.make_jaxpr(fd.vmap(f, in_axes=in_axes, out_axes=out_axes))(*args).jaxpr
    core.check_jaxpr(jaxpr)
    return [e.primitive.name for e in jaxpr.eqns], jaxpr


def test_rules_leave_the_batch_axis_where_it_is():
    """With the batch axis asked where the rule leaves it, the jaxpr is the
    primitive alone: no transpose to move the batch axis first."""
    x = np.zeros((2, 3, 4))
    for f, ax, out in [
            (lambda x: ls.reshape(x, (12,)), 0, 0),           # leading batch axis
            (lambda x: ls.reshape(x, (3, 2)), -1, -1),        # trailing batch axis
            (lambda x: ls.reshape(x, (2, 2, 2)), 1, 1),       # example (2, 4): split after 2
            (lambda x: ls.transpose(x, (1, 0)), 1, 1),
            (lambda x: ls.broadcast_to(x, (5, 2, 4)), 1, 2),
            (lambda x: ls.slice(x, (1, 0), (2, 4), (2, 3)), 1, 1),
            (lambda x: ls.rev(x, (0, 1)), 2, 2),
            (lambda x: ls.pad(x, 0.0, ((1, 0, 1), (0, 2, 0))), 1, 1)]:
        names, jaxpr = eqn_names(f, x, in_axes=ax, out_axes=out)
        assert len(names) == 1, names
        assert jaxpr.eqns[0].inputs[0] is jaxpr.invars[0]
    names, _ = eqn_names(lambda x: ls.transpose(x, (1, 0)), x, in_axes=1, out_axes=1)
    assert names == ["transpose"]


def test_concatenate_broadcasts_only_its_unbatched_operands():
    xs = np.zeros((4, 2, 3))
    c = np.ones((2, 5))
    names, jaxpr = eqn_names(lambda x, c: ls.concatenate([x, c, x], 1), xs, c,
                             in_axes=(0, None))
    assert names.count("broadcast_to") == 1 and "transpose" not in names, names
    (bc,) = [e for e in jaxpr.eqns if e.primitive.name == "broadcast_to"]
    assert bc.inputs[0] is jaxpr.invars[1]


def test_pad_with_a_batched_padding_value_selects_it():
    x = np.arange(6.0).reshape(2, 3)
    pv = np.array([-1.0, -2.0])
    got = fd.vmap(lambda x, pv: fnp.pad(x, ((1, 1),), constant_values=pv))(x, pv)
    assert_same(got, np.array([[-1, 0, 1, 2, -1], [-2, 3, 4, 5, -2]], np.float64))


def test_outputs_that_do_not_depend_on_the_batch_are_broadcast_by_vmap():
    c = np.arange(6.0).reshape(2, 3)
    out = fd.vmap(lambda x: (ls.transpose(c, (1, 0)), x * 2), out_axes=(-1, 0))(np.ones(4))
    assert_same(out[0], np.stack([c.T] * 4, axis=-1))


# --------------------------------------------------------------------------
# functad.numpy functions
# --------------------------------------------------------------------------

def _axis(draw, nd, allow_none=False):
    if nd == 0:
        return None
    ax = st.integers(-nd, nd - 1)
    return draw(st.none() | ax) if allow_none else draw(ax)


def _split_args(draw, n):
    if draw(st.booleans()):
        return sorted(draw(st.lists(st.integers(-n, n), max_size=3)))
    return draw(st.sampled_from([d for d in range(1, 5) if n % d == 0]))


# name -> (minimum rank of an example, draw -> (shape -> function of one example))
NUMPY_FUNCS = {
    "reshape": (0, lambda draw, s: (lambda new: lambda x: fnp.reshape(x, new))(
        tuple(-1 if i == 0 and draw(st.booleans()) else d
              for i, d in enumerate(factor_shape(draw, s))))),
    "ravel": (0, lambda draw, s: fnp.ravel),
    "transpose": (0, lambda draw, s: (lambda p: lambda x: fnp.transpose(x, p))(
        draw(st.none() | st.permutations(range(len(s)))))),
    "matrix_transpose": (2, lambda draw, s: fnp.matrix_transpose),
    "swapaxes": (1, lambda draw, s: (lambda i, j: lambda x: fnp.swapaxes(x, i, j))(
        _axis(draw, len(s)), _axis(draw, len(s)))),
    "moveaxis": (1, lambda draw, s: (lambda i, j: lambda x: fnp.moveaxis(x, i, j))(
        _axis(draw, len(s)), _axis(draw, len(s)))),
    "rollaxis": (1, lambda draw, s: (lambda i, j: lambda x: fnp.rollaxis(x, i, j))(
        _axis(draw, len(s)), draw(st.integers(0, len(s))))),
    "expand_dims": (0, lambda draw, s: (lambda ax: lambda x: fnp.expand_dims(x, ax))(
        draw(st.integers(-len(s) - 1, len(s))))),
    "squeeze": (0, lambda draw, s: (lambda ax: lambda x: fnp.squeeze(x, ax))(
        draw(st.none() | st.sampled_from([i for i, d in enumerate(s) if d == 1] or [None])))),
    "broadcast_to": (0, lambda draw, s: (lambda t: lambda x: fnp.broadcast_to(x, t))(
        (2,) + tuple(draw(st.sampled_from([1, 2])) if d == 1 else d for d in s))),
    "concatenate": (1, lambda draw, s: (lambda ax: lambda x: fnp.concatenate(
        [x, fnp.ones(s, np.float32), x[::-1]], axis=ax))(_axis(draw, len(s), True))),
    "stack": (0, lambda draw, s: (lambda ax: lambda x: fnp.stack(
        [x, np.full(s, 2.0), x * 3], axis=ax))(draw(st.integers(-len(s) - 1, len(s))))),
    "hstack": (0, lambda draw, s: lambda x: fnp.hstack([x, x])),
    "vstack": (0, lambda draw, s: lambda x: fnp.vstack([x, np.ones(s)])),
    "dstack": (0, lambda draw, s: lambda x: fnp.dstack([np.ones(s), x])),
    "column_stack": (1, lambda draw, s: lambda x: fnp.column_stack([x, x])),
    "atleast_3d": (0, lambda draw, s: lambda x: fnp.atleast_3d(x)),
    "atleast_2d": (0, lambda draw, s: lambda x: fnp.atleast_2d(x)),
    "split": (1, lambda draw, s: (lambda ax: (lambda ios: lambda x: fnp.split(x, ios, ax))(
        _split_args(draw, s[ax])))(draw(st.integers(0, len(s) - 1)))),
    "array_split": (1, lambda draw, s: (lambda k, ax: lambda x: fnp.array_split(x, k, ax))(
        draw(st.integers(1, 4)), _axis(draw, len(s)))),
    "tile": (0, lambda draw, s: (lambda r: lambda x: fnp.tile(x, r))(
        tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))))),
    "repeat": (0, lambda draw, s: (lambda r, ax: lambda x: fnp.repeat(x, r, ax))(
        draw(st.integers(0, 3)), _axis(draw, len(s), True))),
    "repeat_array": (1, lambda draw, s: (lambda ax: (lambda r: lambda x: fnp.repeat(x, r, ax))(
        draw(st.lists(st.integers(0, 3), min_size=s[ax], max_size=s[ax]))))(
            draw(st.integers(0, len(s) - 1)))),
    "flip": (0, lambda draw, s: (lambda ax: lambda x: fnp.flip(x, ax))(
        _axis(draw, len(s), True))),
    "fliplr": (2, lambda draw, s: fnp.fliplr),
    "flipud": (1, lambda draw, s: fnp.flipud),
    "roll": (0, lambda draw, s: (lambda sh, ax: lambda x: fnp.roll(x, sh, ax))(
        draw(st.integers(-5, 5)), _axis(draw, len(s), True))),
    "rot90": (2, lambda draw, s: (lambda k: lambda x: fnp.rot90(x, k, (1, 0)))(
        draw(st.integers(-1, 3)))),
    "pad": (0, lambda draw, s: (lambda w, v: lambda x: fnp.pad(x, w, constant_values=v))(
        [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in s] or 0,
        draw(st.sampled_from([0.0, -1.5, (1.0, 2.0)])))),
    "broadcast_arrays": (0, lambda draw, s: lambda x: fnp.broadcast_arrays(x, np.ones((2,) + s))),
    "getitem_basic": (1, lambda draw, s: lambda x: x[..., None, ::-1]),
}


@pytest.mark.parametrize("name", sorted(NUMPY_FUNCS))
@law
def test_numpy_function(name, data):
    draw = data.draw
    min_dims, make = NUMPY_FUNCS[name]
    shape = draw(shapes(min_dims=min_dims, max_dims=3, max_side=4))
    f = make(draw, shape)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    xs, a = batched(draw, np.zeros(shape, dtype))
    rank = np.ndim(tu.tree_leaves(f(np.zeros(shape, dtype)))[0])
    assert_law(f, [xs], [a], out_axis_for(draw, rank))


@law
def test_traced_roll_shift_and_pad_value(data):
    """Per-example shifts (a gather with batched indices) and padding values."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3))
    n = draw(st.integers(1, 3))
    xs, a = operand(draw, shape, n)
    shifts = np.array(draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n)))
    pvs = values(draw(st.integers(0, 2**16)), (n,))
    ax = _axis(draw, len(shape))
    per_side = draw(st.booleans())      # a traced value and a constant: two pads

    def f(x, s, v):
        return fnp.pad(fnp.roll(x, s, ax), 1, constant_values=(v, 2.0) if per_side else v)
    assert_law(f, [xs, shifts, pvs], [a, 0, 0], out_axis_for(draw, len(shape)))


@law
def test_repeat_with_batched_repeats(data):
    """Traced repeats with total_repeat_length: searchsorted of batched cumulative sums."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=2))
    n = draw(st.integers(1, 3))
    reps = np.array(draw(st.lists(st.lists(st.integers(0, 3), min_size=shape[0],
                                           max_size=shape[0]), min_size=n, max_size=n)))
    xs, a = operand(draw, shape, n)
    length = draw(st.integers(0, 8))
    assert_law(lambda x, r: fnp.repeat(x, r, 0, total_repeat_length=length), [xs, reps],
               [a, 0], out_axis_for(draw, len(shape)))


# --------------------------------------------------------------------------
# Compositions with differentiation and with vmap itself
# --------------------------------------------------------------------------

GRAD_FUNCS = ["reshape", "transpose", "broadcast_to", "concatenate", "stack", "split", "tile",
              "repeat", "repeat_array", "flip", "roll", "rot90", "pad", "getitem_basic"]


def scalar_of(f):
    def g(x):
        return sum(fnp.sum(fnp.sin(o) * (k + 1.5)) for k, o in enumerate(tu.tree_leaves(f(x))))
    return g


def grad_case(draw, name):
    min_dims, make = NUMPY_FUNCS[name]
    shape = draw(shapes(min_dims=min_dims, max_dims=3, max_side=3))
    f = make(draw, shape)
    xs, a = batched(draw, np.zeros(shape))
    return f, xs, a


@pytest.mark.parametrize("name", GRAD_FUNCS)
@law
def test_vmap_of_grad_and_grad_of_vmap(name, data):
    f, xs, a = grad_case(data.draw, name)
    g = scalar_of(f)
    b = out_axis_for(data.draw, np.ndim(xs) - 1)
    (expected,) = stacked(fd.grad(g), [xs], [a], b)
    assert_same(fd.vmap(fd.grad(g), in_axes=a, out_axes=b)(xs), expected)
    total = fd.grad(lambda xs: fnp.sum(fd.vmap(g, in_axes=a)(xs)))(xs)
    assert_same(total, stacked(fd.grad(g), [xs], [a], a)[0])


@pytest.mark.parametrize("name", GRAD_FUNCS)
@law
def test_jvp_of_vmap(name, data):
    f, xs, a = grad_case(data.draw, name)
    ts = values(data.draw(st.integers(0, 2**16)), np.shape(xs))
    n = np.shape(xs)[a]
    per = [fd.jvp(f, (take(xs, i, a),), (take(ts, i, a),)) for i in range(n)]
    y, t = fd.jvp(fd.vmap(f, in_axes=a, out_axes=-1), (xs,), (ts,))
    for k, (yk, tk) in enumerate(zip(tu.tree_leaves(y), tu.tree_leaves(t))):
        assert_same(yk, np.stack([np.asarray(tu.tree_leaves(p[0])[k]) for p in per], axis=-1))
        assert_same(tk, np.stack([np.asarray(tu.tree_leaves(p[1])[k]) for p in per], axis=-1))


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@law
def test_vmap_of_vmap(prim, data):
    """Two batch axes: the inner rule's operands are tracers of the outer vmap."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=2, max_side=3))
    nd = len(shape)
    fs = {
        "broadcast_to": lambda x: ls.broadcast_to(x, (2,) + shape),
        "reshape": lambda x: ls.reshape(x, (math.prod(shape),)),
        "transpose": lambda x: ls.transpose(x, tuple(reversed(range(nd)))),
        "concatenate": lambda x: ls.concatenate([x, np.ones(shape), x], nd - 1),
        "slice": lambda x: ls.slice(x, (0,) * nd, shape, (2,) * nd),
        "pad": lambda x: ls.pad(x, x[(0,) * nd], [(1, 0, 1)] * nd),   # a batched value
        "rev": lambda x: ls.rev(x, (nd - 1,)),
    }
    f = fs[prim.name]
    inner_in, outer_in = draw(st.integers(-nd - 1, nd)), draw(st.integers(-nd - 2, nd + 1))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ys = np.zeros(shape)
    rank = np.ndim(f(ys))
    inner_out, outer_out = out_axis_for(draw, rank), out_axis_for(draw, rank + 1)
    mid = np.stack([ys] * n, axis=inner_in)
    full = values(draw(st.integers(0, 2**16)),
                  np.shape(np.stack([mid] * m, axis=outer_in)))
    inner = fd.vmap(f, in_axes=inner_in, out_axes=inner_out)
    got = fd.vmap(inner, in_axes=outer_in, out_axes=outer_out)(full)
    expected = np.stack([stacked(f, [np.take(full, i, axis=outer_in)], [inner_in], inner_out)[0]
                         for i in range(m)], axis=outer_out)
    assert_same(got, expected)


@law
def test_vmap_of_vmap_of_grad(data):
    name = data.draw(st.sampled_from(GRAD_FUNCS))
    f, ys, a = grad_case(data.draw, name)
    m = data.draw(st.integers(1, 3))
    xs = np.stack([ys + k for k in range(m)], axis=-1)
    g = fd.grad(scalar_of(f))
    got = fd.vmap(fd.vmap(g, in_axes=a), in_axes=-1)(xs)
    expected = np.stack([stacked(g, [xs[..., k]], [a], 0)[0] for k in range(m)])
    assert_same(got, expected)
