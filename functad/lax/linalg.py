"""Products and linear algebra primitives, each with all of its rules.

* ``dot_general`` — the one contraction primitive (``dot``, ``matmul``,
  ``tensordot`` and ``einsum`` all bottom out in it).  Its output layout is
  JAX's: batch dimensions, then the free dimensions of the left operand,
  then those of the right operand.  It is bilinear; its transpose with
  respect to either operand is another ``dot_general`` followed by a
  ``transpose``.
* ``diagonal`` / ``embed_diagonal`` — take a diagonal out of two axes, and its
  transpose, which writes a vector onto the diagonal of a matrix of zeros.
* ``cholesky``, ``triangular_solve``, ``solve``, ``inv``, ``det``,
  ``slogdet``, ``eigh``, ``svd``, ``qr`` — batched over leading dimensions (``...ij``) like
  NumPy.  Their JVP rules are written with functad primitives, so that they
  can be differentiated again.

Conventions for the functions that read one triangle of their input
(``cholesky``, ``eigh``): the primal reads only that triangle (as NumPy
does), and the JVP rule differentiates exactly that, i.e. the tangent seen is
``tril(t) + tril(t, -1).T`` (``lower=True``).  ``functad.numpy.linalg``
symmetrizes its input first, so users see symmetric derivatives.

``eigh`` assumes distinct eigenvalues: the derivative of the eigenvectors
divides by eigenvalue gaps ``w[j] - w[i]``; likewise ``svd`` assumes distinct,
non-zero singular values, and ``qr`` a full-rank input.

Batching rules (``vmap``) sit next to each primitive.  None of them loops
over the batch, and none moves data it does not have to:

* ``dot_general`` renumbers its dimension numbers around the batch axes.  A
  batched and an unbatched operand make one operand's free dimensions larger
  (the unbatched one is never broadcast); two batched operands pair their
  batch axes as a new ``dot_general`` batch dimension.
* ``diagonal`` renumbers its two axes; ``embed_diagonal`` leaves a batch axis
  alone unless it is the (last) diagonal axis.
* The matrix functions already take leading batch dimensions: a batch axis
  among those stays where it is, one among the two matrix axes moves in front.
* ``solve`` and ``triangular_solve`` with only ``b`` batched fold the batch
  into the columns of ``b`` (one factorization of ``a`` for the whole batch,
  no broadcasting of ``a``); only a batched ``a`` with an unbatched ``b``
  broadcasts ``b``, which the primitive needs to see with ``a``'s leading
  dimensions.
"""

from __future__ import annotations

from functools import lru_cache

import math

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear, is_undefined
from functad.batching import moveaxis

__all__ = ["dot_general", "diagonal", "embed_diagonal", "matmul", "cholesky",
           "triangular_solve", "solve", "inv", "det", "slogdet", "eigh", "svd", "qr", "swap_last"]


def _ew():
    from functad.lax import elementwise
    return elementwise


def _shapes():
    from functad.lax import shapes
    return shapes


def _ndim(x):
    return len(core.shape_of(x))


def _renumber(axes, bdim):
    """Example axes ``axes`` as axes of the batched operand, whose batch axis is
    ``bdim``: those at or after ``bdim`` move up by one."""
    return tuple(a + (a >= bdim) for a in axes)


def _leading(d, nd, core_dims=2):
    """Whether batch axis ``d`` of a batched operand of rank ``nd`` is one of the
    leading (stacking) dimensions, not one of the last ``core_dims``."""
    return d < nd - core_dims


# --------------------------------------------------------------------------
# dot_general
# --------------------------------------------------------------------------

dot_general_p = Primitive("dot_general")


def _dot_dtype(a, b):
    """Result dtype of a product of ``a`` and ``b`` (NumPy 2 / NEP 50 promotion)."""
    return _ew()._result_dtype(_ew().mul_p, (a, b), {})


@lru_cache(maxsize=4096)
def _dot_layout(dimension_numbers, xnd, ynd):
    """Free dimensions and the evaluation strategy for the given ranks."""
    (lc, rc), (lb, rb) = dimension_numbers
    lf = tuple(i for i in range(xnd) if i not in lc and i not in lb)
    rf = tuple(i for i in range(ynd) if i not in rc and i not in rb)
    if not lb:
        if not lc:
            return lf, rf, ("outer",)
        if lc == (xnd - 1,) and ynd in (1, 2) and rc == (0,):
            return lf, rf, ("dot",)
        return lf, rf, ("tensordot", (lc, rc))
    # Batched: permute (views) to (B..., free, contract) @ (B..., contract, free),
    # merge the free and the contracting dimensions, one np.matmul (BLAS per batch).
    px, py = lb + lf + lc, rb + rc + rf
    px = None if px == tuple(range(xnd)) else px
    py = None if py == tuple(range(ynd)) else py
    return lf, rf, ("matmul", px, py)


def _dot_general_impl(x, y, *, dimension_numbers):
    try:
        lf, rf, plan = _dot_layout(dimension_numbers, x.ndim, y.ndim)
    except AttributeError:      # Python scalars: NEP 50 weak promotion, as abstract eval does
        dt = _dot_dtype(core.aval_of(x), core.aval_of(y))
        x, y = np.asarray(x, dt), np.asarray(y, dt)
        lf, rf, plan = _dot_layout(dimension_numbers, x.ndim, y.ndim)
    kind = plan[0]
    if kind == "dot":
        return np.dot(x, y)
    if kind == "tensordot":
        return np.tensordot(x, y, axes=plan[1])
    if kind == "outer":
        return np.multiply.outer(x, y)
    _, px, py = plan
    bshape, nl, k, nr, out_shape = _matmul_sizes(dimension_numbers, x.shape, y.shape)
    xt = x if px is None else x.transpose(px)
    yt = y if py is None else y.transpose(py)
    if not dimension_numbers[0][0]:
        # nothing to contract: a batched outer product, which broadcasting does
        # ~4x faster than a stack of (nl, 1) @ (1, nr) matmuls; a side of size 1
        # (per-example gradients: a scalar times a vector) broadcasts in 2-D, faster still
        if nl == 1:
            out = np.multiply(xt.reshape(bshape + (1,)), yt.reshape(bshape + (nr,)))
        elif nr == 1:
            out = np.multiply(xt.reshape(bshape + (nl,)), yt.reshape(bshape + (1,)))
        else:
            out = np.multiply(xt.reshape(bshape + (nl, 1)), yt.reshape(bshape + (1, nr)))
    elif k and _broadcast_batch(yt, len(bshape)):
        # the same rhs for every batch entry (a parameter broadcast for per-example
        # gradients): one (B * nl, k) @ (k, nr) product instead of B small ones
        y0 = yt[(0,) * len(bshape)].reshape(k, nr)
        out = xt.reshape(-1, k) @ y0
    elif k and _broadcast_batch(xt, len(bshape)):
        x0 = xt[(0,) * len(bshape)].reshape(nl, k)
        out = np.swapaxes(np.swapaxes(yt.reshape(bshape + (k, nr)), -1, -2) @ x0.T, -1, -2)
    else:
        out = np.matmul(xt.reshape(bshape + (nl, k)), yt.reshape(bshape + (k, nr)))
    return out.reshape(out_shape)


@lru_cache(maxsize=4096)
def _matmul_sizes(dimension_numbers, xs, ys):
    """A batched ``dot_general`` as one ``np.matmul``: the batch shape, the
    free sizes of each side and the contracted size, and the output shape."""
    (lc, _), (lb, _) = dimension_numbers
    lf, rf, _ = _dot_layout(dimension_numbers, len(xs), len(ys))
    bshape = tuple(xs[i] for i in lb)
    fl = tuple(xs[i] for i in lf)
    fr = tuple(ys[i] for i in rf)
    return bshape, math.prod(fl), math.prod(xs[i] for i in lc), math.prod(fr), bshape + fl + fr


