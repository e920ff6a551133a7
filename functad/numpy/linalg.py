"""functad.numpy.linalg: differentiable linear algebra with NumPy 2 semantics.

Functions work on single matrices and on stacks (``(..., n, n)``), eagerly and
under every transform.  Integer inputs are converted to float64; float32
stays float32.

Derivative conventions (see ``docs/numpy_linalg.md``):

* ``cholesky`` and ``eigh``/``eigvalsh`` symmetrize their input,
  ``(a + a.T) / 2``, as JAX does: for a symmetric input the value is exactly
  NumPy's, and the derivative is the symmetric one;
* ``eigh`` assumes distinct eigenvalues (its eigenvector derivative divides
  by eigenvalue gaps);
* ``svd`` assumes distinct, non-zero singular values (and
  ``full_matrices=False`` for non-square inputs); ``qr`` a full-rank input;
* the 2-norm has a zero (not NaN) gradient at the origin;
* ``det``, ``inv``, ``solve`` and ``slogdet`` assume invertible matrices.

>>> import functad as fd, functad.numpy as fnp
>>> fd.grad(lambda a: fnp.linalg.slogdet(a).logabsdet)(fnp.array([[2.0, 0.0], [0.0, 4.0]]))
Array([[0.5 , 0.  ],
       [0.  , 0.25]])
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from functad import core
from functad.core import Tracer
from functad.lax import elementwise as ew
from functad.lax import linalg as ll
from functad.lax import shapes as ls
from functad.lax import reductions as lr
from functad.numpy._ufuncs import _arr
from functad.numpy._linalg_ops import (matmul, tensordot, outer, trace, diagonal, cross,  # noqa: F401
                                       vecdot, _norm_axis, _numpy_when_concrete)

__all__ = ["norm", "vector_norm", "matrix_norm", "inv", "det", "slogdet", "solve", "cholesky",
           "eigh", "eigvalsh", "matrix_power", "multi_dot", "pinv", "matmul", "tensordot",
           "outer", "trace", "diagonal", "cross", "vecdot", "matrix_transpose", "LinAlgError",
           "svd", "svdvals", "qr", "EighResult", "SlogdetResult", "SVDResult", "QRResult"]

LinAlgError = np.linalg.LinAlgError
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])


def _shape(x):
    return x.shape if isinstance(x, (np.ndarray, Tracer)) else np.shape(x)


def _float(x, name):
    """``x`` as an array of a real floating dtype (integers and bools become float64)."""
    x = _arr(x)
    kind = core.aval_of(x).dtype.kind
    if kind == "f":
        return x
    if kind in "biu":
        return ew.convert_element_type(x, np.float64)
    raise TypeError(f"{name}: expected a real (integer or floating) array, got dtype "
                    f"{core.aval_of(x).dtype.name}")


def _square(x, name):
    s = _shape(x)
    if len(s) < 2 or s[-1] != s[-2]:
        raise LinAlgError(f"{name}: expected a square matrix or a stack of square matrices "
                          f"(shape (..., n, n)), got shape {tuple(s)}")
    return s


def _symmetrize(a):
    return ew.mul(ew.add(a, ll.swap_last(a)), 0.5)


def matrix_transpose(x, /):
    """Swap the last two axes (``x.mT``).

    >>> import functad.numpy as fnp
    >>> fnp.linalg.matrix_transpose(fnp.ones((2, 3))).shape
    (3, 2)
    """
    x = _arr(x)
    if len(_shape(x)) < 2:
        raise ValueError(f"matrix_transpose: x must have at least 2 dimensions, got shape {_shape(x)}")
    return ll.swap_last(x)


# --------------------------------------------------------------------------
# Inverse, determinants, solve
# --------------------------------------------------------------------------

def inv(a):
    """Inverse of a square matrix (or of each matrix of a stack).

    >>> import functad.numpy as fnp
    >>> fnp.linalg.inv(fnp.array([[2.0, 0.0], [0.0, 4.0]]))
    Array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    a = _float(a, "inv")
    _square(a, "inv")
    return ll.inv(a)


def det(a):
    """Determinant of a square matrix (or of each matrix of a stack).

    The derivative, ``det(a) * inv(a).T``, assumes ``a`` invertible.

    >>> import functad.numpy as fnp
    >>> round(float(fnp.linalg.det(fnp.array([[2.0, 1.0], [1.0, 3.0]]))), 12)
    5.0
    """
    a = _float(a, "det")
    _square(a, "det")
    return ll.det(a)


