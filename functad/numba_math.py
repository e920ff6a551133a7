"""Elementwise functions that LLVM can vectorize, for jit's fused loops.

A fused loop that calls ``np.exp`` or ``np.tanh`` on each element calls the
C library's scalar function, which LLVM cannot vectorize; NumPy's ufuncs use
SIMD implementations and are several times faster on large arrays.  The
functions here are written with arithmetic, comparisons and bit casts only,
so a loop that uses them compiles to SIMD code:

* ``exp``: ``x = n ln2 + r`` with ``|r| <= ln2/2`` (Cody-Waite, ``ln2`` split
  in two parts), ``exp(r)`` by its Taylor polynomial, ``2**n`` written
  directly into the exponent bits;
* ``expm1``: the Taylor polynomial without its constant term near 0 (no
  cancellation), ``exp(x) - 1`` elsewhere;
* ``log``: ``x = m 2**e`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` read from the
  bits, ``log(m) = 2 atanh(s)``, ``s = (m - 1)/(m + 1)``, by its series;
* ``tanh = expm1(2x) / (expm1(2x) + 2)`` (sign-symmetric), ``logistic``
  from ``exp(-|x|)``, ``logaddexp(x, y) = max + log1p(exp(-|x - y|))``;
* ``sin``, ``cos``: ``x = n pi/2 + r`` (Cody-Waite, ``pi/2`` in three parts
  of 33 bits, so ``n * part`` is exact), Taylor polynomials of ``sin r`` and
  ``cos r`` on ``|r| <= pi/4``, and the quadrant ``n mod 4`` selecting among
  them.  This reduction is exact only for ``|x| <= SIN_COS_LIMIT`` (1e5):
  the lowering guards each loop with a flag and re-runs it with the C
  library's functions if any argument is larger.

Float64 versions are accurate to about 2 ulp.  Float32 ``exp`` and ``tanh``
compute in float32 arithmetic, which gives LLVM twice the SIMD lanes (the
tanh layers of a float32 MLP ran 3.5x faster than when computed in float64),
and stay within 1.5 ulp of the exact value (NumPy's own float32 exp and tanh:
2.4 and 1.4 ulp on the same grid); ``tanh`` uses its odd Taylor series below
|x| = 0.55 and ``1 - 2/(exp(2|x|) + 1)`` above.  The other float32 versions
compute in float64 with shorter polynomials and round once (below 1 ulp).  Special values (NaN, infinities, zeros, overflow and underflow)
follow NumPy.  ``functad.lowering`` uses them for float operands; integer
operands still use NumPy's scalar functions.

>>> import numpy as np
>>> from functad import numba_math as vm
>>> bool(abs(vm.exp_f64(1.0) - np.exp(1.0)) <= np.spacing(np.exp(1.0)))
True
>>> bool(np.float32(vm.tanh_f32(np.float32(0.5))) == np.float32(np.tanh(0.5)))
True
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["SIN_COS_LIMIT", "sin_f64", "sin_f32", "cos_f64", "cos_f32", "exp_f64", "exp_f32", "expm1_f64", "expm1_f32", "log_f64", "log_f32",
           "tanh_f64", "tanh_f32", "logistic_f64", "logistic_f32", "logaddexp_f64",
           "logaddexp_f32"]


def _bitcast(src, dst, ir_type, doc):
    """An intrinsic reinterpreting the bits of a ``src`` value as a ``dst``."""
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_type)
        return dst(src), codegen
    cast.__doc__ = doc
    return intrinsic(cast)


_as_int = _bitcast(types.float64, types.int64, ir.IntType(64), "The bits of a float64 as an int64.")
_as_float = _bitcast(types.int64, types.float64, ir.DoubleType(), "An int64's bits as a float64.")
_as_int32 = _bitcast(types.float32, types.int32, ir.IntType(32), "The bits of a float32 as an int32.")
_as_float32 = _bitcast(types.int32, types.float32, ir.FloatType(), "An int32's bits as a float32.")


_jit = numba.njit(error_model="numpy", inline="always")

_SHIFTER = 1.5 * 2.0 ** 52                # adding it rounds to an integer in the low bits
_SHIFTER_BITS = int(np.float64(_SHIFTER).view(np.int64))
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01      # ln 2 with its last 32 bits zero: n * hi is exact
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = math.sqrt(2.0)


def _horner(coefs, var="r"):
    """Source of the polynomial sum(c[k] var**k) in Horner form."""
    expr = repr(coefs[-1])
    for c in reversed(coefs[:-1]):
        expr = f"({expr}) * {var} + {c!r}"
    return expr


def _define(name, src, **consts):
    ns = dict(np=np, _as_int=_as_int, _as_float=_as_float, _as_int32=_as_int32,
              _as_float32=_as_float32, F=np.float32, I=np.int32, **consts)
    exec(compile(src, f"<functad.numba_math {name}>", "exec"), ns)  # noqa: S102
    fn = ns[name]
    fn.__module__ = __name__
    return fn


_FACT = [1.0 / math.factorial(k) for k in range(16)]


def _make_exp(name, degree):
    return _define(name, f"""