def _broadcast_batch(x, nb):
    """Whether the leading ``nb`` (batch) axes of non-empty ``x`` repeat one
    array (stride 0)."""
    if not x.size:
        return False
    strides = x.strides
    for i in range(nb):
        if strides[i]:
            return False
    return True


def _check_dims(name, dims, nd, shape, which):
    for d in dims:
        if not 0 <= d < nd:
            raise ValueError(f"dot_general: {name} dimension {d} is out of bounds for the {which} "
                             f"operand of shape {shape}")


def _dot_general_abstract_eval(x, y, *, dimension_numbers):
    (lc, rc), (lb, rb) = dimension_numbers
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ValueError(f"dot_general: the lhs and rhs must have as many contracting "
                         f"dimensions and as many batch dimensions as each other, got "
                         f"dimension_numbers={dimension_numbers} for shapes {x.shape} and {y.shape}")
    _check_dims("contracting", lc, x.ndim, x.shape, "lhs")
    _check_dims("batch", lb, x.ndim, x.shape, "lhs")
    _check_dims("contracting", rc, y.ndim, y.shape, "rhs")
    _check_dims("batch", rb, y.ndim, y.shape, "rhs")
    if len(set(lc + lb)) != len(lc + lb) or len(set(rc + rb)) != len(rc + rb):
        raise ValueError(f"dot_general: repeated dimension in dimension_numbers="
                         f"{dimension_numbers} (shapes {x.shape} and {y.shape})")
    for a, b in zip(lc, rc):
        if x.shape[a] != y.shape[b]:
            raise ValueError(f"dot_general: contracting dimension {a} of the lhs (shape {x.shape}) "
                             f"has size {x.shape[a]} but contracting dimension {b} of the rhs "
                             f"(shape {y.shape}) has size {y.shape[b]}")
    for a, b in zip(lb, rb):
        if x.shape[a] != y.shape[b]:
            raise ValueError(f"dot_general: batch dimension {a} of the lhs (shape {x.shape}) has "
                             f"size {x.shape[a]} but batch dimension {b} of the rhs (shape "
                             f"{y.shape}) has size {y.shape[b]}; broadcast the operands first")
    lf, rf, _ = _dot_layout(dimension_numbers, x.ndim, y.ndim)
    shape = (tuple(x.shape[i] for i in lb) + tuple(x.shape[i] for i in lf)
             + tuple(y.shape[i] for i in rf))
    dt = _dot_dtype(x, y)
    return core._cached_aval(shape, dt, x.weak_type and y.weak_type)


def _dot_general_jvp(primals, tangents, *, dimension_numbers):
    x, y = primals
    tx, ty = tangents
    out = dot_general_p.bind(x, y, dimension_numbers=dimension_numbers)
    t = None
    if tx is not None:
        t = dot_general_p.bind(tx, y, dimension_numbers=dimension_numbers)
    if ty is not None:
        t2 = dot_general_p.bind(x, ty, dimension_numbers=dimension_numbers)
        t = t2 if t is None else _ew().add(t, t2)
    if t is not None:
        dt = core.aval_of(out).dtype
        if core.aval_of(t).dtype != dt:
            t = _ew().convert_element_type(t, dt)
    return out, t


def _cast(x, dtype):
    return x if core.aval_of(x).dtype == dtype else _ew().convert_element_type(x, dtype)


def _dot_general_transpose(ct, x, y, *, dimension_numbers):
    """Cotangent of one operand: contract ``ct`` with the other operand over the
    other's free dimensions, then permute into the operand's layout.

    ``ct`` has layout (batch, lhs free, rhs free).  For the lhs,
    ``ct_x[b, lf, lc] = sum_rf ct[b, lf, rf] * y[b, rc, rf]``, whose
    ``dot_general`` layout is (batch, lf, rc in increasing order); the rhs is
    symmetric.
    """
    ux, uy = is_undefined(x), is_undefined(y)
    if ux and uy:
        raise NotImplementedError("dot_general is bilinear, not linear, in both operands at once")
    if ux:
        dn, pos = _transpose_plan(dimension_numbers, x.aval.ndim, len(core.shape_of(y)), 0)
        r = dot_general_p.bind(ct, y, dimension_numbers=dn)
        if pos is not None:
            r = _shapes().transpose(r, pos)
        return [_cast(r, x.aval.dtype), None]
    dn, pos = _transpose_plan(dimension_numbers, len(core.shape_of(x)), y.aval.ndim, 1)
    r = dot_general_p.bind(ct, x, dimension_numbers=dn)
    if pos is not None:
        r = _shapes().transpose(r, pos)
    return [None, _cast(r, y.aval.dtype)]


@lru_cache(maxsize=4096)
def _transpose_plan(dimension_numbers, xnd, ynd, which):
    """For the cotangent of operand ``which`` (0: lhs, 1: rhs): the dimension
    numbers contracting ``ct`` with the other operand, and the permutation
    from that product's layout to the operand's (None when it is the same)."""
    (lc, rc), (lb, rb) = dimension_numbers
    lf, rf, _ = _dot_layout(dimension_numbers, xnd, ynd)
    nb = len(lb)
    # ``ct`` has layout (batch, lhs free, rhs free): contract its other side's
    # free axes with the other operand's free axes
    if which == 0:
        mc, oc, mb, ob, mf, of, nd = lc, rc, lb, rb, lf, rf, xnd
        ct_of = tuple(range(nb + len(lf), nb + len(lf) + len(rf)))
    else:
        mc, oc, mb, ob, mf, of, nd = rc, lc, rb, lb, rf, lf, ynd
        ct_of = tuple(range(nb, nb + len(lf)))
    dn = ((ct_of, of), (tuple(range(nb)), ob))
    # the product's layout is (batch, my free, my contracted in the other's order)
    src = sorted(oc)
    pos = [0] * nd
    for i, a in enumerate(mb):
        pos[a] = i
    for j, a in enumerate(mf):
        pos[a] = nb + j
    for a, b in zip(mc, oc):
        pos[a] = nb + len(mf) + src.index(b)
    return dn, (None if pos == list(range(nd)) else tuple(pos))


dot_general_p.impl = _dot_general_impl
dot_general_p.explains = True
dot_general_p.abstract_eval = _dot_general_abstract_eval
dot_general_p.jvp = _dot_general_jvp
dot_general_p.transpose = _dot_general_transpose
dot_general_p.linear_in = (0, 1)


def _dot_general_batch(vals, dims, *, dimension_numbers):
    """Renumber the dimension numbers around the batch axes; nothing moves.

    Only one operand batched: its batch axis is one more free dimension of it,
    and lands in the output among that operand's free dimensions, in order
    (so ``x @ W`` for a batch of ``x`` is one bigger product with ``W`` as it
    is).  Both batched: the two batch axes become the first ``dot_general``
    batch dimension, so the output's batch axis is 0.
    """
    x, y = vals
    dn, out_dim = _batched_dimension_numbers(dimension_numbers, dims[0], dims[1],
                                             len(core.shape_of(x)), len(core.shape_of(y)))
    return dot_general_p.bind(x, y, dimension_numbers=dn), out_dim


@lru_cache(maxsize=4096)
def _batched_dimension_numbers(dimension_numbers, dx, dy, xnd, ynd):
    """The batching rule's dimension numbers and output batch axis (cached:
    they depend only on these arguments)."""
    (lc, rc), (lb, rb) = dimension_numbers
    if dx is not None:
        lc, lb = _renumber(lc, dx), _renumber(lb, dx)
    if dy is not None:
        rc, rb = _renumber(rc, dy), _renumber(rb, dy)
    if dx is not None and dy is not None:
        return ((lc, rc), ((dx,) + lb, (dy,) + rb)), 0
    dn = ((lc, rc), (lb, rb))
    lf, rf, _ = _dot_layout(dn, xnd, ynd)
    if dx is not None:
        return dn, len(lb) + lf.index(dx)
    return dn, len(lb) + len(lf) + rf.index(dy)


