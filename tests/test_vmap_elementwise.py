"""vmap of every elementwise primitive (the ``UNARY`` and ``BINARY`` tables of
functad.lax.elementwise, ``select`` and ``convert_element_type``).

The law, for every row: ``vmap(f, in_axes, out_axes)(*xs)`` equals the eager
results of ``f`` on each example, stacked along ``out_axes``.  Each operand
has its own random ``in_axes`` (``None`` and negative axes included); the
per-example shapes broadcast against each other, so a batched operand may
have a lower rank than an unbatched one and the shared rule has to line them
up.  The dtype (float64, float32, and integer/boolean where the row accepts
them) is that of the eager per-example result, and the law holds as well for
the staged program (``make_jaxpr``, type-checked with ``check_jaxpr``).

The staged form also shows that unbatched operands stay unbatched: they feed
the primitive as they are, with no ``broadcast_to`` to the batch size.
"""

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad.lax import elementwise as ew
from functad.testing import arrays, mutually_broadcastable_shapes

import helpers
from helpers import stacked, take

FAST = settings(max_examples=10, deadline=None)

UNARY_NAMES = [row[0] for row in ew.UNARY]
BINARY_NAMES = [row[0] for row in ew.BINARY]


# --------------------------------------------------------------------------
# Dtypes each row accepts
# --------------------------------------------------------------------------

def unary_dtypes(name):
    if name == "bitwise_not":
        return [np.int64, np.int32, np.bool_]
    if name == "logical_not":
        return [np.bool_, np.float64, np.float32]
    return [np.float64, np.float32]


def binary_dtypes(name):
    if name.startswith("bitwise_"):
        return [np.int64, np.int32, np.bool_]
    if name.startswith("logical_"):
        return [np.bool_, np.float64, np.float32]
    return [np.float64, np.float32]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

# the elementwise primitives are computed as NumPy computes them: tighter
# tolerances than the other vmap tests
assert_same = functools.partial(helpers.assert_same, tol32=1e-6, tol64=1e-13)


@st.composite
def batched_operands(draw, num, dtypes, min_dims=0):
    """``num`` operands whose per-example shapes broadcast together, each with
    its own random in_axis (``None``: unbatched), and a batch size.

    Returns ``(args, in_axes, n)``; the dtype of each operand is drawn from
    ``dtypes`` (a list per operand, or one list for all)."""
    (example_shapes, _) = draw(mutually_broadcastable_shapes(num, min_dims=min_dims, max_dims=3,
                                                             max_side=3), label="shapes")
    n = draw(st.integers(1, 3), label="batch size")
    if dtypes and not isinstance(dtypes[0], list):
        dtypes = [dtypes] * num
    dtype = draw(st.sampled_from(dtypes[0]), label="dtype")
    args, in_axes = [], []
    for i, shape in enumerate(example_shapes):
        nd = len(shape)
        ax = draw(st.none() | st.integers(-(nd + 1), nd), label=f"in_axes[{i}]")
        full = list(shape)
        if ax is not None:
            full.insert(ax % (nd + 1), n)
        dt = dtype if dtype in dtypes[i] else dtypes[i][0]
        args.append(draw(arrays(dt, tuple(full)), label=f"operand {i}"))
        in_axes.append(ax)
    return args, tuple(in_axes), n


def check_law(data, f, args, in_axes, n, prim=None):
    """vmap(f) against the stacked loop, eagerly and staged; returns the jaxpr."""
    mapped = any(ax is not None for ax in in_axes)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        example = f(*[take(a, 0, ax) for a, ax in zip(args, in_axes)])
        rank = np.ndim(example)
        out_axis = data.draw(st.integers(-(rank + 1), rank), label="out_axes")
        vf = fd.vmap(f, in_axes=in_axes, out_axes=out_axis,
                     axis_size=None if mapped else n)
        got = vf(*args)
        (expected,) = stacked(f, args, in_axes, out_axis, n)
        assert_same(got, expected)
        closed = fd.make_jaxpr(vf)(*args)
        core.check_jaxpr(closed.jaxpr)
        (out_aval,) = closed.out_avals
        assert out_aval.shape == np.shape(got) and out_aval.dtype == np.asarray(got).dtype
        (staged,) = core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
        assert_same(staged, got)
    if prim is not None and mapped:
        assert_unbatched_stay_unbatched(closed.jaxpr, prim, in_axes)
    return closed.jaxpr


