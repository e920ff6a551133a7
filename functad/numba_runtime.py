"""Numba helpers that lowered programs call as ``_rt.<name>`` (imports Numba).

Lowering rules of primitives whose Numba code is more than an expression
(gather, scatter, sort, linear algebra, ...) call functions defined here.
They are compiled lazily, on first use, and cached on disk by Numba.

>>> from functad import numba_runtime as rt
>>> round(float(rt.erfinv(0.5)), 12)
0.476936276204
"""

import math

import numba
import numpy as np

_jit = numba.njit(cache=True, error_model="numpy", nogil=True)


@_jit
def erfinv(y):
    """Inverse error function: a Giles (2010) single-precision start, then
    two Newton steps on erf, which make it accurate to float64."""
    if y <= -1.0:
        return -np.inf if y == -1.0 else np.nan
    if y >= 1.0:
        return np.inf if y == 1.0 else np.nan
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w = w - 2.5
        p = 2.81022636e-08
        p = 3.43273939e-07 + p * w
        p = -3.5233877e-06 + p * w
        p = -4.39150654e-06 + p * w
        p = 0.00021858087 + p * w
        p = -0.00125372503 + p * w
        p = -0.00417768164 + p * w
        p = 0.246640727 + p * w
        p = 1.50140941 + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        p = 0.000100950558 + p * w
        p = 0.00134934322 + p * w
        p = -0.00367342844 + p * w
        p = 0.00573950773 + p * w
        p = -0.0076224613 + p * w
        p = 0.00943887047 + p * w
        p = 1.00167406 + p * w
        p = 2.83297682 + p * w
    x = p * y
    for _ in range(2):
        err = math.erf(x) - y
        x -= err / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
    return x