dot_general_p.batch = _dot_general_batch


def _axes(dims):
    return tuple(int(d) for d in dims)


def dot_general(x, y, dimension_numbers):
    """General tensor contraction, as ``jax.lax.dot_general``.

    Parameters
    ----------
    x, y : arrays.
    dimension_numbers : ``((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))``,
        tuples of non-negative axes.  Contracting dimensions are summed over
        in pairs; batch dimensions are paired without summing.

    Returns
    -------
    An array whose dimensions are the batch dimensions, then the remaining
    (free) dimensions of ``x``, then those of ``y``, each in order.

    Example
    -------
    >>> import numpy as np
    >>> from functad import lax
    >>> x, y = np.ones((5, 2, 3)), np.ones((5, 3, 4))
    >>> lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,)))).shape   # batched matmul
    (5, 2, 4)
    """
    (lc, rc), (lb, rb) = dimension_numbers
    dn = ((_axes(lc), _axes(rc)), (_axes(lb), _axes(rb)))
    return dot_general_p.bind(x, y, dimension_numbers=dn)


@lru_cache(maxsize=1024)
def _matmul_dn(nd):
    b = tuple(range(nd - 2))
    return ((nd - 1,), (nd - 2,)), (b, b)


def matmul(x, y):
    """``x @ y`` for arrays of equal rank >= 2 and equal batch dimensions
    (the strict form used by derivative rules; see ``functad.numpy.matmul``)."""
    return dot_general_p.bind(x, y, dimension_numbers=_matmul_dn(core.aval_of(x).ndim))


def swap_last(x):
    """Swap the last two axes (the matrix transpose of a stack of matrices)."""
    nd = core.aval_of(x).ndim
    return _shapes().transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


# --------------------------------------------------------------------------
# diagonal and its transpose, embed_diagonal
# --------------------------------------------------------------------------

def _diag_len(n, m, offset):
    return max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))


diagonal_p = Primitive("diagonal")
diagonal_p.impl = lambda x, *, offset, axis1, axis2: np.diagonal(x, offset, axis1, axis2)
diagonal_p.explains = True


def _diagonal_abstract_eval(x, *, offset, axis1, axis2):
    if x.ndim < 2:
        raise ValueError(f"diagonal: the input must have at least 2 dimensions, got shape {x.shape}")
    for a in (axis1, axis2):
        if not 0 <= a < x.ndim:
            raise ValueError(f"diagonal: axis {a} is out of bounds for an array of shape {x.shape}")
    if axis1 == axis2:
        raise ValueError(f"diagonal: axis1 and axis2 cannot be the same (both {axis1}), "
                         f"for an array of shape {x.shape}")
    rest = tuple(d for i, d in enumerate(x.shape) if i not in (axis1, axis2))
    d = _diag_len(x.shape[axis1], x.shape[axis2], offset)
    return core._cached_aval(rest + (d,), x.dtype, x.weak_type)


def _diagonal_transpose(ct, x, *, offset, axis1, axis2):
    shape = x.aval.shape
    nd = len(shape)
    full = embed_diagonal_p.bind(ct, offset=offset, n=shape[axis1], m=shape[axis2])
    # full has layout (other axes..., axis1, axis2): move them back in place
    pos, k = [0] * nd, 0
    for a in range(nd):
        if a == axis1:
            pos[a] = nd - 2
        elif a == axis2:
            pos[a] = nd - 1
        else:
            pos[a] = k
            k += 1
    return [_shapes().transpose(full, pos)]


diagonal_p.abstract_eval = _diagonal_abstract_eval
deflinear(diagonal_p, _diagonal_transpose)


def _diagonal_batch(vals, dims, *, offset, axis1, axis2):
    # the same two example axes of the batched operand; the batch axis stays
    # among the other axes, shifted down past axis1 and axis2 if they precede it
    (x,), (d,) = vals, dims
    a1, a2 = _renumber((axis1, axis2), d)
    out = diagonal_p.bind(x, offset=offset, axis1=a1, axis2=a2)
    return out, d - (a1 < d) - (a2 < d)


