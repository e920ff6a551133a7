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
def fsum(buf, n):
    """The sum of ``buf[:n]`` with eight independent partial sums, which LLVM
    turns into SIMD adds (a single accumulator serializes every add).  Fused
    loops store a block of summands here instead of accumulating them one by
    one, so that the loop computing them vectorizes."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0     # buffers are float64 (sums accumulate in it)
    m = n - n % 8
    for i in range(0, m, 8):
        s0 += buf[i]
        s1 += buf[i + 1]
        s2 += buf[i + 2]
        s3 += buf[i + 3]
        s4 += buf[i + 4]
        s5 += buf[i + 5]
        s6 += buf[i + 6]
        s7 += buf[i + 7]
    for i in range(m, n):
        s0 += buf[i]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


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


# --------------------------------------------------------------------------
# lax.linalg: matrix products (dot_general) and linear algebra.
#
# The rules pass every array through ``as_any_layout`` (a no-op that retypes
# it as a writable array of unknown layout), so that each helper is compiled
# once per dtype -- whatever the layouts and read-only flags of the arrays of
# a program -- and checks at run time whether an operand is C- or
# Fortran-ordered.  The helpers never write into their inputs.  Generated
# code permutes and merges axes with ``permuted`` rather than with
# np.transpose(x, axes) and reshape, whose typing costs seconds in each
# process (here it is compiled once and cached).
#
# Float and complex products call BLAS on the operands as they are when each
# matrix is C- or Fortran-contiguous (a transposed view is Fortran-ordered)
# and on a copy only otherwise.  Matrix products call ``?gemm`` through the
# ``functad_?gemm`` symbols that :mod:`functad.blas` binds (Intel MKL when it
# is installed, else SciPy's OpenBLAS); matrix-vector and vector products use
# Numba's ``np.dot`` (SciPy's OpenBLAS):
# ``dot_blas_mm`` (matrices), ``_mv`` (matrix and vector), ``_vv`` (vectors)
# and ``dot_blas`` (stacks x (B, M, K), y (B, K, N) into out (B, M, N), one
# call per matrix; ``tx``/``ty``: the operand is stored as (B, K, M) or
# (B, N, K) and used transposed).  ``dot_int`` and ``dot_bool`` are loops over
# such stacks (BLAS has no integer products), and ``dot_outer`` is the K == 1
# product without a sum (as NumPy's outer products).
#
# The linear algebra helpers call the LAPACK routines that numpy.linalg
# calls, with NumPy's arguments (gesv for solve and inv, getrf for det and
# slogdet, potrf, syevd, gesdd, geqrf + orgqr), through the LAPACK bindings of
# Numba's helper library (``numba.np.linalg._LAPACK``: symbols resolved at
# run time, so that compiled code stays cacheable), and like NumPy on a
# Fortran-ordered float64 copy of each matrix, rounding the results to the
# outputs' dtype: their results equal NumPy's, float32 ones included.
# Unlike Numba's np.linalg, they accept NaNs and empty matrices (as NumPy
# does), read either triangle in eigh and compute complete QR factors.  They
# take (B, m, n) stacks and write into preallocated (B, ...) outputs.
# --------------------------------------------------------------------------

from numba.core import types as _nbtypes  # noqa: E402
from numba.core.imputils import impl_ret_borrowed as _impl_ret_borrowed  # noqa: E402
from numba.extending import intrinsic as _intrinsic  # noqa: E402
from numba.np import linalg as _nla  # noqa: E402


@_intrinsic
def as_any_layout(typingctx, arr):
    """``arr`` itself, typed as a writable array of unknown ('A') layout."""
    if not isinstance(arr, _nbtypes.Array):
        return None
    sig = arr.copy(layout="A", readonly=False)(arr)

    def codegen(context, builder, signature, args):
        return _impl_ret_borrowed(context, builder, signature.return_type, args[0])
    return sig, codegen


@_intrinsic
def prefer_wide_vectors(typingctx):
    """Let LLVM vectorize the calling function's loops with the widest vectors
    the CPU has.

    On CPUs with AVX-512, LLVM prefers 256-bit vectors (its tuning for these
    CPUs implies the function attribute ``"prefer-vector-width"="256"``),
    because 512-bit instructions lowered the clock of the first AVX-512 CPUs.
    Compiled programs with loops call this first: it sets the attribute to 512
    on their own function only (other Numba code in the process is
    unaffected), and generates no instruction.  A float32 ``tanh`` loop over
    1024x512 values takes 0.50 ms instead of 0.70-0.78 on the development
    machine (Xeon, Emerald Rapids), with the same results bit for bit; on CPUs
    without AVX-512 it changes nothing.
    """
    def codegen(context, builder, signature, args):
        # llvmlite's attribute set accepts only LLVM's keyword attributes; a
        # string attribute is written out verbatim, so add it to the set itself
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return _nbtypes.none(), codegen


from functad import blas as _blas  # noqa: E402
from numba.core import cgutils as _cgutils  # noqa: E402
from llvmlite import ir as _ir  # noqa: E402

_blas.bind()        # before anything below is compiled or loaded from the cache


@_intrinsic
def _gemm(typingctx, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    """Column-major ``c = op(a) @ op(b)`` (m x n, inner k) by the bound
    ``?gemm``; ``ta``/``tb``: 0 as stored, 1 transposed; ``ld*``: leading
    dimensions.  The arrays only lend their data pointers."""
    arrays = (a, b, c)
    if not all(isinstance(x, _nbtypes.Array) for x in arrays) or \
            len({x.dtype for x in arrays}) != 1:
        return None
    dtype = c.dtype
    kind = {_nbtypes.float32: "s", _nbtypes.float64: "d",
            _nbtypes.complex64: "c", _nbtypes.complex128: "z"}.get(dtype)
    if kind is None:
        return None
    sig = _nbtypes.none(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        i8, i32 = _ir.IntType(8), _ir.IntType(32)
        elem = context.get_value_type(dtype)

        def ref(value, ty):             # a pointer to a stack copy (Fortran passes by reference)
            slot = _cgutils.alloca_once(builder, ty)
            builder.store(value, slot)
            return slot

        def flag(v):                    # 0 -> 'N', 1 -> 'T'
            t = builder.icmp_unsigned("!=", v, v.type(0))
            return ref(builder.select(t, i8(ord("T")), i8(ord("N"))), i8)

        def int32(v):
            return ref(builder.trunc(v, i32) if v.type.width > 32 else v, i32)

        def data(ty, v):
            return context.make_array(ty)(context, builder, v).data

        ta_, tb_, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_ = args
        ptr = elem.as_pointer()
        fnty = _ir.FunctionType(_ir.VoidType(), [i8.as_pointer()] * 2 + [i32.as_pointer()] * 3 +
                                [ptr, ptr, i32.as_pointer(), ptr, i32.as_pointer(), ptr, ptr,
                                 i32.as_pointer()])
        fn = _cgutils.get_or_insert_function(builder.module, fnty, f"functad_{kind}gemm")
        one = ref(context.get_constant(dtype, 1), elem)
        zero = ref(context.get_constant(dtype, 0), elem)
        builder.call(fn, [flag(ta_), flag(tb_), int32(m_), int32(n_), int32(k_), one,
                          data(a, a_), int32(lda_), data(b, b_), int32(ldb_), zero,
                          data(c, c_), int32(ldc_)])
        return context.get_dummy_value()
    return sig, codegen


_SMALL_PRODUCT = 2048      # multiply-adds below which a loop beats a BLAS call


@_jit
def _fortran_only(m):
    """Whether the 2-d ``m`` is Fortran- but not C-contiguous (e.g. transposed)."""
    return m.flags.f_contiguous and not m.flags.c_contiguous


@_jit
def _gemm_rows(x, y, out):
    """``out = x @ y`` by ``?gemm``, for a C-contiguous ``out`` and C- or
    Fortran-contiguous ``x``, ``y``.  Row-major data read as column-major is
    the transpose, so BLAS computes ``out.T = y.T @ x.T``."""
    m, k = x.shape
    n = y.shape[1]
    ty = 0 if y.flags.c_contiguous else 1     # C order: y.T as stored, leading dim n
    tx = 0 if x.flags.c_contiguous else 1
    _gemm(ty, tx, n, m, k, y, n if ty == 0 else k, x, k if tx == 0 else m, out, n)


@_jit
def _dot_blas_rhs(a, y, out):
    if y.flags.c_contiguous or y.flags.f_contiguous:
        _gemm_rows(a, y, out)
    else:
        _gemm_rows(a, np.ascontiguousarray(y), out)


@_jit
def _dot_loop(x, y, out):
    """``out = x @ y`` for matrices by three loops, accumulating in ``out``'s
    dtype (integers wrap around as in NumPy)."""
    m, k = x.shape
    n = y.shape[1]
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
        for p in range(k):
            a = x[i, p]
            for j in range(n):
                out[i, j] += a * y[p, j]
    return out


@_jit
def dot_blas_mm(x, y, out):
    """``out = x @ y`` for matrices, by BLAS (float or complex, one dtype;
    ``out`` C-contiguous).  A C- or Fortran-contiguous operand is used in
    place, any other copied.  Tiny products are loops: a BLAS call costs about 0.3 us, the
    8x8 product of an RNN cell 0.02 us as a loop (measured)."""
    m, k = x.shape
    n = y.shape[1]
    if m * n * k <= _SMALL_PRODUCT or not out.flags.c_contiguous or max(m, n, k) >= 2 ** 31:
        return _dot_loop(x, y, out)     # (BLAS takes 32-bit sizes)
    if x.flags.c_contiguous or x.flags.f_contiguous:
        _dot_blas_rhs(x, y, out)
    else:
        _dot_blas_rhs(np.ascontiguousarray(x), y, out)
    return out


@_jit
def dot_blas_mv(x, v, out):
    """``out = x @ v`` for a matrix and a vector, by BLAS (a loop if tiny)."""
    m, k = x.shape
    if m * k <= _SMALL_PRODUCT:
        for i in range(m):
            acc = out.dtype.type(0)
            for p in range(k):
                acc += x[i, p] * v[p]
            out[i] = acc
        return out
    if _fortran_only(x):
        np.dot(np.asfortranarray(x), np.ascontiguousarray(v), out)
    else:
        np.dot(np.ascontiguousarray(x), np.ascontiguousarray(v), out)
    return out


@_jit
def dot_blas_vv(u, v):
    """``u @ v`` for vectors (a scalar), by BLAS (a loop if tiny)."""
    if u.shape[0] <= _SMALL_PRODUCT:
        acc = u[0] * v[0]
        for p in range(1, u.shape[0]):
            acc += u[p] * v[p]
        return acc
    return np.dot(np.ascontiguousarray(u), np.ascontiguousarray(v))


@_jit
def permuted(x, perm, shape):
    """``x.transpose(perm)`` reshaped to ``shape``: a view if it is
    C-contiguous, else a C-ordered copy."""
    return np.ascontiguousarray(x.transpose(perm)).reshape(shape)


@_jit
def dot_blas(x, y, tx, ty, out):
    """``out[b] = op(x[b]) @ op(y[b])`` for stacks of matrices, by BLAS, where
    ``op`` transposes if ``tx`` (``ty``)."""
    for b in range(out.shape[0]):
        xb = x[b].T if tx else x[b]
        yb = y[b].T if ty else y[b]
        dot_blas_mm(xb, yb, out[b])
    return out


@_jit
def dot_int(x, y, tx, ty, out):
    """``out[b] = op(x[b]) @ op(y[b])`` for integers (``op`` as in
    :func:`dot_blas`), wrapping around in ``out``'s dtype as NumPy does."""
    for b in range(out.shape[0]):
        _dot_loop(x[b].T if tx else x[b], y[b].T if ty else y[b], out[b])
    return out


