"""Products of functad.numpy: dot, matmul, tensordot, einsum, ...

All contractions bottom out in one primitive, ``lax.dot_general``.  Shape
bookkeeping (dimension numbers, parsed einsum plans) is computed once per
input shapes and cached, so the eager path costs little more than NumPy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from functad import core
from functad.core import Tracer
from functad.lax import elementwise as ew
from functad.lax import linalg as ll
from functad.lax import shapes as ls
from functad.numpy._ufuncs import _arr

__all__ = ["dot", "matmul"]

_dot_general_bind = ll.dot_general_p.bind
_FAST = (np.ndarray, core.Array)    # types that need no conversion


def _shape(x):
    return x.shape if isinstance(x, (np.ndarray, Tracer)) else np.shape(x)


# --------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------

@lru_cache(maxsize=2048)
def _matmul_plan(xs, ys):
    """(x_shape, y_shape) -> (x_broadcast, y_broadcast, dimension_numbers,
    permutation, final_shape), each ``None`` when not needed."""
    xn, yn = len(xs), len(ys)
    if xn == 0 or yn == 0:
        raise ValueError(f"matmul: input operand {0 if xn == 0 else 1} does not have enough "
                         f"dimensions (shapes {xs} and {ys}); matmul needs arrays of at least "
                         "1 dimension, use multiply for scalars")
    kx = xs[-1]
    ky = ys[-2] if yn >= 2 else ys[0]
    if kx != ky:
        raise ValueError(f"matmul: mismatch in the contracted dimension: x has shape {xs} "
                         f"(last axis of size {kx}) and y has shape {ys} "
                         f"({'second-to-last' if yn >= 2 else 'only'} axis of size {ky})")
    if yn <= 2 or xn == 1:
        # no batch dimensions on one side: a plain contraction, with NumPy's layout
        # x[..., n, k] y[k, m] -> [..., n, m]  or  x[k] y[..., k, m] -> [..., m]
        return None, None, (((xn - 1,), (max(yn - 2, 0),)), ((), ())), None, None
    if xn == 2:
        # x[n, k] y[B..., k, m] -> dot_general gives [n, B..., m]: move n next to m
        dn = (((1,), (yn - 2,)), ((), ()))
        perm = tuple(range(1, yn - 1)) + (0, yn - 1)
        return None, None, dn, perm, None
    # both batched: broadcast the batch dimensions, then a batched contraction
    try:
        batch = np.broadcast_shapes(xs[:-2], ys[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dimensions of x (shape {xs}) and y (shape {ys}) "
                         "cannot be broadcast together") from None
    bx = None if xs[:-2] == batch else batch + xs[-2:]
    by = None if ys[:-2] == batch else batch + ys[-2:]
    nb = len(batch)
    b = tuple(range(nb))
    return bx, by, (((nb + 1,), (nb,)), (b, b)), None, None


def matmul(x1, x2, /):
    """Matrix product with NumPy's ``@`` semantics (1-D promotion, broadcast batch
    dimensions); one ``dot_general``.

    Parameters
    ----------
    x1, x2 : arrays of at least one dimension.

    Returns
    -------
    The product; for ``(..., n, k) @ (..., k, m)`` an array of shape ``(..., n, m)``.

    Example
    -------
    >>> import functad.numpy as fnp
    >>> fnp.matmul(fnp.ones((2, 3)), fnp.ones(3))
    Array([3., 3.])
    """
    if type(x1) not in _FAST:
        x1 = _arr(x1)
    if type(x2) not in _FAST:
        x2 = _arr(x2)
    bx, by, dn, perm, _ = _matmul_plan(_shape(x1), _shape(x2))
    if bx is not None:
        x1 = ls.broadcast_to(x1, bx)
    if by is not None:
        x2 = ls.broadcast_to(x2, by)
    out = _dot_general_bind(x1, x2, dimension_numbers=dn)
    return out if perm is None else ls.transpose(out, perm)


# --------------------------------------------------------------------------
# dot
# --------------------------------------------------------------------------

@lru_cache(maxsize=2048)
def _dot_dn(xn, yn):
    return ((xn - 1,), (max(yn - 2, 0),)), ((), ())


def dot(a, b, out=None):
    """Dot product with NumPy's semantics: a product for scalars, the inner
    product of vectors, and for N-D arrays a sum over the last axis of ``a``
    and the second-to-last axis of ``b`` (the only axis if ``b`` is 1-D).

    Example
    -------
    >>> import functad.numpy as fnp
    >>> fnp.dot(fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0]))
    Array(11.)
    """
    if out is not None:
        raise NotImplementedError("dot: the out= argument is not supported (arrays are immutable)")
    if type(a) not in _FAST:
        a = _arr(a)
    if type(b) not in _FAST:
        b = _arr(b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return ew.mul(a, b)
    ka, kb = sa[-1], sb[-2] if len(sb) >= 2 else sb[0]
    if ka != kb:
        raise ValueError(f"dot: shapes {sa} and {sb} not aligned: the last axis of a has size "
                         f"{ka} but the {'second-to-last' if len(sb) >= 2 else 'only'} axis of "
                         f"b has size {kb}")
    return _dot_general_bind(a, b, dimension_numbers=_dot_dn(len(sa), len(sb)))


core._UFUNC_DISPATCH[np.matmul] = matmul