def {name}(x):
    xc = min(max(x, -745.2), 709.8)
    t = xc * {_LOG2E!r} + {_SHIFTER!r}
    n = t - {_SHIFTER!r}
    r = (xc - n * {_LN2_HI!r}) - n * {_LN2_LO!r}
    p = {_horner(_FACT[:degree + 1])}
    k = _as_int(t) - {_SHIFTER_BITS}
    # 2**k as two factors, so that results down to the subnormals are exact
    h = k >> 1
    y = p * _as_float((h + 1023) << 52) * _as_float((k - h + 1023) << 52)
    y = np.inf if x > 709.782712893384 else y
    y = 0.0 if x < -745.2 else y
    return y if x == x else x
""")


def _make_expm1(name, exp_fn, degree):
    coefs = [0.0] + _FACT[1:degree + 1]
    return _define(name, f"""
def {name}(x):
    r = x
    small = {_horner(coefs)}
    big = exp_fn(x) - 1.0
    return small if abs(x) < 0.3 else big
""", exp_fn=exp_fn)


def _make_log(name, terms):
    coefs = [2.0 / (2 * k + 1) for k in range(terms)]       # 2 atanh(s) = sum 2 s^(2k+1)/(2k+1)
    return _define(name, f"""
def {name}(x):
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x             # 2**54: subnormals made normal
    bits = _as_int(xs)
    e = ((bits >> 52) & 2047) - 1023 - (54 if sub else 0)
    m = _as_float((bits & 4503599627370495) | 4607182418800017408)   # in [1, 2)
    big = m > {_SQRT2!r}
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    y = s * ({_horner(coefs, "z")}) + e * {_LN2_LO!r} + e * {_LN2_HI!r}
    y = -np.inf if x == 0.0 else y
    y = np.nan if x < 0.0 else y
    return x if (x != x or x == np.inf) else y
""")


def _make_tanh(name, expm1_fn):
    return _define(name, f"""
def {name}(x):
    a = min(abs(x), 40.0)                   # tanh(40) is 1 to 1e-34
    e = expm1_fn(2.0 * a)
    t = e / (e + 2.0)
    t = t if x >= 0.0 else -t
    return t if x == x else x
""", expm1_fn=expm1_fn)


def _make_logistic(name, exp_fn):
    return _define(name, f"""
def {name}(x):
    e = exp_fn(-abs(x))                     # never overflows
    y = 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)
    return y if x == x else x
""", exp_fn=exp_fn)


def _f32_horner(coefs, var):
    """Horner form with every coefficient a float32 constant."""
    expr = f"F({float(np.float32(coefs[-1]))!r})"
    for c in reversed(coefs[:-1]):
        expr = f"({expr}) * {var} + F({float(np.float32(c))!r})"
    return expr


# float32 arithmetic throughout: twice the SIMD lanes of computing in float64.
# exp: x = n ln2 + r with ln2 = 355/512 + a small part (n * 355/512 is exact),
# exp(r) by Taylor to degree 7, 2**n written into the exponent bits.
_SHIFTER32 = 1.5 * 2.0 ** 23
_SHIFTER32_BITS = int(np.float32(_SHIFTER32).view(np.int32))
_LN2_HI32, _LN2_LO32 = 0.693359375, math.log(2.0) - 0.693359375
_EXP32_CORE = f"""
    y = xc * F({_LOG2E!r}) + F({_SHIFTER32!r})
    n = y - F({_SHIFTER32!r})
    r = (xc - n * F({_LN2_HI32!r})) - n * F({float(np.float32(_LN2_LO32))!r})
    p = {_f32_horner(_FACT[:8], "r")}
    k = _as_int32(y) - I({_SHIFTER32_BITS})
"""


def _tanh_series(terms):
    """Taylor coefficients of tanh(x)/x in powers of x**2, from the Bernoulli numbers."""
    from fractions import Fraction
    bern = [Fraction(1)]
    for m in range(1, 2 * terms + 1):
        bern.append(-sum(Fraction(math.comb(m + 1, j)) * bern[j] for j in range(m)) / (m + 1))
    return [float(Fraction(2 ** (2 * k) * (2 ** (2 * k) - 1)) * bern[2 * k] / math.factorial(2 * k))
            for k in range(1, terms + 1)]


def _make_exp32(name):
    return _define(name, f"""
def {name}(x):
    xc = min(max(x, F(-103.97208)), F(88.72283935546875))
{_EXP32_CORE}
    # 2**k as two factors, so that results down to the subnormals are exact
    h = k >> 1
    e = p * _as_float32((h + I(127)) << 23) * _as_float32((k - h + I(127)) << 23)
    e = F(np.inf) if x > F(88.72283935546875) else e
    e = F(0.0) if x < F(-103.97208) else e
    return e if x == x else x
""")


def _make_tanh32(name):
    # |x| < 0.55: the odd Taylor series to x**17 (truncation below 1e-8);
    # above: 1 - 2 / (exp(2|x|) + 1), which has no cancellation there
    return _define(name, f"""