@_jit
def dot_bool(x, y, tx, ty, out):
    """``out[b] = op(x[b]) @ op(y[b])`` for booleans: ``any(x & y)`` over K."""
    nb, m, n = out.shape
    for b in range(nb):
        xb = x[b].T if tx else x[b]
        yb = y[b].T if ty else y[b]
        for i in range(m):
            for j in range(n):
                out[b, i, j] = False
            for p in range(xb.shape[1]):
                if xb[i, p]:
                    for j in range(n):
                        if yb[p, j]:
                            out[b, i, j] = True
    return out


@_jit
def dot_outer(x, y, out):
    """``out[b, i, j] = x[b, i, 0] * y[b, 0, j]`` (logical and for booleans)."""
    nb, m, n = out.shape
    for b in range(nb):
        for i in range(m):
            v = x[b, i, 0]
            for j in range(n):
                out[b, i, j] = v * y[b, 0, j]
    return out


# float64 LAPACK entry points (external functions of Numba's helper library,
# which finds SciPy's LAPACK when first called)
_F64 = _nbtypes.float64
_getrf = _nla._LAPACK.numba_xxgetrf(_F64)
_gesv = _nla._LAPACK.numba_xgesv(_F64)
_potrf = _nla._LAPACK.numba_xxpotrf(_F64)
_syevd = _nla._LAPACK.numba_ez_xxxevd(_F64)
_gesdd = _nla._LAPACK.numba_ez_gesdd(_F64)
_geqrf = _nla._LAPACK.numba_ez_geqrf(_F64)
_orgqr = _nla._LAPACK.numba_ez_xxgqr(_F64)
_FINT = _nla.F_INT_nptype
_KIND = ord("d")


