"""Tests of the shape primitives (functad.lax.shapes) and functad.numpy's shape
functions: values against NumPy (eagerly and through a staged jaxpr), the
type checker on staged and linear jaxprs, derivatives with check_grads
(forward and reverse, order 2), float32 preservation and error messages."""

import numpy as np
import pytest
from hypothesis import given, settings, assume
from hypothesis import strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lax
from functad.core import check_jaxpr
from functad.testing import check_grads, arrays, shapes, float_dtypes

from helpers import arr, assert_equals_numpy, check_fn

SETTINGS = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

float_arrays = arrays(float_dtypes(), shapes(min_dims=1, max_dims=3))


# --------------------------------------------------------------------------
# lax primitives
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_lax_slice_strided(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=6))
    x = data.draw(arrays(float_dtypes(), shape))
    start, limit, strides = [], [], []
    for n in shape:
        s = data.draw(st.integers(0, n))
        lim = data.draw(st.integers(s, n))
        start.append(s)
        limit.append(lim)
        strides.append(data.draw(st.integers(1, 3)))
    np_slice = tuple(slice(s, lim, k) for s, lim, k in zip(start, limit, strides))
    check_fn(lambda x: lax.slice(x, start, limit, strides), lambda x: x[np_slice], (x,))


@SETTINGS
@given(st.data())
def test_lax_pad_interior_in_operand_and_value(data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    dtype = data.draw(float_dtypes())
    x = data.draw(arrays(dtype, shape))
    config = [tuple(data.draw(st.integers(0, 2)) for _ in range(3)) for _ in shape]

    def np_pad(x, v):
        out_shape = [lo + hi + n + max(n - 1, 0) * it for n, (lo, hi, it) in zip(shape, config)]
        out = np.full(out_shape, v, dtype)
        out[tuple(slice(lo, lo + max(n - 1, 0) * (it + 1) + 1 if n else lo, it + 1)
                  for n, (lo, hi, it) in zip(shape, config))] = x
        return out
    v = dtype.type(1.5)
    check_fn(lambda x, v: lax.pad(x, v, config), np_pad, (x, v))


def test_lax_pad_value_gradient_counts_padded_positions():
    g = fd.grad(lambda v: fnp.sum(lax.pad(np.ones((2, 3)), v, [(1, 0, 1), (0, 2, 0)])))(0.5)
    # output (4, 5) = 20 positions, 6 of them from the operand
    assert g == 14.0


def test_lax_pad_rejects_negative_and_mismatched_dtype():
    with pytest.raises(ValueError, match="negative padding"):
        lax.pad(np.ones(3), 0.0, [(-1, 0, 0)])
    with pytest.raises(TypeError, match="padding value has dtype float64"):
        fd.make_jaxpr(lambda x, v: lax.shapes.pad_p.bind(x, v, padding_config=((1, 1, 0),)))(
            np.ones(3, np.float32), np.float64(0))


@SETTINGS
@given(float_arrays, st.data())
def test_lax_rev(x, data):
    dims = data.draw(st.sets(st.integers(0, x.ndim - 1)))
    check_fn(lambda x: lax.rev(x, dims), lambda x: np.flip(x, tuple(dims)), (x,))


def test_lax_concatenate_checks_dtypes_and_shapes_when_staged():
    with pytest.raises(TypeError, match=r"same dtype.*float32.*float64"):
        fd.make_jaxpr(lambda a, b: lax.concatenate([a, b], 0))(np.ones(2, np.float32), np.ones(2))
    with pytest.raises(ValueError, match=r"equal except along dimension 0"):
        fd.make_jaxpr(lambda a, b: lax.concatenate([a, b], 0))(np.ones((2, 3)), np.ones((2, 2)))


# --------------------------------------------------------------------------
# Joining
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_concatenate(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.integers(1, 3))
    dtypes = [data.draw(float_dtypes()) for _ in range(n)]
    xs = []
    for i, dt in enumerate(dtypes):
        s = list(shape)
        s[axis] = data.draw(st.integers(0, 3))
        xs.append(arr(s, dt, seed=i))
    check_fn(lambda *xs: fnp.concatenate(xs, axis=axis),
             lambda *xs: np.concatenate(xs, axis=axis), xs)


def test_concatenate_axis_none_and_dtype():
    a, b = arr((2, 2)), arr((3,), np.float32)
    check_fn(lambda a, b: fnp.concatenate([a, b], axis=None),
             lambda a, b: np.concatenate([a, b], axis=None), (a, b))
    out = fnp.concatenate([a, b], axis=None, dtype=np.float32)
    assert out.dtype == np.float32
    # float32 stays float32, integers promote like NumPy
    assert fnp.concatenate([b, b]).dtype == np.float32
    assert fnp.concatenate([b, np.arange(2, dtype=np.int8)]).dtype == np.float32
    assert fnp.concatenate([np.arange(2), np.arange(2, dtype=np.int8)]).dtype == np.int64


def test_concatenate_errors_name_shapes():
    with pytest.raises(ValueError, match=r"concatenate.*\(2, 3\).*\(3, 2\)"):
        fnp.concatenate([np.ones((2, 3)), np.ones((3, 2))], axis=0)
    with pytest.raises(ValueError, match="zero-dimensional"):
        fnp.concatenate([np.float64(1.0), np.float64(2.0)])
    with pytest.raises(np.exceptions.AxisError, match="concatenate: axis 2"):
        fnp.concatenate([np.ones(2)], axis=2)


@SETTINGS
@given(float_arrays, st.data())
def test_stack(x, data):
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    y = arr(x.shape, x.dtype, seed=3)
    check_fn(lambda x, y: fnp.stack([x, y, x], axis=axis),
             lambda x, y: np.stack([x, y, x], axis=axis), (x, y))


def test_stack_of_scalars_and_errors():
    check_fn(lambda a, b: fnp.stack([a, b]), lambda a, b: np.stack([a, b]),
             (np.float64(1.0), np.float64(2.0)))
    with pytest.raises(ValueError, match=r"stack: all input arrays must have the same shape"):
        fnp.stack([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="need at least one array"):
        fnp.stack([])


def test_stack_is_what_jacobians_use():
    x = np.array([1.0, 2.0, 3.0])
    j = fd.jacrev(lambda x: fnp.stack([x[0] * x[1], x[2] ** 2]))(x)
    np.testing.assert_allclose(j, [[2.0, 1.0, 0.0], [0.0, 0.0, 6.0]])
    np.testing.assert_allclose(fd.jacfwd(lambda x: fnp.stack([x, 2 * x]))(x),
                               np.stack([np.eye(3), 2 * np.eye(3)]))


@pytest.mark.parametrize("fname", ["hstack", "vstack", "dstack", "column_stack"])
@pytest.mark.parametrize("shape", [(), (3,), (3, 2), (3, 2, 2)])
def test_hstack_vstack_dstack_column_stack(fname, shape):
    if fname == "column_stack" and len(shape) > 2:
        shape = shape[:2]
    a, b = arr(shape, seed=1), arr(shape, np.float32, seed=2)
    check_fn(lambda a, b: getattr(fnp, fname)([a, b]),
             lambda a, b: getattr(np, fname)([a, b]), (a, b))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("shape", [(), (2,), (2, 3), (2, 3, 1), (1, 2, 1, 2)])
def test_atleast_nd(n, shape):
    x = arr(shape)
    check_fn(getattr(fnp, f"atleast_{n}d"), getattr(np, f"atleast_{n}d"), (x,))
    check_fn(lambda x, y: getattr(fnp, f"atleast_{n}d")(x, y),
             lambda x, y: getattr(np, f"atleast_{n}d")(x, y), (x, arr((2,), seed=5)))


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_split_and_array_split(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=6))
    x = data.draw(arrays(float_dtypes(), shape))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = shape[axis]
    if data.draw(st.booleans()):
        spec = data.draw(st.lists(st.integers(-n - 1, n + 1), max_size=3))
        fnp_fn, np_fn = fnp.split, np.split
    else:
        spec = data.draw(st.integers(1, 4))
        if n % spec == 0 and data.draw(st.booleans()):
            fnp_fn, np_fn = fnp.split, np.split
        else:
            fnp_fn, np_fn = fnp.array_split, np.array_split
    check_fn(lambda x: fnp_fn(x, spec, axis=axis), lambda x: np_fn(x, spec, axis=axis), (x,))


def test_split_errors_and_variants():
    with pytest.raises(ValueError, match="does not result in an equal division"):
        fnp.split(np.ones(5), 2)
    x = arr((2, 4, 6))
    for name in ("hsplit", "vsplit", "dsplit"):
        assert_equals_numpy(getattr(fnp, name)(x, 2), getattr(np, name)(x, 2))
    with pytest.raises(ValueError, match="dsplit only works on arrays of 3"):
        fnp.dsplit(np.ones((2, 2)), 2)


# --------------------------------------------------------------------------
# Repetition and reordering
# --------------------------------------------------------------------------

@SETTINGS
@given(float_arrays, st.lists(st.integers(0, 3), min_size=0, max_size=4))
def test_tile(x, reps):
    reps = tuple(reps) if len(reps) != 1 else reps[0]
    check_fn(lambda x: fnp.tile(x, reps), lambda x: np.tile(x, reps), (x,))


@SETTINGS
@given(float_arrays, st.data())
def test_repeat(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    n = x.size if axis is None else x.shape[axis]
    if data.draw(st.booleans()):
        repeats = data.draw(st.integers(0, 3))
    else:
        repeats = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    check_fn(lambda x: fnp.repeat(x, repeats, axis=axis),
             lambda x: np.repeat(x, repeats, axis=axis), (x,))


def test_repeat_under_grad_with_array_repeats_accumulates():
    g = fd.grad(lambda x: fnp.sum(fnp.repeat(x, [3, 0, 1]) ** 2))(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g, [6.0, 0.0, 6.0])


def test_repeat_traced_repeats_need_total_length():
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="total_repeat_length"):
        fd.make_jaxpr(lambda x, r: fnp.repeat(x, r))(x, np.array([1, 2, 0]))
    closed = fd.make_jaxpr(lambda x, r: fnp.repeat(x, r, total_repeat_length=4))(
        x, np.array([1, 2, 0]))
    check_jaxpr(closed.jaxpr)
    np.testing.assert_array_equal(closed(x, np.array([1, 2, 0]))[0], [1.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(closed(x, np.array([0, 1, 3]))[0], [2.0, 3.0, 3.0, 3.0])


@SETTINGS
@given(float_arrays, st.data())
def test_flip(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1),
                               st.sets(st.integers(0, x.ndim - 1)).map(tuple)))
    check_fn(lambda x: fnp.flip(x, axis), lambda x: np.flip(x, axis), (x,))
    if x.ndim >= 2:
        check_fn(fnp.fliplr, np.fliplr, (x,))
    check_fn(fnp.flipud, np.flipud, (x,))


def test_fliplr_flipud_errors():
    with pytest.raises(ValueError, match="fliplr: input must be >= 2-d"):
        fnp.fliplr(np.ones(3))
    with pytest.raises(ValueError, match="flipud"):
        fnp.flipud(np.float64(1.0))


@SETTINGS
@given(float_arrays, st.data())
def test_roll(x, data):
    if data.draw(st.booleans()):
        axis, shift = None, data.draw(st.integers(-10, 10))
    else:
        axis = tuple(data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), min_size=1,
                                        max_size=3)))
        shift = tuple(data.draw(st.integers(-10, 10)) for _ in axis)
    check_fn(lambda x: fnp.roll(x, shift, axis), lambda x: np.roll(x, shift, axis), (x,))