def slogdet(a):
    """Sign and natural logarithm of the absolute determinant, as a named tuple
    ``(sign, logabsdet)``; the sign has a zero derivative.

    >>> import functad.numpy as fnp
    >>> sign, logabsdet = fnp.linalg.slogdet(fnp.array([[-2.0, 0.0], [0.0, 1.0]]))
    >>> float(sign), round(float(logabsdet), 4)
    (-1.0, 0.6931)
    """
    a = _float(a, "slogdet")
    _square(a, "slogdet")
    sign, logdet = ll.slogdet(a)
    return SlogdetResult(sign, logdet)


def solve(a, b):
    """Solve ``a @ x = b``, with NumPy 2 semantics: ``b`` is a vector if it is
    1-D, else a stack of matrices ``(..., n, k)``; batch dimensions broadcast.

    Differentiable in both ``a`` and ``b`` (``a`` must be invertible).

    >>> import functad.numpy as fnp
    >>> fnp.linalg.solve(fnp.array([[2.0, 0.0], [0.0, 4.0]]), fnp.array([2.0, 2.0]))
    Array([1. , 0.5])
    """
    a, b = _float(a, "solve"), _float(b, "solve")
    sa = _square(a, "solve")
    sb = _shape(b)
    n = sa[-1]
    dt = np.result_type(core.aval_of(a).dtype, core.aval_of(b).dtype)
    a, b = _cast(a, dt), _cast(b, dt)
    if len(sb) == 1:
        if sb[0] != n:
            raise ValueError(f"solve: a of shape {tuple(sa)} needs b of shape ({n},) or "
                             f"(..., {n}, k), got b of shape {tuple(sb)}")
        bm = ls.broadcast_to(ls.reshape(b, (n, 1)), tuple(sa[:-1]) + (1,))
        return ls.reshape(ll.solve(a, bm), tuple(sa[:-1]))
    if len(sb) < 2 or sb[-2] != n:
        raise ValueError(f"solve: a of shape {tuple(sa)} needs b of shape ({n},) or "
                         f"(..., {n}, k), got b of shape {tuple(sb)}")
    try:
        batch = np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    except ValueError:
        raise ValueError(f"solve: the batch dimensions of a (shape {tuple(sa)}) and b (shape "
                         f"{tuple(sb)}) cannot be broadcast together") from None
    a = ls.broadcast_to(a, batch + (n, n))
    b = ls.broadcast_to(b, batch + tuple(sb[-2:]))
    return ll.solve(a, b)


def _cast(x, dt):
    return x if core.aval_of(x).dtype == dt else ew.convert_element_type(x, dt)


# --------------------------------------------------------------------------
# Symmetric matrices: cholesky, eigh
# --------------------------------------------------------------------------

def cholesky(a, /, *, upper=False):
    """Cholesky factor of a symmetric positive-definite matrix (or stack):
    lower ``L`` with ``a = L @ L.T``, or upper ``U = L.T`` if ``upper``.

    The input is symmetrized, ``(a + a.T) / 2``, so the value equals NumPy's
    for symmetric input and the derivative is symmetric.

    >>> import functad.numpy as fnp
    >>> fnp.linalg.cholesky(fnp.array([[4.0, 2.0], [2.0, 5.0]]))
    Array([[2., 0.],
           [1., 2.]])
    """
    a = _float(a, "cholesky")
    _square(a, "cholesky")
    L = ll.cholesky(_symmetrize(a))
    return ll.swap_last(L) if upper else L


def eigh(a, UPLO="L", symmetrize_input=True):
    """Eigenvalues (ascending) and orthonormal eigenvectors (the columns) of a
    symmetric matrix or stack, as a named tuple ``(eigenvalues, eigenvectors)``.

    By default the input is symmetrized, ``(a + a.T) / 2`` (as in JAX); with
    ``symmetrize_input=False`` only the ``UPLO`` triangle is read (as in
    NumPy).  The derivative assumes distinct eigenvalues: it divides by the
    gaps between them.  Eigenvectors are defined up to sign, so differentiate
    sign-invariant functions of them (e.g. ``v @ diag(f(w)) @ v.T``).

    >>> import functad.numpy as fnp
    >>> w, v = fnp.linalg.eigh(fnp.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> w
    Array([1., 3.])
    """
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = _float(a, "eigh")
    _square(a, "eigh")
    if symmetrize_input:
        a = _symmetrize(a)
    w, v = ll.eigh(a, lower=UPLO == "L")
    return EighResult(w, v)


