"""Tests of sorting: the sort primitive (values, stability, multi-key sorts and a
JVP that holds under grad-of-grad), argsort, lexsort, searchsorted, unique."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import hypothesis.extra.numpy as hnp

import functad as fd
import functad.numpy as fnp
from functad import lax
from functad.core import Array, check_jaxpr, ConcretizationTypeError
from functad.testing import check_grads, shapes, float_dtypes

SETTINGS = settings(max_examples=25, deadline=None)


def assert_same(got, want):
    want = np.asarray(want)
    assert isinstance(got, (Array, np.generic)), type(got)
    assert np.shape(got) == want.shape, (np.shape(got), want.shape)
    assert np.asarray(got).dtype == want.dtype, (np.asarray(got).dtype, want.dtype)
    np.testing.assert_array_equal(np.asarray(got), want)


@st.composite
def distinct_arrays(draw, min_dims=1, max_dims=3):
    """Float arrays with distinct values at least 0.25 apart (no ties to break
    the derivative of sort), in a random order."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4))
    dtype = draw(float_dtypes())
    n = int(np.prod(shape))
    perm = np.asarray(draw(st.permutations(range(n))), np.float64)
    return ((perm - n / 2) * 0.25 + 0.125).reshape(shape).astype(dtype)


def staged_matches(f, args, want):
    closed = fd.make_jaxpr(f)(*args)
    check_jaxpr(closed.jaxpr)
    out = closed(*args)[0]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(want))
    assert np.asarray(out).dtype == np.asarray(want).dtype


# --------------------------------------------------------------------------
# sort
# --------------------------------------------------------------------------

@SETTINGS
@given(distinct_arrays(), st.data())
def test_sort_values_staging_and_derivatives(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    descending = data.draw(st.booleans())
    want = np.sort(x, axis=axis)
    if descending:
        want = np.flip(want, axis=0 if axis is None else axis)
    f = lambda x: fnp.sort(x, axis=axis, descending=descending)     # noqa: E731
    assert_same(f(x), want)
    staged_matches(f, (x,), want)
    _, f_lin = fd.linearize(f, x)
    check_jaxpr(f_lin.linear_jaxpr.jaxpr)
    check_grads(f, (x,), order=2)


def test_sort_gradient_follows_the_elements_and_grad_of_grad():
    x = np.array([3.0, -1.0, 2.0])
    w = np.array([1.0, 10.0, 100.0])
    # sorted = [-1, 2, 3]: d/dx of sum(w * sorted) sends w back to where each came from
    np.testing.assert_array_equal(fd.grad(lambda x: fnp.sum(w * fnp.sort(x)))(x),
                                  [100.0, 1.0, 10.0])
    # second derivative through sort: d/dx sum(w * sort(x)**2) = 2 w[rank] x
    hess = fd.jacfwd(fd.grad(lambda x: fnp.sum(w * fnp.sort(x) ** 2)))(x)
    np.testing.assert_allclose(hess, np.diag([200.0, 2.0, 20.0]))
    hess_rev = fd.jacrev(fd.grad(lambda x: fnp.sum(w * fnp.sort(x) ** 2)))(x)
    np.testing.assert_allclose(hess_rev, np.diag([200.0, 2.0, 20.0]))
    g2 = fd.make_jaxpr(fd.jacrev(fd.grad(lambda x: fnp.sum(w * fnp.sort(x) ** 2))))(x)
    check_jaxpr(g2.jaxpr)
    np.testing.assert_allclose(g2(x)[0], np.diag([200.0, 2.0, 20.0]))


def test_sort_float32_nan_and_errors():
    x = np.array([2.0, np.nan, -1.0], np.float32)
    out = fnp.sort(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.sort(x))          # NaN sorts last
    assert fd.grad(lambda x: fnp.sum(fnp.sort(x) * 2.0))(x[[0, 2]]).dtype == np.float32
    with pytest.raises(np.exceptions.AxisError, match="sort: axis 1"):
        fnp.sort(np.ones(3), axis=1)
    with pytest.raises(NotImplementedError, match="order="):
        fnp.sort(np.ones(3), order="a")
    with pytest.raises(ValueError, match="same shape"):
        fd.make_jaxpr(lambda a, b: lax.sort((a, b)))(np.ones(3), np.ones(2))


@SETTINGS
@given(st.data())
def test_lax_sort_multiple_operands(data):
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    keys = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2)))
    vals = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-5, 5)))
    dim = data.draw(st.integers(0, len(shape) - 1))
    perm = np.argsort(keys, axis=dim, kind="stable")
    k_out, v_out = lax.sort((keys, vals), dimension=dim, num_keys=1)
    assert_same(k_out, np.take_along_axis(keys, perm, dim))
    assert_same(v_out, np.take_along_axis(vals, perm, dim))
    # the values ride along: the derivative is the permutation
    check_grads(lambda v: lax.sort((keys, v), dimension=dim)[1], (vals,), order=2)
    k2, v2 = lax.sort_key_val(keys, vals, dimension=dim)
    assert_same(v2, np.take_along_axis(vals, perm, dim))
    # two keys: lexicographic, stable
    keys2 = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
    out = lax.sort((keys, keys2, vals), dimension=dim, num_keys=2)
    order = np.lexsort((np.moveaxis(keys2, dim, -1), np.moveaxis(keys, dim, -1)), axis=-1)
    order = np.moveaxis(order, -1, dim)
    assert_same(out[2], np.take_along_axis(vals, order, dim))


