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


@pytest.mark.parametrize("name", ["exp", "expm1", "log", "tanh", "logistic", "sin", "cos"])
@pytest.mark.parametrize("dtype,bound", [(np.float64, 4), (np.float32, 1)])
def test_within_a_few_ulp_of_the_correctly_rounded_value(name, dtype, bound):
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
