"""Array creation, conversion and dtype names of functad.numpy."""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Tracer, _wrap

__all__ = [
    "asarray", "array", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
    "full_like", "empty_like", "arange", "linspace", "eye", "identity", "astype",
    "shape", "ndim", "size", "result_type", "promote_types", "dtype", "finfo", "iinfo",
    "issubdtype", "can_cast", "float16", "float32", "float64", "int8", "int16", "int32",
    "int64", "uint8", "uint16", "uint32", "uint64", "bool_", "complex64", "complex128",
    "inexact", "floating", "integer", "signedinteger", "unsignedinteger", "number",
    "complexfloating", "generic", "inf", "nan", "pi", "e", "euler_gamma", "newaxis",
    "isscalar",
]

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, uint16, uint32, uint64 = np.uint8, np.uint16, np.uint32, np.uint64
bool_, complex64, complex128 = np.bool_, np.complex64, np.complex128
inexact, floating, integer, number = np.inexact, np.floating, np.integer, np.number
signedinteger, unsignedinteger, complexfloating, generic = (
    np.signedinteger, np.unsignedinteger, np.complexfloating, np.generic)
inf, nan, pi, e, euler_gamma, newaxis = np.inf, np.nan, np.pi, np.e, np.euler_gamma, None
dtype, finfo, iinfo, issubdtype, can_cast = np.dtype, np.finfo, np.iinfo, np.issubdtype, np.can_cast
promote_types = np.promote_types

_ARRAYLIKE_FAST = (np.ndarray, Tracer)


def _contains_tracer(x):
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (list, tuple)):
        return any(_contains_tracer(v) for v in x)
    return False


def asarray(a, dtype=None, copy=None):
    """Convert ``a`` to an array (a tracer stays a tracer).

    >>> import functad.numpy as fnp
    >>> fnp.asarray([1.0, 2.0])
    Array([1., 2.])
    """
    if isinstance(a, Tracer):
        return a if dtype is None else astype(a, dtype)
    if isinstance(a, (list, tuple)) and _contains_tracer(a):
        from functad.numpy._shapes import stack
        out = stack([asarray(v) for v in a])
        return out if dtype is None else astype(out, dtype)
    return _wrap(np.asarray(a, dtype=dtype))


def array(a, dtype=None, copy=True, ndmin=0):
    """Create an array (always a copy for concrete inputs), as ``numpy.array``."""
    if isinstance(a, Tracer) or (isinstance(a, (list, tuple)) and _contains_tracer(a)):
        out = asarray(a, dtype)
        if ndmin > out.ndim:
            from functad.lax.shapes import reshape
            out = reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
        return out
    return _wrap(np.array(a, dtype=dtype, copy=True, ndmin=ndmin))


def astype(x, dtype, copy=False):
    """Cast ``x`` to ``dtype`` (differentiable between float types)."""
    from functad.lax.elementwise import convert_element_type
    if isinstance(x, Tracer):
        return convert_element_type(x, dtype)
    return convert_element_type(asarray(x), dtype)


def _concrete(shape):
    return tuple(int(d) for d in shape) if np.ndim(shape) else (int(shape),)


def zeros(shape, dtype=None):
    return _wrap(np.zeros(shape, dtype if dtype is not None else np.float64))


def ones(shape, dtype=None):
    return _wrap(np.ones(shape, dtype if dtype is not None else np.float64))


def empty(shape, dtype=None):
    return zeros(shape, dtype)


def full(shape, fill_value, dtype=None):
    """Array of ``shape`` filled with ``fill_value`` (which may be traced)."""
    if isinstance(fill_value, Tracer):
        from functad.lax.shapes import broadcast_to
        v = fill_value if dtype is None else astype(fill_value, dtype)
        return broadcast_to(v, _concrete(shape))
    return _wrap(np.full(shape, fill_value, dtype))


def _like(x):
    return core.aval_of(x) if isinstance(x, Tracer) else core.aval_of(np.asarray(x))


def zeros_like(a, dtype=None, shape=None):
    av = _like(a)
    return zeros(av.shape if shape is None else shape, av.dtype if dtype is None else dtype)


def ones_like(a, dtype=None, shape=None):
    av = _like(a)
    return ones(av.shape if shape is None else shape, av.dtype if dtype is None else dtype)


def empty_like(a, dtype=None, shape=None):
    return zeros_like(a, dtype, shape)


def full_like(a, fill_value, dtype=None, shape=None):
    av = _like(a)
    return full(av.shape if shape is None else shape, fill_value,
                av.dtype if dtype is None else dtype)


def arange(start, stop=None, step=None, dtype=None):
    """As ``numpy.arange``; the bounds must be concrete."""
    for v in (start, stop, step):
        if isinstance(v, Tracer):
            v.to_concrete("arange()")
    return _wrap(np.arange(start, stop, step, dtype=dtype) if stop is not None or step is not None
                 else np.arange(start, dtype=dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """As ``numpy.linspace``; ``start`` and ``stop`` may be traced scalars."""
    if isinstance(start, Tracer) or isinstance(stop, Tracer):
        div = (num - 1) if endpoint else num
        steps = np.arange(num, dtype=np.float64) / max(div, 1)
        out = start + (stop - start) * steps
        out = out if dtype is None else astype(out, dtype)
        step = (stop - start) / max(div, 1)
        return (out, step) if retstep else out
    res = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis)
    return (_wrap(res[0]), res[1]) if retstep else _wrap(res)


def eye(N, M=None, k=0, dtype=None):
    return _wrap(np.eye(N, M, k, dtype=dtype if dtype is not None else np.float64))


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def shape(a):
    return core.aval_of(a).shape if isinstance(a, Tracer) else np.shape(a)


def ndim(a):
    return len(shape(a))


def size(a, axis=None):
    s = shape(a)
    return int(np.prod(s)) if axis is None else s[axis]


def isscalar(x):
    return np.isscalar(x) or (isinstance(x, Tracer) and x.ndim == 0)


def result_type(*args):
    """NumPy 2 result type; Python scalars (and weak traced values) are weak."""
    from functad.lax.elementwise import _standin
    return np.result_type(*[_standin(core.aval_of(a)) if isinstance(a, Tracer) else a
                            for a in args])