def eigvalsh(a, UPLO="L"):
    """Eigenvalues (ascending) of a symmetric matrix or stack; see :func:`eigh`.

    >>> import functad.numpy as fnp
    >>> fnp.linalg.eigvalsh(fnp.array([[2.0, 1.0], [1.0, 2.0]]))
    Array([1., 3.])
    """
    return eigh(a, UPLO).eigenvalues


# --------------------------------------------------------------------------
# Decompositions: svd, qr
# --------------------------------------------------------------------------

def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition ``a = U @ (S[..., None] * Vh)``, as a named
    tuple ``(U, S, Vh)`` with descending ``S`` (just ``S`` if not ``compute_uv``).

    Derivatives assume distinct, non-zero singular values; for a non-square
    input they need ``full_matrices=False`` (the extra singular vectors of
    the full decomposition are not unique).  Singular vectors are defined up
    to sign, so differentiate sign-invariant functions of them.

    >>> import functad.numpy as fnp
    >>> fnp.linalg.svd(fnp.array([[3.0, 0.0], [0.0, -2.0]])).S
    Array([3., 2.])
    """
    a = _float(a, "svd")
    if len(_shape(a)) < 2:
        raise LinAlgError(f"svd: expected a matrix or a stack of matrices, got shape {_shape(a)}")
    if not compute_uv:
        return ll.svd(a, full_matrices=False)[1]
    u, s, vh = ll.svd(a, full_matrices=full_matrices)
    return SVDResult(u, s, vh)


def svdvals(x, /):
    """Singular values of a matrix or stack, descending (see :func:`svd`).

    >>> import functad.numpy as fnp
    >>> fnp.linalg.svdvals(fnp.array([[0.0, 2.0], [1.0, 0.0]]))
    Array([2., 1.])
    """
    return svd(x, compute_uv=False)


def qr(a, mode="reduced"):
    """QR decomposition ``a = Q @ R`` as a named tuple ``(Q, R)`` (``mode`` is
    ``'reduced'`` or ``'complete'``), or just ``R`` with ``mode='r'``.

    Signs follow LAPACK, as in NumPy.  Derivatives need a full-rank input,
    and ``mode='reduced'`` for a tall one.

    >>> import functad.numpy as fnp
    >>> q, r = fnp.linalg.qr(fnp.array([[3.0, 0.0], [4.0, 5.0]]))
    >>> r.shape
    (2, 2)
    """
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    a = _float(a, "qr")
    if len(_shape(a)) < 2:
        raise LinAlgError(f"qr: expected a matrix or a stack of matrices, got shape {_shape(a)}")
    q, r = ll.qr(a, full_matrices=mode == "complete")
    return r if mode == "r" else QRResult(q, r)


# --------------------------------------------------------------------------
# Products: matrix_power, multi_dot, pinv
# --------------------------------------------------------------------------

@_numpy_when_concrete(np.linalg.matrix_power, 1)
def matrix_power(a, n):
    """Raise a square matrix (or stack) to the integer power ``n`` by repeated
    squaring; negative powers invert first.

    >>> import functad.numpy as fnp
    >>> fnp.linalg.matrix_power(fnp.array([[1.0, 1.0], [0.0, 1.0]]), 3)
    Array([[1., 3.],
           [0., 1.]])
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"matrix_power: the exponent must be an integer, got {n!r}")
    a = _arr(a)
    s = _square(a, "matrix_power")
    n = int(n)
    if n == 0:
        return core._wrap(np.broadcast_to(np.eye(s[-1], dtype=core.aval_of(a).dtype), s).copy())
    if n < 0:
        a = inv(a)
        n = -n
    result, base = None, a
    while True:
        if n & 1:
            result = base if result is None else ll.matmul(result, base)
        n >>= 1
        if not n:
            return result
        base = ll.matmul(base, base)