def test_roll_with_traced_shift():
    x = np.arange(5.0)
    closed = fd.make_jaxpr(lambda x, s: fnp.roll(x, s))(x, 2)
    check_jaxpr(closed.jaxpr)
    for s in (-7, 0, 2, 11):
        np.testing.assert_array_equal(closed(x, s)[0], np.roll(x, s))


@SETTINGS
@given(arrays(float_dtypes(), shapes(min_dims=2, max_dims=4)), st.integers(-5, 5), st.data())
def test_rot90(x, k, data):
    a0 = data.draw(st.integers(-x.ndim, x.ndim - 1))
    a1 = data.draw(st.integers(-x.ndim, x.ndim - 1).filter(lambda a: a % x.ndim != a0 % x.ndim))
    check_fn(lambda x: fnp.rot90(x, k, (a0, a1)), lambda x: np.rot90(x, k, (a0, a1)), (x,))


def test_rot90_errors():
    with pytest.raises(ValueError, match="axes must be different"):
        fnp.rot90(np.ones((2, 2)), 1, (1, 1))
    with pytest.raises(ValueError, match="at least 2-d"):
        fnp.rot90(np.ones(2))


@SETTINGS
@given(float_arrays, st.data())
def test_swapaxes_moveaxis_rollaxis(x, data):
    nd = x.ndim
    i, j = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    check_fn(lambda x: fnp.swapaxes(x, i, j), lambda x: np.swapaxes(x, i, j), (x,))
    src = data.draw(st.lists(st.integers(0, nd - 1), unique=True))
    dst = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=len(src), max_size=len(src),
                             unique_by=lambda a: a % nd))
    check_fn(lambda x: fnp.moveaxis(x, src, dst), lambda x: np.moveaxis(x, src, dst), (x,))
    start = data.draw(st.integers(0, nd))
    check_fn(lambda x: fnp.rollaxis(x, i, start), lambda x: np.rollaxis(x, i, start), (x,))