def assert_unbatched_stay_unbatched(jaxpr, prim, in_axes):
    """No ``broadcast_to`` anywhere, and every unbatched operand is an input of
    the primitive's equation as it was passed (not reshaped, not moved)."""
    names = [e.primitive.name for e in jaxpr.eqns]
    assert "broadcast_to" not in names, names
    (eqn,) = [e for e in jaxpr.eqns if e.primitive is prim]
    for i, ax in enumerate(in_axes):
        if ax is None:
            assert eqn.inputs[i] is jaxpr.invars[i], (i, names)


# --------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------

def test_every_elementwise_primitive_has_the_shared_rule():
    """Every row of the tables is tested below and has a batching rule."""
    prims = [getattr(ew, n + "_p") for n in UNARY_NAMES + BINARY_NAMES]
    prims += [ew.select_p, ew.convert_element_type_p]
    assert all(callable(p.batch) for p in prims)
    assert len(set(UNARY_NAMES)) == len(ew.UNARY) and len(set(BINARY_NAMES)) == len(ew.BINARY)


# --------------------------------------------------------------------------
# The law, row by row
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", UNARY_NAMES)
@FAST
@given(data=st.data())
def test_unary_vmap_equals_stacked_loop(name, data):
    prim = getattr(ew, name + "_p")
    args, in_axes, n = data.draw(batched_operands(1, unary_dtypes(name)))
    check_law(data, getattr(ew, name), args, in_axes, n, prim)


@pytest.mark.parametrize("name", BINARY_NAMES)
@FAST
@given(data=st.data())
def test_binary_vmap_equals_stacked_loop(name, data):
    prim = getattr(ew, name + "_p")
    args, in_axes, n = data.draw(batched_operands(2, binary_dtypes(name)))
    check_law(data, getattr(ew, name), args, in_axes, n, prim)


@pytest.mark.parametrize("name", BINARY_NAMES)
@FAST
@given(data=st.data())
def test_binary_with_a_python_scalar_keeps_the_dtype(name, data):
    """A Python scalar operand is weakly typed: a float32 batch stays float32."""
    fn = getattr(ew, name)
    (x,), in_axes, n = data.draw(batched_operands(1, binary_dtypes(name), min_dims=0))
    dtype = x.dtype
    s = {"b": True, "i": 3, "u": 3}.get(dtype.kind, 1.5)
    scalar_first = data.draw(st.booleans(), label="scalar first")

    def f(x):
        return fn(s, x) if scalar_first else fn(x, s)
    check_law(data, f, [x], in_axes, n)
    with np.errstate(all="ignore"):
        out = fd.vmap(f, in_axes=in_axes, axis_size=None if in_axes[0] is not None else n)(x)
    if name not in ("eq", "ne", "lt", "le", "gt", "ge") and not name.startswith("logical_"):
        assert np.asarray(out).dtype == dtype


@FAST
@given(data=st.data())
def test_select_vmap_equals_stacked_loop(data):
    args, in_axes, n = data.draw(batched_operands(
        3, [[np.bool_], [np.float64, np.float32], [np.float64, np.float32]]))
    args[0] = args[0].astype(bool)
    check_law(data, ew.select, args, in_axes, n, ew.select_p)


@FAST
@given(data=st.data())
def test_where_vmap_equals_stacked_loop(data):
    """``functad.numpy.where`` (select after promoting its operands)."""
    args, in_axes, n = data.draw(batched_operands(
        3, [[np.bool_], [np.float64, np.float32], [np.float64, np.float32]]))
    args[0] = args[0].astype(bool)
    check_law(data, fnp.where, args, in_axes, n)


@FAST
@given(data=st.data())
def test_convert_element_type_vmap_equals_stacked_loop(data):
    (x,), in_axes, n = data.draw(batched_operands(
        1, [np.float64, np.float32, np.int64, np.int32, np.bool_]))
    new = data.draw(st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_]),
                    label="new dtype")
    if x.dtype.kind == "f" and np.dtype(new).kind in "iu":
        x = np.trunc(x)          # in range of every integer dtype

    def f(x):
        return ew.convert_element_type(x, new)
    if x.dtype == np.dtype(new):
        check_law(data, f, [x], in_axes, n)      # the no-op: no primitive at all
    else:
        check_law(data, f, [x], in_axes, n, ew.convert_element_type_p)