diagonal_p.batch = _diagonal_batch


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal of ``x`` over ``axis1`` and ``axis2``, as ``numpy.diagonal``:
    those two axes are removed and the diagonal is appended as the last axis.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.diagonal(np.arange(6.0).reshape(2, 3), offset=1)
    Array([1., 5.])
    """
    nd = core.aval_of(x).ndim
    if nd >= 2:
        a1, a2 = int(axis1), int(axis2)
        if -nd <= a1 < nd:
            a1 %= nd
        if -nd <= a2 < nd:
            a2 %= nd
    else:
        a1, a2 = int(axis1), int(axis2)
    return diagonal_p.bind(x, offset=int(offset), axis1=a1, axis2=a2)


embed_diagonal_p = Primitive("embed_diagonal")


def _embed_diagonal_impl(v, *, offset, n, m):
    v = np.asarray(v)
    out = np.zeros(v.shape[:-1] + (n, m), v.dtype)
    d = v.shape[-1]
    i = np.arange(d)
    out[..., i + max(0, -offset), i + max(0, offset)] = v
    return out


def _embed_diagonal_abstract_eval(v, *, offset, n, m):
    d = _diag_len(n, m, offset)
    if v.ndim < 1 or v.shape[-1] != d:
        raise ValueError(f"embed_diagonal: a ({n}, {m}) matrix has a diagonal of length {d} at "
                         f"offset {offset}, but the input has shape {v.shape}")
    return core._cached_aval(v.shape[:-1] + (n, m), v.dtype, v.weak_type)


embed_diagonal_p.impl = _embed_diagonal_impl
embed_diagonal_p.explains = True
embed_diagonal_p.abstract_eval = _embed_diagonal_abstract_eval


def _embed_diagonal_transpose(ct, v, *, offset, n, m):
    nd = core.aval_of(ct).ndim
    return [diagonal_p.bind(ct, offset=offset, axis1=nd - 2, axis2=nd - 1)]


deflinear(embed_diagonal_p, _embed_diagonal_transpose)


def _embed_diagonal_batch(vals, dims, *, offset, n, m):
    # every axis but the last is a stacking axis: a batch axis there stays put;
    # if the batch axis is the diagonal axis itself, it moves in front
    (v,), (d,) = vals, dims
    if not _leading(d, _ndim(v), 1):
        v, d = moveaxis(v, d, 0), 0
    return embed_diagonal_p.bind(v, offset=offset, n=n, m=m), d


embed_diagonal_p.batch = _embed_diagonal_batch


def embed_diagonal(v, n=None, m=None, offset=0):
    """Write the last axis of ``v`` onto the ``offset`` diagonal of ``(n, m)``
    matrices of zeros (the transpose of :func:`diagonal` over the last two axes).

    By default the matrices are square, just large enough to hold the diagonal.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.embed_diagonal(np.array([1.0, 2.0]), offset=1)
    Array([[0., 1., 0.],
           [0., 0., 2.],
           [0., 0., 0.]])
    """
    d = core.aval_of(v).shape[-1]
    if n is None:
        n = d + abs(int(offset))
    if m is None:
        m = n
    return embed_diagonal_p.bind(v, offset=int(offset), n=int(n), m=int(m))


# --------------------------------------------------------------------------
# Helpers shared by the linear algebra rules
# --------------------------------------------------------------------------

def _check_square(name, a):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name}: expected a square matrix or a stack of square matrices "
                         f"(shape (..., n, n)), got shape {a.shape}")


def _check_float(name, *avals):
    for a in avals:
        if a.dtype.kind not in "f":
            raise TypeError(f"{name}: expected floating-point arrays, got {a.dtype.name} "
                            f"(shape {a.shape}); cast with .astype(float) first")


def _check_square_float(name, a):
    """``a`` is a square floating-point matrix, or a stack of them."""
    _check_square(name, a)
    _check_float(name, a)


def _linear_system_aval(name, a, b):
    """The aval of ``x`` solving ``a @ x = b`` (or a triangular variant): ``a``
    square, ``b`` of shape ``(..., n, k)`` with ``a``'s leading dimensions, both
    floating-point."""
    _check_square(name, a)
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"{name}: a of shape {a.shape} needs b of shape "
                         f"{a.shape[:-1] + ('k',)} (same leading dimensions, b.shape[-2] == "
                         f"a.shape[-1]), got b of shape {b.shape}")
    return core._cached_aval(b.shape, _float_out(name, a, b))


def _minus(rhs, term):
    """``rhs - term``, where a ``None`` rhs is a symbolic zero."""
    return _ew().neg(term) if rhs is None else _ew().sub(rhs, term)


@lru_cache(maxsize=256)
def _tri_mask(n, k, dtype, lower):
    """Concrete (n, n) array: 1 on and below (lower) / above the k-th diagonal, else 0."""
    m = np.tri(n, n, k, dtype=bool) if lower else ~np.tri(n, n, k - 1, dtype=bool)
    out = m.astype(dtype)
    out.flags.writeable = False
    return core._wrap(out)


def _tri(x, lower, strict=False):
    """Keep one triangle of (a stack of) square matrices, as a product with a
    constant 0/1 mask (linear, so fine on tangents)."""
    a = core.aval_of(x)
    k = (-1 if lower else 1) if strict else 0
    return _ew().mul(x, _tri_mask(a.shape[-1], k, a.dtype, lower))


def _sym_from_triangle(t, lower):
    """The symmetric matrix that a function reading only one triangle sees:
    ``tril(t) + tril(t, -1).T`` (lower) or the same with ``triu``."""
    return _ew().add(_tri(t, lower), swap_last(_tri(t, lower, strict=True)))


def _trace(x):
    nd = core.aval_of(x).ndim
    from functad.lax.reductions import reduce_sum
    d = diagonal_p.bind(x, offset=0, axis1=nd - 2, axis2=nd - 1)
    return reduce_sum(d, (nd - 2,))


def _float_out(name, *avals):
    _check_float(name, *avals)
    dt = np.result_type(*[a.dtype for a in avals])
    return dt


def _stacked_matrix_batch(prim):
    """Batching rule of a one-operand primitive on ``(..., m, n)`` stacks whose
    outputs all keep the leading dimensions: a batch axis among the leading
    dimensions stays where it is (and is there in every output); one among the
    two matrix axes moves in front."""
    def rule(vals, dims, **params):
        (a,), (d,) = vals, dims
        if not _leading(d, _ndim(a)):
            a, d = moveaxis(a, d, 0), 0
        out = prim.bind(a, **params)
        return out, ([d] * len(out) if prim.multiple_results else d)
    rule.__name__ = f"_{prim.name}_batch"
    return rule


def _broadcast_at(x, axis, size):
    """Unbatched ``x`` with a new axis of length ``size`` at ``axis`` (a view)."""
    shape = tuple(core.shape_of(x))
    if axis:
        x = _shapes().reshape(x, shape[:axis] + (1,) + shape[axis:])
    return _shapes().broadcast_to(x, shape[:axis] + (size,) + shape[axis:])


def _linear_solve_batch(prim):
    """Batching rule of ``solve``-like primitives ``(a, b) -> x`` (``a`` of shape
    ``(..., n, n)``, ``b`` and ``x`` of shape ``(..., n, k)`` with the same
    leading dimensions), which act on the columns of ``b`` independently.

    * ``b`` batched only: the batch becomes more columns of ``b``, so ``a`` is
      factorized once for the whole batch and never broadcast;
    * ``a`` batched only: ``b`` must be broadcast (the primitive needs equal
      leading dimensions); the batch axis goes where ``a``'s is if that is a
      leading dimension (``a`` does not move), else in front;
    * both batched: aligned on a common axis, moving only one operand when
      either batch axis is a leading dimension already.
    """
    def rule(vals, dims, **params):
        a, b = vals
        da, db = dims
        sh = _shapes()
        if da is None:
            r = _ndim(b) - 1                   # rank of an example of b, (..., n, k)
            if db < r - 1:                     # to (..., n, k, B): next to the columns
                b, db = moveaxis(b, db, r), r
            shape = tuple(core.shape_of(b))    # (..., n, B, k) or (..., n, k, B)
            cols = sh.reshape(b, shape[:-2] + (shape[-2] * shape[-1],))
            return sh.reshape(prim.bind(a, cols, **params), shape), db
        nd = _ndim(a)
        if db is None:
            if not _leading(da, nd):
                a, da = moveaxis(a, da, 0), 0
            return prim.bind(a, _broadcast_at(b, da, core.shape_of(a)[da]), **params), da
        if _leading(da, nd):
            b, db = moveaxis(b, db, da), da
        elif _leading(db, nd):
            a, da = moveaxis(a, da, db), db
        else:
            a, b, da = moveaxis(a, da, 0), moveaxis(b, db, 0), 0
        return prim.bind(a, b, **params), da
    rule.__name__ = f"_{prim.name}_batch"
    return rule


# --------------------------------------------------------------------------
# cholesky
# --------------------------------------------------------------------------

cholesky_p = Primitive("cholesky")
cholesky_p.impl = lambda a: np.linalg.cholesky(a)


def _cholesky_abstract_eval(a):
    _check_square_float("cholesky", a)
    return core._cached_aval(a.shape, a.dtype)


def _cholesky_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    L = cholesky_p.bind(a)
    if t is None:
        return L, None
    # dA = L dL^T + dL L^T  =>  dL = L Phi(L^-1 dA L^-T), Phi = lower triangle, half diagonal
    dA = _sym_from_triangle(t, lower=True)
    tmp = triangular_solve(L, dA, lower=True)                     # L^-1 dA
    X = triangular_solve(L, swap_last(tmp), lower=True)           # L^-1 dA L^-T
    av = core.aval_of(a)
    phi = _phi_mask(av.shape[-1], av.dtype)
    return L, matmul(L, _ew().mul(X, phi))


@lru_cache(maxsize=256)
def _phi_mask(n, dtype):
    m = np.tril(np.ones((n, n), dtype), -1) + 0.5 * np.eye(n, dtype=dtype)
    m.flags.writeable = False
    return core._wrap(m)


cholesky_p.abstract_eval = _cholesky_abstract_eval
cholesky_p.jvp = _cholesky_jvp
cholesky_p.batch = _stacked_matrix_batch(cholesky_p)


def cholesky(a):
    """Lower Cholesky factor ``L`` of symmetric positive-definite ``a``
    (``a = L @ L.T``), reading only the lower triangle of ``a``.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.cholesky(np.array([[4.0, 2.0], [2.0, 5.0]]))
    Array([[2., 0.],
           [1., 2.]])
    """
    return cholesky_p.bind(a)


# --------------------------------------------------------------------------
# triangular_solve
# --------------------------------------------------------------------------

triangular_solve_p = Primitive("triangular_solve")


def _triangular_solve_impl(a, b, *, lower, transpose_a, unit_diagonal):
    a, b = np.asarray(a), np.asarray(b)
    dt = np.result_type(a, b)
    if a.ndim == 2:
        from scipy.linalg import solve_triangular
        out = solve_triangular(a, b, trans=1 if transpose_a else 0, lower=lower,
                               unit_diagonal=unit_diagonal, check_finite=False)
    else:   # a stack: one vectorized LU solve of the masked triangles
        n = a.shape[-1]
        m = np.tril(a) if lower else np.triu(a)
        if unit_diagonal:
            m = m.copy()
            m[..., np.arange(n), np.arange(n)] = 1
        if transpose_a:
            m = np.swapaxes(m, -1, -2)
        out = np.linalg.solve(m, b)
    return out.astype(dt, copy=False)


def _triangular_solve_abstract_eval(a, b, *, lower, transpose_a, unit_diagonal):
    return _linear_system_aval("triangular_solve", a, b)


def _op(x, transpose_a):
    return swap_last(x) if transpose_a else x


def _triangular_solve_jvp(primals, tangents, *, lower, transpose_a, unit_diagonal):
    a, b = primals
    ta, tb = tangents
    params = dict(lower=lower, transpose_a=transpose_a, unit_diagonal=unit_diagonal)
    x = triangular_solve_p.bind(a, b, **params)
    # op(a) x = b  =>  op(a) dx = db - op(da) x, with da restricted to the triangle read
    rhs = tb
    if ta is not None:
        da = _tri(ta, lower, strict=unit_diagonal)
        term = matmul(_op(da, transpose_a), x)
        rhs = _minus(rhs, term)
    if rhs is None:
        return x, None
    return x, _cast(triangular_solve_p.bind(a, rhs, **params), core.aval_of(x).dtype)


def _triangular_solve_transpose(ct, a, b, *, lower, transpose_a, unit_diagonal):
    if is_undefined(a):
        raise NotImplementedError("triangular_solve is linear in b only, not in a")
    out = triangular_solve_p.bind(a, ct, lower=lower, transpose_a=not transpose_a,
                                  unit_diagonal=unit_diagonal)
    return [None, _cast(out, b.aval.dtype)]


triangular_solve_p.impl = _triangular_solve_impl
triangular_solve_p.explains = True
triangular_solve_p.abstract_eval = _triangular_solve_abstract_eval
triangular_solve_p.jvp = _triangular_solve_jvp
triangular_solve_p.transpose = _triangular_solve_transpose
triangular_solve_p.linear_in = (1,)
triangular_solve_p.batch = _linear_solve_batch(triangular_solve_p)


def triangular_solve(a, b, *, left_side=True, lower=True, transpose_a=False,
                     unit_diagonal=False):
    """Solve a triangular system, reading only one triangle of ``a``.

    With ``left_side=True`` solves ``op(a) @ x = b`` for ``b`` of shape
    ``(..., n, k)``; with ``left_side=False`` solves ``x @ op(a) = b`` for ``b``
    of shape ``(..., k, n)``.  ``op(a)`` is ``a.T`` if ``transpose_a`` else ``a``.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.triangular_solve(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([[2.0], [3.0]]))
    Array([[1.],
           [2.]])
    """
    params = dict(lower=bool(lower), unit_diagonal=bool(unit_diagonal))
    if left_side:
        return triangular_solve_p.bind(a, b, transpose_a=bool(transpose_a), **params)
    # x op(a) = b  <=>  op(a)^T x^T = b^T
    return swap_last(triangular_solve_p.bind(a, swap_last(b), transpose_a=not transpose_a,
                                             **params))


# --------------------------------------------------------------------------
# solve and inv
# --------------------------------------------------------------------------

solve_p = Primitive("solve")


def _solve_impl(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.solve(a, b).astype(np.result_type(a, b), copy=False)


def _solve_abstract_eval(a, b):
    return _linear_system_aval("solve", a, b)


def _solve_jvp(primals, tangents):
    a, b = primals
    ta, tb = tangents
    x = solve_p.bind(a, b)
    rhs = tb
    if ta is not None:        # a dx = db - da x
        term = matmul(ta, x)
        rhs = _minus(rhs, term)
    if rhs is None:
        return x, None
    return x, _cast(solve_p.bind(a, rhs), core.aval_of(x).dtype)


def _solve_transpose(ct, a, b):
    if is_undefined(a):
        raise NotImplementedError("solve is linear in b only, not in a")
    return [None, _cast(solve_p.bind(swap_last(a), ct), b.aval.dtype)]


solve_p.impl = _solve_impl
solve_p.explains = True
solve_p.abstract_eval = _solve_abstract_eval
solve_p.jvp = _solve_jvp
solve_p.transpose = _solve_transpose
solve_p.linear_in = (1,)
solve_p.batch = _linear_solve_batch(solve_p)


def solve(a, b):
    """Solve ``a @ x = b`` for square ``a`` of shape ``(..., n, n)`` and ``b`` of
    shape ``(..., n, k)`` with the same leading dimensions.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.solve(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([[2.0], [2.0]]))
    Array([[1. ],
           [0.5]])
    """
    return solve_p.bind(a, b)


inv_p = Primitive("inv")
inv_p.impl = lambda a: np.linalg.inv(a)


def _inv_abstract_eval(a):
    _check_square_float("inv", a)
    return core._cached_aval(a.shape, a.dtype)


def _inv_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    ans = inv_p.bind(a)
    if t is None:
        return ans, None
    return ans, _ew().neg(matmul(ans, matmul(t, ans)))      # d(A^-1) = -A^-1 dA A^-1


inv_p.abstract_eval = _inv_abstract_eval
inv_p.jvp = _inv_jvp
inv_p.batch = _stacked_matrix_batch(inv_p)


def inv(a):
    """Inverse of (a stack of) square matrices.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.inv(np.array([[2.0, 0.0], [0.0, 4.0]]))
    Array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    return inv_p.bind(a)


