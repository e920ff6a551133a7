"""Activation functions and numerically stable building blocks of neural nets.

This is the subset of ``jax.nn`` that functad provides.  Every function is
written with :mod:`functad.numpy` and :mod:`functad.lax`, so it runs eagerly
and under every transform (``grad``, ``jvp``, ``vjp``, higher orders).

Numerical choices (see ``docs/nn.md``):

* every function gives finite values *and finite gradients* for inputs as
  large as ``+-800`` in float64 and float32 (where a naive ``exp`` overflows);
* ``softmax``, ``log_softmax`` and ``logsumexp`` subtract the maximum along the
  reduced axes, under :func:`functad.stop_gradient`: the shift does not change
  the value, and with the gradient stopped the derivative is exactly
  ``softmax`` (no cancelling terms);
* ``softplus(x) = logaddexp(x, 0)`` and ``log_sigmoid(x) = -softplus(-x)``;
* ``relu`` and ``relu6`` have custom JVP rules so that their derivative at the
  kinks is 0 (as in JAX) rather than the 1/2 that ``maximum`` gives at ties;
* ``elu`` feeds ``expm1`` only non-positive values (the "double where" trick),
  so the unused branch cannot produce ``inf * 0 = nan`` in the gradient.
"""

from __future__ import annotations

import math

import numpy as np

from functad import lax
from functad import numpy as fnp
from functad.ad import custom_jvp, stop_gradient

__all__ = [
    "relu", "relu6", "sigmoid", "log_sigmoid", "softplus", "silu", "swish", "gelu",
    "elu", "leaky_relu", "tanh", "softmax", "log_softmax", "logsumexp", "one_hot",
    "standardize",
]


# --------------------------------------------------------------------------
# Piecewise-linear activations
# --------------------------------------------------------------------------

@custom_jvp
def relu(x):
    """Rectified linear unit, ``max(x, 0)``, elementwise.

    The derivative is 1 for ``x > 0`` and 0 for ``x <= 0``; in particular it is
    0 *at* 0 (a custom JVP rule, as in JAX), where the derivative of
    ``maximum(x, 0)`` would be 1/2.

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array
        ``max(x, 0)``, with the dtype of ``x``.

    Examples
    --------
    >>> import functad as fd, functad.numpy as fnp
    >>> from functad import nn
    >>> nn.relu(fnp.array([-2.0, 0.0, 3.0]))
    Array([0., 0., 3.])
    >>> float(fd.grad(nn.relu)(0.0))       # 0 at the kink, as in JAX
    0.0
    """
    return fnp.maximum(x, 0)


@relu.defjvp
def _relu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return relu(x), fnp.where(x > 0, t, 0.0)


@custom_jvp
def relu6(x):
    """ReLU clipped at 6, ``min(max(x, 0), 6)``, elementwise.

    The derivative is 1 on the open interval ``(0, 6)`` and 0 elsewhere,
    including at the kinks 0 and 6 (a custom JVP rule, as in JAX).

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array
        ``min(max(x, 0), 6)``.

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.relu6(fnp.array([-1.0, 3.0, 9.0]))
    Array([0., 3., 6.])
    """
    return fnp.minimum(fnp.maximum(x, 0), 6)


@relu6.defjvp
def _relu6_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    inside = fnp.logical_and(x > 0, x < 6)
    return relu6(x), fnp.where(inside, t, 0.0)


def leaky_relu(x, negative_slope=0.01):
    """Leaky ReLU: ``x`` where ``x >= 0``, ``negative_slope * x`` elsewhere.

    Parameters
    ----------
    x : array_like
        Input array.
    negative_slope : float, default 0.01
        Slope for negative inputs.  The derivative at 0 is 1.

    Returns
    -------
    Array

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.leaky_relu(fnp.array([-2.0, 3.0]), negative_slope=0.5)
    Array([-1.,  3.])
    """
    x = fnp.asarray(x)
    return fnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    """Exponential linear unit: ``x`` if ``x > 0``, else ``alpha * (exp(x) - 1)``.

    ``expm1`` is evaluated on ``min(x, 0)`` only, so a large positive ``x``
    cannot overflow it and put ``inf * 0 = nan`` into the gradient.

    Parameters
    ----------
    x : array_like
        Input array.
    alpha : float, default 1.0
        Value that the function tends to as ``x -> -inf`` is ``-alpha``.

    Returns
    -------
    Array

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.elu(fnp.array([2.0, 0.0, -800.0]))
    Array([ 2.,  0., -1.])
    """
    x = fnp.asarray(x)
    positive = x > 0
    safe_x = fnp.where(positive, 0.0, x)
    return fnp.where(positive, x, alpha * fnp.expm1(safe_x))


# --------------------------------------------------------------------------
# Smooth activations
# --------------------------------------------------------------------------