@pytest.mark.parametrize("name", ["add", "mul", "pow", "atan2", "max", "lt", "bitwise_xor"])
@FAST
@given(data=st.data())
def test_vmap_of_vmap_of_binary(name, data):
    """Two batch axes, each operand batched by the inner, the outer, both or neither."""
    fn = getattr(ew, name)
    (sx, sy), _ = data.draw(mutually_broadcastable_shapes(2, max_dims=2, max_side=3))
    n, m = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dtype = data.draw(st.sampled_from(binary_dtypes(name)))
    inner, outer, args = [], [], []
    for shape in (sx, sy):
        full = list(shape)
        ai = data.draw(st.none() | st.integers(-(len(full) + 1), len(full)))
        if ai is not None:
            full.insert(ai % (len(full) + 1), n)
        ao = data.draw(st.none() | st.integers(-(len(full) + 1), len(full)))
        if ao is not None:
            full.insert(ao % (len(full) + 1), m)
        inner.append(ai)
        outer.append(ao)
        args.append(data.draw(arrays(dtype, tuple(full))))
    inner_size = None if any(a is not None for a in inner) else n
    outer_size = None if any(a is not None for a in outer) else m
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        vin = fd.vmap(fn, in_axes=tuple(inner), axis_size=inner_size)
        got = fd.vmap(vin, in_axes=tuple(outer), axis_size=outer_size)(*args)
        expected = np.stack([stacked(fn, [take(a, j, ax) for a, ax in zip(args, outer)],
                                     inner, 0, n)[0] for j in range(m)])
        assert_same(got, expected)
        closed = fd.make_jaxpr(fd.vmap(vin, in_axes=tuple(outer), axis_size=outer_size))(*args)
        core.check_jaxpr(closed.jaxpr)


# --------------------------------------------------------------------------
# Unbatched operands stay unbatched
# --------------------------------------------------------------------------

def test_unbatched_weight_is_not_broadcast():
    W = np.arange(12.0).reshape(3, 4)
    xs = np.ones((5, 3, 4))
    closed = fd.make_jaxpr(fd.vmap(lambda x: x * W, in_axes=0))(xs)
    core.check_jaxpr(closed.jaxpr)
    (eqn,) = closed.jaxpr.eqns                      # one mul, on W itself
    assert eqn.primitive is ew.mul_p
    assert eqn.inputs == [closed.jaxpr.invars[0], closed.jaxpr.constvars[0]]
    assert closed.jaxpr.constvars[0].aval.shape == (3, 4)
    assert closed.consts[0] is W
    np.testing.assert_array_equal(fd.vmap(lambda x: x * W)(xs), xs * W)


def test_lower_rank_batched_operand_is_reshaped_not_the_unbatched_one():
    """A batch of scalars times an unbatched matrix: the scalars get size-1
    axes (a reshape of the small operand), the matrix is used as it is."""
    W = np.arange(6.0).reshape(2, 3)
    xs = np.arange(4.0)
    vf = fd.vmap(lambda x, w: ew.sub(x, w), in_axes=(0, None))
    closed = fd.make_jaxpr(vf)(xs, W)
    core.check_jaxpr(closed.jaxpr)
    names = [e.primitive.name for e in closed.jaxpr.eqns]
    assert names == ["reshape", "sub"], names
    assert closed.jaxpr.eqns[1].inputs[1] is closed.jaxpr.invars[1]
    np.testing.assert_array_equal(vf(xs, W), xs[:, None, None] - W)


def test_aligned_operands_need_no_data_movement():
    """Operands batched along the same axis with the same rank: the primitive
    alone, the batch axis stays where it is."""
    xs, ys = np.ones((5, 3, 2)), np.ones((1, 3, 2))
    vf = fd.vmap(ew.atan2, in_axes=(1, 1), out_axes=1)
    closed = fd.make_jaxpr(vf)(xs, ys)
    assert [e.primitive.name for e in closed.jaxpr.eqns] == ["atan2"]
    assert closed.out_avals[0].shape == (5, 3, 2)
    assert_same(vf(xs, ys), np.arctan2(xs, ys))


def test_float32_batch_stays_float32_under_staging():
    xs = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)

    def f(x):
        return fnp.exp(x) * 2.0 + fnp.sin(x) / 3
    out = fd.vmap(f, in_axes=1, out_axes=-1)(xs)
    assert out.dtype == np.float32
    closed = fd.make_jaxpr(fd.vmap(f, in_axes=1, out_axes=-1))(xs)
    core.check_jaxpr(closed.jaxpr)
    assert closed.out_avals[0].dtype == np.float32
    assert_same(out, np.stack([f(xs[:, j]) for j in range(3)], axis=-1))