# --------------------------------------------------------------------------
# det and slogdet
# --------------------------------------------------------------------------

det_p = Primitive("det")
det_p.impl = lambda a: np.linalg.det(a)


def _det_abstract_eval(a):
    _check_square_float("det", a)
    return core._cached_aval(a.shape[:-2], a.dtype)


def _det_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    ans = det_p.bind(a)
    if t is None:
        return ans, None
    # d det(A) = det(A) tr(A^-1 dA)   (A invertible)
    return ans, _ew().mul(ans, _trace(solve_p.bind(a, t)))


det_p.abstract_eval = _det_abstract_eval
det_p.jvp = _det_jvp
det_p.batch = _stacked_matrix_batch(det_p)


def det(a):
    """Determinant of (a stack of) square matrices.  Its derivative assumes an
    invertible matrix.

    >>> import numpy as np
    >>> from functad import lax
    >>> round(float(lax.det(np.array([[2.0, 1.0], [1.0, 3.0]]))), 12)
    5.0
    """
    return det_p.bind(a)


slogdet_p = Primitive("slogdet", multiple_results=True)
slogdet_p.impl = lambda a: tuple(np.linalg.slogdet(a))


def _slogdet_abstract_eval(a):
    _check_square_float("slogdet", a)
    out = core._cached_aval(a.shape[:-2], a.dtype)
    return [out, out]


def _slogdet_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    sign, logdet = slogdet_p.bind(a)
    if t is None:
        return [sign, logdet], [None, None]
    return [sign, logdet], [None, _trace(solve_p.bind(a, t))]   # d log|det A| = tr(A^-1 dA)


slogdet_p.abstract_eval = _slogdet_abstract_eval
slogdet_p.jvp = _slogdet_jvp
slogdet_p.batch = _stacked_matrix_batch(slogdet_p)


def slogdet(a):
    """Sign and natural log of the absolute determinant, ``[sign, logabsdet]``.
    The sign has a zero derivative.

    >>> import numpy as np
    >>> from functad import lax
    >>> [float(v) for v in lax.slogdet(np.array([[-2.0, 0.0], [0.0, 1.0]]))]
    [-1.0, 0.6931471805599453]
    """
    return slogdet_p.bind(a)