# --------------------------------------------------------------------------
# argsort and lexsort
# --------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_argsort_is_stable(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 0.0, 2.5])))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    want = np.argsort(x, axis=axis, kind="stable")
    assert_same(fnp.argsort(x, axis=axis), want)
    staged_matches(lambda x: fnp.argsort(x, axis=axis), (x,), want)
    # descending keeps equal elements in their original order
    ax = 0 if axis is None else axis % x.ndim
    xs = x.ravel() if axis is None else x
    got = fnp.argsort(x, axis=axis, descending=True)
    keys = np.take_along_axis(xs, np.asarray(got), ax)
    assert np.all(np.diff(keys, axis=ax) <= 0)
    idx_equal = np.diff(keys, axis=ax) == 0
    assert np.all(np.diff(np.asarray(got), axis=ax)[idx_equal] > 0)
    staged_matches(lambda x: fnp.argsort(x, axis=axis, descending=True), (x,), got)


def test_argsort_has_no_derivative_and_works_under_grad():
    x = np.array([0.3, -2.0, 1.0])
    out, t = fd.jvp(lambda x: fnp.argsort(x), (x,), (np.ones(3),))
    assert out.dtype == np.int64
    assert not np.any(np.asarray(t))
    np.testing.assert_array_equal(out, [1, 0, 2])
    # an argsort inside a differentiated function is concrete and indexes the input
    g = fd.grad(lambda x: fnp.sum(x[fnp.argsort(x)] * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(g, [2.0, 1.0, 3.0])


@SETTINGS
@given(st.data())
def test_lexsort(data):
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    k = data.draw(st.integers(1, 3))
    keys = [data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2))) for _ in range(k)]
    want = np.lexsort(keys)
    assert_same(fnp.lexsort(keys), want)
    staged_matches(lambda *ks: fnp.lexsort(ks), keys, want)


# --------------------------------------------------------------------------
# searchsorted
# --------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, st.integers(0, 6), elements=st.integers(-3, 3).map(float)),
       hnp.arrays(np.float64, shapes(0, 2), elements=st.floats(-4, 4)),
       st.sampled_from(["left", "right"]))
def test_searchsorted(a, v, side):
    a = np.sort(a)
    want = np.searchsorted(a, v, side=side)
    assert_same(fnp.searchsorted(a, v, side=side), np.asarray(want, np.int64))
    staged_matches(lambda a, v: fnp.searchsorted(a, v, side=side), (a, v),
                   np.asarray(want, np.int64))
    # no derivative, but usable inside differentiated code
    out, t = fd.jvp(lambda v: fnp.searchsorted(a, v, side=side) * 1.0, (v,), (np.ones_like(v),))
    np.testing.assert_array_equal(t, np.zeros_like(v))


def test_searchsorted_sorter_and_errors():
    a = np.array([3.0, 1.0, 2.0])
    sorter = np.argsort(a)
    assert_same(fnp.searchsorted(a, 2.5, sorter=sorter),
                np.asarray(np.searchsorted(a, 2.5, sorter=sorter), np.int64))
    with pytest.raises(ValueError, match="must be 1-d"):
        fnp.searchsorted(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="side must be"):
        fnp.searchsorted(a, 1.0, side="middle")


# --------------------------------------------------------------------------
# unique
# --------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, shapes(1, 2, min_side=1), elements=st.sampled_from([0.5, -1.0, 2.0])),
       st.booleans(), st.booleans(), st.booleans())
def test_unique_matches_numpy(x, ri, rv, rc):
    want = np.unique(x, return_index=ri, return_inverse=rv, return_counts=rc)
    got = fnp.unique(x, return_index=ri, return_inverse=rv, return_counts=rc)
    if not isinstance(want, tuple):
        want, got = (want,), (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w)
    vals, counts = fnp.unique_counts(x)
    assert_same(counts, np.unique(x, return_counts=True)[1])


def test_unique_under_grad_and_staging():
    x = np.array([2.0, -1.0, 2.0, 3.0])
    # values are gathered from the input: differentiable (to its first occurrences)
    g = fd.grad(lambda x: fnp.sum(fnp.unique(x) ** 2))(x)
    np.testing.assert_array_equal(g, [4.0, -2.0, 0.0, 6.0])
    m = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 5.0]])
    assert_same(fnp.unique(m, axis=0), np.unique(m, axis=0))
    np.testing.assert_array_equal(fd.grad(lambda m: fnp.sum(fnp.unique(m, axis=0)))(m),
                                  [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ConcretizationTypeError, match="unique: the input"):
        fd.make_jaxpr(fnp.unique)(x)
