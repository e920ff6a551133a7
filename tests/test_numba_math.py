"""functad.numba_math: the vectorizable exp/expm1/log/tanh/logistic/sin/cos used in
fused loops agree with NumPy to a few ulp, special values included."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from functad import numba_math as vm  # noqa: E402

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-310, -1e-310, 1e-20, -1e-20, 0.3,
            -0.3, 0.29999999, 1.0, 20.0, -20.0, 40.0, -40.0, 88.7, 89.0, -103.0, -104.0,
            709.7, 709.9, -745.0, -746.0, 1e300, -1e300]


def _values(dtype, positive=False):
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore"):
        xs = np.concatenate([SPECIALS, rng.uniform(-3, 3, 4000), rng.uniform(-700, 700, 4000),
                             np.exp(rng.uniform(-740, 700, 4000))]).astype(dtype)
    return np.abs(xs) if positive else xs


def _exact(name, xs):
    """A float64 (or better) reference, rounded to the dtype of xs."""
    x = xs.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "logistic":
            y = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
        else:
            y = getattr(np, name)(x)
    return y.astype(xs.dtype)


def _ulps(got, want):
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(all="ignore"):
        err = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))
    return np.max(np.where(same, 0.0, err))


_LOOPS = {}


def _loop(fn):
    if fn not in _LOOPS:
        def loop(a):
            out = np.empty_like(a)
            for i in range(a.shape[0]):
                out[i] = fn(a[i])
            return out
        _LOOPS[fn] = numba.njit(error_model="numpy")(loop)
    return _LOOPS[fn]


# float32 exp and tanh compute in float32 (twice the SIMD lanes) and are within
# 1.5 ulp of the exact value, so 2 of the rounded one; the other float32
# versions compute in float64 and round once
_F32_NATIVE = {"exp", "tanh"}


@pytest.mark.parametrize("name", ["exp", "expm1", "log", "tanh", "logistic", "sin", "cos"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_within_a_few_ulp_of_the_correctly_rounded_value(name, dtype):
    bound = 4 if dtype == np.float64 else 2 if name in _F32_NATIVE else 1
    xs = _values(dtype, positive=name == "log")
    if name in ("sin", "cos"):      # exact reduction up to the limit; beyond, the lowering
        xs = xs[~(np.abs(xs) > vm.SIN_COS_LIMIT)]       # re-runs with libm (test_jit_numba)
    fn = getattr(vm, f"{name}_{'f64' if dtype == np.float64 else 'f32'}")
    got = _loop(fn)(xs)
    assert got.dtype == dtype
    want = np.float64 if dtype == np.float64 else np.float32
    # float64: compared with NumPy (itself within an ulp); float32: with the
    # float64 result rounded once, which our float32 versions compute
    ref = _exact(name, xs) if dtype == np.float32 else _exact(name, xs).astype(want)
    assert _ulps(got, ref) <= bound, name


def test_log_of_negative_zero_and_nan():
    got = _loop(vm.log_f64)(np.array([-1.0, 0.0, -0.0, np.nan, np.inf, 5e-324]))
    np.testing.assert_array_equal(got[:5], [np.nan, -np.inf, -np.inf, np.nan, np.inf])
    assert got[5] == np.log(5e-324)


@pytest.mark.parametrize("name,hi", [("exp", 88.72), ("tanh", 12.0)])
def test_float32_native_versions_on_a_dense_grid(name, hi):
    # every 97th float32 from 1e-30 up to hi, both signs: 0.9M points, below
    # 1.5 ulp of the float64 result (NumPy's own float32 exp/tanh: 2.4/1.4 here)
    lo = np.array([1e-30, hi], np.float32).view(np.int32)
    pos = np.arange(lo[0], lo[1], 97, dtype=np.int32).view(np.float32)
    xs = np.concatenate([pos, -pos])
    got = _loop(getattr(vm, f"{name}_f32"))(xs).astype(np.float64)
    with np.errstate(all="ignore"):
        exact = getattr(np, name)(xs.astype(np.float64))
        err = np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(err) < 1.5


def test_float32_tanh_keeps_the_sign_of_zero_and_saturates():
    got = _loop(vm.tanh_f32)(np.array([-0.0, 0.0, 9.0, -9.5, 1e30, -np.inf], np.float32))
    np.testing.assert_array_equal(np.signbit(got[:2]), [True, False])
    exact = np.tanh(np.array([9.0, -9.5, 1e30, -np.inf])).astype(np.float32)   # rounded once
    np.testing.assert_array_equal(got[2:], exact)


@pytest.mark.parametrize("dtype,bound", [(np.float64, 4), (np.float32, 1)])
def test_logaddexp_against_numpy(dtype, bound):
    rng = np.random.default_rng(1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-20, -40.0, 40.0, 800.0, -800.0])
    x = np.concatenate([np.repeat(specials, specials.size), rng.uniform(-50, 50, 3000),
                        rng.uniform(-1, 1, 1000)]).astype(dtype)
    y = np.concatenate([np.tile(specials, specials.size), rng.uniform(-50, 50, 3000),
                        rng.uniform(-1e-3, 1e-3, 1000)]).astype(dtype)
    fn = vm.logaddexp_f64 if dtype == np.float64 else vm.logaddexp_f32

    @numba.njit(error_model="numpy")
    def loop(a, b):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = fn(a[i], b[i])
        return out
    got = loop(x, y)
    with np.errstate(all="ignore"):
        want = np.logaddexp(x.astype(np.float64), y.astype(np.float64)).astype(dtype)
    assert _ulps(got, want) <= bound
    # softplus far below zero: log1p(exp(z)) = exp(z), not 0
    assert loop(np.array([-60.0], dtype), np.array([0.0], dtype))[0] == np.exp(dtype(-60.0))