def test_moveaxis_errors():
    with pytest.raises(ValueError, match="same number of elements"):
        fnp.moveaxis(np.ones((2, 3)), [0, 1], [0])
    with pytest.raises(ValueError, match="repeated axis"):
        fnp.moveaxis(np.ones((2, 3)), [0, 0], [0, 1])


# --------------------------------------------------------------------------
# Broadcasting and padding
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_broadcast_arrays(data):
    from functad.testing import mutually_broadcastable_shapes
    shapes_, _ = data.draw(mutually_broadcastable_shapes(3))
    xs = [arr(s, np.float32 if i == 1 else np.float64, seed=i) for i, s in enumerate(shapes_)]
    check_fn(lambda *xs: fnp.broadcast_arrays(*xs), lambda *xs: np.broadcast_arrays(*xs), xs)


def test_broadcast_arrays_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(2,\), \(3,\)"):
        fnp.broadcast_arrays(np.ones(2), np.ones(3))


@SETTINGS
@given(arrays(float_dtypes(), shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)),
       st.data())
def test_pad_constant(x, data):
    nd = x.ndim
    form = data.draw(st.sampled_from(["int", "pair", "per_axis"]))
    w = st.integers(0, 2)
    if form == "int":
        width = data.draw(w)
    elif form == "pair":
        width = (data.draw(w), data.draw(w))
    else:
        width = tuple((data.draw(w), data.draw(w)) for _ in range(nd))
    if data.draw(st.booleans()):
        cv = data.draw(st.floats(-3, 3))
    else:
        cv = tuple((data.draw(st.floats(-3, 3)), data.draw(st.floats(-3, 3)))
                   for _ in range(nd))
    check_fn(lambda x: fnp.pad(x, width, constant_values=cv),
             lambda x: np.pad(x, width, constant_values=cv), (x,))