def {name}(x):
    a = min(abs(x), F(9.5))                 # tanh(9.5) rounds to 1 in float32
    xc = a * F(2.0)
{_EXP32_CORE}
    e = p * _as_float32((k + I(127)) << 23)
    big = F(1.0) - F(2.0) / (e + F(1.0))
    z = x * x
    small = x + x * z * ({_f32_horner(_tanh_series(9)[1:], "z")})
    big = big if x > F(0.0) else -big
    t = small if a < F(0.55) else big
    t = x if a < F({2.0 ** -12!r}) else t   # tanh(x) rounds to x there; keeps -0.0
    return t if x == x else x
""")


def _make_logaddexp(name, exp_fn, log_fn):
    # max + log1p(exp(-|x - y|)), with log1p(e) = log(u) - ((u - 1) - e) / u for
    # u = 1 + e (exact to rounding even where 1 + e rounds to 1)
    return _define(name, f"""
def {name}(x, y):
    m = max(x, y)
    d = -abs(x - y)
    e = exp_fn(d)
    u = 1.0 + e
    r = m + (log_fn(u) - ((u - 1.0) - e) / u)
    r = x + {math.log(2.0)!r} if x == y else r      # equal, infinities included
    return r if d == d or x == y else d             # NaN in, NaN out
""", exp_fn=exp_fn, log_fn=log_fn)


def _f32(name, f64_fn, nargs=1):
    args = ", ".join(f"x{i}" for i in range(nargs))
    casts = ", ".join(f"np.float64(x{i})" for i in range(nargs))
    return _define(name, f"""
def {name}({args}):
    return np.float32(f64_fn({casts}))
""", f64_fn=f64_fn)


# float64: polynomials to ~1e-17; float32: shorter ones, error far below its ulp
exp_f64 = _jit(_make_exp("exp_f64", 13))
expm1_f64 = _jit(_make_expm1("expm1_f64", exp_f64, 13))
log_f64 = _jit(_make_log("log_f64", 12))
tanh_f64 = _jit(_make_tanh("tanh_f64", expm1_f64))
logistic_f64 = _jit(_make_logistic("logistic_f64", exp_f64))
logaddexp_f64 = _jit(_make_logaddexp("logaddexp_f64", exp_f64, log_f64))

exp_f32 = _jit(_make_exp32("exp_f32"))
expm1_f32 = _jit(_f32("expm1_f32", _jit(_make_expm1(
    "expm1_f32_work", _jit(_make_exp("exp_for_expm1_f32", 7)), 7))))
log_f32 = _jit(_f32("log_f32", _jit(_make_log("log_f32_work", 5))))
tanh_f32 = _jit(_make_tanh32("tanh_f32"))
logistic_f32 = _jit(_f32("logistic_f32", logistic_f64))
logaddexp_f32 = _jit(_f32("logaddexp_f32", logaddexp_f64, 2))


SIN_COS_LIMIT = 1e5
_PIO2 = (1.5707963267341256, 6.077100506303966e-11, 2.0222662487959506e-21)
_TWO_OVER_PI = 0.6366197723675814
_SIN_COEFS = [0.0] + [((-1) ** (k // 2)) / math.factorial(k) if k % 2 else 0.0
                      for k in range(1, 20)]
_COS_COEFS = [((-1) ** (k // 2)) / math.factorial(k) if k % 2 == 0 else 0.0
              for k in range(0, 20)]


def _odd_even(coefs, parity):
    """Coefficients of the polynomial in z = r*r (odd: divided by r)."""
    return [coefs[k] for k in range(parity, len(coefs), 2)]


def _make_sincos(name, which):
    sin_p = _horner(_odd_even(_SIN_COEFS, 1), "z")
    cos_p = _horner(_odd_even(_COS_COEFS, 0), "z")
    # quadrant q: sin(x) = [s, c, -s, -c][q]; cos(x) = [c, -s, -c, s][q]
    shift = 0 if which == "sin" else 1
    return _define(name, f"""
def {name}(x):
    t = x * {_TWO_OVER_PI!r} + {_SHIFTER!r}
    n = t - {_SHIFTER!r}
    r = ((x - n * {_PIO2[0]!r}) - n * {_PIO2[1]!r}) - n * {_PIO2[2]!r}
    z = r * r
    s = r * ({sin_p})
    c = {cos_p}
    m = n + {float(shift)!r}
    q = m - 4.0 * np.floor(m * 0.25)         # n mod 4 as a float: vectorizes
    y = s if q == 0.0 else c
    y = -s if q == 2.0 else y
    y = -c if q == 3.0 else y
    return y if x - x == 0.0 else x - x          # nan for nan and +-inf
""")


sin_f64 = _jit(_make_sincos("sin_f64", "sin"))
cos_f64 = _jit(_make_sincos("cos_f64", "cos"))
sin_f32 = _jit(_f32("sin_f32", sin_f64))
cos_f32 = _jit(_f32("cos_f32", cos_f64))