# --------------------------------------------------------------------------
# eigh
# --------------------------------------------------------------------------

eigh_p = Primitive("eigh", multiple_results=True)
eigh_p.impl = lambda a, *, lower: tuple(np.linalg.eigh(a, UPLO="L" if lower else "U"))


def _eigh_abstract_eval(a, *, lower):
    _check_square_float("eigh", a)
    return [core._cached_aval(a.shape[:-1], a.dtype), core._cached_aval(a.shape, a.dtype)]


@lru_cache(maxsize=256)
def _eye_bool(n):
    m = np.eye(n, dtype=bool)
    m.flags.writeable = False
    return core._wrap(m)


def _eigh_jvp(primals, tangents, *, lower):
    (a,), (t,) = primals, tangents
    w, v = eigh_p.bind(a, lower=lower)
    if t is None:
        return [w, v], [None, None]
    ew, sh = _ew(), _shapes()
    av = core.aval_of(a)
    n = av.shape[-1]
    batch = av.shape[:-2]
    dA = _sym_from_triangle(t, lower)
    vt_da_v = matmul(swap_last(v), matmul(dA, v))                # V^T dA V
    dw = diagonal_p.bind(vt_da_v, offset=0, axis1=av.ndim - 2, axis2=av.ndim - 1)
    # F[i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it (distinct eigenvalues)
    gap = ew.sub(sh.reshape(w, batch + (1, n)), sh.reshape(w, batch + (n, 1)))
    eye = _eye_bool(n)
    F = ew.select(eye, 0.0, ew.reciprocal(ew.select(eye, 1.0, gap)))
    dv = matmul(v, ew.mul(F, vt_da_v))
    return [w, v], [_cast(dw, av.dtype), _cast(dv, av.dtype)]


eigh_p.abstract_eval = _eigh_abstract_eval
eigh_p.jvp = _eigh_jvp
eigh_p.batch = _stacked_matrix_batch(eigh_p)


def eigh(a, lower=True):
    """Eigenvalues (ascending) and eigenvectors (columns) of symmetric ``a``,
    reading only its lower (or upper) triangle: ``[w, v]``.

    The derivative assumes distinct eigenvalues.

    >>> import numpy as np
    >>> from functad import lax
    >>> w, v = lax.eigh(np.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> w
    Array([1., 2.])
    """
    return eigh_p.bind(a, lower=bool(lower))


# --------------------------------------------------------------------------
# svd
# --------------------------------------------------------------------------

svd_p = Primitive("svd", multiple_results=True)


def _svd_impl(a, *, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return u, s, vh


def _svd_abstract_eval(a, *, full_matrices):
    if a.ndim < 2:
        raise ValueError(f"svd: expected a matrix or a stack of matrices, got shape {a.shape}")
    _check_float("svd", a)
    *batch, m, n = a.shape
    batch, k = tuple(batch), min(m, n)
    um, vn = (m, n) if full_matrices else (k, k)
    return [core._cached_aval(batch + (m, um), a.dtype), core._cached_aval(batch + (k,), a.dtype),
            core._cached_aval(batch + (vn, n), a.dtype)]


def _svd_jvp(primals, tangents, *, full_matrices):
    (a,), (t,) = primals, tangents
    u, s, vh = svd_p.bind(a, full_matrices=full_matrices)
    if t is None:
        return [u, s, vh], [None, None, None]
    av = core.aval_of(a)
    *batch, m, n = av.shape
    batch, k = tuple(batch), min(m, n)
    if full_matrices and m != n:
        raise NotImplementedError(
            f"svd: the derivative with full_matrices=True is only defined for square matrices "
            f"(the extra singular vectors are not unique); got shape {av.shape}. Use "
            "full_matrices=False.")
    ew, sh = _ew(), _shapes()
    v = swap_last(vh)
    da_v = matmul(t, v)                                   # dA V         (m, k)
    dp = matmul(swap_last(u), da_v)                       # U^T dA V     (k, k)
    ds = diagonal_p.bind(dp, offset=0, axis1=av.ndim - 2, axis2=av.ndim - 1)
    s_row = sh.reshape(s, batch + (1, k))
    s_col = sh.reshape(s, batch + (k, 1))
    # F[i, j] = 1 / (s_j^2 - s_i^2) off the diagonal (distinct singular values)
    s2 = ew.mul(s, s)
    gap = ew.sub(sh.reshape(s2, batch + (1, k)), sh.reshape(s2, batch + (k, 1)))
    eye = _eye_bool(k)
    F = ew.select(eye, 0.0, ew.reciprocal(ew.select(eye, 1.0, gap)))
    dpt = swap_last(dp)
    du = matmul(u, ew.mul(F, ew.add(ew.mul(dp, s_row), ew.mul(s_col, dpt))))
    dv = matmul(v, ew.mul(F, ew.add(ew.mul(s_col, dp), ew.mul(dpt, s_row))))
    inv_s = ew.reciprocal(s_row)
    if m > k:       # the part of dA V outside the span of U
        du = ew.add(du, ew.mul(ew.sub(da_v, matmul(u, dp)), inv_s))
    if n > k:       # the part of dA^T U outside the span of V
        dat_u = matmul(swap_last(t), u)
        dv = ew.add(dv, ew.mul(ew.sub(dat_u, matmul(v, dpt)), inv_s))
    return [u, s, vh], [_cast(du, av.dtype), _cast(ds, av.dtype), _cast(swap_last(dv), av.dtype)]


svd_p.impl = _svd_impl
svd_p.abstract_eval = _svd_abstract_eval
svd_p.jvp = _svd_jvp
svd_p.batch = _stacked_matrix_batch(svd_p)


def svd(a, full_matrices=False):
    """Singular value decomposition ``a = u @ (s[..., None] * vh)``, as
    ``[u, s, vh]`` with ``s`` descending.

    The derivative assumes distinct, non-zero singular values, and needs
    ``full_matrices=False`` unless ``a`` is square.

    >>> import numpy as np
    >>> from functad import lax
    >>> lax.svd(np.array([[3.0, 0.0], [0.0, -2.0]]))[1]
    Array([3., 2.])
    """
    return svd_p.bind(a, full_matrices=bool(full_matrices))


# --------------------------------------------------------------------------
# qr
# --------------------------------------------------------------------------

qr_p = Primitive("qr", multiple_results=True)
qr_p.impl = lambda a, *, full_matrices: tuple(
    np.linalg.qr(a, mode="complete" if full_matrices else "reduced"))


def _qr_abstract_eval(a, *, full_matrices):
    if a.ndim < 2:
        raise ValueError(f"qr: expected a matrix or a stack of matrices, got shape {a.shape}")
    _check_float("qr", a)
    *batch, m, n = a.shape
    batch, k = tuple(batch), min(m, n)
    qn = m if full_matrices else k
    return [core._cached_aval(batch + (m, qn), a.dtype), core._cached_aval(batch + (qn, n), a.dtype)]


def _qr_square_or_tall_jvp(q, r, t):
    """JVP of reduced QR for m >= n (R square and invertible):
    with ``X = Q^T dA R^-1``, ``dQ = Q (Omega - X) + dA R^-1`` and
    ``dR = (X - Omega) R``, where ``Omega`` is the skew-symmetric matrix made
    from the strictly lower triangle of ``X``."""
    ew = _ew()
    da_rinv = triangular_solve(r, t, left_side=False, lower=False)     # dA R^-1
    x = matmul(swap_last(q), da_rinv)
    low = _tri(x, lower=True, strict=True)
    omega = ew.sub(low, swap_last(low))
    dq = ew.add(matmul(q, ew.sub(omega, x)), da_rinv)
    dr = matmul(ew.sub(x, omega), r)
    return dq, dr


def _qr_jvp(primals, tangents, *, full_matrices):
    (a,), (t,) = primals, tangents
    q, r = qr_p.bind(a, full_matrices=full_matrices)
    if t is None:
        return [q, r], [None, None]
    av = core.aval_of(a)
    m, n = av.shape[-2:]
    if m > n and full_matrices:
        raise NotImplementedError(
            f"qr: the derivative of the complete decomposition of a tall matrix (shape "
            f"{av.shape}) is not unique; use mode='reduced'")
    if m >= n:
        dq, dr = _qr_square_or_tall_jvp(q, r, t)
    else:
        # wide: A = [X | Y] with X square; Q R_x = X and R = [R_x | Q^T Y]
        sh = _shapes()
        nd = av.ndim
        x_t = sh.slice_in_dim(t, 0, m, axis=nd - 1)
        y_t = sh.slice_in_dim(t, m, n, axis=nd - 1)
        y = sh.slice_in_dim(a, m, n, axis=nd - 1)
        r_x = sh.slice_in_dim(r, 0, m, axis=nd - 1)
        dq, dr_x = _qr_square_or_tall_jvp(q, r_x, x_t)
        dr_y = _ew().add(matmul(swap_last(dq), y), matmul(swap_last(q), y_t))
        dr = sh.concatenate([dr_x, dr_y], nd - 1)
    return [q, r], [_cast(dq, av.dtype), _cast(dr, av.dtype)]


qr_p.abstract_eval = _qr_abstract_eval
qr_p.jvp = _qr_jvp
qr_p.batch = _stacked_matrix_batch(qr_p)


def qr(a, full_matrices=False):
    """QR decomposition ``a = q @ r`` (``q`` with orthonormal columns, ``r``
    upper triangular), as ``[q, r]``; the signs follow LAPACK, as in NumPy.

    The derivative needs ``r``'s leading square block invertible (full rank).

    >>> import numpy as np
    >>> from functad import lax
    >>> q, r = lax.qr(np.array([[1.0, 2.0], [1.0, 0.0]]))
    >>> bool(np.allclose(q @ r, [[1.0, 2.0], [1.0, 0.0]]))
    True
    """
    return qr_p.bind(a, full_matrices=bool(full_matrices))



# --------------------------------------------------------------------------
# Numba lowering rules (see functad.lowering).  The helpers they call are in
# the lax.linalg section of functad.numba_runtime; every array handed to one
# goes through ``_rt.as_any_layout``, so that each helper is compiled once per
# dtype, whatever the layouts of a program's arrays.
#
# dot_general is canonicalized "to matmul": each operand's axes are permuted
# to (batch, free, contracting) -- (batch, contracting, free) for the right
# operand -- and each group merged into one axis, giving stacks x (B, M, K)
# and y (B, K, N).  When the operand's axes are in that order, or in the
# order with the last two groups swapped (a transposed matrix, which BLAS
# takes as it is), this is a view; only other orders are copied.  Generated
# code makes views with ``.T`` and ``np.newaxis`` and merges or permutes
# axes with a helper, never with np.transpose(x, axes) or reshape, whose
# typing costs seconds in every process that compiles a program.  Products
# of floats go to BLAS (one call per stack element, into a preallocated
# output), of integers and booleans to loops; so do products without a
# contraction (outer products, scalar operands), as NumPy computes them.
#
# The matrix functions hand (B, m, n) stacks and preallocated outputs to a
# helper that calls the LAPACK routine NumPy calls, as NumPy does (in
# float64, float32 included), so that results equal eager ones.
# --------------------------------------------------------------------------

_BLAS_DTYPES = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.complex64,
                                               np.complex128))


