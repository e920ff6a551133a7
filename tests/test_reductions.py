"""Reductions, cumulative operations and statistics (functad.lax.reductions and
functad.numpy._reductions).

* eager results equal NumPy's (values, shapes and dtypes) over Hypothesis
  shapes, axes (None / int / negative / tuple) and ``keepdims``;
* every derivative is checked with ``check_grads`` (both modes, order 2) on
  values kept away from ties (for max/min, where the derivative jumps) but
  *including zeros* for prod/cumprod, whose rules must not divide;
* the documented conventions: ties share the tangent equally, NaN semantics,
  empty reductions, clear errors for bad axes;
* staging: ``make_jaxpr`` and the linear jaxpr of ``linearize`` type-check;
  float32 stays float32 forwards and backwards.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core, lax
from functad.lax import reductions as lr
from functad.testing import check_grads, shapes

FAST = settings(max_examples=25, deadline=None)
GRADS = settings(max_examples=15, deadline=None)


# --------------------------------------------------------------------------
# Strategies and helpers
# --------------------------------------------------------------------------

@st.composite
def shape_and_axis(draw, min_dims=0, max_dims=3, max_side=4, single=False):
    """A shape and an ``axis`` for it: None, an int (maybe negative) or a tuple."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    nd = len(shape)
    if nd == 0:
        # (NumPy itself is inconsistent about axis=0 on 0-d arrays: sum allows it,
        # mean refuses it; functad allows it everywhere, tested separately)
        return shape, draw(st.sampled_from([None, 0, -1] if single else [None, ()]))
    one = st.integers(-nd, nd - 1)
    if single:
        return shape, draw(st.none() | one)
    many = st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - nd]) for a in axes]))
    return shape, draw(st.none() | one | many)


def reduced_size(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes])) if shape else 1


def distinct(seed, shape, dtype=np.float64):
    """Values at least 0.2 apart (no ties: max/min/sort are smooth there)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2) * 0.25 + rng.uniform(0, 0.05, n)
    return v.reshape(shape).astype(dtype)


def with_zeros(seed, shape, dtype=np.float64):
    """Values in [-1.5, 1.5] with about a third of them exactly zero."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1.5, 1.5, shape)
    v[rng.uniform(size=shape) < 0.35] = 0.0
    return np.asarray(v, dtype)


def assert_same(ours, expected, rtol=1e-12):
    """Same values, shape and dtype as NumPy's, and an eager functad result."""
    expected = np.asarray(expected)
    assert isinstance(ours, (np.ndarray, np.generic)), type(ours)
    assert not isinstance(ours, core.Tracer)
    ours_a = np.asarray(ours)
    assert ours_a.shape == expected.shape, (ours_a.shape, expected.shape)
    assert ours_a.dtype == expected.dtype, (ours_a.dtype, expected.dtype)
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(ours_a, expected, rtol=rtol, atol=rtol, equal_nan=True)
    else:
        np.testing.assert_array_equal(ours_a, expected)
    if ours_a.ndim:
        assert isinstance(ours, core.Array)


def check_staging(f, x):
    """The staged jaxpr and the linear jaxpr type-check and agree with eager."""
    closed = fd.make_jaxpr(f)(x)
    core.check_jaxpr(closed.jaxpr)
    out = closed(x)[0]
    np.testing.assert_allclose(np.asarray(out), np.asarray(f(x)), rtol=1e-12, equal_nan=True)
    y, f_jvp = fd.linearize(f, x)
    core.check_jaxpr(f_jvp.linear_jaxpr.jaxpr)
    t = np.ones_like(x)
    np.testing.assert_allclose(np.asarray(f_jvp(t)), np.asarray(fd.jvp(f, (x,), (t,))[1]),
                               rtol=1e-10, atol=1e-12)


