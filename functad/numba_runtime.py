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


# --------------------------------------------------------------------------
# lax.sorting: sort and searchsorted.  sort's rule hands over each operand as
# a C-contiguous (before, axis, after) array and sorts a permutation, one
# stable merge sort per key; NaN sorts last (after +inf), as in NumPy.
# --------------------------------------------------------------------------

def _real_less(a, b):
    return a < b or (b != b and a == a)


def _complex_less(a, b):
    """NumPy's complex sort order: lexicographic on (real, imag), and a value
    with a NaN part after all others: R+Rj < R+nanj < nan+Rj < nan+nanj."""
    ar, ai, br, bi = a.real, a.imag, b.real, b.imag
    if ar < br:
        return ai == ai or bi != bi
    if ar > br:
        return bi != bi and ai == ai
    if ar == br or (ar != ar and br != br):
        return ai < bi or (bi != bi and ai == ai)
    return br != br


from numba.extending import overload as _overload  # noqa: E402 (this section's import)

_real_less_jit = _jit(_real_less)
_complex_less_jit = _jit(_complex_less)


def sort_less(a, b):
    """``a < b`` in NumPy's sort order: NaN is larger than everything else
    (for complex values, see ``_complex_less``)."""
    if isinstance(a, complex) or isinstance(b, complex):
        return _complex_less(complex(a), complex(b))
    return _real_less(a, b)


@_overload(sort_less, jit_options={"error_model": "numpy"})
def _sort_less_numba(a, b):
    if isinstance(a, numba.types.Complex) or isinstance(b, numba.types.Complex):
        return lambda a, b: _complex_less_jit(a + 0j, b + 0j)
    return lambda a, b: _real_less_jit(a, b)


@_jit
def _stable_argsort(keys, order, ktmp, otmp):
    """``order`` := the stable ascending argsort of the 1-d ``keys`` (NaN last),
    and ``keys`` sorted.  Insertion sort of runs of 16, then bottom-up merges
    that move (key, index) pairs, so that the reads stay sequential; ``ktmp``
    and ``otmp`` are scratch of the same length."""
    n = keys.shape[0]
    for i in range(n):
        order[i] = i
    run = 16
    for lo in range(0, n, run):
        hi = min(lo + run, n)
        for i in range(lo + 1, hi):
            k = keys[i]
            o = order[i]
            j = i
            while j > lo and sort_less(k, keys[j - 1]):
                keys[j] = keys[j - 1]
                order[j] = order[j - 1]
                j -= 1
            keys[j] = k
            order[j] = o
    ks, os, kd, od = keys, order, ktmp, otmp
    flipped = False
    width = run
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            if mid >= hi or not sort_less(ks[mid], ks[mid - 1]):     # already in order
                for t in range(lo, hi):
                    kd[t] = ks[t]
                    od[t] = os[t]
                continue
            i, j, t = lo, mid, lo
            while i < mid and j < hi:
                if sort_less(ks[j], ks[i]):          # strictly less: stable
                    kd[t] = ks[j]
                    od[t] = os[j]
                    j += 1
                else:
                    kd[t] = ks[i]
                    od[t] = os[i]
                    i += 1
                t += 1
            while i < mid:
                kd[t] = ks[i]
                od[t] = os[i]
                i += 1
                t += 1
            while j < hi:
                kd[t] = ks[j]
                od[t] = os[j]
                j += 1
                t += 1
        ks, os, kd, od = kd, od, ks, os
        flipped = not flipped
        width *= 2
    if flipped:
        for i in range(n):
            keys[i] = ks[i]
            order[i] = os[i]


@_jit
def sort_iota3(pre, n, post):
    """The identity permutation, ``out[i, j, k] = j``, of shape (pre, n, post)."""
    out = np.empty((pre, n, post), np.int64)
    for i in range(pre):
        for j in range(n):
            for k in range(post):
                out[i, j, k] = j
    return out


@_jit
def sort_perm3(keys, perm):
    """``perm`` (int64, keys' shape) refined by a stable sort of ``keys`` along
    axis 1: the new ``perm[i, :, k]`` lists ``perm[i, :, k]`` ordered by
    ``keys[i, perm[i, j, k], k]``, equal keys keeping their order."""
    pre, n, post = keys.shape
    out = np.empty((pre, n, post), np.int64)
    buf = np.empty(n, keys.dtype)
    ktmp = np.empty(n, keys.dtype)
    order = np.empty(n, np.int64)
    otmp = np.empty(n, np.int64)
    for i in range(pre):
        for k in range(post):
            for j in range(n):
                buf[j] = keys[i, perm[i, j, k], k]
            _stable_argsort(buf, order, ktmp, otmp)
            for j in range(n):
                out[i, j, k] = perm[i, order[j], k]
    return out


@_jit
def sort_take3(x, perm):
    """``x`` gathered along axis 1 with ``perm``: ``out[i, j, k] = x[i, perm[i, j, k], k]``."""
    pre, n, post = x.shape
    out = np.empty((pre, n, post), x.dtype)
    for i in range(pre):
        for j in range(n):
            for k in range(post):
                out[i, j, k] = x[i, perm[i, j, k], k]
    return out