def _size(dims):
    return int(np.prod(tuple(dims), dtype=np.int64))


def _merge(ctx, x, perm, shape):
    """``x`` (wrapped for a helper) with its axes permuted by ``perm`` and
    reshaped to ``shape``: a view if C-contiguous, else a copy, by a helper
    (np.transpose(x, axes) and reshape are slow to compile)."""
    any_layout = ctx.rt("as_any_layout")
    return f"{ctx.rt('permuted')}({any_layout}({x}), {tuple(perm)}, {tuple(shape)})"


def _grouped(ctx, x, shape, groups):
    """``(expr, swapped)``: the array ``x`` (of ``shape``) with its axes
    permuted to the concatenation of ``groups`` (1 to 3 of them) and each
    group merged into one axis (an empty group is a new axis of length 1).

    A view when the axes are in that order (indexing with ``np.newaxis``
    when nothing is merged) or in the order with the last two groups swapped:
    for two groups the expression is then a transposed view (``.T``), for
    three ``swapped`` is true and the expression has the last two axes
    exchanged (the helpers transpose each matrix).  Any other order is copied.
    """
    groups = [tuple(g) for g in groups]
    ident = tuple(range(len(shape)))
    target = tuple(_size(shape[i] for i in g) for g in groups)

    def in_order(gs, tgt, base=x):
        if all(len(g) <= 1 for g in gs):        # nothing merged: index (cheap to compile)
            if len(shape) == len(tgt):
                return base
            return f"{base}[{', '.join(':' if g else 'np.newaxis' for g in gs)}]"
        return _merge(ctx, base, ident, tgt)

    order = sum(groups, ())
    if order == ident:
        return in_order(groups, target), False
    swapped = groups[:-2] + groups[-1:] + groups[-2:-1]
    if len(groups) >= 2 and sum(swapped, ()) == ident:
        tgt = target[:-2] + (target[-1], target[-2])
        if len(groups) == 2:
            return f"{in_order(swapped, tgt)}.T", False
        if len(shape) == 2 and not groups[0]:   # (1, M, K) from a transposed matrix
            return in_order(groups, target, f"{x}.T"), False
        return in_order(swapped, tgt), True
    return _merge(ctx, x, order, target), False


def _from_stack(ctx, name, stack_shape, shape, present=None):
    """The array ``name`` of ``stack_shape`` as ``shape`` (a scalar for rank
    0): by indexing when ``shape`` is ``stack_shape`` without the axes that
    are not ``present`` (by default, a leading axis of length 1), else by a
    reshape (a view)."""
    stack_shape, shape = tuple(stack_shape), tuple(shape)
    if stack_shape == shape:
        return name
    if present is None:
        present = [i > 0 or d != 1 for i, d in enumerate(stack_shape)]
    if tuple(d for d, p in zip(stack_shape, present) if p) == shape:
        return f"{name}[{', '.join(':' if p else '0' for p in present)}]"
    return _merge(ctx, name, range(len(stack_shape)), shape)


def _alloc(ctx, shape, dtype, prefix):
    name = ctx.fresh(prefix)
    ctx.emit(f"{name} = np.empty({tuple(shape)}, {ctx.dtype(dtype)})")
    return name


