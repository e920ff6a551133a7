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
from functad.lax import reductions as lr
from functad.lax import shapes as ls
from functad.numpy._ufuncs import _arr

__all__ = ["dot", "matmul", "vdot", "inner", "outer", "tensordot", "einsum", "kron", "trace",
           "diag", "diagonal", "triu", "tril", "cross", "vecdot"]

_dot_general_bind = ll.dot_general_p.bind
_FAST = (np.ndarray, core.Array)    # types that need no conversion


def _shape(x):
    return x.shape if isinstance(x, (np.ndarray, Tracer)) else np.shape(x)


def _numpy_when_concrete(np_fn, nargs=1):
    """Decorator: when the first ``nargs`` arguments are concrete real NumPy
    arrays, compute with ``np_fn`` directly (their result is a constant under
    any transform), so that eager calls cost what NumPy does.  If NumPy
    rejects the arguments, the functad path runs and raises its clearer error."""
    def deco(fn):
        def wrapper(*args, **kwargs):
            for a in args[:nargs]:
                if type(a) not in _FAST or a.dtype.kind not in "biuf":
                    break
            else:
                if len(args) >= nargs and kwargs.get("out") is None:
                    try:
                        return core._wrap(np_fn(*args, **kwargs))
                    except Exception:   # noqa: BLE001 - the functad path explains
                        pass
            return fn(*args, **kwargs)
        wrapper.__name__ = wrapper.__qualname__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        wrapper.__module__ = fn.__module__
        wrapper.__wrapped__ = fn
        return wrapper
    return deco


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
    >>> float(fnp.dot(fnp.array([1.0, 2.0]), fnp.array([3.0, 4.0])))
    11.0
    """
    if out is not None:
        raise NotImplementedError("dot: the out= argument is not supported (arrays are immutable)")
    if type(a) not in _FAST and not isinstance(a, Tracer):
        a = _arr(a)
    if type(b) not in _FAST and not isinstance(b, Tracer):
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


# --------------------------------------------------------------------------
# vdot, inner, outer, vecdot
# --------------------------------------------------------------------------

def _flat(x):
    s = _shape(x)
    return x if len(s) == 1 else ls.reshape(x, (int(np.prod(s, dtype=np.int64)),))


_VDOT_DN = (((0,), (0,)), ((), ()))


@_numpy_when_concrete(np.vdot, 2)
def vdot(a, b, /):
    """Dot product of two arrays flattened to 1-D (real arrays: no conjugation).

    >>> import functad.numpy as fnp
    >>> float(fnp.vdot(fnp.ones((2, 2)), fnp.ones((2, 2))))
    4.0
    """
    a, b = _arr(a), _arr(b)
    sa, sb = _shape(a), _shape(b)
    if int(np.prod(sa, dtype=np.int64)) != int(np.prod(sb, dtype=np.int64)):
        raise ValueError(f"vdot: a of shape {sa} and b of shape {sb} must have the same "
                         "number of elements")
    return _dot_general_bind(_flat(a), _flat(b), dimension_numbers=_VDOT_DN)


@_numpy_when_concrete(np.inner, 2)
def inner(a, b, /):
    """Inner product over the last axes of ``a`` and ``b``; output shape
    ``a.shape[:-1] + b.shape[:-1]`` (a product if either is a scalar).

    >>> import functad.numpy as fnp
    >>> fnp.inner(fnp.ones((2, 3)), fnp.ones(3))
    Array([3., 3.])
    """
    a, b = _arr(a), _arr(b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return ew.mul(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError(f"inner: the last axes of a (shape {sa}) and b (shape {sb}) must have "
                         "the same size")
    return _dot_general_bind(a, b, dimension_numbers=(((len(sa) - 1,), (len(sb) - 1,)), ((), ())))


@_numpy_when_concrete(np.outer, 2)
def outer(a, b, out=None):
    """Outer product of ``a`` and ``b`` flattened to 1-D: shape ``(a.size, b.size)``.

    >>> import functad.numpy as fnp
    >>> fnp.outer(fnp.array([1.0, 2.0]), fnp.array([1.0, 10.0, 100.0]))
    Array([[  1.,  10., 100.],
           [  2.,  20., 200.]])
    """
    if out is not None:
        raise NotImplementedError("outer: the out= argument is not supported (arrays are immutable)")
    a, b = _flat(_arr(a)), _flat(_arr(b))
    n = _shape(a)[0] if _shape(a) else 1
    return ew.mul(ls.reshape(a, (n, 1)), b)


def vecdot(x1, x2, /, *, axis=-1):
    """Vector dot product over ``axis``, broadcasting the other dimensions
    (NumPy 2's ``vecdot``; real arrays).

    >>> import functad.numpy as fnp
    >>> fnp.vecdot(fnp.ones((2, 3)), fnp.ones(3))
    Array([3., 3.])
    """
    from functad.numpy._reductions import sum as sum_
    x1, x2 = _arr(x1), _arr(x2)
    s1, s2 = _shape(x1), _shape(x2)
    if not s1 or not s2 or s1[axis] != s2[axis]:
        raise ValueError(f"vecdot: x1 of shape {s1} and x2 of shape {s2} must have axis {axis} "
                         "of the same size")
    return sum_(ew.mul(x1, x2), axis=axis)


# --------------------------------------------------------------------------
# tensordot
# --------------------------------------------------------------------------

def _norm_axis(ax, nd, name, which):
    ax = int(ax)
    if not -nd <= ax < nd:
        raise ValueError(f"{name}: axis {ax} is out of bounds for {which} of dimension {nd}")
    return ax % nd


@lru_cache(maxsize=1024)
def _tensordot_dn(axes, sa, sb):
    na, nb = len(sa), len(sb)
    if isinstance(axes, int):
        if axes < 0 or axes > min(na, nb):
            raise ValueError(f"tensordot: axes={axes} must be between 0 and the smaller rank of "
                             f"a (shape {sa}) and b (shape {sb})")
        la, lb = tuple(range(na - axes, na)), tuple(range(axes))
    else:
        xa, xb = axes
        xa = (xa,) if isinstance(xa, int) else tuple(xa)
        xb = (xb,) if isinstance(xb, int) else tuple(xb)
        if len(xa) != len(xb):
            raise ValueError(f"tensordot: axes {axes!r} pair {len(xa)} axes of a with {len(xb)} "
                             "axes of b; give as many of each")
        la = tuple(_norm_axis(i, na, "tensordot", "a") for i in xa)
        lb = tuple(_norm_axis(i, nb, "tensordot", "b") for i in xb)
    for i, j in zip(la, lb):
        if sa[i] != sb[j]:
            raise ValueError(f"tensordot: shape mismatch: axis {i} of a (shape {sa}) has size "
                             f"{sa[i]} but axis {j} of b (shape {sb}) has size {sb[j]}")
    return (la, lb), ((), ())


def _hashable_axes(axes):
    if isinstance(axes, (int, np.integer)):
        return int(axes)
    try:
        xa, xb = axes
    except (TypeError, ValueError):
        raise ValueError(f"tensordot: axes must be an int or a pair of sequences of axes, got "
                         f"{axes!r}") from None
    conv = lambda v: int(v) if isinstance(v, (int, np.integer)) else tuple(int(i) for i in v)  # noqa: E731
    return conv(xa), conv(xb)


def tensordot(a, b, axes=2):
    """Sum products over the given axes, as ``numpy.tensordot``.

    ``axes`` is an int ``N`` (the last ``N`` axes of ``a`` with the first ``N``
    of ``b``) or a pair of axis sequences.  The output has the remaining axes
    of ``a``, then those of ``b``.

    >>> import functad.numpy as fnp
    >>> fnp.tensordot(fnp.ones((2, 3, 4)), fnp.ones((4, 3, 5)), axes=([1, 2], [1, 0])).shape
    (2, 5)
    """
    a, b = _arr(a), _arr(b)
    dn = _tensordot_dn(_hashable_axes(axes), _shape(a), _shape(b))
    return _dot_general_bind(a, b, dimension_numbers=dn)


# --------------------------------------------------------------------------
# einsum
# --------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_error(subscripts, msg):
    return ValueError(f"einsum({subscripts!r}): {msg}")


def _parse_labels(spec, subscripts):
    for c in spec:
        if c not in _LETTERS:
            raise _einsum_error(subscripts, f"invalid subscript {c!r}; use the letters a-z, "
                                            "A-Z and '...'")
    return list(spec)


def _split_ellipsis(spec, subscripts):
    if "." not in spec:
        return _parse_labels(spec, subscripts), None
    if spec.count("...") != 1 or spec.count(".") != 3:
        raise _einsum_error(subscripts, f"malformed ellipsis in {spec!r}: use exactly one '...'")
    pre, post = spec.split("...")
    return _parse_labels(pre, subscripts), _parse_labels(post, subscripts)


def _prod(sizes):
    n = 1
    for s in sizes:
        n *= s
    return n


@lru_cache(maxsize=1024)
def _einsum_plan(subscripts, shapes):
    """Compile ``subscripts`` for operands of ``shapes`` into a list of steps
    (diagonals, sums, pairwise ``dot_general`` contractions, a final transpose)."""
    s = subscripts.replace(" ", "")
    if "->" in s:
        ins, out = s.split("->", 1)
        if "->" in out or "-" in out or ">" in out:
            raise _einsum_error(subscripts, "more than one '->'")
    else:
        if "-" in s or ">" in s:
            raise _einsum_error(subscripts, "malformed output arrow, use '->'")
        ins, out = s, None
    specs = ins.split(",")
    if len(specs) != len(shapes):
        raise _einsum_error(subscripts, f"{len(specs)} operand subscript(s) for {len(shapes)} "
                                        "operand(s)")
    # -- labels of each operand; ellipsis dimensions get labels 0, 1, ... (right-aligned)
    parsed, ell_rank = [], 0
    for k, (spec, shape) in enumerate(zip(specs, shapes)):
        pre, post = _split_ellipsis(spec, subscripts)
        if post is None:
            if len(pre) != len(shape):
                raise _einsum_error(subscripts, f"operand {k} has {len(shape)} dimension(s) "
                                                f"(shape {shape}) but its subscripts {spec!r} "
                                                f"name {len(pre)}")
            parsed.append((pre, 0, []))
        else:
            r = len(shape) - len(pre) - len(post)
            if r < 0:
                raise _einsum_error(subscripts, f"operand {k} has shape {shape} but its "
                                                f"subscripts {spec!r} need at least "
                                                f"{len(pre) + len(post)} dimension(s)")
            parsed.append((pre, r, post))
            ell_rank = max(ell_rank, r)
    ell = list(range(ell_rank))
    labels = [pre + ell[ell_rank - r:] + post for pre, r, post in parsed]
    letters = [c for pre, _, post in parsed for c in pre + post]
    if out is None:
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        out_labels = ell + once
    else:
        pre, post = _split_ellipsis(out, subscripts)
        if post is None:
            if ell_rank:
                raise _einsum_error(subscripts, "the operands have '...' dimensions, so the "
                                                "output subscripts must contain '...' too")
            out_labels = pre
        else:
            out_labels = pre + ell + post
        for c in out_labels:
            if out_labels.count(c) > 1:
                raise _einsum_error(subscripts, f"output subscript {c!r} appears more than once")
            if isinstance(c, str) and c not in letters:
                raise _einsum_error(subscripts, f"output subscript {c!r} does not appear in the "
                                                "inputs")
    # -- sizes, with NumPy's broadcasting of size-1 dimensions
    size = {}
    for k, (labs, shape) in enumerate(zip(labels, shapes)):
        mine = {}
        for lab, d in zip(labs, shape):
            if mine.setdefault(lab, d) != d:
                raise _einsum_error(subscripts, f"subscript {lab!r} is repeated in operand {k} "
                                                f"over dimensions of different sizes "
                                                f"{mine[lab]} and {d} (shape {shape})")
            prev = size.get(lab)
            if prev is None or prev == 1:
                size[lab] = d
            elif d != 1 and d != prev:
                name = "'...' dimension" if isinstance(lab, int) else f"subscript {lab!r}"
                raise _einsum_error(subscripts, f"{name} has size {prev} in an earlier operand "
                                                f"but {d} in operand {k} (shapes {shapes})")
    steps = []
    labels = [list(labs) for labs in labels]
    dims = [list(shape) for shape in shapes]
    # -- repeated subscripts within an operand: take diagonals
    for k, labs in enumerate(labels):
        while len(set(labs)) != len(labs):
            lab = next(c for c in labs if labs.count(c) > 1)
            p = labs.index(lab)
            q = labs.index(lab, p + 1)
            steps.append(("diag", k, p, q))
            d = dims[k][p]
            labels[k] = labs = [c for i, c in enumerate(labs) if i not in (p, q)] + [lab]
            dims[k] = [c for i, c in enumerate(dims[k]) if i not in (p, q)] + [d]
        # size-1 dimensions broadcast against a larger size: drop them
        keep = [i for i, c in enumerate(labs) if not (dims[k][i] == 1 and size[c] != 1)]
        if len(keep) != len(labs):
            labels[k] = [labs[i] for i in keep]
            dims[k] = [dims[k][i] for i in keep]
            steps.append(("reshape", k, tuple(dims[k])))
    out_set = set(out_labels)
    out_rank = {c: r for r, c in enumerate(out_labels)}

    def others(*skip):
        s = set(out_set)
        for k, labs in enumerate(labels):
            if k not in skip:
                s.update(labs)
        return s

    # -- subscripts needed nowhere else are summed out first
    for k, labs in enumerate(labels):
        need = others(k)
        axes = tuple(i for i, c in enumerate(labs) if c not in need)
        if axes:
            steps.append(("sum", k, axes))
            labels[k] = [c for c in labs if c in need]
    # -- pairwise contractions, greedily: the pair whose result is smallest
    #    relative to its inputs; pairs sharing a subscript before outer products
    while len(labels) > 1:
        best = None
        for shared_only in (True, False):
            for i in range(len(labels)):
                for j in range(i + 1, len(labels)):
                    li, lj = labels[i], labels[j]
                    if shared_only and not set(li) & set(lj):
                        continue
                    need = others(i, j)
                    res = _pair_result(li, lj, need)
                    cost = (_prod(size[c] for c in res) - _prod(size[c] for c in li)
                            - _prod(size[c] for c in lj))
                    if best is None or cost < best[0]:
                        best = (cost, i, j)
            if best is not None:
                break
        _, i, j = best
        need = others(i, j)
        # operand order: the one whose result layout is closest to the output's,
        # which saves transposes (a matrix chain needs none)
        if _inversions(_pair_result(labels[j], labels[i], need), out_rank) < _inversions(
                _pair_result(labels[i], labels[j], need), out_rank):
            i, j = j, i
        li, lj = labels[i], labels[j]
        batch = [c for c in li if c in lj and c in need]
        contract = [c for c in li if c in lj and c not in need]
        dn = ((tuple(li.index(c) for c in contract), tuple(lj.index(c) for c in contract)),
              (tuple(li.index(c) for c in batch), tuple(lj.index(c) for c in batch)))
        steps.append(("dot", i, j, dn))
        res = _pair_result(li, lj, need)
        del labels[max(i, j)], labels[min(i, j)]
        labels.append(res)
    final = labels[0]
    assert set(final) == out_set, (final, out_labels)
    perm = tuple(final.index(c) for c in out_labels)
    if perm != tuple(range(len(perm))):
        steps.append(("transpose", perm))
    return tuple(steps)


def _pair_result(li, lj, need):
    """Labels of the contraction of operands labelled ``li`` and ``lj``."""
    batch = [c for c in li if c in lj and c in need]
    return batch + [c for c in li if c not in lj] + [c for c in lj if c not in li]


def _inversions(labs, out_rank):
    """How far the output subscripts among ``labs`` are from the output order."""
    r = [out_rank[c] for c in labs if c in out_rank]
    return sum(1 for a in range(len(r)) for b in range(a + 1, len(r)) if r[a] > r[b])


def _run_einsum(steps, ops):
    for step in steps:
        kind = step[0]
        if kind == "dot":
            _, i, j, dn = step
            r = _dot_general_bind(ops[i], ops[j], dimension_numbers=dn)
            del ops[max(i, j)], ops[min(i, j)]
            ops.append(r)
        elif kind == "diag":
            _, k, p, q = step
            ops[k] = ll.diagonal_p.bind(ops[k], offset=0, axis1=p, axis2=q)
        elif kind == "sum":
            ops[step[1]] = lr.reduce_sum(ops[step[1]], step[2])
        elif kind == "reshape":
            ops[step[1]] = ls.reshape(ops[step[1]], step[2])
        else:
            ops[0] = ls.transpose(ops[0], step[1])
    return ops[0]


def _interleaved(args):
    """``einsum(op0, sublist0, op1, sublist1, ..., [out_sublist])`` to a string."""
    args = list(args)
    out = args.pop() if len(args) % 2 else None
    ops, subs = args[0::2], args[1::2]

    def conv(sub):
        chars = []
        for v in sub:
            if v is Ellipsis:
                chars.append("...")
            elif isinstance(v, (int, np.integer)) and 0 <= v < len(_LETTERS):
                chars.append(_LETTERS[int(v)])
            else:
                raise ValueError(f"einsum: subscripts in the sublist format must be integers in "
                                 f"[0, {len(_LETTERS)}) or Ellipsis, got {v!r}")
        return "".join(chars)
    spec = ",".join(conv(s) for s in subs)
    if out is not None:
        spec += "->" + conv(out)
    return spec, ops


def einsum(subscripts, /, *operands, optimize=None, dtype=None, precision=None, out=None):
    """Einstein summation, as ``numpy.einsum``.

    Supports any NumPy subscripts: explicit (``'ij,jk->ik'``) and implicit
    (``'ij,jk'``) output, ``...`` broadcasting, repeated subscripts within an
    operand (diagonals, ``'ii->i'``), subscripts summed within one operand,
    and the sublist format.  It is computed as pairwise ``dot_general``
    contractions chosen greedily (smallest intermediate first), plus
    diagonals, sums and one final transpose; the plan is cached per
    subscripts and shapes.  ``optimize`` is accepted and ignored.

    >>> import functad.numpy as fnp
    >>> fnp.einsum("ij,jk->ik", fnp.ones((2, 3)), fnp.ones((3, 4))).shape
    (2, 4)
    >>> float(fnp.einsum("ii", fnp.eye(3)))
    3.0
    """
    if out is not None:
        raise NotImplementedError("einsum: the out= argument is not supported (arrays are immutable)")
    if not isinstance(subscripts, str):
        subscripts, operands = _interleaved((subscripts,) + operands)
    if not operands:
        raise ValueError("einsum: at least one operand is required")
    ops = [o if type(o) in _FAST else _arr(o) for o in operands]
    if dtype is not None:
        from functad.numpy._core import astype
        ops = [astype(o, dtype) for o in ops]
    steps = _einsum_plan(subscripts, tuple(_shape(o) for o in ops))
    return _run_einsum(steps, ops)


# --------------------------------------------------------------------------
# kron, cross
# --------------------------------------------------------------------------

@_numpy_when_concrete(np.kron, 2)
def kron(a, b, /):
    """Kronecker product, as ``numpy.kron``.

    >>> import functad.numpy as fnp
    >>> fnp.kron(fnp.eye(2), fnp.ones((2, 2))).shape
    (4, 4)
    """
    a, b = _arr(a), _arr(b)
    sa, sb = _shape(a), _shape(b)
    nd = max(len(sa), len(sb))
    sa = (1,) * (nd - len(sa)) + tuple(sa)
    sb = (1,) * (nd - len(sb)) + tuple(sb)
    # a[i, 1, j, 1, ...] * b[1, k, 1, l, ...] -> [i, k, j, l, ...] -> merge pairs
    ia = tuple(d for s in sa for d in (s, 1))
    ib = tuple(d for s in sb for d in (1, s))
    prod = ew.mul(ls.reshape(a, ia), ls.reshape(b, ib))
    return ls.reshape(prod, tuple(x * y for x, y in zip(sa, sb)))


@lru_cache(maxsize=8)
def _levi_civita(dtype):
    e = np.zeros((3, 3, 3), dtype)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        e[i, j, k], e[i, k, j] = 1, -1
    e.flags.writeable = False
    return core._wrap(e)


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of (arrays of) 3-vectors, broadcasting the other dimensions.

    >>> import functad.numpy as fnp
    >>> fnp.cross(fnp.array([1.0, 0.0, 0.0]), fnp.array([0.0, 1.0, 0.0]))
    Array([0., 0., 1.])
    """
    from functad.numpy._shapes import moveaxis
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _arr(a), _arr(b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        raise ValueError(f"cross: a (shape {sa}) and b (shape {sb}) must be arrays of vectors")
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    if _shape(a)[-1] != 3 or _shape(b)[-1] != 3:
        raise ValueError(f"cross: only 3-dimensional vectors are supported; the vector axes of a "
                         f"(shape {sa}, axis {axisa}) and b (shape {sb}, axis {axisb}) have sizes "
                         f"{_shape(a)[-1]} and {_shape(b)[-1]}")
    from functad.numpy._core import result_type
    eps = _levi_civita(np.dtype(result_type(a, b)))
    c = einsum("ijk,...j,...k->...i", eps, a, b)
    return c if axisc in (-1, len(_shape(c)) - 1) else moveaxis(c, -1, axisc)


# --------------------------------------------------------------------------
# trace, diagonal, diag, triu, tril
# --------------------------------------------------------------------------

def _axis_pair(nd, axis1, axis2, name):
    if nd < 2:
        raise ValueError(f"{name}: the array must have at least 2 dimensions, got {nd}")
    a1 = _norm_axis(axis1, nd, name, "an array")
    a2 = _norm_axis(axis2, nd, name, "an array")
    if a1 == a2:
        raise ValueError(f"{name}: axis1 and axis2 cannot be the same (both {a1})")
    return a1, a2


def diagonal(a, offset=0, axis1=0, axis2=1):
    """Diagonal over ``axis1`` and ``axis2`` (appended as the last axis), as
    ``numpy.diagonal``.

    >>> import functad.numpy as fnp
    >>> fnp.diagonal(fnp.arange(9.0).reshape(3, 3), offset=1)
    Array([1., 5.])
    """
    a = _arr(a)
    a1, a2 = _axis_pair(len(_shape(a)), axis1, axis2, "diagonal")
    return ll.diagonal_p.bind(a, offset=int(offset), axis1=a1, axis2=a2)


@_numpy_when_concrete(np.trace, 1)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal, as ``numpy.trace``.

    >>> import functad.numpy as fnp
    >>> float(fnp.trace(fnp.eye(3)))
    3.0
    """
    if out is not None:
        raise NotImplementedError("trace: the out= argument is not supported (arrays are immutable)")
    d = diagonal(a, offset, axis1, axis2)
    if dtype is not None:
        from functad.numpy._core import astype
        d = astype(d, dtype)
    if core.aval_of(d).dtype == np.bool_:
        d = ew.convert_element_type(d, np.int64)
    return lr.reduce_sum(d, (len(_shape(d)) - 1,))


def diag(v, k=0):
    """Extract the ``k``-th diagonal of a 2-D array, or build a 2-D array with
    the 1-D ``v`` on its ``k``-th diagonal.

    >>> import functad.numpy as fnp
    >>> fnp.diag(fnp.array([1.0, 2.0]))
    Array([[1., 0.],
           [0., 2.]])
    """
    v = _arr(v)
    s = _shape(v)
    k = int(k)
    if len(s) == 1:
        n = s[0] + abs(k)
        return ll.embed_diagonal_p.bind(v, offset=k, n=n, m=n)
    if len(s) == 2:
        return ll.diagonal_p.bind(v, offset=k, axis1=0, axis2=1)
    raise ValueError(f"diag: the input must be 1-D or 2-D, got shape {s}; use diagonal for "
                     "stacks of matrices")


@lru_cache(maxsize=256)
def _tri_keep(shape, k, lower):
    n, m = shape
    keep = np.tri(n, m, k, dtype=bool) if lower else ~np.tri(n, m, k - 1, dtype=bool)
    keep.flags.writeable = False
    return core._wrap(keep)


def _triangle(m, k, lower, name):
    m = _arr(m)
    s = _shape(m)
    if not s:
        raise ValueError(f"{name}: the input must have at least 1 dimension, got a scalar")
    keep = _tri_keep(tuple(s[-2:]) if len(s) >= 2 else (s[0], s[0]), int(k), lower)
    zero = np.zeros((), core.aval_of(m).dtype)[()]
    return ew.select(keep, m, zero)


def tril(m, k=0):
    """Lower triangle of (a stack of) matrices: elements above the ``k``-th
    diagonal are zeroed (a 1-D input is broadcast to 2-D, as in NumPy).

    >>> import functad.numpy as fnp
    >>> fnp.tril(fnp.ones((2, 2)))
    Array([[1., 0.],
           [1., 1.]])
    """
    return _triangle(m, k, True, "tril")


def triu(m, k=0):
    """Upper triangle of (a stack of) matrices: elements below the ``k``-th
    diagonal are zeroed.

    >>> import functad.numpy as fnp
    >>> fnp.triu(fnp.ones((2, 2)))
    Array([[1., 1.],
           [0., 1.]])
    """
    return _triangle(m, k, False, "triu")


core._UFUNC_DISPATCH[np.matmul] = matmul
