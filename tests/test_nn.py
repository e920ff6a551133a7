"""Tests for functad.nn: values against NumPy/SciPy references, derivatives
through ``check_grads`` (forward and reverse, order 2) on Hypothesis-drawn
shapes, and finite values and gradients at +-800 in float64 and float32."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

import functad as fd
import functad.numpy as fnp
from functad import nn
from functad.testing import check_grads

SETTINGS = settings(max_examples=15, deadline=None)


def _np(x):
    return np.asarray(x).view(np.ndarray) if isinstance(x, np.ndarray) else np.asarray(x)


# --------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def float_arrays(shape_strategy=shapes, lo=-3.0, hi=3.0, dtype=np.float64):
    return hnp.arrays(dtype, shape_strategy,
                      elements=st.floats(lo, hi, allow_nan=False, width=64 if dtype == np.float64
                                         else 32))


def away_from(kinks, margin=0.2):
    """Push every element at least ``margin`` away from each of ``kinks``."""
    def push(x):
        x = np.array(x, dtype=np.float64)
        for k in kinks:
            d = x - k
            near = np.abs(d) < margin
            x = np.where(near, k + np.where(d >= 0, margin, -margin) + d, x)
        return x
    return push


def axis_for(ndim):
    """Strategy for a valid ``axis`` argument (int, tuple or None) of an array of ``ndim``."""
    if ndim == 0:
        return st.sampled_from([None, ()])
    ints = st.integers(-ndim, ndim - 1)
    tuples = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                      unique=True).map(tuple)
    return st.one_of(st.none(), ints, tuples)


# --------------------------------------------------------------------------
# Reference implementations (NumPy / SciPy, float64)
# --------------------------------------------------------------------------

def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


ELEMENTWISE = {
    # name: (functad function, reference, kinks to stay away from in derivative checks)
    "relu": (nn.relu, lambda x: np.maximum(x, 0), [0.0]),
    "relu6": (nn.relu6, lambda x: np.clip(x, 0, 6), [0.0, 6.0]),
    "sigmoid": (nn.sigmoid, special.expit, []),
    "log_sigmoid": (nn.log_sigmoid, special.log_expit, []),
    "softplus": (nn.softplus, lambda x: np.logaddexp(x, 0), []),
    "silu": (nn.silu, lambda x: x * special.expit(x), []),
    "swish": (nn.swish, lambda x: x * special.expit(x), []),
    "gelu": (nn.gelu, _gelu_tanh, []),
    "gelu_exact": (lambda x: nn.gelu(x, approximate=False),
                   lambda x: 0.5 * x * special.erfc(-x / math.sqrt(2)), []),
    "elu": (nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), [0.0]),
    "elu_alpha": (lambda x: nn.elu(x, alpha=2.5),
                  lambda x: np.where(x > 0, x, 2.5 * np.expm1(np.minimum(x, 0))), [0.0]),
    "leaky_relu": (nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x), [0.0]),
    "leaky_relu_0.2": (lambda x: nn.leaky_relu(x, negative_slope=0.2),
                       lambda x: np.where(x >= 0, x, 0.2 * x), [0.0]),
    "tanh": (nn.tanh, np.tanh, []),
}

# exact first derivatives (float64 NumPy), for the tests at +-800
_s = special.expit
DERIVATIVE = {
    "relu": lambda x: (x > 0).astype(float),
    "relu6": lambda x: ((x > 0) & (x < 6)).astype(float),
    "sigmoid": lambda x: _s(x) * _s(-x),
    "log_sigmoid": lambda x: _s(-x),
    "softplus": _s,
    "silu": lambda x: _s(x) + x * _s(x) * _s(-x),
    "swish": lambda x: _s(x) + x * _s(x) * _s(-x),
    "gelu": None,       # checked for finiteness and the limits 0 and 1 below
    "gelu_exact": lambda x: 0.5 * special.erfc(-x / math.sqrt(2))
    + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    "elu": lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0))),
    "elu_alpha": lambda x: np.where(x > 0, 1.0, 2.5 * np.exp(np.minimum(x, 0))),
    "leaky_relu": lambda x: np.where(x >= 0, 1.0, 0.01),
    "leaky_relu_0.2": lambda x: np.where(x >= 0, 1.0, 0.2),
    "tanh": lambda x: 1 - np.tanh(x) ** 2,
}

NAMES = sorted(ELEMENTWISE)


# --------------------------------------------------------------------------
# Elementwise activations
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_elementwise_values(name):
    f, ref, _ = ELEMENTWISE[name]
    x = np.linspace(-10, 10, 41)
    out = f(fnp.asarray(x))
    assert isinstance(out, fd.Array)
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(_np(out), ref(x), rtol=1e-12, atol=1e-14 if name != "gelu_exact"
                               else 1e-15)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_elementwise_check_grads(name, data):
    f, _, kinks = ELEMENTWISE[name]
    x = data.draw(float_arrays().map(away_from(kinks)))
    if name == "relu6":      # also visit the kink at 6 and the flat part above it
        x = x * 2.5
        x = away_from([0.0, 6.0])(x)
    check_grads(f, (fnp.asarray(x),), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elementwise_extremes_finite(name, dtype):
    """Values and gradients are finite (and right) at +-800, where exp overflows."""
    f, ref, _ = ELEMENTWISE[name]
    xs = np.array([-800.0, -80.0, -1.5, 0.5, 80.0, 800.0], dtype)
    out = f(fnp.asarray(xs))
    assert out.dtype == dtype, f"{name} changed float32 to {out.dtype}"
    assert np.all(np.isfinite(_np(out)))
    with np.errstate(all="ignore"):
        expected = ref(xs.astype(np.float64))
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(_np(out), expected, rtol=rtol, atol=1e-30)
    g = fd.vjp(f, fnp.asarray(xs))[1](fnp.ones(xs.shape, dtype))[0]
    assert g.dtype == dtype
    assert np.all(np.isfinite(_np(g))), f"{name}: non-finite gradient {g}"
    if DERIVATIVE[name] is not None:
        with np.errstate(all="ignore"):
            dexp = DERIVATIVE[name](xs.astype(np.float64))
        np.testing.assert_allclose(_np(g), dexp, rtol=1e-10 if dtype == np.float64 else 1e-5,
                                   atol=1e-30)
    # forward mode agrees with reverse mode, and second derivatives are finite too
    t = fd.jvp(f, (fnp.asarray(xs),), (fnp.ones(xs.shape, dtype),))[1]
    np.testing.assert_allclose(_np(t), _np(g), rtol=1e-14 if dtype == np.float64 else 1e-6)
    g2 = fd.grad(lambda x: fnp.sum(fd.grad(lambda y: fnp.sum(f(y)))(x)))(fnp.asarray(xs))
    assert np.all(np.isfinite(_np(g2)))


def test_gelu_extremes_limits():
    for approximate in (True, False):
        g = fd.grad(lambda x: fnp.sum(nn.gelu(x, approximate)))(fnp.array([-800.0, 800.0]))
        np.testing.assert_array_equal(_np(g), [0.0, 1.0])


def test_kinks_follow_jax():
    """relu and relu6 have derivative 0 at their kinks; leaky_relu 1 at 0."""
    assert fd.grad(nn.relu)(0.0) == 0.0
    assert fd.grad(nn.relu)(1e-300) == 1.0
    assert fd.grad(nn.relu6)(0.0) == 0.0
    assert fd.grad(nn.relu6)(6.0) == 0.0
    assert fd.grad(nn.relu6)(5.0) == 1.0
    assert fd.grad(nn.leaky_relu)(0.0) == 1.0
    assert fd.jvp(nn.relu, (0.0,), (1.0,))[1] == 0.0
    assert fd.grad(fd.grad(nn.relu))(2.0) == 0.0
    # the plain maximum splits the tie: this is why relu has a custom rule
    assert fd.grad(lambda x: fnp.maximum(x, 0.0))(0.0) == 0.5


def test_scalars_lists_and_integers():
    assert nn.relu(-2.0) == 0.0
    np.testing.assert_array_equal(_np(nn.relu(fnp.array([-1, 2]))), [0, 2])
    assert nn.relu(fnp.array([-1, 2])).dtype == np.int64
    np.testing.assert_allclose(_np(nn.sigmoid([0.0, 0.0])), [0.5, 0.5])
    np.testing.assert_allclose(_np(nn.gelu([0.0, 1.0])), [0.0, _gelu_tanh(1.0)])


def test_sigmoid_derivative_chain():
    x = 0.3
    s = special.expit(x)
    assert np.isclose(fd.grad(nn.sigmoid)(x), s * (1 - s), rtol=1e-14)
    assert np.isclose(fd.grad(fd.grad(nn.softplus))(x), s * (1 - s), rtol=1e-14)
    assert np.isclose(fd.grad(nn.log_sigmoid)(x), 1 - s, rtol=1e-14)


def test_staging():
    """The activations stage into jaxprs (custom_jvp included) that type-check."""
    for name in NAMES:
        f = ELEMENTWISE[name][0]
        closed = fd.make_jaxpr(f)(fnp.ones(3))
        fd.check_jaxpr(closed.jaxpr)
        np.testing.assert_allclose(_np(closed(np.array([-1.0, 0.5, 2.0]))[0]),
                                   _np(f(fnp.array([-1.0, 0.5, 2.0]))))
    closed = fd.make_jaxpr(lambda x: nn.softmax(x))(fnp.ones((2, 3)))
    fd.check_jaxpr(closed.jaxpr)


# --------------------------------------------------------------------------
# softmax, log_softmax, logsumexp
# --------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_softmax_family_values(data):
    x = data.draw(float_arrays(nonscalar_shapes, -50, 50))
    axis = data.draw(axis_for(x.ndim).filter(lambda a: a != ()))
    xf = fnp.asarray(x)
    np.testing.assert_allclose(_np(nn.softmax(xf, axis)), special.softmax(x, axis), rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(_np(nn.log_softmax(xf, axis)), special.log_softmax(x, axis),
                               rtol=1e-12, atol=1e-12)
    keepdims = data.draw(st.booleans())
    out = nn.logsumexp(xf, axis=axis, keepdims=keepdims)
    ref = special.logsumexp(x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(ref)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=st.data())
def test_softmax_family_check_grads(data):
    x = fnp.asarray(data.draw(float_arrays(nonscalar_shapes)))
    axis = data.draw(axis_for(x.ndim).filter(lambda a: a != ()))
    keepdims = data.draw(st.booleans())
    check_grads(lambda v: nn.softmax(v, axis), (x,), order=2)
    check_grads(lambda v: nn.log_softmax(v, axis), (x,), order=2)
    check_grads(lambda v: nn.logsumexp(v, axis=axis, keepdims=keepdims), (x,), order=2)


@SETTINGS
@given(data=st.data())
def test_logsumexp_weights_check_grads(data):
    x = data.draw(float_arrays(nonscalar_shapes))
    b = data.draw(float_arrays(st.just(x.shape[-1:]), 0.5, 2.0))
    ref = special.logsumexp(x, axis=-1, b=b)
    out = nn.logsumexp(fnp.asarray(x), axis=-1, b=fnp.asarray(b))
    np.testing.assert_allclose(_np(out), ref, rtol=1e-12, atol=1e-14)
    check_grads(lambda v, w: nn.logsumexp(v, axis=-1, b=w), (fnp.asarray(x), fnp.asarray(b)),
                order=2)


def test_logsumexp_gradient_is_softmax():
    x = fnp.array([[0.5, -1.0, 2.0], [3.0, 3.0, -4.0]])
    g = fd.grad(lambda v: fnp.sum(nn.logsumexp(v, axis=1)))(x)
    np.testing.assert_allclose(_np(g), special.softmax(_np(x), axis=1), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("big", [800.0, -800.0])
def test_softmax_family_extremes(dtype, big):
    x = fnp.asarray(np.array([big, big, big - 1.0, 0.0], dtype))
    lse = nn.logsumexp(x)
    assert lse.dtype == dtype
    np.testing.assert_allclose(float(lse), special.logsumexp(_np(x).astype(np.float64)),
                               rtol=1e-7 if dtype == np.float32 else 1e-14)
    g = fd.grad(nn.logsumexp)(x)
    assert g.dtype == dtype and np.all(np.isfinite(_np(g)))
    np.testing.assert_allclose(_np(g), special.softmax(_np(x).astype(np.float64)),
                               rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-30)
    for f in (nn.softmax, nn.log_softmax):
        out = f(x)
        assert out.dtype == dtype and np.all(np.isfinite(_np(out)))
        w = fnp.asarray(np.array([1.0, -2.0, 3.0, 0.5], dtype))
        g = fd.grad(lambda v: fnp.sum(f(v) * w))(x)
        assert g.dtype == dtype and np.all(np.isfinite(_np(g)))
        num = fd.jvp(lambda v: fnp.sum(f(v) * w), (x,), (fnp.ones(4, dtype),))[1]
        assert np.isclose(float(fnp.sum(g)), float(num), atol=1e-6)
    # the softmax gradient identity: d softmax_0 summed over the inputs is 0
    e0 = fnp.asarray(np.array([1.0, 0.0, 0.0, 0.0], dtype))
    gs = fd.grad(lambda v: fnp.sum(nn.softmax(v) * e0))(x)
    assert abs(float(fnp.sum(gs))) < 1e-6
    # second derivative along a ray: the variance of x under softmax(x), finite
    h = fd.grad(fd.grad(lambda t: nn.logsumexp(x * t)))(1.0)
    p = special.softmax(_np(x).astype(np.float64))
    xv = _np(x).astype(np.float64)
    # (float32 loses about 0.05 to cancellation: x**2 is 640000 there)
    np.testing.assert_allclose(float(h), p @ xv ** 2 - (p @ xv) ** 2,
                               atol=1e-8 if dtype == np.float64 else 0.05)


def test_logsumexp_infinities_and_signs():
    with np.errstate(divide="ignore"):
        assert float(nn.logsumexp(fnp.array([-np.inf, -np.inf]))) == -np.inf
        np.testing.assert_array_equal(_np(nn.softmax(fnp.array([-np.inf, 0.0]))), [0.0, 1.0])
        assert float(nn.logsumexp(fnp.array([np.inf, 1.0]))) == np.inf
    # b == 0 masks an entry, even an infinite one
    assert np.isclose(float(nn.logsumexp(fnp.array([1.0, np.inf]), b=fnp.array([1.0, 0.0]))),
                      1.0)
    # a negative sum is nan unless return_sign
    x = fnp.array([0.0, 1.0])
    b = fnp.array([1.0, -1.0])
    assert np.isnan(float(nn.logsumexp(x, b=b)))
    out, sign = nn.logsumexp(x, b=b, return_sign=True)
    ref_out, ref_sign = special.logsumexp(_np(x), b=_np(b), return_sign=True)
    assert np.isclose(float(out), ref_out) and float(sign) == ref_sign == -1.0
    out, sign = nn.logsumexp(x, return_sign=True)
    assert float(sign) == 1.0 and sign.dtype == np.float64
    # gradient with negative weights through return_sign
    g = fd.grad(lambda v: nn.logsumexp(v, b=b, return_sign=True)[0])(x)
    e = np.exp(_np(x)) * _np(b)
    np.testing.assert_allclose(_np(g), e / e.sum(), rtol=1e-13)


def test_logsumexp_axis_none_and_keepdims():
    x = fnp.asarray(np.arange(6.0).reshape(2, 3))
    assert nn.logsumexp(x).shape == ()
    assert nn.logsumexp(x, keepdims=True).shape == (1, 1)
    assert nn.logsumexp(x, axis=0).shape == (3,)
    assert nn.logsumexp(x, axis=(0, 1), keepdims=True).shape == (1, 1)
    assert nn.softmax(x, axis=None).shape == (2, 3)
    assert np.isclose(float(fnp.sum(nn.softmax(x, axis=None))), 1.0)


def test_softmax_float32_preserved():
    x = fnp.asarray(np.array([1.0, 2.0, 3.0], np.float32))
    for f in (nn.softmax, nn.log_softmax, nn.logsumexp, nn.standardize):
        assert f(x).dtype == np.float32
        assert fd.grad(lambda v: fnp.sum(f(v)))(x).dtype == np.float32


# --------------------------------------------------------------------------
# standardize
# --------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_standardize(data):
    x = data.draw(float_arrays(nonscalar_shapes))
    axis = data.draw(axis_for(x.ndim).filter(lambda a: a != ()))
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    out = nn.standardize(fnp.asarray(x), axis=axis)
    np.testing.assert_allclose(_np(out), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10,
                               atol=1e-10)
    # derivatives are steep where the variance is near 0; check where it is not
    assume(np.all(var > 0.05))
    check_grads(lambda v: nn.standardize(v, axis=axis), (fnp.asarray(x),), order=2)


def test_standardize_given_statistics_and_extremes():
    x = fnp.array([[1.0, 2.0, 3.0], [10.0, -10.0, 0.0]])
    m = fnp.array([[2.0], [0.0]])
    v = fnp.array([[4.0], [100.0]])
    np.testing.assert_allclose(_np(nn.standardize(x, mean=m, variance=v, epsilon=0.0)),
                               (_np(x) - _np(m)) / np.sqrt(_np(v)))
    check_grads(lambda a, b, c: nn.standardize(a, mean=b, variance=c), (x, m, v), order=2)
    # a constant slice gives 0 (not nan), with a finite gradient
    c = fnp.full((4,), 3.0)
    np.testing.assert_array_equal(_np(nn.standardize(c)), 0.0)
    assert np.all(np.isfinite(_np(fd.grad(lambda v: fnp.sum(nn.standardize(v) ** 2))(c))))
    for dtype in (np.float64, np.float32):
        big = fnp.asarray(np.array([800.0, -800.0, 799.0], dtype))
        out = nn.standardize(big)
        assert out.dtype == dtype and np.all(np.isfinite(_np(out)))
        g = fd.grad(lambda v: fnp.sum(nn.standardize(v) * fnp.asarray(np.array([1, 2, 3], dtype))))(big)
        assert np.all(np.isfinite(_np(g)))


# --------------------------------------------------------------------------
# one_hot
# --------------------------------------------------------------------------

def test_one_hot():
    out = nn.one_hot(fnp.array([0, 2, 5, -1]), 3)
    np.testing.assert_array_equal(_np(out), [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert out.dtype == np.float64
    labels = np.array([[0, 1], [2, 2]])
    out = nn.one_hot(labels, 3, axis=0, dtype=np.float32)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(_np(out), np.moveaxis(np.eye(3)[labels], -1, 0))
    assert nn.one_hot(labels, 4, axis=1).shape == (2, 4, 2)
    assert nn.one_hot(2, 4).shape == (4,)
    with pytest.raises(ValueError):
        nn.one_hot(labels, 3, axis=3)


@SETTINGS
@given(data=st.data())
def test_one_hot_cross_entropy_check_grads(data):
    """The usual use of one_hot: a cross-entropy, differentiated in the logits."""
    n, k = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    logits = data.draw(float_arrays(st.just((n, k))))
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    targets = nn.one_hot(labels, k)

    def loss(z):
        return -fnp.mean(fnp.sum(targets * nn.log_softmax(z), axis=-1))
    check_grads(loss, (fnp.asarray(logits),), order=2)
    g = fd.grad(loss)(fnp.asarray(logits))
    np.testing.assert_allclose(_np(g), (special.softmax(logits, axis=-1) - _np(targets)) / n,
                               rtol=1e-10, atol=1e-14)


def test_one_hot_under_transforms():
    labels = np.array([1, 0])
    closed = fd.make_jaxpr(lambda z: fnp.sum(nn.one_hot(labels, 2) * z))(fnp.ones((2, 2)))
    fd.check_jaxpr(closed.jaxpr)
    g = fd.grad(lambda z: fnp.sum(nn.one_hot(labels, 2) * z))(fnp.ones((2, 2)))
    np.testing.assert_array_equal(_np(g), [[0, 1], [1, 0]])


def test_public_surface():
    for name in nn.__all__:
        f = getattr(nn, name)
        assert f.__doc__ and "Example" in f.__doc__, name
    assert nn.swish is nn.silu
    assert nn.logsumexp is fd.nn.logsumexp
