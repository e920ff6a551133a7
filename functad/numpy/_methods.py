"""Operators and array methods for tracers, and ``.at[]`` for every array.

Methods look up the ``functad.numpy`` function of the same name at call time,
so a function added to ``functad.numpy`` becomes a method with no extra code.
"""

from __future__ import annotations

import operator

import numpy as np

from functad.core import Tracer, Array


def _fnp():
    import functad.numpy as fnp
    return fnp


def _resolve(name):
    """The functad.numpy function ``name``: bound now if it exists, else looked up per call."""
    import functad.numpy as fnp
    fn = getattr(fnp, name, None)
    if fn is not None:
        return fn
    return lambda *args, **kwargs: getattr(_fnp(), name)(*args, **kwargs)


def _binop(name, reflected=False):
    fn = _resolve(name)
    if not reflected:
        return fn       # a plain function is a method already: one call fewer per operator

    def op(self, other):
        return fn(other, self)
    return op


def _unop(name):
    return _resolve(name)


_BINOPS = {
    "add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
    "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
    "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
}
_COMPARE = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
            "eq": "equal", "ne": "not_equal"}
_UNOPS = {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}

# Tracers and eager Arrays share the operators: both go through functad.numpy,
# so eager arithmetic on Arrays gives Arrays, and ``x += 1`` rebinds x.
for _cls in (Tracer, Array):
    for _k, _v in _BINOPS.items():
        setattr(_cls, f"__{_k}__", _binop(_v))
        setattr(_cls, f"__r{_k}__", _binop(_v, reflected=True))
        setattr(_cls, f"__i{_k}__", _binop(_v))
    for _k, _v in _COMPARE.items():
        setattr(_cls, f"__{_k}__", _binop(_v))
    for _k, _v in _UNOPS.items():
        setattr(_cls, f"__{_k}__", _unop(_v))
    _cls.__divmod__ = lambda self, other: (self // other, self % other)
Array.__hash__ = None


def _method(name):
    def m(self, *args, **kwargs):
        return getattr(_fnp(), name)(self, *args, **kwargs)
    m.__name__ = name
    return m


_METHODS = ["sum", "mean", "prod", "max", "min", "argmax", "argmin", "any", "all", "std",
            "var", "cumsum", "cumprod", "ravel", "squeeze", "swapaxes", "astype", "dot",
            "clip", "round", "conj", "conjugate", "sort", "argsort", "take", "repeat",
            "diagonal", "trace", "nonzero", "flatten"]
for _m in _METHODS:
    setattr(Tracer, _m, _method(_m))


def _reshape(self, *shape, order="C"):
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = shape[0]
    return _fnp().reshape(self, shape, order=order)


def _transpose(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return _fnp().transpose(self, axes or None)


Tracer.reshape = _reshape
Tracer.transpose = _transpose
Tracer.T = property(lambda self: _fnp().transpose(self))
Tracer.mT = property(lambda self: _fnp().matrix_transpose(self))
Tracer.real = property(lambda self: _fnp().real(self))
Tracer.__getitem__ = lambda self, idx: _fnp()._getitem(self, idx)


class _IndexUpdateHelper:
    """``x.at[idx]``: functional, out-of-place updates (JAX's ``.at`` API).

    >>> import functad.numpy as fnp
    >>> x = fnp.zeros(3)
    >>> x.at[0].add(1.0).at[2].set(5.0)
    Array([1., 0., 5.])
    """

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getitem__(self, idx):
        return _IndexUpdateRef(self.array, idx)


class _IndexUpdateRef:
    __slots__ = ("array", "index")

    def __init__(self, array, index):
        self.array = array
        self.index = index

    def get(self, **kwargs):
        return _fnp()._getitem(self.array, self.index)

    def set(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, values, "set")

    def add(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, values, "add")

    def multiply(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, values, "mul")

    mul = multiply

    def divide(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, _fnp().reciprocal(values), "mul")

    def power(self, values, **kwargs):
        fnp = _fnp()
        cur = fnp._getitem(self.array, self.index)
        return fnp._scatter(self.array, self.index, fnp.power(cur, values), "set")

    def min(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, values, "min")

    def max(self, values, **kwargs):
        return _fnp()._scatter(self.array, self.index, values, "max")


Tracer.at = property(_IndexUpdateHelper)
Array.at = property(_IndexUpdateHelper)

del _k, _v, _m, _cls, operator


_ndarray_getitem = np.ndarray.__getitem__


def _array_getitem(self, idx):
    """Eager Arrays index with NumPy, unless the index is traced (e.g. under vmap or jit)."""
    if isinstance(idx, Tracer) or (type(idx) is tuple and any(isinstance(i, Tracer) for i in idx)):
        return _fnp()._getitem(self, idx)
    return _ndarray_getitem(self, idx)


Array.__getitem__ = _array_getitem