@_jit
def _lapack_check(info, message):
    # NumPy raises for any non-zero info; a negative one can be data too
    # (gesdd reports a NaN in its input as an invalid argument)
    if info != 0:
        raise np.linalg.LinAlgError(message)


@_jit
def _fortran_copy(a, buf):
    """``a`` (m, n) into ``buf`` (n, m), which LAPACK then reads as ``a`` in
    Fortran order."""
    m, n = a.shape
    for j in range(n):
        for i in range(m):
            buf[j, i] = a[i, j]


@_jit
def _from_fortran(buf, out, rows, cols):
    """The Fortran-ordered (rows, cols) matrix in ``buf`` into ``out``."""
    for i in range(rows):
        for j in range(cols):
            out[i, j] = buf[j, i]


@_jit
def la_solve(a, b, out):
    """``out[i] = solve(a[i], b[i])`` by gesv, as numpy.linalg.solve."""
    nb, n, k = b.shape
    buf = np.empty((n, n), np.float64)
    rhs = np.empty((k, n), np.float64)
    ipiv = np.empty(max(n, 1), _FINT)
    for i in range(nb):
        if n == 0 or k == 0:
            continue
        _fortran_copy(a[i], buf)
        _fortran_copy(b[i], rhs)
        info = _gesv(_KIND, n, k, buf.ctypes, n, ipiv.ctypes, rhs.ctypes, n)
        _lapack_check(info, "Singular matrix")
        _from_fortran(rhs, out[i], n, k)
    return out


