"""NumPy's elementwise functions (ufuncs), generated from the lax tables."""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Tracer
from functad.lax import elementwise as ew

# functad.numpy name -> lax primitive name (where they differ)
_UNARY_NAMES = {
    "negative": "neg", "absolute": "abs", "fabs": "abs", "invert": "bitwise_not",
    "bitwise_invert": "bitwise_not", "rint": "round", "fix": "trunc",
    "asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
    "acosh": "arccosh", "atanh": "arctanh",
}
_BINARY_NAMES = {
    "subtract": "sub", "multiply": "mul", "divide": "div", "true_divide": "div",
    "power": "pow", "pow": "pow", "maximum": "max", "minimum": "min", "arctan2": "atan2",
    "atan2": "atan2", "fmod": "rem", "remainder": "mod", "equal": "eq", "not_equal": "ne",
    "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
}
_NOT_NUMPY = {"neg", "sub", "mul", "div", "pow", "max", "min", "atan2", "rem", "eq", "ne", "lt",
              "le", "gt", "ge", "rsqrt", "logistic", "erf", "erfinv"}

__all__ = []

_ARRAY_TYPES = (np.ndarray, Tracer, float, int, bool, complex, np.generic)


def _arr(x):
    """Lists and tuples become arrays; everything array-like passes through."""
    if isinstance(x, _ARRAY_TYPES):
        return x
    if isinstance(x, (list, tuple)):
        from functad.numpy._core import asarray
        return asarray(x)
    core.aval_of(x)      # raises a clear TypeError
    return x


def _unary(np_name, prim):
    bind = prim.bind

    def fn(x, /):
        return bind(x if isinstance(x, _ARRAY_TYPES) else _arr(x))
    fn.__name__ = fn.__qualname__ = np_name
    dt = ", dtype=int" if prim.name.startswith("bitwise") else ""
    fn.__doc__ = (f"Differentiable ``numpy.{np_name}`` (primitive ``{prim.name}``).\n\n"
                  f">>> import functad.numpy as fnp\n>>> fnp.{np_name}(fnp.ones(2{dt})).shape\n"
                  "(2,)\n")
    return fn


def _binary(np_name, prim):
    bind = prim.bind

    def fn(x, y, /):
        if not isinstance(x, _ARRAY_TYPES):
            x = _arr(x)
        if not isinstance(y, _ARRAY_TYPES):
            y = _arr(y)
        return bind(x, y)
    fn.__name__ = fn.__qualname__ = np_name
    dt = ", dtype=int" if prim.name.startswith("bitwise") else ""
    fn.__doc__ = (f"Differentiable ``numpy.{np_name}`` with broadcasting (primitive "
                  f"``{prim.name}``).\n\n>>> import functad.numpy as fnp\n"
                  f">>> fnp.{np_name}(fnp.ones(2{dt}), fnp.ones((3, 1){dt})).shape\n(3, 2)\n")
    return fn


def _install():
    g = globals()
    for name, *_ in ew.UNARY:
        if name not in _NOT_NUMPY:
            g[name] = _unary(name, getattr(ew, name + "_p"))
            __all__.append(name)
    for np_name, lax_name in _UNARY_NAMES.items():
        g[np_name] = _unary(np_name, getattr(ew, lax_name + "_p"))
        __all__.append(np_name)
    for name, *_ in ew.BINARY:
        if name not in _NOT_NUMPY:
            g[name] = _binary(name, getattr(ew, name + "_p"))
            __all__.append(name)
    for np_name, lax_name in _BINARY_NAMES.items():
        g[np_name] = _binary(np_name, getattr(ew, lax_name + "_p"))
        __all__.append(np_name)


_install()


def positive(x, /):
    return _arr(x)


def conjugate(x, /):
    """Complex conjugate (the identity on real arrays)."""
    x = _arr(x)
    if np.iscomplexobj(np.empty((), core.aval_of(x).dtype)):
        raise NotImplementedError("complex conjugation is not supported yet")
    return x