# (functad function, NumPy function) taking (a, axis, keepdims)
AXES_FUNCS = {
    "sum": (fnp.sum, np.sum), "prod": (fnp.prod, np.prod), "mean": (fnp.mean, np.mean),
    "max": (fnp.max, np.max), "min": (fnp.min, np.min), "amax": (fnp.amax, np.amax),
    "amin": (fnp.amin, np.amin), "var": (fnp.var, np.var), "std": (fnp.std, np.std),
    "ptp": (fnp.ptp, np.ptp), "all": (fnp.all, np.all), "any": (fnp.any, np.any),
    "count_nonzero": (fnp.count_nonzero, np.count_nonzero), "nansum": (fnp.nansum, np.nansum),
    "nanprod": (fnp.nanprod, np.nanprod), "nanmean": (fnp.nanmean, np.nanmean),
    "nanmax": (fnp.nanmax, np.nanmax), "nanmin": (fnp.nanmin, np.nanmin),
    "median": (fnp.median, np.median),
}
NO_IDENTITY = {"max", "min", "amax", "amin", "ptp", "nanmax", "nanmin", "median"}


# --------------------------------------------------------------------------
# Eager results equal NumPy's
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(AXES_FUNCS))
@FAST
@given(sa=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
def test_axis_reductions_match_numpy(name, sa, keepdims, seed):
    shape, axis = sa
    ours, theirs = AXES_FUNCS[name]
    x = distinct(seed, shape)
    if name.startswith("nan") and x.size:
        x.flat[seed % x.size] = np.nan
    if name in ("all", "any", "count_nonzero") and x.size:
        x.flat[:: 2] = 0.0
    if name == "count_nonzero" and axis is None and not keepdims:
        # NumPy returns a Python int here; functad returns an int64 scalar
        got = ours(x)
        assert np.asarray(got).dtype == np.int64 and got == theirs(x)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN slices
        expected = theirs(x, axis=axis, keepdims=keepdims)
    assert_same(ours(x, axis=axis, keepdims=keepdims), expected)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@FAST
@given(sa=shape_and_axis(single=True), keepdims=st.booleans(), seed=st.integers(0, 2**16),
       ties=st.booleans())
def test_arg_reductions_match_numpy(name, sa, keepdims, seed, ties):
    shape, axis = sa
    x = np.round(distinct(seed, shape)) if ties else distinct(seed, shape)   # round: many ties
    got = getattr(fnp, name)(x, axis=axis, keepdims=keepdims)
    assert_same(got, getattr(np, name)(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@FAST
@given(sa=shape_and_axis(single=True), seed=st.integers(0, 2**16))
def test_cumulative_match_numpy(name, sa, seed):
    shape, axis = sa
    x = with_zeros(seed, shape)
    assert_same(getattr(fnp, name)(x, axis), getattr(np, name)(x, axis))
    assert_same(getattr(fnp, name)(x, axis=axis), getattr(np, name)(x, axis=axis))


@pytest.mark.parametrize("name", ["cumulative_sum", "cumulative_prod"])
@FAST
@given(sa=shape_and_axis(min_dims=1, single=True), seed=st.integers(0, 2**16),
       include_initial=st.booleans())
def test_cumulative_array_api_match_numpy(name, sa, seed, include_initial):
    shape, axis = sa
    if axis is None and len(shape) > 1:
        axis = -1
    x = with_zeros(seed, shape)
    got = getattr(fnp, name)(x, axis=axis, include_initial=include_initial)
    assert_same(got, getattr(np, name)(x, axis=axis, include_initial=include_initial))


@pytest.mark.parametrize("lax_name, ufunc", [("cummax", np.maximum), ("cummin", np.minimum)])
@FAST
@given(sa=shape_and_axis(min_dims=1, single=True), seed=st.integers(0, 2**16),
       reverse=st.booleans())
def test_lax_cummax_cummin_match_numpy(lax_name, ufunc, sa, seed, reverse):
    shape, axis = sa
    ax = 0 if axis is None else axis % len(shape)
    x = np.round(distinct(seed, shape))
    expected = ufunc.accumulate(x[(slice(None),) * ax + (slice(None, None, -1),)] if reverse
                                else x, axis=ax)
    if reverse:
        expected = np.flip(expected, ax)
    assert_same(getattr(lax, lax_name)(x, ax, reverse=reverse), expected)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int32, np.uint8, np.int64, np.float32,
                                   np.float64])
@pytest.mark.parametrize("name", ["sum", "prod", "mean", "var", "std", "max", "min", "cumsum",
                                  "cumprod", "ptp", "median", "average", "nansum", "nanmean",
                                  "count_nonzero", "all", "any", "argmax"])
def test_result_dtypes_follow_numpy(name, dtype):
    x = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    if name == "ptp" and dtype == np.bool_:     # NumPy refuses boolean subtract; so do we
        with pytest.raises(TypeError, match="boolean subtract"):
            np.ptp(x)
        with pytest.raises(TypeError, match="boolean subtract"):
            fnp.ptp(x)
        return
    for axis in (None, 0, (0, 1)):
        if name in ("cumsum", "cumprod", "argmax") and isinstance(axis, tuple):
            continue
        assert_same(getattr(fnp, name)(x, axis), getattr(np, name)(x, axis), rtol=1e-6)


def test_sum_and_mean_dtype_argument():
    x = np.arange(6).reshape(2, 3)
    assert_same(fnp.sum(x, dtype=np.float32), np.sum(x, dtype=np.float32))
    assert_same(fnp.mean(x, 0, dtype=np.float32), np.mean(x, 0, dtype=np.float32), rtol=1e-6)
    assert_same(fnp.mean(np.ones(4, np.float16)), np.mean(np.ones(4, np.float16)))
    assert_same(fnp.prod(x + 1, 1, dtype=np.float64), np.prod(x + 1, 1, dtype=np.float64))
    assert_same(fnp.cumsum(x, 1, dtype=np.float32), np.cumsum(x, 1, dtype=np.float32))


def test_axis_zero_of_a_0d_array_is_allowed():
    for name in ("sum", "mean", "max", "var", "prod", "all"):
        assert_same(getattr(fnp, name)(np.float64(2.0), axis=0),
                    getattr(np, name)(np.float64(2.0), axis=None))
        assert_same(getattr(fnp, name)(np.float64(2.0), axis=-1, keepdims=True),
                    getattr(np, name)(np.float64(2.0), axis=None, keepdims=True))
    with pytest.raises(np.exceptions.AxisError, match="0-d array"):
        fnp.sum(np.float64(2.0), axis=1)


def test_sum_over_no_axes_keeps_values_and_numpy_dtype():
    x = np.array([[True, False], [True, True]])
    assert_same(fnp.sum(x, axis=()), np.sum(x, axis=()))        # bool -> int64
    y = np.arange(4.0).reshape(2, 2)
    assert_same(fnp.sum(y, axis=()), y)
    assert_same(fnp.max(y, axis=()), y)
    assert_same(fnp.sum(3.0), np.sum(3.0))
    assert_same(fnp.sum(np.float32(2.0), axis=0), np.sum(np.float32(2.0), axis=0))


def test_where_and_initial_match_numpy():
    x = distinct(0, (3, 4))
    w = np.array([[True, False, True, True]] * 3)
    for name in ("sum", "prod"):
        got = getattr(fnp, name)(x, axis=1, where=w, initial=2.0)
        assert_same(got, getattr(np, name)(x, axis=1, where=w, initial=2.0))
    for name in ("max", "min"):
        assert_same(getattr(fnp, name)(x, 0, where=w[0], initial=0.5),
                    getattr(np, name)(x, 0, where=w[0], initial=0.5))
        assert_same(getattr(fnp, name)(x, initial=100.0), getattr(np, name)(x, initial=100.0))
    for name in ("mean", "var", "std", "all", "any"):
        assert_same(getattr(fnp, name)(x, axis=1, where=w), getattr(np, name)(x, axis=1, where=w))
    assert_same(fnp.var(x, 0, where=w, ddof=1), np.var(x, 0, where=w, ddof=1))
    assert_same(fnp.nanmean(x, 1, where=w), np.nanmean(x, 1, where=w))


def test_var_std_options_match_numpy():
    x = distinct(3, (4, 5))
    for ddof in (0, 1, 2.5):
        assert_same(fnp.var(x, 1, ddof=ddof), np.var(x, 1, ddof=ddof))
        assert_same(fnp.std(x, (0, 1), ddof=ddof, keepdims=True),
                    np.std(x, (0, 1), ddof=ddof, keepdims=True))
    assert_same(fnp.var(x, 0, correction=1), np.var(x, 0, correction=1))
    m = np.mean(x, 1, keepdims=True)
    assert_same(fnp.var(x, 1, mean=m), np.var(x, 1, mean=m))
    with pytest.raises(ValueError, match="ddof or correction"):
        fnp.var(x, ddof=1, correction=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_same(fnp.var(x, 0, ddof=4), np.var(x, 0, ddof=4))        # N - ddof = 0: inf
        assert_same(fnp.var(x[:, :1], 1, ddof=1), np.var(x[:, :1], 1, ddof=1))  # 0/0: nan


def test_average_matches_numpy():
    x = distinct(4, (3, 4))
    w_full = np.abs(distinct(5, (3, 4))) + 0.5
    w_axis = np.array([1.0, 2.0, 0.5, 3.0])
    assert_same(fnp.average(x), np.average(x))
    assert_same(fnp.average(x, 0, keepdims=True), np.average(x, 0, keepdims=True))
    assert_same(fnp.average(x, weights=w_full), np.average(x, weights=w_full))
    assert_same(fnp.average(x, (0, 1), weights=w_full), np.average(x, (0, 1), weights=w_full))
    assert_same(fnp.average(x, 1, weights=w_axis), np.average(x, 1, weights=w_axis))
    assert_same(fnp.average(x, -1, weights=w_axis, keepdims=True),
                np.average(x, -1, weights=w_axis, keepdims=True))
    for kw in (dict(axis=1, weights=w_axis), dict(axis=0, weights=w_full), dict(axis=0),
               dict(axis=1, weights=w_axis, keepdims=True)):
        got, scl = fnp.average(x, returned=True, **kw)
        exp, escl = np.average(x, returned=True, **kw)
        assert_same(got, exp)
        assert_same(scl, escl)
    assert_same(fnp.average(np.arange(4), weights=np.ones(4, np.float32)),
                np.average(np.arange(4), weights=np.ones(4, np.float32)))
    assert_same(fnp.average(x.astype(np.float32), 1, weights=w_axis.astype(np.float32)),
                np.average(x.astype(np.float32), 1, weights=w_axis.astype(np.float32)),
                rtol=1e-6)


def test_average_errors():
    x = np.ones((3, 4))
    with pytest.raises(ZeroDivisionError, match="weights sum to zero"):
        fnp.average(x, weights=np.zeros((3, 4)))
    with pytest.raises(TypeError, match="axis must be given"):
        fnp.average(x, weights=np.ones(4))
    with pytest.raises(ValueError, match=r"weights of shape \(3,\)"):
        fnp.average(x, axis=1, weights=np.ones(3))


def test_median_matches_numpy():
    x = distinct(6, (3, 4, 5))
    for axis in (None, 0, 1, -1, (0, 2)):
        for keepdims in (False, True):
            assert_same(fnp.median(x, axis, keepdims=keepdims),
                        np.median(x, axis, keepdims=keepdims))
    y = x.copy()
    y[1, 2, 3] = np.nan
    assert_same(fnp.median(y, 2), np.median(y, 2))
    assert_same(fnp.median(np.arange(7)), np.median(np.arange(7)))


# --------------------------------------------------------------------------
# Derivatives: check_grads, both modes, order 2
# --------------------------------------------------------------------------

def _diff(name, axis, keepdims):
    f = getattr(fnp, name)
    return lambda x: f(x, axis=axis, keepdims=keepdims)


SMOOTH_AWAY_FROM_TIES = ["sum", "mean", "max", "min", "amax", "amin", "var", "std", "ptp",
                         "nansum", "nanmean", "nanmax", "nanmin", "nanprod", "median"]


@pytest.mark.parametrize("name", SMOOTH_AWAY_FROM_TIES)
@GRADS
@given(sa=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
def test_reduction_grads(name, sa, keepdims, seed):
    shape, axis = sa
    n = reduced_size(shape, axis)
    if name in NO_IDENTITY and n == 0:
        return
    if name == "std" and n < 2:
        return              # std has an infinite derivative where the variance is 0
    x = distinct(seed, shape) / 2
    if name.startswith("nan") and n >= 2:
        x.flat[seed % x.size] = np.nan      # one NaN: no slice is all-NaN
    f = _diff(name, axis, keepdims)
    check_grads(f, (x,), order=2)


@GRADS
@given(sa=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
def test_prod_grads_with_zeros(sa, keepdims, seed):
    shape, axis = sa
    x = with_zeros(seed, shape)
    check_grads(_diff("prod", axis, keepdims), (x,), order=2)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@GRADS
@given(sa=shape_and_axis(single=True), seed=st.integers(0, 2**16))
def test_cumulative_grads_with_zeros(name, sa, seed):
    shape, axis = sa
    x = with_zeros(seed, shape)
    check_grads(lambda x: getattr(fnp, name)(x, axis), (x,), order=2)


@pytest.mark.parametrize("name", ["cumsum", "cumprod", "cummax", "cummin"])
@GRADS
@given(sa=shape_and_axis(min_dims=1, single=True), seed=st.integers(0, 2**16),
       reverse=st.booleans())
def test_lax_cumulative_grads(name, sa, seed, reverse):
    shape, axis = sa
    ax = 0 if axis is None else axis % len(shape)
    x = with_zeros(seed, shape) if name in ("cumsum", "cumprod") else distinct(seed, shape)
    check_grads(lambda x: getattr(lax, name)(x, ax, reverse=reverse), (x,), order=2)


@GRADS
@given(shape=shapes(min_dims=1), seed=st.integers(0, 2**16), full=st.booleans())
def test_average_grads_in_values_and_weights(shape, seed, full):
    x = distinct(seed, shape)
    axis = len(shape) - 1
    w = np.abs(distinct(seed + 1, shape if full else shape[-1:])) + 0.5
    check_grads(lambda x, w: fnp.average(x, axis, weights=w), (x, w), order=2)


def test_grads_do_not_flow_through_integer_outputs():
    x = distinct(0, (3, 4))
    for f in (lambda x: fnp.argmax(x, 1), lambda x: fnp.argmin(x), lambda x: fnp.all(x > 0, 0),
              lambda x: fnp.any(x > 0), lambda x: fnp.count_nonzero(x, 1)):
        out, t = fd.jvp(f, (x,), (np.ones_like(x),))
        assert not np.asarray(out).dtype.kind == "f"
        assert np.all(np.asarray(t) == 0)
    # argmax used as an index still lets the gradient reach the selected element
    g = fd.grad(lambda x: fnp.sum(x * (fnp.arange(4) == fnp.argmax(x[0]))))(x)
    assert g.shape == x.shape


# --------------------------------------------------------------------------
# Documented conventions: ties, zeros, NaNs, empty reductions
# --------------------------------------------------------------------------

def test_max_min_ties_share_the_tangent_equally():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    np.testing.assert_allclose(fd.grad(fnp.max)(x), [1 / 3, 0, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(fd.grad(fnp.min)(-x), [1 / 3, 0, 1 / 3, 0, 1 / 3])
    m = np.array([[1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_allclose(fd.jacrev(lambda m: fnp.max(m, 1))(m),
                               [[[0.5, 0.5], [0, 0]], [[0, 0], [1, 0]]])
    np.testing.assert_allclose(fd.jacfwd(lambda m: fnp.max(m, 0))(m),
                               fd.jacrev(lambda m: fnp.max(m, 0))(m))


def test_cummax_ties_share_equally_and_agree_with_max():
    x = np.array([2.0, 1.0, 2.0, 3.0, 3.0, 0.0])
    j = np.asarray(fd.jacrev(lambda x: lax.cummax(x, 0))(x))
    expected = np.array([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [.5, 0, .5, 0, 0, 0],
                         [0, 0, 0, 1, 0, 0], [0, 0, 0, .5, .5, 0], [0, 0, 0, .5, .5, 0]])
    np.testing.assert_allclose(j, expected)
    np.testing.assert_allclose(j[-1], fd.grad(fnp.max)(x))
    jr = np.asarray(fd.jacfwd(lambda x: lax.cummin(x, 0, reverse=True))(-x))
    np.testing.assert_allclose(jr[0], fd.grad(fnp.min)(-x))
    np.testing.assert_allclose(jr[5], [0, 0, 0, 0, 0, 1])


def _prod_others(x):
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize("x", [[0.0, 2.0, 3.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                               [1.5, -2.0, 0.5, 4.0], [5.0]])
def test_prod_gradient_and_hessian_exact_at_zeros(x):
    x = np.array(x)
    np.testing.assert_array_equal(fd.grad(fnp.prod)(x), _prod_others(x))
    np.testing.assert_array_equal(fd.jacfwd(fnp.prod)(x), _prod_others(x))
    h = np.asarray(fd.hessian(fnp.prod)(x))
    expected = np.array([[0.0 if i == j else np.prod(np.delete(x, [i, j]))
                          for j in range(x.size)] for i in range(x.size)])
    np.testing.assert_allclose(h, expected, rtol=1e-14)


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0, 0.0, 1.5], [1.5, -2.0, 0.5, 3.0, 1.25, -1.0],
                               [0.0, 2.0, 3.0, 4.0, 0.5, 1.5, 2.0, -1.0, 3.0]])
def test_cumprod_jacobian_exact(x):
    x = np.array(x)
    n = x.size
    expected = np.array([[np.prod(np.delete(x[:i + 1], k)) if k <= i else 0.0
                          for k in range(n)] for i in range(n)])
    np.testing.assert_allclose(fd.jacrev(fnp.cumprod)(x), expected, rtol=1e-14)
    np.testing.assert_allclose(fd.jacfwd(fnp.cumprod)(x), expected, rtol=1e-14)
    expected_rev = np.array([[np.prod(np.delete(x[i:], k - i)) if k >= i else 0.0
                              for k in range(n)] for i in range(n)])
    rev = fd.jacfwd(lambda x: lax.cumprod(x, 0, reverse=True))(x)
    np.testing.assert_allclose(rev, expected_rev, rtol=1e-14)


def test_cumprod_second_order_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, 0.0, 1.5])
    # second order: d^2 y_4 / dx_1 dx_3 = x0 x2 x4 although x1 = x3 = 0
    h = np.asarray(fd.hessian(lambda x: fnp.cumprod(x)[-1])(x))
    assert h[1, 3] == h[3, 1] == 2.0 * 3.0 * 1.5
    assert h[0, 2] == 0.0


def test_prod_multi_axis_gradient_at_zeros():
    x = with_zeros(7, (2, 3, 4))
    g = np.asarray(fd.grad(lambda x: fnp.sum(fnp.prod(x, axis=(0, 2))))(x))
    for j in range(3):
        np.testing.assert_allclose(g[:, j, :].ravel(), _prod_others(x[:, j, :].ravel()))


def test_nan_semantics():
    x = np.array([1.0, np.nan, 3.0, np.nan])
    assert fnp.argmax(x) == 1 and fnp.argmin(x) == 1              # first NaN, as NumPy
    assert np.isnan(fnp.max(x)) and np.isnan(fnp.min(x))
    assert fnp.nanmax(x) == 3.0 and fnp.nanmin(x) == 1.0
    assert np.isnan(fnp.nanmax(np.array([np.nan, np.nan])))
    np.testing.assert_array_equal(fd.grad(fnp.nansum)(x), [1, 0, 1, 0])
    np.testing.assert_array_equal(fd.grad(fnp.nanmax)(x), [0, 0, 1, 0])
    np.testing.assert_allclose(fd.grad(fnp.nanmean)(x), [0.5, 0, 0.5, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # a NaN maximum has a NaN tangent: NaN in, NaN out
        assert np.isnan(fd.jvp(fnp.max, (x,), (np.ones(4),))[1])
        assert np.all(np.isnan(np.asarray(fd.jvp(lambda x: lax.cummax(x, 0), (x,),
                                                 (np.ones(4),))[1])[1:]))


def test_empty_reductions():
    e = np.zeros((3, 0))
    assert_same(fnp.sum(e, 1), np.sum(e, 1))
    assert_same(fnp.prod(e, 1), np.prod(e, 1))
    assert_same(fnp.sum(np.zeros(0)), np.sum(np.zeros(0)))
    assert_same(fnp.max(e, 0), np.max(e, 0))                       # empty output: fine
    assert_same(fnp.max(e, 1, initial=-1.0), np.max(e, 1, initial=-1.0))
    assert_same(fnp.cumsum(np.zeros(0)), np.cumsum(np.zeros(0)))
    assert_same(fnp.argmax(np.zeros((0, 3)), 1), np.argmax(np.zeros((0, 3)), 1))
    for f in (lambda: fnp.max(e, 1), lambda: fnp.min(e), lambda: fnp.ptp(e, axis=1),
              lambda: fnp.nanmax(e, 1), lambda: fnp.amax(np.zeros(0))):
        with pytest.raises(ValueError, match=r"empty.*no identity.*initial="):
            f()
    with pytest.raises(ValueError, match=r"argmax.*empty"):
        fnp.argmax(e, axis=1)
    with pytest.raises(ValueError, match=r"argmin.*empty"):
        fnp.argmin(np.zeros(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(fnp.mean(np.zeros(0)))
    # staged too: the abstract evaluation of the primitive refuses
    with pytest.raises(ValueError, match=r"reduce_max.*\(3, 0\).*empty"):
        lr.reduce_max_p.abstract_eval(core.ShapedArray((3, 0), np.float64), axes=(1,))
    # gradients of empty sums and products are empty
    assert fd.grad(lambda x: fnp.sum(fnp.prod(x, 1)))(e).shape == (3, 0)


def test_where_without_initial_is_an_error_for_max():
    with pytest.raises(ValueError, match="initial"):
        fnp.max(np.ones(3), where=np.array([True, False, True]))


# --------------------------------------------------------------------------
# Errors name the function, the axis and the shape
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "max", "prod", "var", "std", "all", "any",
                                  "argmax", "cumsum", "nanmax", "count_nonzero", "median"])
def test_bad_axes(name):
    f = getattr(fnp, name)
    x = np.ones((2, 3))
    with pytest.raises(np.exceptions.AxisError, match=rf"{name}: axis 2 .*dimension 2"):
        f(x, axis=2)
    with pytest.raises(ValueError, match=r"axis -3 is out of bounds"):
        f(x, axis=-3)
    with pytest.raises(TypeError, match=rf"{name}: axis must be"):
        f(x, axis=1.5)
    if name not in ("argmax", "cumsum"):
        with pytest.raises(ValueError, match=rf"{name}: repeated axis 1"):
            f(x, axis=(1, -1))
    else:
        with pytest.raises(TypeError, match="single integer"):
            f(x, axis=(1,))


def test_cumulative_sum_requires_axis_for_nd():
    with pytest.raises(ValueError, match=r"cumulative_sum: axis=None .*\(2, 3\)"):
        fnp.cumulative_sum(np.ones((2, 3)))


def test_out_argument_is_refused_clearly():
    with pytest.raises(NotImplementedError, match="immutable"):
        fnp.sum(np.ones(3), out=np.empty(()))


def test_logical_reductions_treat_nonzero_and_nan_as_true():
    x = np.array([[0.0, np.nan], [1.0, -2.0], [0.0, 0.0]])
    assert_same(lax.reduce_and(x, (1,)), np.all(x, 1))
    assert_same(lax.reduce_or(x, (1,)), np.any(x, 1))
    assert lr.reduce_and_p.abstract_eval(core.ShapedArray((3, 2), np.float32),
                                         axes=(1,)).dtype == np.bool_


def test_lax_level_errors():
    a = core.ShapedArray((2, 3), np.float64)
    with pytest.raises(ValueError, match=r"reduce_sum: axis 2 .*\(2, 3\)"):
        lr.reduce_sum_p.abstract_eval(a, axes=(2,))
    with pytest.raises(ValueError, match=r"cumsum: axis 0 .*0-d"):
        lr.cumsum_p.abstract_eval(core.ShapedArray((), np.float64), axis=0, reverse=False)


# --------------------------------------------------------------------------
# Staging, linear jaxprs, methods on tracers, float32
# --------------------------------------------------------------------------

STAGED = {
    "sum": lambda x: fnp.sum(x, 0), "prod": lambda x: fnp.prod(x, (0, 1), keepdims=True),
    "mean": lambda x: fnp.mean(x, -1), "max": lambda x: fnp.max(x, 1, keepdims=True),
    "min": lambda x: fnp.min(x), "var": lambda x: fnp.var(x, 0, ddof=1),
    "std": lambda x: fnp.std(x, 1), "ptp": lambda x: fnp.ptp(x, 0),
    "cumsum": lambda x: fnp.cumsum(x, 1), "cumprod": lambda x: fnp.cumprod(x, 0),
    "cumulative_sum": lambda x: fnp.cumulative_sum(x, axis=1, include_initial=True),
    "cumulative_prod": lambda x: fnp.cumulative_prod(x, axis=0, include_initial=True),
    "cummax": lambda x: lax.cummax(x, 1), "cummin": lambda x: lax.cummin(x, 0, reverse=True),
    "average": lambda x: fnp.average(x, 1, weights=np.arange(1.0, 5.0, dtype=x.dtype)),
    "nansum": lambda x: fnp.nansum(x, 0), "nanmean": lambda x: fnp.nanmean(x),
    "nanmax": lambda x: fnp.nanmax(x, 1), "nanmin": lambda x: fnp.nanmin(x, 0),
    "median": lambda x: fnp.median(x, 1),
    "argmax": lambda x: x * (fnp.argmax(x, 1) == 1)[:, None],
    "all": lambda x: x * fnp.all(x > -9),
    "count_nonzero": lambda x: x * (fnp.count_nonzero(x, 0) > 1),
}


@pytest.mark.parametrize("name", sorted(STAGED))
def test_staging_and_linear_jaxprs_type_check(name):
    x = with_zeros(11, (3, 4))
    check_staging(STAGED[name], x)
    check_staging(fd.grad(lambda x: fnp.sum(STAGED[name](x))), x)


@pytest.mark.parametrize("name", sorted(STAGED))
def test_float32_stays_float32(name):
    f = STAGED[name]
    x = distinct(12, (3, 4), np.float32)
    assert np.asarray(f(x)).dtype == np.float32
    closed = fd.make_jaxpr(f)(x)
    assert closed.out_avals[0].dtype == np.float32
    g = fd.grad(lambda x: fnp.sum(f(x)))(x)
    assert g.dtype == np.float32
    _, t = fd.jvp(f, (x,), (np.ones_like(x),))
    assert np.asarray(t).dtype == np.float32


def test_methods_on_tracers_use_these_functions():
    x = distinct(13, (3, 4))

    def f(x):
        return (x.sum(0) + x.max(axis=0) + x.min(0, keepdims=True)[0] + x.mean(0) + x.prod(0)
                + x.var(0) + x.std(axis=0, ddof=1) + x.cumsum(0)[-1] + x.cumprod(0)[-1]
                + x.argmax(0) + x.argmin(axis=0) + x.all(0) + x.any(0))

    expected = (x.sum(0) + x.max(axis=0) + x.min(0, keepdims=True)[0] + x.mean(0) + x.prod(0)
                + x.var(0) + x.std(axis=0, ddof=1) + x.cumsum(0)[-1] + x.cumprod(0)[-1]
                + x.argmax(0) + x.argmin(axis=0) + x.all(0) + x.any(0))
    y, _ = fd.jvp(f, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_grads(lambda x: f(x), (x,), order=1)
    assert fd.grad(lambda x: x.max())(x).shape == (3, 4)


def test_var_method_under_make_jaxpr():
    closed = fd.make_jaxpr(lambda x: x.var(0))(np.ones((2, 3)))
    assert closed.out_avals[0].shape == (3,)
    np.testing.assert_allclose(closed(np.arange(6.0).reshape(2, 3))[0], np.full(3, 2.25))


def test_eager_outputs_are_functad_arrays():
    x = distinct(14, (3, 4))
    assert type(fnp.sum(x, 0)) is core.Array
    assert type(fnp.cumsum(x)) is core.Array
    assert type(fnp.argmax(x, 1)) is core.Array
    assert isinstance(fnp.max(x), np.float64)         # 0-d results are NumPy scalars
    with pytest.raises(TypeError, match="immutable"):
        fnp.max(x, 0)[0] = 1.0
