"""Tests of indexing: ``x[idx]`` (the gather primitive), ``x.at[idx]`` updates
(the scatter primitive) and functad.numpy's take, take_along_axis, nonzero, ...

Values are compared with NumPy eagerly and through staged jaxprs, jaxprs are
type-checked, derivatives pass check_grads (both modes, order 2), and the
semantics decisions (out-of-bounds indices, boolean masks) are pinned down."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import hypothesis.extra.numpy as hnp

import functad as fd
import functad.numpy as fnp
from functad.core import Array, check_jaxpr, ConcretizationTypeError
from functad.lax import indexing as li
from functad.numpy._indexing import NonConcreteBooleanIndexError
from functad.testing import check_grads, arrays, shapes, float_dtypes

from helpers import arr, assert_equals_numpy, check_fn

SETTINGS = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

@st.composite
def numpy_indices(draw, shape, allow_arrays=True):
    """A NumPy index for ``shape``: a mix of ints, slices, None, Ellipsis and
    integer arrays (broadcasting together, negative values included)."""
    b_shape = draw(shapes(min_dims=0, max_dims=2, max_side=3))
    entries = []
    for n in shape:
        kinds = ["int", "slice", "full"] + (["array"] if allow_arrays else [])
        if n == 0:
            kinds = ["slice", "full"]
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            entries.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
            entries.append(slice(draw(bound), draw(bound), step))
        elif kind == "full":
            entries.append(slice(None))
        else:
            s = draw(hnp.broadcastable_shapes(b_shape, max_dims=len(b_shape), min_side=1))
            # broadcastable *to* b_shape (not merely with it), so that every index
            # array of one index broadcasts with the others: where b_shape has a 1,
            # hypothesis may draw any size, and two such arrays would clash
            s = tuple(d if d == bd else 1 for d, bd in zip(s, b_shape[len(b_shape) - len(s):]))
            entries.append(draw(hnp.arrays(np.int64, s, elements=st.integers(-n, n - 1))))
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    if entries and draw(st.booleans()):      # replace a run of full slices by ...
        i = draw(st.integers(0, len(entries)))
        j = i
        while j < len(entries) and isinstance(entries[j], slice) and entries[j] == slice(None):
            j += 1
        entries[i:j] = [Ellipsis]
    else:                                    # or leave trailing full slices implicit
        while entries and draw(st.booleans()) and isinstance(entries[-1], slice) \
                and entries[-1] == slice(None):
            entries.pop()
    if len(entries) == 1 and draw(st.booleans()):
        return entries[0]
    return tuple(entries)


# --------------------------------------------------------------------------
# x[idx]: gather
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_getitem_matches_numpy(data):
    shape = data.draw(shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    x = data.draw(arrays(float_dtypes(), shape))
    idx = data.draw(numpy_indices(shape))
    check_fn(lambda x: x[idx], lambda x: x[idx], (x,), eager=False)
    assert_equals_numpy(fnp._getitem(x, idx), x[idx])       # eager: NumPy's own indexing
    assert_equals_numpy(x.view(Array).at[idx].get(), x[idx])


@SETTINGS
@given(st.data())
def test_getitem_with_traced_index_arrays(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays(np.float64, shape))
    idx = data.draw(numpy_indices(shape))
    idx = idx if isinstance(idx, tuple) else (idx,)
    pos = [k for k, e in enumerate(idx) if isinstance(e, np.ndarray)]
    arrays_ = [idx[k] for k in pos]

    def f(x, *arrs):
        full = list(idx)
        for k, a in zip(pos, arrs):
            full[k] = a
        return x[tuple(full)]
    closed = fd.make_jaxpr(f)(x, *arrays_)
    check_jaxpr(closed.jaxpr)
    np.testing.assert_array_equal(closed(x, *arrays_)[0], x[idx])
    g = fd.make_jaxpr(fd.grad(lambda x, *a: fnp.sum(f(x, *a) ** 2)))(x, *arrays_)
    check_jaxpr(g.jaxpr)
    expected = fd.grad(lambda x: fnp.sum(x[idx] ** 2))(x)
    np.testing.assert_allclose(g(x, *arrays_)[0], expected)


def test_repeated_indices_accumulate_in_the_gradient():
    x = np.array([1.0, 2.0, 3.0])
    g = fd.grad(lambda x: fnp.sum(x[np.array([0, 0, 2, 0])] * np.array([1.0, 2.0, 3.0, 4.0])))(x)
    np.testing.assert_array_equal(g, [7.0, 0.0, 3.0])
    g2 = fd.grad(lambda x: fnp.sum(x[[[1, 1], [-1, 1]]] ** 2))(x)
    np.testing.assert_array_equal(g2, [0.0, 12.0, 6.0])


def test_gather_printing_and_single_primitive():
    x = np.ones((3, 4, 5))
    closed = fd.make_jaxpr(lambda x, i: x[1:, i, None, ::-2])(x, np.array([0, 2]))
    assert [e.primitive.name for e in closed.eqns] == ["gather"]
    assert "indexer=[1:3, #0, None, 4::-2]" in str(closed)


def test_out_of_bounds_concrete_indices_raise():
    x = np.arange(3.0)
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        fd.grad(lambda x: x[3])(x)
    with pytest.raises(IndexError, match="index -4 is out of bounds for axis 0 with size 3"):
        fd.grad(lambda x: fnp.sum(x[np.array([0, -4])]))(x)
    with pytest.raises(IndexError, match="out of bounds"):
        fd.make_jaxpr(lambda x: x[:, 7])(np.ones((2, 3)))
    with pytest.raises(IndexError):        # eager: NumPy's own check
        x.view(Array).at[5].get()
    with pytest.raises(IndexError, match="out of bounds"):
        x.view(Array).at[5].set(1.0)


def test_out_of_bounds_traced_indices_clamp_on_read_and_drop_on_update():
    x = np.arange(4.0)
    get = fd.make_jaxpr(lambda x, i: x[i])(x, np.array([0]))
    np.testing.assert_array_equal(get(x, np.array([-1, -4, -5, 4, 100, 2]))[0],
                                  [3.0, 0.0, 0.0, 3.0, 3.0, 2.0])
    for mode, method in (("set", "set"), ("add", "add"), ("mul", "multiply"),
                         ("min", "min"), ("max", "max")):
        upd = fd.make_jaxpr(lambda x, i, v: getattr(x.at[i], method)(v))(
            x, np.array([0]), np.zeros(1))
        check_jaxpr(upd.jaxpr)
        out = upd(x, np.array([5, -1, -9, 1]), np.array([10.0, 20.0, 30.0, -7.0]))[0]
        ref = x.copy()
        valid = ([3, 1], [20.0, -7.0])
        if mode == "set":
            ref[valid[0]] = valid[1]
        else:
            {"add": np.add, "mul": np.multiply, "min": np.minimum,
             "max": np.maximum}[mode].at(ref, valid[0], valid[1])
        np.testing.assert_array_equal(out, ref)


def test_getitem_errors():
    x = np.ones((2, 3))
    f = fd.make_jaxpr
    with pytest.raises(IndexError, match="too many indices for array: array is 2-dimensional, "
                                         "but 3 were indexed"):
        f(lambda x: x[0, 1, 2])(x)
    with pytest.raises(IndexError, match="only integers, slices"):
        f(lambda x: x[np.array([0.5])])(x)
    with pytest.raises(IndexError, match="must be integers or booleans, got dtype float64"):
        f(lambda x, i: x[i])(x, np.array([0.0]))
    with pytest.raises(IndexError, match="single ellipsis"):
        f(lambda x: x[..., 0, ...])(x)
    with pytest.raises(IndexError, match="could not be broadcast together"):
        f(lambda x: x[np.array([0, 1]), np.array([0, 1, 2])])(x)
    with pytest.raises(IndexError, match="boolean index of shape \\(3,\\) does not match"):
        fd.grad(lambda x: fnp.sum(x[np.array([True, False, True])]))(x)


# --------------------------------------------------------------------------
# Boolean masks
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_boolean_masks_under_grad(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    x = data.draw(arrays(float_dtypes(), shape))
    k = data.draw(st.integers(1, len(shape)))
    start = data.draw(st.integers(0, len(shape) - k))
    mask = data.draw(hnp.arrays(np.bool_, shape[start:start + k]))
    idx = (slice(None),) * start + (mask,)
    # a concrete mask is fine everywhere, also while staging
    check_fn(lambda x: x[idx], lambda x: x[idx], (x,), eager=False)
    assert_equals_numpy(fd.jvp(lambda x: x[idx], (x,), (x,))[0], x[idx], eager=False)
    # a mask computed from x is concrete under grad (comparisons have no tangent)
    g = fd.grad(lambda x: fnp.sum(x[x > 0] ** 2))(x)
    np.testing.assert_allclose(g, np.where(x > 0, 2 * x, 0), rtol=1e-6)
    assert g.dtype == x.dtype


def test_boolean_mask_under_staging_raises_clear_error():
    x = np.array([1.0, -2.0, 3.0])
    with pytest.raises(NonConcreteBooleanIndexError, match="fnp.where") as info:
        fd.make_jaxpr(lambda x: x[x > 0])(x)
    assert isinstance(info.value, TypeError)
    assert "boolean mask of shape (3,)" in str(info.value)
    with pytest.raises(NonConcreteBooleanIndexError):
        fd.make_jaxpr(lambda x: x.at[x > 0].set(0.0))(x)
    with pytest.raises(NonConcreteBooleanIndexError, match="size="):
        fd.make_jaxpr(lambda x: fnp.nonzero(x))(x)
    # a concrete mask is fine while staging
    closed = fd.make_jaxpr(lambda x: x[np.array([True, False, True])])(x)
    np.testing.assert_array_equal(closed(x)[0], [1.0, 3.0])
    # the suggested fix stages
    closed = fd.make_jaxpr(lambda x: fnp.where(x > 0, x, 0.0))(x)
    np.testing.assert_array_equal(closed(x)[0], [1.0, 0.0, 3.0])


def test_eager_boolean_mask_updates():
    x = fnp.array([1.0, -2.0, 3.0, -4.0])
    np.testing.assert_array_equal(x.at[x < 0].set(0.0), [1.0, 0.0, 3.0, 0.0])
    np.testing.assert_array_equal(x.at[x < 0].multiply(-1.0), [1.0, 2.0, 3.0, 4.0])
    g = fd.grad(lambda x: fnp.sum(x.at[x < 0].set(0.0) ** 2))(x)
    np.testing.assert_array_equal(g, [2.0, 0.0, 6.0, 0.0])


# --------------------------------------------------------------------------
# .at[idx] updates: scatter
# --------------------------------------------------------------------------

_NP_UFUNC = {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}


def np_update(x, idx, v, method):
    out = np.array(x, copy=True)
    if method == "set":
        out[idx] = v
    else:   # (NumPy 2.4's ufunc.at mis-broadcasts v against 2-d index arrays)
        _NP_UFUNC[method].at(out, idx, np.broadcast_to(v, out[idx].shape))
    return out


def test_scatter_add_broadcasts_values_against_2d_index_arrays():
    # the case NumPy 2.4's np.add.at gets wrong: values broadcast to the indexed shape
    out = fnp.zeros(3).at[np.array([[0, 0], [0, 2]])].add(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(out, [4.0, 0.0, 2.0])


@st.composite
def update_cases(draw, methods=("set", "add", "multiply", "min", "max")):
    shape = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    dtype = draw(float_dtypes())
    idx = draw(numpy_indices(shape))
    method = draw(st.sampled_from(methods))
    g_shape = np.zeros(shape)[idx].shape
    drop = draw(st.integers(0, len(g_shape)))
    v_shape = tuple(1 if draw(st.booleans()) else d for d in g_shape[drop:])
    size = int(np.prod(shape)) + int(np.prod(v_shape))
    # distinct values, far apart: min/max have no ties and mul no tiny products
    vals = (draw(st.permutations(range(size))) if size < 60 else list(range(size)))
    vals = (np.asarray(vals, np.float64) - size / 2.0) * 0.25 + 0.125
    x = vals[:int(np.prod(shape))].reshape(shape).astype(dtype)
    v = vals[int(np.prod(shape)):].reshape(v_shape).astype(dtype)
    return x, idx, v, method


@SETTINGS
@given(update_cases())
def test_at_updates_match_numpy_and_differentiate(case):
    x, idx, v, method = case
    f = lambda x, v: getattr(fnp.asarray(x).at[idx], method)(v)     # noqa: E731
    check_fn(f, lambda x, v: np_update(x, idx, v, method), (x, v), order=2, eager=False)
    assert_equals_numpy(f(x.view(Array), v), np_update(x, idx, v, method))
    assert f(x.view(Array), 1.0).dtype == x.dtype       # Python scalars are weak


@SETTINGS
@given(update_cases(("multiply",)), st.data())
def test_at_multiply_with_zero_updates(case, data):
    x, idx, v, _ = case
    flat = v.reshape(-1).copy()
    zero = data.draw(st.lists(st.integers(0, max(flat.size - 1, 0)), max_size=3))
    if flat.size:
        flat[zero] = 0.0
    v = flat.reshape(v.shape)
    check_grads(lambda x, v: fnp.asarray(x).at[idx].multiply(v), (x, v), order=2)


def test_at_multiply_derivatives_with_traced_indices():
    # traced indices take the division-based rule: exact to first order always,
    # and to higher orders when no update is exactly zero
    x = np.array([1.5, -2.0, 0.5])
    i = np.array([0, 2, 0, 0])
    tv = np.array([0.3, -1.0, 2.0, 0.7])

    def first(x, v, i):
        return fd.jvp(lambda v: x.at[i].multiply(v), (v,), (tv,))[1]

    def second(x, v, i):
        return fd.jvp(lambda v: first(x, v, i), (v,), (tv,))[1]
    x = x.view(Array)
    for v, fns in ((np.array([0.5, 2.0, -1.5, 3.0]), (first, second)),
                   (np.array([0.0, 2.0, -1.5, 0.0]), (first,))):
        for fn in fns:
            closed = fd.make_jaxpr(fn)(x, v, i)
            check_jaxpr(closed.jaxpr)
            i_var = closed.jaxpr.invars[2]       # the indices are traced: scatters use them
            assert any(i_var in e.inputs for e in closed.eqns if e.primitive.name == "scatter")
            np.testing.assert_allclose(closed(x, v, i)[0], fn(x, v, i), rtol=1e-12)
    # the exact (concrete-index) rule, against the hand-computed second derivative
    v = np.array([0.0, 2.0, -1.5, 0.0])
    # out[0] = x0 * v0 * v2 * v3: d2/ds2 along tv = 2 * x0 * (tv0 tv2 v3 + tv0 v2 tv3 + v0 tv2 tv3)
    want0 = 2 * 1.5 * (0.3 * 2.0 * 0.0 + 0.3 * -1.5 * 0.7 + 0.0 * 2.0 * 0.7)
    np.testing.assert_allclose(second(x, v, i), [want0, 0.0, 0.0], atol=1e-12)


def test_at_set_with_repeated_indices_gives_gradient_to_the_surviving_update():
    x = np.zeros(3)
    v = np.array([1.0, 2.0, 3.0])
    idx = np.array([1, 1, 1])
    out = x.view(Array).at[idx].set(v)
    winner = int(np.argmax(np.asarray(out)[1] == v))   # NumPy: the last write wins
    g = fd.grad(lambda v: fnp.sum(x.view(Array).at[idx].set(v) * 2.0))(v)
    np.testing.assert_array_equal(g, np.eye(3)[winner] * 2.0)
    gx = fd.grad(lambda x: fnp.sum(x.at[idx].set(v) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 3.0])


def test_at_min_max_ties_share_the_gradient():
    x = np.array([1.0, 5.0])
    gx, gv = fd.grad(lambda x, v: fnp.sum(x.at[0].max(v)), argnums=(0, 1))(x, 1.0)
    assert (gx[0], gv) == (0.5, 0.5)
    gv = fd.grad(lambda v: fnp.sum(x.view(Array).at[np.array([1, 1, 1])].min(v)))(
        np.array([2.0, 2.0, 7.0]))
    np.testing.assert_array_equal(gv, [0.5, 0.5, 0.0])


def test_at_other_methods_and_float32():
    x = fnp.array([1.0, 2.0, 4.0], dtype=np.float32)
    np.testing.assert_allclose(x.at[1:].divide(2.0), [1.0, 1.0, 2.0])
    np.testing.assert_allclose(x.at[0].power(3.0), [1.0, 2.0, 4.0])
    assert x.at[1:].divide(2.0).dtype == np.float32
    assert x.at[np.array([0, 0])].add(np.array([1.0, 2.0])).dtype == np.float32
    g = fd.grad(lambda x: fnp.sum(x.at[0].add(x[2]) ** 2))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [10.0, 4.0, 18.0])


def test_at_errors():
    x = fnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"values of shape \(4,\) cannot be broadcast to the "
                                         r"indexed shape \(3,\)"):
        fd.make_jaxpr(lambda x: x.at[0].set(np.ones(4)))(x)
    with pytest.raises(ValueError, match="unknown update mode 'bogus'"):
        fnp._scatter(x, 0, 1.0, "bogus")
    out = x.at[0].set(np.ones((1, 1, 3)))         # leading 1s are dropped, as NumPy does
    np.testing.assert_array_equal(out, [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(TypeError, match="immutable"):
        x[0] = 1.0


# --------------------------------------------------------------------------
# The primitives' out-of-bounds modes and their transposes
# --------------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(st.data())
def test_lax_gather_scatter_out_of_bounds_modes_differentiate(data):
    n = data.draw(st.integers(1, 4))
    x = arr((n, 3), seed=1)
    i = data.draw(hnp.arrays(np.int64, data.draw(st.integers(1, 5)),
                             elements=st.integers(-n - 2, n + 2)))
    indexer = li.Indexer([("a", 0), ("s", 0, 3, 1)])
    for oob in ("clip", "fill"):
        check_grads(lambda x: li.gather(x, i, indexer=indexer, oob=oob), (x,), order=2)
    valid = (i >= -n) & (i < n)
    clipped = np.clip(np.where(i < 0, i + n, i), 0, n - 1)
    np.testing.assert_array_equal(li.gather(x, i, indexer=indexer, oob="clip"), x[clipped])
    np.testing.assert_array_equal(li.gather(x, i, indexer=indexer, oob="fill"),
                                  np.where(valid[:, None], x[clipped], 0.0))
    v = 1.0 + np.abs(arr((len(i), 3), seed=2))
    for mode in ("set", "add", "mul"):
        for oob in ("drop", "clip"):
            check_grads(lambda x, v: li.scatter(x, v, i, indexer=indexer, mode=mode, oob=oob),
                        (x, v), order=2)
    out = li.scatter(x, v, i, indexer=indexer, mode="add", oob="drop")
    ref = x.copy()
    np.add.at(ref, clipped[valid], v[valid])
    np.testing.assert_array_equal(out, ref)


def test_scatter_transpose_refuses_nonlinear_modes():
    with pytest.raises(NotImplementedError, match="not linear"):
        li.scatter_p.transpose(np.ones(2), fd.ad.UndefinedPrimal(fd.ShapedArray((2,), "f8")),
                               fd.ad.UndefinedPrimal(fd.ShapedArray((), "f8")),
                               np.array([0]), indexer=li.Indexer([("a", 0)]), mode="max",
                               oob="drop")


# --------------------------------------------------------------------------
# take, take_along_axis, put_along_axis
# --------------------------------------------------------------------------

@SETTINGS
@given(arrays(float_dtypes(), shapes(min_dims=1, max_dims=3)), st.data())
def test_take(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    n = x.size if axis is None else x.shape[axis]
    mode = data.draw(st.sampled_from([None, "clip", "wrap"]))
    lim = (-n, n - 1) if mode is None else (-2 * n - 1, 2 * n + 1)
    ind = data.draw(hnp.arrays(np.int64, shapes(0, 2), elements=st.integers(*lim)))
    np_mode = "raise" if mode is None else mode
    check_fn(lambda x: fnp.take(x, ind, axis=axis, mode=mode),
             lambda x: np.take(x, ind, axis=axis, mode=np_mode), (x,))


def test_take_traced_indices_modes():
    x = np.arange(5.0)
    for mode, expected in (("clip", [0.0, 4.0, 2.0]), ("wrap", [4.0, 2.0, 2.0])):
        closed = fd.make_jaxpr(lambda x, i: fnp.take(x, i, mode=mode))(x, np.array([0]))
        np.testing.assert_array_equal(closed(x, np.array([-1, 7, 2]))[0], expected)
    with pytest.raises(ConcretizationTypeError, match="mode='raise'"):
        fd.make_jaxpr(lambda x, i: fnp.take(x, i, mode="raise"))(x, np.array([0]))


@SETTINGS
@given(arrays(float_dtypes(), shapes(min_dims=1, max_dims=3)), st.data())
def test_take_along_axis_with_argsort(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    order = np.argsort(x, axis=axis, kind="stable")
    check_fn(lambda x: fnp.take_along_axis(x, order, axis),
             lambda x: np.take_along_axis(x, order, axis), (x,))
    idx_shape = list(x.shape)
    idx_shape[axis] = data.draw(st.integers(0, 3))
    ind = data.draw(hnp.arrays(np.int64, tuple(idx_shape),
                               elements=st.integers(0, x.shape[axis] - 1)))
    check_fn(lambda x: fnp.take_along_axis(x, ind, axis),
             lambda x: np.take_along_axis(x, ind, axis), (x,))
    # a traced sorting permutation stages into one gather
    closed = fd.make_jaxpr(lambda x: fnp.take_along_axis(x, fnp.argsort(x, axis=axis), axis))(x)
    check_jaxpr(closed.jaxpr)
    np.testing.assert_array_equal(closed(x)[0], np.sort(x, axis=axis))


def test_take_along_axis_and_put_along_axis_details():
    x = arr((2, 3))
    assert_equals_numpy(fnp.take_along_axis(x, np.array([5, 0]), axis=None),
                np.take_along_axis(x, np.array([5, 0]), axis=None))
    with pytest.raises(ValueError, match="same number of dimensions"):
        fnp.take_along_axis(x, np.array([0]), axis=1)
    ind = np.array([[2], [0]])
    ref = x.copy()
    np.put_along_axis(ref, ind, 9.0, axis=1)
    assert_equals_numpy(fnp.put_along_axis(x, ind, 9.0, axis=1, inplace=False), ref)
    check_grads(lambda x, v: fnp.put_along_axis(x, ind, v, axis=1, inplace=False),
                (x, np.array([[1.0], [2.0]])), order=2)


# --------------------------------------------------------------------------
# nonzero and index helpers
# --------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, shapes(min_dims=1, max_dims=3, min_side=0),
                  elements=st.sampled_from([0.0, 1.5, -2.0])), st.integers(0, 8))
def test_nonzero_family(x, size):
    assert_equals_numpy(fnp.nonzero(x), np.nonzero(x))
    assert_equals_numpy(fnp.flatnonzero(x), np.flatnonzero(x))
    assert_equals_numpy(fnp.argwhere(x), np.argwhere(x))
    assert_equals_numpy(fnp.where(x), np.nonzero(x))
    # with a static size it stages: truncated, or padded with fill_value
    closed = fd.make_jaxpr(lambda x: fnp.nonzero(x, size=size, fill_value=-1))(x)
    check_jaxpr(closed.jaxpr)
    ref = [np.concatenate([i[:size], np.full(max(size - len(i), 0), -1)]) for i in np.nonzero(x)]
    for got, want in zip(closed(x), ref):
        np.testing.assert_array_equal(got, want)
    # under grad the concrete mask indexes a traced array
    g = fd.grad(lambda x: fnp.sum(x[fnp.nonzero(x)] ** 3))(x)
    np.testing.assert_allclose(g, 3 * x ** 2)


def test_index_helpers_match_numpy():
    x = np.arange(12.0).reshape(3, 4)
    assert_equals_numpy(fnp.diag_indices(3), np.diag_indices(3))
    assert_equals_numpy(fnp.diag_indices_from(np.ones((2, 2, 2))), np.diag_indices_from(np.ones((2, 2, 2))))
    assert_equals_numpy(fnp.tril_indices(3, -1, 4), np.tril_indices(3, -1, 4))
    assert_equals_numpy(fnp.triu_indices(3, 1), np.triu_indices(3, 1))
    assert_equals_numpy(fnp.tril_indices_from(x), np.tril_indices_from(x))
    assert_equals_numpy(fnp.triu_indices_from(x, 1), np.triu_indices_from(x, 1))
    assert_equals_numpy(fnp.ix_([0, 2], np.array([True, False, True, True])),
                np.ix_([0, 2], np.array([True, False, True, True])))
    assert_equals_numpy(fnp.unravel_index(np.array([5, 11]), (3, 4)), np.unravel_index([5, 11], (3, 4)))
    assert_equals_numpy(fnp.ravel_multi_index((np.array([1, 2]), np.array([3, 0])), (3, 4)),
                np.ravel_multi_index((np.array([1, 2]), np.array([3, 0])), (3, 4)))
    rows, cols = fnp.ix_([0, 2], [1, 3])
    check_fn(lambda x: x[rows, cols], lambda x: x[np.ix_([0, 2], [1, 3])], (x,), eager=False)
    tri = fnp.triu_indices(3)
    g = fd.grad(lambda m: fnp.sum(m[tri] ** 2))(np.ones((3, 3)))
    np.testing.assert_array_equal(g, 2 * np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="at least 2-d with all dimensions equal"):
        fnp.diag_indices_from(np.ones((2, 3)))


def test_traced_unravel_and_ix():
    closed = fd.make_jaxpr(lambda i: fnp.unravel_index(i, (3, 4)))(np.array([0]))
    check_jaxpr(closed.jaxpr)
    for got, want in zip(closed(np.array([5, 11])), np.unravel_index([5, 11], (3, 4))):
        np.testing.assert_array_equal(got, want)
    x = np.arange(12.0).reshape(3, 4)
    closed = fd.make_jaxpr(lambda x, r, c: x[fnp.ix_(r, c)])(x, np.array([0, 0]),
                                                             np.array([0, 0]))
    np.testing.assert_array_equal(closed(x, np.array([2, 0]), np.array([1, 3]))[0],
                                  x[np.ix_([2, 0], [1, 3])])