conj = conjugate


def real(x, /):
    return conjugate(x)


def where(condition, x=None, y=None, /):
    """``numpy.where``: the three-argument form is differentiable in ``x`` and ``y``.

    >>> import functad.numpy as fnp
    >>> fnp.where(fnp.array([True, False]), 1.0, fnp.array([5.0, 6.0]))
    Array([1., 6.])
    """
    if x is None and y is None:
        from functad.numpy._indexing import nonzero
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("where: either both or neither of x and y must be given")
    c = _arr(condition)
    if core.aval_of(c).dtype != np.bool_:
        c = ew.ne(c, 0)
    return ew.select(c, _arr(x), _arr(y))


def clip(a, a_min=None, a_max=None, /, *, min=None, max=None):
    """Clip values to ``[a_min, a_max]``; the derivative is 1 inside and 0 outside."""
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    out = _arr(a)
    if lo is not None:
        out = ew.max(out, _arr(lo))
    if hi is not None:
        out = ew.min(out, _arr(hi))
    return out


def round(a, decimals=0):  # noqa: A001 - NumPy's name
    if decimals == 0:
        return ew.round(_arr(a))
    f = 10.0 ** decimals
    return ew.div(ew.round(ew.mul(_arr(a), f)), f)


around = round


def deg2rad(x, /):
    return ew.mul(_arr(x), np.pi / 180.0)


def rad2deg(x, /):
    return ew.mul(_arr(x), 180.0 / np.pi)


radians, degrees = deg2rad, rad2deg


def logaddexp2(x, y, /):
    ln2 = np.log(2.0)
    return ew.div(ew.logaddexp(ew.mul(_arr(x), ln2), ew.mul(_arr(y), ln2)), ln2)


def heaviside(x, h0, /):
    x = _arr(x)
    return ew.select(ew.lt(x, 0), 0.0, ew.select(ew.gt(x, 0), 1.0, _arr(h0)))


def sinc(x, /):
    x = _arr(x)
    px = ew.mul(x, np.pi)
    safe = ew.select(ew.eq(x, 0), 1.0, px)
    return ew.select(ew.eq(x, 0), 1.0, ew.div(ew.sin(safe), safe))


def copysign(x, y, /):
    return ew.mul(ew.abs(_arr(x)), ew.select(ew.lt(_arr(y), 0), -1.0, 1.0))


def signbit(x, /):
    return ew.lt(_arr(x), 0)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    a, b = _arr(a), _arr(b)
    close = ew.le(ew.abs(ew.sub(a, b)), ew.add(atol, ew.mul(rtol, ew.abs(b))))
    if equal_nan:
        close = ew.logical_or(close, ew.logical_and(ew.isnan(a), ew.isnan(b)))
    return close


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    from functad.numpy._reductions import all as all_
    return all_(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a1, a2):
    from functad.numpy._reductions import all as all_
    if np.shape(a1) != np.shape(a2):
        return False
    return all_(ew.eq(_arr(a1), _arr(a2)))


__all__ += ["positive", "conjugate", "conj", "real", "where", "clip", "round", "around",
            "deg2rad", "rad2deg", "radians", "degrees", "logaddexp2", "heaviside", "sinc",
            "copysign", "signbit", "isclose", "allclose", "array_equal"]

# numpy ufunc -> functad function, so that ``ndarray <op> tracer`` defers to functad
_DISPATCH_NAMES = ["add", "subtract", "multiply", "true_divide", "floor_divide", "power",
                   "remainder", "equal", "not_equal", "less", "less_equal", "greater",
                   "greater_equal", "maximum", "minimum", "negative", "absolute",
                   "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "logical_and",
                   "logical_or", "logical_not", "arctan2", "fmod"]
for _n in _DISPATCH_NAMES:
    core._UFUNC_DISPATCH[getattr(np, _n)] = globals()[_n]
del _n