def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, elementwise.

    Uses the ``logistic`` primitive, computed as ``exp(-logaddexp(0, -x))``:
    accurate in both tails and never overflowing.  Its derivative is
    ``sigmoid(x) * (1 - sigmoid(x))``.

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array
        Values in ``[0, 1]``.

    Examples
    --------
    >>> import functad as fd
    >>> from functad import nn
    >>> float(nn.sigmoid(0.0))
    0.5
    >>> float(fd.grad(nn.sigmoid)(0.0))
    0.25
    """
    return lax.logistic(fnp.asarray(x) if isinstance(x, (list, tuple)) else x)


def softplus(x):
    """Softplus ``log(1 + exp(x))``, elementwise, computed stably as ``logaddexp(x, 0)``.

    It equals ``x`` (to rounding) for large ``x`` and ``exp(x)`` for very
    negative ``x``; its derivative is ``sigmoid(x)``.

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.softplus(fnp.array([-800.0, 800.0]))
    Array([  0., 800.])
    """
    return fnp.logaddexp(x, 0.0)


def log_sigmoid(x):
    """Log of the sigmoid, ``-softplus(-x)``, elementwise.

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array
        Non-positive values; ``log_sigmoid(-800) == -800`` (no ``log(0)``).

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.log_sigmoid(fnp.array([-800.0, 800.0]))
    Array([-800.,   -0.])
    """
    return fnp.negative(softplus(fnp.negative(x)))


def silu(x):
    """SiLU (also called swish): ``x * sigmoid(x)``, elementwise.

    Parameters
    ----------
    x : array_like
        Input array.

    Returns
    -------
    Array

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.silu(fnp.array([0.0, 800.0]))
    Array([  0., 800.])
    """
    x = fnp.asarray(x) if isinstance(x, (list, tuple)) else x
    return fnp.multiply(x, sigmoid(x))


swish = silu

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def gelu(x, approximate=True):
    """Gaussian error linear unit, ``x * Phi(x)`` with ``Phi`` the normal CDF.

    Parameters
    ----------
    x : array_like
        Input array.
    approximate : bool, default True
        If true, use the tanh approximation
        ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; otherwise the exact
        form ``0.5 x (1 + erf(x / sqrt(2)))``.  (The exact form rounds to 0
        below about ``x = -8.4`` in float64, where the true value is below
        1e-16 in magnitude.)

    Returns
    -------
    Array

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.gelu(fnp.array([-1.0, 0.0, 1.0]), approximate=False)
    Array([-0.15865525,  0.        ,  0.84134475])
    """
    x = fnp.asarray(x) if isinstance(x, (list, tuple)) else x
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))
        cdf = 0.5 * (1.0 + fnp.tanh(inner))
    else:
        cdf = 0.5 * (1.0 + lax.erf(fnp.multiply(x, _INV_SQRT_2)))
    return x * cdf


def tanh(x):
    """Hyperbolic tangent, elementwise (``functad.numpy.tanh``).

    Examples
    --------
    >>> from functad import nn
    >>> float(nn.tanh(0.0))
    0.0
    """
    return fnp.tanh(x)


# --------------------------------------------------------------------------
# Normalising functions over axes
# --------------------------------------------------------------------------

def _stable_shift(x, axis):
    """``stop_gradient(max(x, axis, keepdims=True))``, replaced by 0 where it is
    not finite (an all ``-inf`` slice would otherwise give ``-inf - -inf = nan``)."""
    m = stop_gradient(fnp.max(x, axis=axis, keepdims=True))
    return fnp.where(fnp.isfinite(m), m, 0.0)


def softmax(x, axis=-1):
    """Softmax ``exp(x) / sum(exp(x))`` along ``axis``.

    The maximum along ``axis`` is subtracted first (under ``stop_gradient``),
    so no ``exp`` overflows and the gradient is exact and finite.

    Parameters
    ----------
    x : array_like
        Input array.
    axis : int or tuple of ints or None, default -1
        Axis or axes along which the outputs sum to 1 (``None``: all).

    Returns
    -------
    Array
        The shape of ``x``; non-negative values summing to 1 along ``axis``.

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.softmax(fnp.array([0.0, 800.0]))
    Array([0., 1.])
    """
    x = fnp.asarray(x)
    unnormalized = fnp.exp(x - _stable_shift(x, axis))
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """Log of the softmax along ``axis``: ``x - logsumexp(x, axis, keepdims=True)``.

    Computed as ``s - log(sum(exp(s)))`` with ``s = x - stop_gradient(max x)``,
    so it is finite even where the softmax underflows to 0.

    Parameters
    ----------
    x : array_like
        Input array.
    axis : int or tuple of ints or None, default -1
        Axis or axes of normalisation.

    Returns
    -------
    Array
        The shape of ``x``.

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.log_softmax(fnp.array([0.0, 800.0]))
    Array([-800.,    0.])
    """
    x = fnp.asarray(x)
    shifted = x - _stable_shift(x, axis)
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a)))`` along ``axis``, computed stably.

    The maximum ``m`` of ``a`` (over the entries where ``b != 0``) is subtracted
    before exponentiating, ``log(sum(b * exp(a - m))) + m``, with ``m`` under
    ``stop_gradient``: the gradient with respect to ``a`` is then exactly the
    (weighted) softmax, finite for any finite input.

    Parameters
    ----------
    a : array_like
        Input array.
    axis : int or tuple of ints or None, default None
        Axes to reduce over (``None``: all).
    b : array_like, optional
        Weights for ``exp(a)``, broadcast against ``a``; may be negative.
        Entries where ``b == 0`` are ignored (even if ``a`` is ``inf`` there).
    keepdims : bool, default False
        Keep the reduced axes with size 1.
    return_sign : bool, default False
        If true, return ``(log(abs(s)), sign(s))`` for ``s = sum(b * exp(a))``;
        otherwise a negative ``s`` gives ``nan``.

    Returns
    -------
    Array, or (Array, Array) if ``return_sign``

    Examples
    --------
    >>> import functad as fd, functad.numpy as fnp
    >>> from functad import nn
    >>> float(nn.logsumexp(fnp.array([800.0, 800.0])))    # 800 + log 2, no overflow
    800.6931471805599
    >>> fd.grad(nn.logsumexp)(fnp.array([800.0, 800.0]))
    Array([0.5, 0.5])
    """
    a = fnp.asarray(a)
    if b is not None:
        b = fnp.asarray(b)
        a = fnp.where(b != 0, a, -np.inf)
    m = _stable_shift(a, axis)
    e = fnp.exp(a - m)
    if b is not None:
        e = b * e
    s = fnp.sum(e, axis=axis, keepdims=keepdims)
    if not keepdims:
        m = fnp.squeeze(m, axis=axis)
    if b is None:
        out = fnp.log(s) + m
        sign = fnp.sign(stop_gradient(s))
    else:
        sign = fnp.sign(stop_gradient(s))
        out = fnp.log(fnp.abs(s)) + m
        if not return_sign:
            out = fnp.where(sign < 0, np.nan, out)
    if return_sign:
        return out, fnp.astype(sign, fnp.result_type(out))
    return out