@_jit
def searchsorted_one(a, v, right):
    """Insertion index (int64) of ``v`` into the ascending 1-d ``a``: before
    equal elements (left) or after them (``right``), in sort order (NaN last)."""
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if (not sort_less(v, a[mid])) if right else sort_less(a[mid], v):
            lo = mid + 1
        else:
            hi = mid
    return np.int64(lo)


@_jit
def searchsorted(a, v, right):
    """:func:`searchsorted_one` for each element of the 1-d ``v``."""
    out = np.empty(v.shape[0], np.int64)
    for i in range(v.shape[0]):
        out[i] = searchsorted_one(a, v[i], right)
    return out


# --------------------------------------------------------------------------
# lax.reductions: argmax/argmin and the cumulative scans (cumsum, cumprod,
# cummax, cummin) along one axis.  The entry points take the operand of any
# rank, an output allocated by the program (the result dtype and shape) and
# the axis, and view both as C-contiguous (before, axis, after) arrays, so
# the loops (..3) are compiled once per dtype whatever the rank and axis, and
# the program's code is one call.
# --------------------------------------------------------------------------

@_jit
def _split_at(shape, axis):
    """(product of the dims before ``axis``, dim ``axis``, product after)."""
    pre = 1
    post = 1
    for d in range(axis):
        pre *= shape[d]
    for d in range(axis + 1, len(shape)):
        post *= shape[d]
    return pre, shape[axis], post


@_jit
def _arg_extremum3(x, out, take_max):
    """``out[i, k]``: index of the first maximum (``take_max``) or minimum of
    ``x[i, :, k]``; the first NaN wins, as in NumPy."""
    pre, n, post = x.shape
    if post == 1:                       # along the contiguous axis: a running best
        for i in range(pre):
            b = x[i, 0, 0]
            bi = 0
            if b == b:
                for j in range(1, n):
                    v = x[i, j, 0]
                    if v != v:
                        bi = j
                        break
                    if (v > b) if take_max else (v < b):
                        b = v
                        bi = j
            out[i, 0] = bi
        return
    best = np.empty(post, x.dtype)      # else a running best per k, rows in order
    for i in range(pre):
        for k in range(post):
            best[k] = x[i, 0, k]
            out[i, k] = 0
        for j in range(1, n):
            for k in range(post):
                b = best[k]
                if b != b:              # a NaN is chosen already
                    continue
                v = x[i, j, k]
                if (v > b if take_max else v < b) or v != v:
                    best[k] = v
                    out[i, k] = j


@_jit
def arg_extremum(x, out, axis, take_max):
    """argmax (``take_max``) or argmin of ``x`` along ``axis`` into ``out``
    (int64, ``x``'s shape without ``axis``; shape (1,) for a rank-0 result)."""
    pre, n, post = _split_at(x.shape, axis)
    _arg_extremum3(np.ascontiguousarray(x).reshape((pre, n, post)),
                   out.reshape((pre, post)), take_max)
    return out


@_jit
def _cumulative3(x, out, op, reverse):
    """Scan ``x[i, :, k]`` into ``out``, from the end if ``reverse``, with ``op``
    0: sum, 1: product, 2: maximum, 3: minimum (a NaN propagates, as in
    np.maximum.accumulate).  Values are converted to ``out``'s dtype before
    they are combined, as NumPy's ``dtype=`` does."""
    pre, n, post = x.shape
    if post == 1:                       # along the contiguous axis: a running value
        for i in range(pre):
            if n == 0:
                continue
            j = n - 1 if reverse else 0
            out[i, j, 0] = x[i, j, 0]
            acc = out[i, j, 0]
            for jj in range(1, n):
                j = n - 1 - jj if reverse else jj
                out[i, j, 0] = x[i, j, 0]
                v = out[i, j, 0]
                if op == 0:
                    acc = acc + v
                elif op == 1:
                    acc = acc * v
                elif op == 2:
                    if not (acc > v or acc != acc):
                        acc = v
                else:
                    if not (acc < v or acc != acc):
                        acc = v
                out[i, j, 0] = acc
        return
    for i in range(pre):                # else row by row, k innermost
        for jj in range(n):
            j = n - 1 - jj if reverse else jj
            for k in range(post):
                out[i, j, k] = x[i, j, k]
            if jj == 0:
                continue
            p = j + 1 if reverse else j - 1
            for k in range(post):
                a = out[i, p, k]
                v = out[i, j, k]
                if op == 0:
                    out[i, j, k] = a + v
                elif op == 1:
                    out[i, j, k] = a * v
                elif op == 2:
                    if a > v or a != a:
                        out[i, j, k] = a
                else:
                    if a < v or a != a:
                        out[i, j, k] = a


@_jit
def cumulative(x, out, axis, op, reverse):
    """The scan ``op`` (see _cumulative3) of ``x`` along ``axis`` into ``out``
    (``x``'s shape, the result dtype); returns ``out``."""
    pre, n, post = _split_at(x.shape, axis)
    _cumulative3(np.ascontiguousarray(x).reshape((pre, n, post)),
                 out.reshape((pre, n, post)), op, reverse)
    return out