def multi_dot(arrays, *, out=None):
    """Product of two or more matrices in the cheapest association order (by
    dynamic programming over the chain).  The first array may be 1-D (a row
    vector) and the last 1-D (a column vector).

    >>> import functad.numpy as fnp
    >>> fnp.linalg.multi_dot([fnp.ones(3), fnp.ones((3, 4)), fnp.ones(4)])
    np.float64(12.0)
    """
    if out is not None:
        raise NotImplementedError("multi_dot: the out= argument is not supported")
    arrays = [_arr(x) for x in arrays]
    if len(arrays) < 2:
        raise ValueError("multi_dot: expected at least two arrays")
    first_vec, last_vec = len(_shape(arrays[0])) == 1, len(_shape(arrays[-1])) == 1
    if first_vec:
        arrays[0] = ls.reshape(arrays[0], (1, _shape(arrays[0])[0]))
    if last_vec:
        arrays[-1] = ls.reshape(arrays[-1], (_shape(arrays[-1])[0], 1))
    for i, x in enumerate(arrays):
        if len(_shape(x)) != 2:
            raise ValueError(f"multi_dot: array {i} has shape {_shape(x)}; all arrays must be "
                             "2-D except the first and last, which may be 1-D")
    for i in range(len(arrays) - 1):
        if _shape(arrays[i])[1] != _shape(arrays[i + 1])[0]:
            raise ValueError(f"multi_dot: shapes {_shape(arrays[i])} (array {i}) and "
                             f"{_shape(arrays[i + 1])} (array {i + 1}) are not aligned")
    dims = [_shape(arrays[0])[0]] + [_shape(x)[1] for x in arrays]
    order = _chain_order(tuple(dims))

    def build(i, j):
        if i == j:
            return arrays[i]
        k = order[i][j]
        return ll.matmul(build(i, k), build(k + 1, j))
    out = build(0, len(arrays) - 1)
    if first_vec and last_vec:
        return ls.reshape(out, ())
    if first_vec:
        return ls.reshape(out, (dims[-1],))
    if last_vec:
        return ls.reshape(out, (dims[0],))
    return out


def _chain_order(dims):
    """Split points of the cheapest parenthesization of a matrix chain."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def pinv(a, rcond=None, hermitian=False):
    """Moore-Penrose pseudo-inverse of a matrix (or stack) of full rank,
    ``inv(a.T a) a.T`` (tall) or ``a.T inv(a a.T)`` (wide); differentiable.

    Rank-deficient matrices are not supported (their pseudo-inverse is not
    differentiable): use ``numpy.linalg.pinv`` on concrete values instead.

    >>> import functad.numpy as fnp
    >>> fnp.linalg.pinv(fnp.array([[1.0], [1.0]]))
    Array([[0.5, 0.5]])
    """
    a = _float(a, "pinv")
    s = _shape(a)
    if len(s) < 2:
        raise ValueError(f"pinv: expected a matrix or a stack of matrices, got shape {s}")
    at = ll.swap_last(a)
    if s[-2] >= s[-1]:
        return ll.solve(ll.matmul(at, a), at)
    return ll.swap_last(ll.solve(ll.matmul(a, at), a))


# --------------------------------------------------------------------------
# Norms
# --------------------------------------------------------------------------

def _fnp():
    import functad.numpy as fnp
    return fnp


def _sum(x, axes):
    return lr.reduce_sum(x, tuple(sorted(axes)))


def _keep(out, shape, axes):
    return ls.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _safe_root(s, p=2.0):
    """``s ** (1/p)`` with a zero (not NaN or inf) derivative where ``s == 0``:
    the root is only evaluated on a safe value there (the double-``where`` trick)."""
    zero = ew.eq(s, 0.0)
    safe = ew.select(zero, 1.0, s)
    root = ew.sqrt(safe) if p == 2.0 else ew.pow(safe, 1.0 / p)
    return ew.select(zero, 0.0, root)


def _vector_norm(x, ord, axes, shape, keepdims):
    """Vector norm over ``axes`` (a tuple, usually of one axis)."""
    fnp = _fnp()
    if ord is None or ord == 2:
        out = _safe_root(_sum(ew.mul(x, x), axes))
    elif ord == np.inf:
        out = fnp.max(ew.abs(x), axis=axes)
    elif ord == -np.inf:
        out = fnp.min(ew.abs(x), axis=axes)
    elif ord == 0:
        out = _sum(ew.convert_element_type(ew.ne(x, 0.0), core.aval_of(x).dtype), axes)
    elif ord == 1:
        out = _sum(ew.abs(x), axes)
    elif isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors; use None, an int or "
                         "float, inf or -inf")
    else:
        p = float(ord)
        out = _safe_root(_sum(ew.pow(ew.abs(x), p), axes), p)
    return _keep(out, shape, axes) if keepdims else out


def _matrix_norm(x, ord, axes, shape, keepdims):
    fnp = _fnp()
    r, c = axes
    if ord in (None, "fro", "f"):
        out = _safe_root(_sum(ew.mul(x, x), axes))
    elif ord in (1, -1):
        col = fnp.sum(ew.abs(x), axis=r, keepdims=True)
        out = (fnp.max if ord == 1 else fnp.min)(col, axis=c, keepdims=True)
        out = ls.reshape(out, tuple(d for i, d in enumerate(shape) if i not in axes))
    elif ord in (np.inf, -np.inf):
        row = fnp.sum(ew.abs(x), axis=c, keepdims=True)
        out = (fnp.max if ord == np.inf else fnp.min)(row, axis=r, keepdims=True)
        out = ls.reshape(out, tuple(d for i, d in enumerate(shape) if i not in axes))
    elif ord in (2, -2, "nuc"):
        rest = tuple(i for i in range(len(shape)) if i not in axes)
        sv = svdvals(ls.transpose(x, rest + axes))
        last = len(rest)
        if ord == "nuc":
            out = lr.reduce_sum(sv, (last,))
        else:
            out = (fnp.max if ord == 2 else fnp.min)(sv, axis=last)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices; use 'fro', 'nuc', 1, "
                         "-1, 2, -2, inf or -inf")
    return _keep(out, shape, axes) if keepdims else out


@_numpy_when_concrete(np.linalg.norm, 1)
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm, as ``numpy.linalg.norm``.

    Parameters
    ----------
    x : array.
    ord : for vectors ``None``/2 (Euclidean), 1, ``inf``, ``-inf``, 0 (count
        of non-zeros) or any real ``p``; for matrices ``None``/``'fro'``,
        ``'nuc'`` (sum of singular values), 1, -1, 2, -2 (largest/smallest
        singular value), ``inf``, ``-inf``.
    axis : None (the whole array if ``ord`` is None, else a 1-D or 2-D
        array), an int (vector norms) or a pair of ints (matrix norms).
    keepdims : keep the reduced axes with size one.

    The Euclidean and Frobenius norms have a zero gradient at the origin
    (where the norm is not differentiable), never NaN.

    >>> import functad as fd, functad.numpy as fnp
    >>> float(fnp.linalg.norm(fnp.array([3.0, 4.0])))
    5.0
    >>> fd.grad(fnp.linalg.norm)(fnp.zeros(2))
    Array([0., 0.])
    """
    x = _float(x, "norm")
    shape = tuple(_shape(x))
    nd = len(shape)
    if axis is None:
        if ord is None:
            out = _safe_root(_sum(ew.mul(x, x), tuple(range(nd))))
            return ls.reshape(out, (1,) * nd) if keepdims else out
        if nd == 1:
            axis = (0,)
        elif nd == 2:
            axis = (0, 1)
        else:
            raise ValueError(f"norm: with ord={ord!r} and axis=None the input must be 1-D or "
                             f"2-D, got shape {shape}; pass axis")
    elif isinstance(axis, (int, np.integer)):
        axis = (axis,)
    axes = tuple(_norm_axis(a, nd, "norm", "an array") for a in axis)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, shape, keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError(f"norm: duplicate axes {axis!r}")
        return _matrix_norm(x, ord, axes, shape, keepdims)
    raise ValueError(f"norm: axis must be None, an int or a pair of ints, got {axis!r}")