@_jit
def la_inv(a, out):
    """``out[i] = inv(a[i])``: gesv with the identity, as numpy.linalg.inv."""
    nb, n, _ = a.shape
    buf = np.empty((n, n), np.float64)
    rhs = np.empty((n, n), np.float64)
    ipiv = np.empty(max(n, 1), _FINT)
    for i in range(nb):
        if n == 0:
            continue
        _fortran_copy(a[i], buf)
        rhs[:] = 0.0
        for j in range(n):
            rhs[j, j] = 1.0
        info = _gesv(_KIND, n, n, buf.ctypes, n, ipiv.ctypes, rhs.ctypes, n)
        _lapack_check(info, "Singular matrix")
        _from_fortran(rhs, out[i], n, n)
    return out


@_jit
def _slogdet1(a, buf, ipiv):
    """(sign, log|det|) of the square ``a`` computed as NumPy does: getrf, the
    sign from the pivots and the diagonal, a sum of logs; (0, -inf) for an
    exactly singular matrix."""
    n = a.shape[0]
    if n == 0:
        return 1.0, 0.0
    _fortran_copy(a, buf)
    info = _getrf(_KIND, n, n, buf.ctypes, n, ipiv.ctypes)
    if info > 0:
        return 0.0, -np.inf
    _lapack_check(info, "LU factorization failed")
    sign = 1.0
    for j in range(n):
        if ipiv[j] != j + 1:
            sign = -sign
    logdet = 0.0
    for j in range(n):
        d = buf[j, j]
        if d < 0.0:
            sign = -sign
            d = -d
        logdet += np.log(d)
    return sign, logdet


@_jit
def la_slogdet(a, sign, logdet):
    """``sign[i], logdet[i] = slogdet(a[i])``, as numpy.linalg.slogdet."""
    nb, n, _ = a.shape
    buf = np.empty((n, n), np.float64)
    ipiv = np.empty(max(n, 1), _FINT)
    for i in range(nb):
        s, ld = _slogdet1(a[i], buf, ipiv)
        sign[i] = s
        logdet[i] = ld
    return sign


@_jit
def la_det(a, out):
    """``out[i] = det(a[i])`` as numpy.linalg.det: ``sign * exp(logdet)``."""
    nb, n, _ = a.shape
    buf = np.empty((n, n), np.float64)
    ipiv = np.empty(max(n, 1), _FINT)
    for i in range(nb):
        s, ld = _slogdet1(a[i], buf, ipiv)
        out[i] = s * np.exp(ld)
    return out


@_jit
def la_cholesky(a, out):
    """Lower Cholesky factors by potrf on the lower triangle (the upper one
    zeroed), as numpy.linalg.cholesky."""
    nb, n, _ = a.shape
    buf = np.empty((n, n), np.float64)
    for i in range(nb):
        if n == 0:
            continue
        _fortran_copy(a[i], buf)
        info = _potrf(_KIND, ord("L"), n, buf.ctypes, n)
        _lapack_check(info, "Matrix is not positive definite")
        for r in range(n):
            for c in range(n):
                out[i, r, c] = buf[c, r] if c <= r else 0.0
    return out


