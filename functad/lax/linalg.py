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
  ``slogdet``, ``eigh`` — batched over leading dimensions (``...ij``) like
  NumPy.  Their JVP rules are written with functad primitives, so that they
  can be differentiated again.

Conventions for the functions that read one triangle of their input
(``cholesky``, ``eigh``): the primal reads only that triangle (as NumPy
does), and the JVP rule differentiates exactly that, i.e. the tangent seen is
``tril(t) + tril(t, -1).T`` (``lower=True``).  ``functad.numpy.linalg``
symmetrizes its input first, so users see symmetric derivatives.

``eigh`` assumes distinct eigenvalues: the derivative of the eigenvectors
divides by eigenvalue gaps ``w[j] - w[i]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear, is_undefined

__all__ = ["dot_general", "diagonal", "embed_diagonal", "matmul", "swap_last"]


def _ew():
    from functad.lax import elementwise
    return elementwise


def _shapes():
    from functad.lax import shapes
    return shapes


def _checked_impl(prim, impl):
    """``impl`` that, when NumPy rejects the inputs, re-raises the clearer error
    of the primitive's abstract evaluation (free on the success path)."""
    def run(*args, **params):
        try:
            return impl(*args, **params)
        except np.linalg.LinAlgError:
            raise
        except (ValueError, TypeError, IndexError) as e:
            try:
                prim.abstract_eval(*map(core.aval_of, args), **params)
            except (ValueError, TypeError) as clear:
                raise clear from None
            raise e
    run.__name__ = f"{prim.name}_impl"
    return run


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
    (lc, rc), (lb, _) = dimension_numbers
    xs, ys = x.shape, y.shape
    bshape = tuple(xs[i] for i in lb)
    fl = tuple(xs[i] for i in lf)
    fr = tuple(ys[i] for i in rf)
    k = 1
    for i in lc:
        k *= xs[i]
    xt = x if px is None else x.transpose(px)
    yt = y if py is None else y.transpose(py)
    nl, nr = int(np.prod(fl, dtype=np.int64)), int(np.prod(fr, dtype=np.int64))
    out = np.matmul(xt.reshape(bshape + (nl, k)), yt.reshape(bshape + (k, nr)))
    return out.reshape(bshape + fl + fr)


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
    (lc, rc), (lb, rb) = dimension_numbers
    if is_undefined(x) and is_undefined(y):
        raise NotImplementedError("dot_general is bilinear, not linear, in both operands at once")
    nb = len(lb)
    batch = tuple(range(nb))
    if is_undefined(x):
        xnd, ynd = x.aval.ndim, core.aval_of(y).ndim
        lf, rf, _ = _dot_layout(dimension_numbers, xnd, ynd)
        nlf = len(lf)
        ct_rf = tuple(range(nb + nlf, nb + nlf + len(rf)))
        r = dot_general_p.bind(ct, y, dimension_numbers=((ct_rf, rf), (batch, rb)))
        src = sorted(rc)
        pos = [0] * xnd
        for i, a in enumerate(lb):
            pos[a] = i
        for j, a in enumerate(lf):
            pos[a] = nb + j
        for a, b in zip(lc, rc):
            pos[a] = nb + nlf + src.index(b)
        return [_cast(_shapes().transpose(r, pos), x.aval.dtype), None]
    xnd, ynd = core.aval_of(x).ndim, y.aval.ndim
    lf, rf, _ = _dot_layout(dimension_numbers, xnd, ynd)
    nlf, nrf = len(lf), len(rf)
    ct_lf = tuple(range(nb, nb + nlf))
    r = dot_general_p.bind(ct, x, dimension_numbers=((ct_lf, lf), (batch, lb)))
    src = sorted(lc)
    pos = [0] * ynd
    for i, b in enumerate(rb):
        pos[b] = i
    for j, b in enumerate(rf):
        pos[b] = nb + j
    for a, b in zip(lc, rc):
        pos[b] = nb + nrf + src.index(a)
    return [None, _cast(_shapes().transpose(r, pos), y.aval.dtype)]


dot_general_p.impl = _checked_impl(dot_general_p, _dot_general_impl)
dot_general_p.abstract_eval = _dot_general_abstract_eval
dot_general_p.jvp = _dot_general_jvp
dot_general_p.transpose = _dot_general_transpose
dot_general_p.linear = True


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
embed_diagonal_p.abstract_eval = _embed_diagonal_abstract_eval


def _embed_diagonal_transpose(ct, v, *, offset, n, m):
    nd = core.aval_of(ct).ndim
    return [diagonal_p.bind(ct, offset=offset, axis1=nd - 2, axis2=nd - 1)]


deflinear(embed_diagonal_p, _embed_diagonal_transpose)


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