def test_pad_traced_constant_values_is_differentiable():
    x = arr((2, 3))
    check_grads(lambda x, c: fnp.pad(x, ((1, 0), (2, 1)), constant_values=c),
                (x, np.float64(0.5)), order=2)
    assert fd.grad(lambda c: fnp.sum(fnp.pad(x, 1, constant_values=c)))(1.0) == 4 * 5 - 6
    # per-axis traced values: axis 0 pads 2 + 2 positions, then axis 1 pads 4 + 4 (corners)
    ga, gb = fd.grad(lambda a, b: fnp.sum(fnp.pad(np.ones((2, 2)), 1,
                                                  constant_values=((a, b), (b, a)))),
                     argnums=(0, 1))(1.0, 2.0)
    assert (ga, gb) == (6.0, 6.0)
    check_grads(lambda a, b: fnp.pad(x, ((1, 0), (0, 2)), constant_values=((a, b), (b, 1.0))),
                (np.float64(1.0), np.float64(2.0)), order=2)


def test_pad_modes_and_errors():
    with pytest.raises(NotImplementedError, match="mode='reflect' is not supported"):
        fnp.pad(np.ones(3), 1, mode="reflect")
    with pytest.raises(ValueError, match="negative"):
        fnp.pad(np.ones(3), -1)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        fnp.pad(np.ones((2, 2)), ((1, 1), (1, 1), (1, 1)))


def test_float32_preserved_through_gradients():
    x = arr((3, 4), np.float32)

    def f(x):
        y = fnp.concatenate([fnp.roll(x, 1, 0), fnp.tile(x, 2)], axis=1)
        y = fnp.pad(fnp.rot90(y), 1, constant_values=2.0)
        return fnp.sum(fnp.stack(fnp.split(y, 2, axis=0)) ** 2)
    assert f(x).dtype == np.float32
    assert fd.grad(f)(x).dtype == np.float32
    check_grads(f, (x,), order=2)


def test_methods_on_tracers():
    x = arr((2, 3))
    closed = fd.make_jaxpr(lambda x: fnp.swapaxes(x, 0, 1).repeat(2, axis=0))(x)
    check_jaxpr(closed.jaxpr)
    np.testing.assert_array_equal(closed(x)[0], np.swapaxes(x, 0, 1).repeat(2, axis=0))