@_numpy_when_concrete(np.linalg.vector_norm, 1)
def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """Vector norm over ``axis`` (all axes if None; several axes are treated as
    one flattened vector), as ``numpy.linalg.vector_norm``.

    >>> import functad.numpy as fnp
    >>> float(fnp.linalg.vector_norm(fnp.ones((2, 2)), ord=1))
    4.0
    """
    x = _float(x, "vector_norm")
    shape = tuple(_shape(x))
    nd = len(shape)
    if axis is None:
        axes = tuple(range(nd))
    elif isinstance(axis, (int, np.integer)):
        axes = (_norm_axis(axis, nd, "vector_norm", "an array"),)
    else:
        axes = tuple(sorted(_norm_axis(a, nd, "vector_norm", "an array") for a in axis))
        if len(set(axes)) != len(axes):
            raise ValueError(f"vector_norm: duplicate axes {axis!r}")
    return _vector_norm(x, ord, axes, shape, keepdims)


@_numpy_when_concrete(np.linalg.matrix_norm, 1)
def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """Matrix norm over the last two axes, as ``numpy.linalg.matrix_norm``.

    >>> import functad.numpy as fnp
    >>> float(fnp.linalg.matrix_norm(fnp.eye(2), ord=1))
    1.0
    """
    x = _float(x, "matrix_norm")
    shape = tuple(_shape(x))
    if len(shape) < 2:
        raise ValueError(f"matrix_norm: x must have at least 2 dimensions, got shape {shape}")
    return _matrix_norm(x, ord, (len(shape) - 2, len(shape) - 1), shape, keepdims)
