"""Shape primitives: broadcasting, reshaping, transposition.

Each primitive is linear; its transpose undoes the shape change (summing over
broadcast dimensions where values were copied).
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear

__all__ = ["broadcast_to", "reshape", "transpose"]


def _cast_shape(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


# -- broadcast_to ----------------------------------------------------------

broadcast_to_p = Primitive("broadcast_to")
broadcast_to_p.impl = lambda x, shape: np.broadcast_to(x, shape)


def _broadcast_to_abstract_eval(a, shape):
    try:
        out = np.broadcast_shapes(a.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(f"cannot broadcast an array of shape {a.shape} to shape {tuple(shape)}")
    return core._cached_aval(tuple(shape), a.dtype, a.weak_type)


broadcast_to_p.abstract_eval = _broadcast_to_abstract_eval


def _broadcast_to_transpose(ct, x, shape):
    from functad.lax.elementwise import unbroadcast
    return [unbroadcast(ct, x.aval)]


deflinear(broadcast_to_p, _broadcast_to_transpose)


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules); a no-op if it has that shape."""
    shape = _cast_shape(shape)
    if np.shape(x) == shape and not isinstance(x, (int, float, complex, bool)):
        return x
    return broadcast_to_p.bind(x, shape=shape)


# -- reshape ---------------------------------------------------------------

reshape_p = Primitive("reshape")
reshape_p.impl = lambda x, new_sizes: np.reshape(x, new_sizes)


def _reshape_abstract_eval(a, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != a.size:
        raise ValueError(f"cannot reshape array of shape {a.shape} (size {a.size}) "
                         f"into shape {tuple(new_sizes)}")
    return core._cached_aval(tuple(new_sizes), a.dtype, a.weak_type)


reshape_p.abstract_eval = _reshape_abstract_eval
deflinear(reshape_p, lambda ct, x, new_sizes: [reshape_p.bind(ct, new_sizes=x.aval.shape)])


def reshape(x, new_sizes):
    """Reshape ``x`` to the fully specified shape ``new_sizes`` (no ``-1``)."""
    new_sizes = _cast_shape(new_sizes)
    if np.shape(x) == new_sizes:
        return x
    return reshape_p.bind(x, new_sizes=new_sizes)


# -- transpose -------------------------------------------------------------

transpose_p = Primitive("transpose")
transpose_p.impl = lambda x, permutation: np.transpose(x, permutation)


def _transpose_abstract_eval(a, permutation):
    if sorted(permutation) != list(range(a.ndim)):
        raise ValueError(f"transpose permutation {permutation} is not a permutation of the "
                         f"{a.ndim} axes of an array of shape {a.shape}")
    return core._cached_aval(tuple(a.shape[i] for i in permutation), a.dtype, a.weak_type)


transpose_p.abstract_eval = _transpose_abstract_eval
deflinear(transpose_p, lambda ct, x, permutation: [
    transpose_p.bind(ct, permutation=tuple(int(i) for i in np.argsort(permutation)))])


def transpose(x, permutation):
    """Permute the axes of ``x``."""
    permutation = tuple(int(i) for i in permutation)
    if permutation == tuple(range(len(permutation))):
        return x
    return transpose_p.bind(x, permutation=permutation)