def _dot_general_lower(ctx, x, y, *, dimension_numbers):
    from functad.lowering import LoweringError
    (lc, rc), (lb, rb) = dimension_numbers
    xa, ya = ctx.in_avals
    out = ctx.out_avals[0]
    od, shape = out.dtype, tuple(out.shape)
    dt = ctx.dtype(od)
    xs, ys = tuple(xa.shape), tuple(ya.shape)
    if od.kind not in "biu" and od not in _BLAS_DTYPES:
        raise LoweringError(f"dot_general: no Numba lowering for {od.name} products")
    # operands in the output dtype (NumPy converts both before multiplying)
    x = (x if xa.dtype == od else f"{x}.astype({dt})") if xs else ctx.cast(x, xa.dtype, od)
    y = (y if ya.dtype == od else f"{y}.astype({dt})") if ys else ctx.cast(y, ya.dtype, od)
    if not xs and not ys:
        return f"({x} and {y})" if od.kind == "b" else f"{dt}(({x}) * ({y}))"
    lf, rf, _ = _dot_layout(dimension_numbers, len(xs), len(ys))
    nb, k = _size(xs[i] for i in lb), _size(xs[i] for i in lc)
    m, n = _size(xs[i] for i in lf), _size(ys[i] for i in rf)
    if _size(shape) == 0 or (lc and k == 0):        # nothing to compute, or empty sums
        return f"np.zeros({shape}, {dt})" if shape else ctx.literal(0, od)
    any_layout = ctx.rt("as_any_layout")
    if lc and not lb and od in _BLAS_DTYPES:
        # one product by BLAS, of matrices (M, K) @ (K, N) or vectors
        xm = f"{any_layout}({_grouped(ctx, x, xs, [lf, lc] if lf else [lc])[0]})"
        ym = f"{any_layout}({_grouped(ctx, y, ys, [rc, rf] if rf else [rc])[0]})"
        if not lf and not rf:
            return f"{ctx.rt('dot_blas_vv')}({xm}, {ym})"
        if lf and rf:
            o, call, oshape = _alloc(ctx, (m, n), od, "dot"), "dot_blas_mm", (m, n)
        else:
            o, oshape = _alloc(ctx, (m if lf else n,), od, "dot"), (m if lf else n,)
            call = "dot_blas_mv"
            if not lf:          # x @ Y = Y.T @ x
                xm, ym = f"{any_layout}({_grouped(ctx, y, ys, [rf, rc])[0]})", xm
        ctx.emit(f"{ctx.rt(call)}({xm}, {ym}, {o})")
        return _from_stack(ctx, o, oshape, shape)
    # stacks x (B, M, K) and y (B, K, N): a batch, integers, booleans, outer products
    xm, tx = _grouped(ctx, x, xs, [lb, lf, lc]) if xs else (f"np.full((1, 1, 1), {x})", False)
    ym, ty = _grouped(ctx, y, ys, [rb, rc, rf]) if ys else (f"np.full((1, 1, 1), {y})", False)
    stack = (nb, m, n)
    o = _alloc(ctx, stack, od, "dot")
    if not lc:              # no sum: out[b, i, j] = x[b, i] * y[b, j] (never swapped)
        ctx.emit(f"{ctx.rt('dot_outer')}({any_layout}({xm}), {any_layout}({ym}), {o})")
    else:
        helper = ("dot_blas" if od in _BLAS_DTYPES else
                  "dot_bool" if od.kind == "b" else "dot_int")
        ctx.emit(f"{ctx.rt(helper)}({any_layout}({xm}), {any_layout}({ym}), {tx}, {ty}, {o})")
    return _from_stack(ctx, o, stack, shape, [bool(lb), bool(lf), bool(rf)])


dot_general_p.lower = _dot_general_lower


def _diagonal_lower(ctx, x, *, offset, axis1, axis2):
    shape = ctx.in_avals[0].shape
    out = ctx.out_avals[0]
    rest = [a for a in range(len(shape)) if a not in (axis1, axis2)]
    o = _alloc(ctx, out.shape, out.dtype, "diag")
    idx = [ctx.fresh("i") for _ in rest]
    kk = ctx.fresh("k")
    src = []
    for a in range(len(shape)):
        if a in (axis1, axis2):
            shift = max(0, -offset) if a == axis1 else max(0, offset)
            src.append(f"{kk} + {shift}" if shift else kk)
        else:
            src.append(idx[rest.index(a)])
    loops = [f"for {i} in range({shape[a]}):" for i, a in zip(idx, rest)]
    loops.append(f"for {kk} in range({out.shape[-1]}):")
    body = f"{o}[{', '.join(idx + [kk])}] = {x}[{', '.join(src)}]"
    ctx.emit("\n".join("    " * d + line for d, line in enumerate(loops + [body])))
    return o


diagonal_p.lower = _diagonal_lower


def _embed_diagonal_lower(ctx, v, *, offset, n, m):
    vshape = ctx.in_avals[0].shape
    out = ctx.out_avals[0]
    o = ctx.fresh("emb")
    ctx.emit(f"{o} = np.zeros({tuple(out.shape)}, {ctx.dtype(out.dtype)})")
    idx = [ctx.fresh("i") for _ in vshape[:-1]]
    kk = ctx.fresh("k")
    r0, c0 = max(0, -offset), max(0, offset)
    row = f"{kk} + {r0}" if r0 else kk
    col = f"{kk} + {c0}" if c0 else kk
    loops = [f"for {i} in range({d}):" for i, d in zip(idx, vshape[:-1])]
    loops.append(f"for {kk} in range({vshape[-1]}):")
    body = f"{o}[{', '.join(idx + [row, col])}] = {v}[{', '.join(idx + [kk])}]"
    ctx.emit("\n".join("    " * d + line for d, line in enumerate(loops + [body])))
    return o


embed_diagonal_p.lower = _embed_diagonal_lower


def _matrix_stack(ctx, x, aval):
    """A (B, m, n) stack of the matrices ``x``, of any layout."""
    *batch, rows, cols = aval.shape
    if not batch:
        x = f"{x}[np.newaxis]"
    elif len(batch) > 1:
        x = _merge(ctx, x, range(len(aval.shape)), (_size(batch), rows, cols))
    return f"{ctx.rt('as_any_layout')}({x})"


def _lapack_lower(helper, out_shapes, *flags):
    """Rule calling ``helper(stacks..., flags..., outputs...)`` with (B, ...)
    outputs of the jaxpr's dtypes and of the per-matrix shapes
    ``out_shapes(*in_avals, **params)``."""
    def rule(ctx, *args, **params):
        nb = _size(ctx.in_avals[0].shape[:-2])
        outs = []
        for o_aval, core_shape in zip(ctx.out_avals, out_shapes(*ctx.in_avals, **params)):
            stack = (nb,) + tuple(core_shape)
            outs.append((_alloc(ctx, stack, o_aval.dtype, "la"), stack, o_aval.shape))
        call = ([_matrix_stack(ctx, a, av) for a, av in zip(args, ctx.in_avals)]
                + [repr(bool(params[f])) for f in flags] + [o for o, _, _ in outs])
        ctx.emit(f"{ctx.rt(helper)}({', '.join(call)})")
        results = [_from_stack(ctx, o, stack, shape) for o, stack, shape in outs]
        return results[0] if len(results) == 1 else f"({''.join(r + ', ' for r in results)})"
    rule.__name__ = f"_{helper}_lower"
    return rule


def _svd_core_shapes(a, full_matrices):
    m, n = a.shape[-2:]
    k = min(m, n)
    um, vn = (m, n) if full_matrices else (k, k)
    return [(m, um), (k,), (vn, n)]


def _qr_core_shapes(a, full_matrices):
    m, n = a.shape[-2:]
    qn = m if full_matrices else min(m, n)
    return [(m, qn), (qn, n)]


cholesky_p.lower = _lapack_lower("la_cholesky", lambda a: [a.shape[-2:]])
inv_p.lower = _lapack_lower("la_inv", lambda a: [a.shape[-2:]])
det_p.lower = _lapack_lower("la_det", lambda a: [()])
slogdet_p.lower = _lapack_lower("la_slogdet", lambda a: [(), ()])
eigh_p.lower = _lapack_lower("la_eigh", lambda a, lower: [a.shape[-1:], a.shape[-2:]], "lower")
svd_p.lower = _lapack_lower("la_svd", _svd_core_shapes, "full_matrices")
qr_p.lower = _lapack_lower("la_qr", _qr_core_shapes)          # the mode is q's shape
solve_p.lower = _lapack_lower("la_solve", lambda a, b: [b.shape[-2:]])
triangular_solve_p.lower = _lapack_lower(
    "la_triangular_solve", lambda a, b, **_: [b.shape[-2:]], "lower", "transpose_a",
    "unit_diagonal")
