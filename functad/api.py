"""Small API functions that sit on top of the core: ``eval_shape``."""

from __future__ import annotations

import numpy as np

from functad import core
from functad import tree_util as tu


class ShapeDtypeStruct:
    """A shape and dtype standing in for an array (as ``jax.ShapeDtypeStruct``)."""

    __slots__ = ("shape", "dtype", "weak_type")

    def __init__(self, shape, dtype, weak_type=False):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.weak_type = weak_type

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))

    def __eq__(self, other):
        return (isinstance(other, ShapeDtypeStruct) and self.shape == other.shape
                and self.dtype == other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


def _to_aval(x):
    if isinstance(x, ShapeDtypeStruct):
        return core.ShapedArray(x.shape, x.dtype, x.weak_type)
    return core.aval_of(x)


def eval_shape(fun, *args, **kwargs):
    """Shapes and dtypes of ``fun``'s outputs, computed without any FLOPs.

    Arguments may be arrays or :class:`ShapeDtypeStruct`.

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.eval_shape(lambda x: fnp.sum(x, axis=0), fd.ShapeDtypeStruct((3, 4), "float32"))
    ShapeDtypeStruct(shape=(4,), dtype=float32)
    """
    leaves, tree = tu.tree_flatten((args, kwargs), is_leaf=lambda x: isinstance(x, ShapeDtypeStruct))
    avals = [_to_aval(x) for x in leaves]
    store = {}

    def flat(*xs):
        a, k = tu.tree_unflatten(tree, list(xs))
        out = fun(*a, **k)
        o, store["tree"] = tu.tree_flatten(out)
        return o
    closed = core.trace_to_jaxpr(flat, avals, "eval_shape", fun)
    return tu.tree_unflatten(store["tree"], [ShapeDtypeStruct(a.shape, a.dtype, a.weak_type)
                                             for a in closed.out_avals])