def standardize(x, axis=-1, mean=None, variance=None, epsilon=1e-5):
    """Normalise ``x`` to zero mean and unit variance along ``axis``.

    Returns ``(x - mean) / sqrt(variance + epsilon)``.  When not given,
    ``mean`` is the mean of ``x`` along ``axis`` and ``variance`` its (biased)
    variance, computed in two passes, ``mean((x - mean(x))**2)``, which does
    not lose precision to cancellation as ``mean(x**2) - mean(x)**2`` does.

    Parameters
    ----------
    x : array_like
        Input array.
    axis : int or tuple of ints or None, default -1
        Axes to normalise over.
    mean, variance : array_like, optional
        Statistics to use instead of those of ``x`` (e.g. running averages);
        they must broadcast against ``x`` (keep the reduced axes with size 1).
    epsilon : float, default 1e-5
        Added to the variance, so that a constant slice gives 0, not ``nan``.

    Returns
    -------
    Array
        The shape of ``x``.

    Examples
    --------
    >>> import functad.numpy as fnp
    >>> from functad import nn
    >>> nn.standardize(fnp.array([1.0, 3.0]), epsilon=0.0)
    Array([-1.,  1.])
    """
    x = fnp.asarray(x)
    own_mean = None
    if mean is None:
        mean = own_mean = fnp.mean(x, axis=axis, keepdims=True)
    if variance is None:
        if own_mean is None:
            own_mean = fnp.mean(x, axis=axis, keepdims=True)
        variance = fnp.mean(fnp.square(x - own_mean), axis=axis, keepdims=True)
    return (x - mean) * lax.rsqrt(variance + epsilon)


# --------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------

def one_hot(x, num_classes, dtype=np.float64, axis=-1):
    """One-hot encoding of the integer array ``x``.

    Parameters
    ----------
    x : array_like
        Class indices.  Values outside ``[0, num_classes)`` give all-zero rows.
    num_classes : int
        Number of classes (the size of the new axis).
    dtype : dtype, default float64
        Dtype of the result.
    axis : int, default -1
        Position of the new axis in the result.

    Returns
    -------
    Array
        Shape ``x.shape`` with ``num_classes`` inserted at ``axis``.  It has
        no derivative with respect to ``x``.

    Examples
    --------
    >>> from functad import nn
    >>> nn.one_hot([0, 2], 3)
    Array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    num_classes = int(num_classes)
    x = fnp.asarray(x)
    nd = fnp.ndim(x) + 1
    if not -nd <= axis < nd:
        raise ValueError(f"one_hot: axis {axis} is out of bounds for a result with {nd} "
                         "dimensions")
    axis = axis % nd
    classes_shape = [1] * nd
    classes_shape[axis] = num_classes
    classes = np.arange(num_classes).reshape(classes_shape)
    return fnp.astype(fnp.expand_dims(x, axis) == classes, dtype)