@_jit
def la_eigh(a, lower, w, v):
    """Eigenvalues (ascending) into ``w`` and eigenvectors into ``v`` by syevd
    on the lower (``lower``) or upper triangle, as numpy.linalg.eigh."""
    nb, n, _ = a.shape
    buf = np.empty((n, n), np.float64)
    ww = np.empty(n, np.float64)
    uplo = ord("L") if lower else ord("U")
    for i in range(nb):
        if n == 0:
            continue
        _fortran_copy(a[i], buf)
        info = _syevd(_KIND, ord("V"), uplo, n, buf.ctypes, n, ww.ctypes)
        _lapack_check(info, "Eigenvalues did not converge")
        for j in range(n):
            w[i, j] = ww[j]
        _from_fortran(buf, v[i], n, n)
    return w


@_jit
def la_svd(a, full, u, s, vh):
    """``u[i], s[i], vh[i] = svd(a[i], full_matrices=full)`` by gesdd, as
    numpy.linalg.svd (an empty matrix: identities where square, as NumPy)."""
    nb, m, n = a.shape
    k = min(m, n)
    ucols = m if full else k
    vrows = n if full else k
    buf = np.empty((n, m), np.float64)
    ub = np.empty((ucols, m), np.float64)
    vb = np.empty((n, vrows), np.float64)
    ss = np.empty(k, np.float64)
    jobz = ord("A") if full else ord("S")
    for i in range(nb):
        if k == 0:
            u[i] = 0.0
            vh[i] = 0.0
            for j in range(min(m, ucols)):
                u[i, j, j] = 1.0
            for j in range(min(vrows, n)):
                vh[i, j, j] = 1.0
            continue
        _fortran_copy(a[i], buf)
        info = _gesdd(_KIND, jobz, m, n, buf.ctypes, m, ss.ctypes, ub.ctypes, m,
                      vb.ctypes, vrows)
        _lapack_check(info, "SVD did not converge")
        for j in range(k):
            s[i, j] = ss[j]
        _from_fortran(ub, u[i], m, ucols)
        _from_fortran(vb, vh[i], vrows, n)
    return s


@_jit
def la_qr(a, q, r):
    """``q[i], r[i] = qr(a[i])`` by geqrf and orgqr, as numpy.linalg.qr: mode
    "complete" if ``q`` is square, else "reduced"."""
    nb, m, n = a.shape
    k = min(m, n)
    qcols = q.shape[2]
    buf = np.empty((max(n, qcols), m), np.float64)
    tau = np.empty(max(k, 1), np.float64)
    for i in range(nb):
        q[i] = 0.0
        r[i] = 0.0
        if m == 0:
            continue
        buf[:] = 0.0
        if k > 0:
            _fortran_copy(a[i], buf[:n])
            info = _geqrf(_KIND, m, n, buf.ctypes, m, tau.ctypes)
            _lapack_check(info, "QR factorization failed")
            for row in range(r.shape[1]):
                for c in range(row, n):
                    r[i, row, c] = buf[c, row]
        if qcols > 0:
            info = _orgqr(_KIND, m, qcols, k, buf.ctypes, m, tau.ctypes)
            _lapack_check(info, "QR factorization failed")
            _from_fortran(buf, q[i], m, qcols)
    return q


@_jit
def la_triangular_solve(a, b, lower, transpose_a, unit_diagonal, out):
    """``op(t) @ out[i] = b[i]`` by substitution, where ``t`` is the lower
    (``lower``) or upper triangle of ``a[i]`` (with a unit diagonal if
    ``unit_diagonal``) and ``op`` transposes if ``transpose_a``; an exact zero
    on the diagonal raises, as LAPACK's trtrs."""
    nb, n, k = b.shape
    x = np.empty((n, k), np.float64)
    forward = lower != transpose_a          # op(t) is lower triangular
    for i in range(nb):
        for r in range(n):
            for c in range(k):
                x[r, c] = b[i, r, c]
        for step in range(n):
            r = step if forward else n - 1 - step
            lo = 0 if forward else r + 1
            hi = r if forward else n
            for j in range(lo, hi):
                t = a[i, j, r] if transpose_a else a[i, r, j]
                for c in range(k):
                    x[r, c] -= t * x[j, c]
            if not unit_diagonal:
                d = a[i, r, r]
                if d == 0.0:
                    raise np.linalg.LinAlgError("Singular matrix")
                for c in range(k):
                    x[r, c] /= d
        for r in range(n):
            for c in range(k):
                out[i, r, c] = x[r, c]
    return out
