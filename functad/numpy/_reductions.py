"""Reductions, cumulative operations and statistics of functad.numpy.

Every function follows NumPy 2: ``axis`` is ``None`` (all axes), an int
(negative counts from the end) or a tuple of ints; ``keepdims`` keeps the
reduced axes with length one; result dtypes are NumPy's (``sum`` of booleans
is int64, ``mean`` of integers is float64, float32 stays float32).  All of
them work eagerly and under every transform; see ``docs/numpy_reductions.md``
for the derivative conventions (ties, zeros, NaNs).

>>> import functad.numpy as fnp
>>> x = fnp.array([[1.0, 5.0], [7.0, 2.0]])
>>> fnp.max(x, axis=0), fnp.argmax(x, axis=1), fnp.var(x)
(Array([7., 5.]), Array([1, 0]), np.float64(5.6875))
"""

from __future__ import annotations

import builtins
import operator

import numpy as np

from functad import core
from functad.core import Tracer
from functad.lax import elementwise as ew
from functad.lax import reductions as lr
from functad.lax import shapes as ls
from functad.numpy._ufuncs import _arr

__all__ = ["sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "all",
           "any", "cumsum", "cumprod", "cumulative_sum", "cumulative_prod", "var", "std",
           "average", "ptp", "count_nonzero", "nansum", "nanprod", "nanmean", "nanmax",
           "nanmin", "median"]

_aval_of = core.aval_of
_AxisError = np.exceptions.AxisError
_F64 = np.dtype(np.float64)


# --------------------------------------------------------------------------
# Axis handling (cached: the same (axis, ndim) pairs recur on every call)
# --------------------------------------------------------------------------

def _normalize_axes(axis, shape, name):
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        try:
            i = operator.index(a)
        except TypeError:
            raise TypeError(f"{name}: axis must be None, an integer or a tuple of integers, "
                            f"got {axis!r}") from None
        if not -builtins.max(ndim, 1) <= i < builtins.max(ndim, 1):
            raise _AxisError(
                f"{name}: axis {i} is out of bounds for an array of dimension {ndim} "
                f"(shape {tuple(shape)}); valid axes are {-ndim}..{ndim - 1}"
                if ndim else f"{name}: axis {i} is out of bounds for a 0-d array; use axis=None")
        i = i % ndim if ndim else None
        if i in out:
            raise ValueError(f"{name}: repeated axis {i} in axis={axis!r}")
        out.append(i)
    return tuple(sorted(out)) if ndim else ()


_AXES_CACHE: dict = {}


def _axes(axis, shape, name):
    """``axis`` as a sorted tuple of non-negative ints, with NumPy's errors."""
    key = (axis, len(shape))
    try:
        return _AXES_CACHE[key]
    except (KeyError, TypeError):     # TypeError: an unhashable axis (a list)
        pass
    axes = _normalize_axes(axis, shape, name)
    try:
        _AXES_CACHE[key] = axes
    except TypeError:
        pass
    return axes


def _one_axis(axis, shape, name):
    """A single axis (an int) as a non-negative int."""
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"{name}: axis must be a single integer, got {axis!r}")
    return _axes(axis, shape, name)


def _keepdims(out, shape, axes):
    return ls.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _reduced_size(shape, axes):
    n = 1
    for i in axes:
        n *= shape[i]
    return n


def _no_out(name, out):
    if out is not None:
        raise NotImplementedError(
            f"{name}: the out= argument is not supported: functad arrays are immutable. "
            f"Use the returned value (y = fnp.{name}(x, ...)) instead.")


def _mask(where, shape, name):
    """``where`` as a boolean array broadcast to ``shape``."""
    w = _arr(where)
    if _aval_of(w).dtype != np.bool_:
        w = ew.ne(w, 0)
    try:
        return ls.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"{name}: the where= mask of shape {np.shape(where)} does not "
                         f"broadcast to the array's shape {shape}") from None


def _astype(x, dtype):
    return ew.convert_element_type(x, np.dtype(dtype))


def _operand(name, a, axis, out):
    """The prelude of the reductions over ``axis``: ``a`` as an array (tracers
    kept), its aval and its normalized reduced axes; ``out=`` is refused."""
    if not isinstance(a, (np.ndarray, Tracer)):
        a = _arr(a)
    av = _aval_of(a)
    axes = _axes(axis, av.shape, name)
    if out is not None:
        _no_out(name, out)
    return a, av, axes


# --------------------------------------------------------------------------
# Sums and products
# --------------------------------------------------------------------------

_reduce_sum_bind = lr.reduce_sum_p.bind
_reduce_prod_bind = lr.reduce_prod_p.bind


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """Sum of the elements of ``a`` over ``axis``.

    Parameters
    ----------
    a : array_like
    axis : None, int or tuple of ints
        Axes to sum over (``None``: all of them; negative axes count from the end).
    dtype : dtype, optional
        Cast ``a`` to this dtype first.  By default booleans and small integers
        are summed as int64 (uint64 for unsigned), as in NumPy.
    keepdims : bool
        Keep the reduced axes with length one.
    initial : scalar, optional
        Added to the sum.
    where : array_like of bool, optional
        Only elements where this is true are summed.

    Returns
    -------
    Array (or a tracer under a transform).

    >>> import functad.numpy as fnp
    >>> fnp.sum(fnp.ones((2, 3)), axis=0)
    Array([2., 2., 2.])
    >>> fnp.sum(fnp.array([True, True, False]))
    np.int64(2)
    """
    return _sum_or_prod("sum", _reduce_sum_bind, 0, ew.add,
                        a, axis, dtype, out, keepdims, initial, where)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product of the elements of ``a`` over ``axis``.

    The derivative is exact even where ``a`` contains zeros (it is the product
    of the *other* elements, computed without division).  Arguments as in
    :func:`sum`; ``initial`` multiplies the product.

    >>> import functad as fd, functad.numpy as fnp
    >>> fnp.prod(fnp.array([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    Array([ 2., 12.])
    >>> fd.grad(fnp.prod)(fnp.array([0.0, 2.0, 3.0]))
    Array([6., 0., 0.])
    """
    return _sum_or_prod("prod", _reduce_prod_bind, 1, ew.mul,
                        a, axis, dtype, out, keepdims, initial, where)


def _sum_or_prod(name, bind, identity, combine, a, axis, dtype, out, keepdims, initial, where):
    """sum and prod: masked-out elements are the ``identity``, and ``initial``
    is ``combine``d into the result."""
    a, av, axes = _operand(name, a, axis, out)
    shape = av.shape
    if dtype is not None:
        a = _astype(a, dtype)
    if where is not None:
        a = ew.select(_mask(where, shape, name), a, identity)
    r = bind(a, axes=axes)
    if initial is not None:
        r = combine(r, initial)
    return _keepdims(r, shape, axes) if keepdims else r


def _float_dtype(dtype):
    """The dtype NumPy computes means and variances in: integers -> float64."""
    return _F64 if dtype.kind in "biu" else dtype


def _count(shape, axes, where, like):
    """Number of elements reduced (a Python float, or an array if ``where``)."""
    if where is None:
        return float(_reduced_size(shape, axes))
    return ew.convert_element_type(_reduce_sum_bind(where, axes=axes), _aval_of(like).dtype)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Arithmetic mean over ``axis``.

    Integers and booleans give float64; float32 stays float32 (float16 is
    accumulated in float32, as NumPy does).  The mean of an empty selection is
    NaN.

    >>> import functad.numpy as fnp
    >>> fnp.mean(fnp.array([[1.0, 2.0], [3.0, 5.0]]), axis=1)
    Array([1.5, 4. ])
    >>> fnp.mean(fnp.array([1, 2]))
    np.float64(1.5)
    """
    a, av, axes = _operand("mean", a, axis, out)
    shape = av.shape
    final = None
    if dtype is None:
        dt = _float_dtype(av.dtype)
        if dt == np.float16:
            dt, final = np.dtype(np.float32), dt
    else:
        dt = np.dtype(dtype)
    a = _astype(a, dt)
    w = None if where is None else _mask(where, shape, "mean")
    s = _reduce_sum_bind(a if w is None else ew.select(w, a, 0), axes=axes)
    r = ew.div(s, _count(shape, axes, w, s))
    if final is not None:
        r = _astype(r, final)
    return _keepdims(r, shape, axes) if keepdims else r


# --------------------------------------------------------------------------
# Maxima and minima
# --------------------------------------------------------------------------

def _extremum(name, prim, binary, a, axis, out, keepdims, initial, where):
    a, av, axes = _operand(name, a, axis, out)
    shape = av.shape
    if where is not None:
        if initial is None:
            raise ValueError(f"{name}: the maximum/minimum has no identity, so a where= mask "
                             "needs initial= as the value of fully masked-out slices")
        a = ew.select(_mask(where, shape, name), a, initial)
    for i in axes:
        if shape[i] == 0:
            if initial is None:
                raise ValueError(
                    f"{name}: cannot reduce over axis {i} of an array of shape {shape}: it is "
                    f"empty and {name} has no identity. Pass initial=... to give empty "
                    "reductions a value, or check the size first.")
            init = ew.convert_element_type(_arr(initial), av.dtype)
            r = ls.broadcast_to(init, tuple(d for j, d in enumerate(shape) if j not in axes))
            return _keepdims(r, shape, axes) if keepdims else r
    r = prim.bind(a, axes=axes)
    if initial is not None:
        r = binary(r, initial)
    return _keepdims(r, shape, axes) if keepdims else r


def max(a, axis=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """Maximum of ``a`` over ``axis``.

    NaNs propagate (use :func:`nanmax` to ignore them).  An empty reduction
    raises ``ValueError`` unless ``initial`` is given.  Derivative: the tangent
    at the maximum; when several elements tie for it they share it equally
    (each gets ``1/k`` of the gradient), as in JAX.

    >>> import functad as fd, functad.numpy as fnp
    >>> fnp.max(fnp.array([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    Array([5., 7.])
    >>> fd.grad(fnp.max)(fnp.array([3.0, 1.0, 3.0]))
    Array([0.5, 0. , 0.5])
    """
    return _extremum("max", lr.reduce_max_p, ew.max, a, axis, out, keepdims, initial, where)


def min(a, axis=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """Minimum of ``a`` over ``axis``; see :func:`max` for the conventions.

    >>> import functad.numpy as fnp
    >>> fnp.min(fnp.array([[1.0, 5.0], [7.0, 2.0]]), axis=0, keepdims=True)
    Array([[1., 2.]])
    """
    return _extremum("min", lr.reduce_min_p, ew.min, a, axis, out, keepdims, initial, where)


def amax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Alias of :func:`max`.

    >>> import functad.numpy as fnp
    >>> fnp.amax(fnp.array([1.0, 3.0]))
    np.float64(3.0)
    """
    return _extremum("amax", lr.reduce_max_p, ew.max, a, axis, out, keepdims, initial, where)


def amin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Alias of :func:`min`.

    >>> import functad.numpy as fnp
    >>> fnp.amin(fnp.array([1.0, 3.0]))
    np.float64(1.0)
    """
    return _extremum("amin", lr.reduce_min_p, ew.min, a, axis, out, keepdims, initial, where)


def _arg_extremum(name, prim, a, axis, out, keepdims):
    if not isinstance(a, (np.ndarray, Tracer)):
        a = _arr(a)
    av = _aval_of(a)
    shape = av.shape
    if out is not None:
        _no_out(name, out)
    if axis is None or not shape:
        if axis is not None:
            _one_axis(axis, shape, name)          # validates 0 / -1 for a 0-d array
        if av.size == 0:
            raise ValueError(f"{name}: attempt to get {name} of an empty array (shape {shape})")
        flat = a if len(shape) == 1 else ls.reshape(a, (av.size,))
        r = prim.bind(flat, axis=0)
        return ls.reshape(r, (1,) * len(shape)) if keepdims else r
    (ax,) = _one_axis(axis, shape, name)
    if shape[ax] == 0:
        raise ValueError(f"{name}: attempt to get {name} of an empty sequence: axis {ax} of "
                         f"an array of shape {shape} has length 0")
    r = prim.bind(a, axis=ax)
    return _keepdims(r, shape, (ax,)) if keepdims else r


def argmax(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the maximum along ``axis`` (of the flattened array if ``None``).

    The first occurrence wins on ties, and a NaN counts as the maximum (the
    first NaN is returned), as in NumPy.  The result is an integer, so it has
    no derivative.

    >>> import functad.numpy as fnp
    >>> fnp.argmax(fnp.array([[1.0, 5.0], [7.0, 7.0]]), axis=1)
    Array([1, 0])
    """
    return _arg_extremum("argmax", lr.argmax_p, a, axis, out, keepdims)


def argmin(a, axis=None, out=None, *, keepdims=False):
    """Index (int64) of the minimum along ``axis``; see :func:`argmax`.

    >>> import functad.numpy as fnp
    >>> fnp.argmin(fnp.array([3.0, 1.0, 1.0]))
    np.int64(1)
    """
    return _arg_extremum("argmin", lr.argmin_p, a, axis, out, keepdims)


def ptp(a, axis=None, out=None, keepdims=False):
    """Range (maximum minus minimum) over ``axis`` ("peak to peak").

    >>> import functad.numpy as fnp
    >>> fnp.ptp(fnp.array([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    Array([4., 5.])
    """
    if out is not None:
        _no_out("ptp", out)
    a = _arr(a)
    return ew.sub(_extremum("ptp", lr.reduce_max_p, ew.max, a, axis, None, keepdims, None, None),
                  _extremum("ptp", lr.reduce_min_p, ew.min, a, axis, None, keepdims, None, None))


# --------------------------------------------------------------------------
# Logical reductions and counting
# --------------------------------------------------------------------------

def _logical(name, prim, identity, a, axis, out, keepdims, where):
    a, av, axes = _operand(name, a, axis, out)
    shape = av.shape
    if where is not None:     # (the reduction itself treats nonzero as true)
        a = ew.select(_mask(where, shape, name), ew.ne(a, 0), identity)
    r = prim.bind(a, axes=axes)
    return _keepdims(r, shape, axes) if keepdims else r


def all(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Whether every element over ``axis`` is true (non-zero; NaN counts as true).

    >>> import functad.numpy as fnp
    >>> fnp.all(fnp.array([[1.0, 0.0], [2.0, 3.0]]), axis=1)
    Array([False,  True])
    """
    return _logical("all", lr.reduce_and_p, True, a, axis, out, keepdims, where)


def any(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Whether some element over ``axis`` is true (non-zero).

    >>> import functad.numpy as fnp
    >>> fnp.any(fnp.array([[1.0, 0.0], [0.0, 0.0]]), axis=1)
    Array([ True, False])
    """
    return _logical("any", lr.reduce_or_p, False, a, axis, out, keepdims, where)


def count_nonzero(a, axis=None, *, keepdims=False):
    """Number of non-zero elements over ``axis``, as int64.

    Unlike NumPy, which returns a Python int for ``axis=None``, the result is
    always an array (a 0-d one here), so that it can be traced.

    >>> import functad.numpy as fnp
    >>> fnp.count_nonzero(fnp.array([[1.0, 0.0], [2.0, 3.0]]), axis=0)
    Array([2, 1])
    """
    a = _arr(a)
    shape = _aval_of(a).shape
    axes = _axes(axis, shape, "count_nonzero")
    if _aval_of(a).dtype != np.bool_:
        a = ew.ne(a, 0)
    r = _reduce_sum_bind(a, axes=axes)       # booleans sum to int64
    return _keepdims(r, shape, axes) if keepdims else r


# --------------------------------------------------------------------------
# Cumulative operations
# --------------------------------------------------------------------------

def _cumulative(name, prim, a, axis, dtype, out, flatten_none=True, include_initial=False):
    if not isinstance(a, (np.ndarray, Tracer)):
        a = _arr(a)
    av = _aval_of(a)
    shape = av.shape
    if out is not None:
        _no_out(name, out)
    if axis is None:
        if not flatten_none and len(shape) > 1:
            raise ValueError(f"{name}: axis=None is only allowed for arrays of at most one "
                             f"dimension; pass axis= for this array of shape {shape}")
        if len(shape) != 1:
            a = ls.reshape(a, (av.size,))
        ax = 0
    elif not shape:
        _one_axis(axis, shape, name)             # 0-d: only axis 0 / -1, scanned as shape (1,)
        a, ax = ls.reshape(a, (1,)), 0
    else:
        (ax,) = _one_axis(axis, shape, name)
    if dtype is not None:
        a = _astype(a, dtype)
    r = prim.bind(a, axis=ax, reverse=False)
    if include_initial:
        r = lr.shift(r, ax, 1, _aval_of(r).shape[ax] + 1)
        if prim is lr.cumprod_p:
            r = ew.add(r, lr._one_hot_start(_aval_of(r).shape, ax, False, _aval_of(r).dtype))
    return r


def cumsum(a, axis=None, dtype=None, out=None):
    """Cumulative sum along ``axis`` (of the flattened array if ``None``).

    Booleans and small integers accumulate in int64, as in NumPy.  Linear: its
    gradient is the reversed cumulative sum of the cotangent.

    >>> import functad.numpy as fnp
    >>> fnp.cumsum(fnp.array([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    Array([[1., 3.],
           [3., 7.]])
    """
    return _cumulative("cumsum", lr.cumsum_p, a, axis, dtype, out)


def cumprod(a, axis=None, dtype=None, out=None):
    """Cumulative product along ``axis`` (of the flattened array if ``None``).

    The derivative is exact where ``a`` contains zeros (no division), at every
    order; it costs ``O(n log n)`` along the axis.

    >>> import functad as fd, functad.numpy as fnp
    >>> fnp.cumprod(fnp.array([1.0, 2.0, 3.0]))
    Array([1., 2., 6.])
    >>> fd.grad(lambda x: fnp.cumprod(x)[-1])(fnp.array([2.0, 0.0, 3.0]))
    Array([0., 6., 0.])
    """
    return _cumulative("cumprod", lr.cumprod_p, a, axis, dtype, out)


def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """Cumulative sum (the NumPy 2 / array API name).

    ``axis`` may be omitted only for arrays of at most one dimension;
    ``include_initial=True`` prepends the initial value 0 along ``axis``.

    >>> import functad.numpy as fnp
    >>> fnp.cumulative_sum(fnp.array([1.0, 2.0, 3.0]), include_initial=True)
    Array([0., 1., 3., 6.])
    """
    return _cumulative("cumulative_sum", lr.cumsum_p, x, axis, dtype, out, False, include_initial)


def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """Cumulative product (the NumPy 2 / array API name); see :func:`cumulative_sum`.

    >>> import functad.numpy as fnp
    >>> fnp.cumulative_prod(fnp.array([2.0, 3.0]), include_initial=True)
    Array([1., 2., 6.])
    """
    return _cumulative("cumulative_prod", lr.cumprod_p, x, axis, dtype, out, False,
                       include_initial)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance over ``axis``: ``sum(|a - mean|**2) / (N - ddof)``.

    Parameters
    ----------
    ddof, correction : number
        Delta degrees of freedom (``correction`` is the array API name; give at
        most one).  ``N - ddof <= 0`` gives ``inf`` or ``nan``, as in NumPy.
    mean : array, optional
        A precomputed mean with ``keepdims=True`` shape.
    Others as in :func:`mean`.

    >>> import functad.numpy as fnp
    >>> fnp.var(fnp.array([1.0, 2.0, 3.0, 4.0]))
    np.float64(1.25)
    >>> fnp.var(fnp.array([1.0, 2.0, 3.0, 4.0]), ddof=1)
    np.float64(1.6666666666666667)
    """
    return _var("var", a, axis, dtype, out, ddof, keepdims, where, mean, correction)


def _var(name, a, axis, dtype, out, ddof, keepdims, where, mean, correction):
    if correction is not None:
        if ddof != 0:
            raise ValueError(f"{name}: give ddof or correction, not both (they are the same "
                             "thing)")
        ddof = correction
    a, av, axes = _operand(name, a, axis, out)
    shape = av.shape
    dt = _float_dtype(av.dtype) if dtype is None else np.dtype(dtype)
    a = _astype(a, dt)
    w = None if where is None else _mask(where, shape, name)
    s = _reduce_sum_bind(a if w is None else ew.select(w, a, 0), axes=axes)
    n = _count(shape, axes, w, s)
    if mean is None:
        mean = _keepdims(ew.div(s, n), shape, axes)
    d = ew.sub(a, mean)
    sq = ew.mul(d, d)
    ss = _reduce_sum_bind(sq if w is None else ew.select(w, sq, 0), axes=axes)
    denom = builtins.max(n - ddof, 0.0) if w is None else ew.max(ew.sub(n, ddof), 0.0)
    r = ew.div(ss, denom)
    return _keepdims(r, shape, axes) if keepdims else r


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation over ``axis``: the square root of :func:`var`.

    Its derivative is infinite (NaN) where the variance is zero, as in JAX.

    >>> import functad.numpy as fnp
    >>> fnp.std(fnp.array([[1.0, 3.0], [2.0, 2.0]]), axis=1)
    Array([1., 0.])
    """
    return ew.sqrt(_var("std", a, axis, dtype, out, ddof, keepdims, where, mean, correction))


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Weighted average over ``axis``: ``sum(a * weights) / sum(weights)``.

    ``weights`` has the shape of ``a``, or the shape of ``a`` along ``axis``
    (then ``axis`` must be given).  With ``returned=True`` also returns the sum
    of the weights, broadcast to the result's shape.  Weights that sum to zero
    raise ``ZeroDivisionError`` eagerly (under a transform they give inf/NaN).

    >>> import functad.numpy as fnp
    >>> fnp.average(fnp.array([[1.0, 2.0], [3.0, 4.0]]), axis=1, weights=fnp.array([3.0, 1.0]))
    Array([1.25, 3.25])
    """
    a = _arr(a)
    av = _aval_of(a)
    shape = av.shape
    axes = _axes(axis, shape, "average")
    if weights is None:
        r = mean(a, axes, keepdims=keepdims)
        if not returned:
            return r
        scl = ew.convert_element_type(ls.broadcast_to(
            float(_reduced_size(shape, axes)), _aval_of(r).shape), _aval_of(r).dtype)
        return r, scl
    w = _arr(weights)
    wv = _aval_of(w)
    if wv.shape != shape:
        if axis is None:
            raise TypeError(f"average: axis must be given when the shapes of a {shape} and "
                            f"weights {wv.shape} differ")
        expected = tuple(shape[i] for i in axes)
        if wv.shape != expected:
            raise ValueError(f"average: weights of shape {wv.shape} must have the shape of a "
                             f"{shape} or its shape along axis={axis!r}, {expected}")
        w = ls.reshape(w, tuple(d if i in axes else 1 for i, d in enumerate(shape)))
    dt = np.result_type(av.dtype, wv.dtype)
    if dt.kind in "biu":
        dt = _F64
    a, w = _astype(a, dt), _astype(w, dt)
    # weights of a's shape reduce to r's shape; weights along axis reduce to ones
    scl = _reduce_sum_bind(w, axes=axes)
    if not isinstance(scl, Tracer) and np.any(np.asarray(scl) == 0):
        raise ZeroDivisionError("average: the weights sum to zero, so they cannot be normalized")
    r = ew.div(_reduce_sum_bind(ew.mul(a, w), axes=axes), scl)
    if keepdims:
        r = _keepdims(r, shape, axes)
    if not returned:
        return r
    return r, ls.broadcast_to(scl, _aval_of(r).shape)


# --------------------------------------------------------------------------
# NaN-ignoring variants
# --------------------------------------------------------------------------

def _is_float(a):
    return _aval_of(a).dtype.kind in "fc"


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum over ``axis`` treating NaNs as zero (their gradient is zero).

    >>> import functad.numpy as fnp
    >>> fnp.nansum(fnp.array([1.0, fnp.nan, 2.0]))
    np.float64(3.0)
    """
    a = _arr(a)
    if _is_float(a):
        a = ew.select(ew.isnan(a), 0, a)
    return sum(a, axis, dtype, out, keepdims, initial, where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product over ``axis`` treating NaNs as one.

    >>> import functad.numpy as fnp
    >>> fnp.nanprod(fnp.array([2.0, fnp.nan, 3.0]))
    np.float64(6.0)
    """
    a = _arr(a)
    if _is_float(a):
        a = ew.select(ew.isnan(a), 1, a)
    return prod(a, axis, dtype, out, keepdims, initial, where)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Mean over ``axis`` ignoring NaNs; an all-NaN slice gives NaN.

    >>> import functad.numpy as fnp
    >>> fnp.nanmean(fnp.array([[1.0, fnp.nan], [2.0, 4.0]]), axis=1)
    Array([1., 3.])
    """
    a = _arr(a)
    if not _is_float(a):
        return mean(a, axis, dtype, out, keepdims, where=where)
    ok = ew.logical_not(ew.isnan(a))
    if where is not None:
        ok = ew.logical_and(ok, _mask(where, _aval_of(a).shape, "nanmean"))
    return mean(a, axis, dtype, out, keepdims, where=ok)


def _nan_extremum(name, prim, binary, fill, a, axis, out, keepdims, initial, where):
    a = _arr(a)
    if not _is_float(a):
        return _extremum(name, prim, binary, a, axis, out, keepdims, initial, where)
    nan = ew.isnan(a)
    r = _extremum(name, prim, binary, ew.select(nan, fill, a), axis, out, keepdims, initial,
                  where)
    if initial is not None:
        return r
    all_nan = _logical(name, lr.reduce_and_p, True, nan, axis, None, keepdims, where)
    return ew.select(all_nan, np.nan, r)


def nanmax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Maximum over ``axis`` ignoring NaNs; an all-NaN slice gives NaN (no warning).

    >>> import functad.numpy as fnp
    >>> fnp.nanmax(fnp.array([[1.0, fnp.nan], [fnp.nan, fnp.nan]]), axis=1)
    Array([ 1., nan])
    """
    return _nan_extremum("nanmax", lr.reduce_max_p, ew.max, -np.inf, a, axis, out, keepdims,
                         initial, where)


def nanmin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Minimum over ``axis`` ignoring NaNs; an all-NaN slice gives NaN (no warning).

    >>> import functad.numpy as fnp
    >>> fnp.nanmin(fnp.array([3.0, fnp.nan, 2.0]))
    np.float64(2.0)
    """
    return _nan_extremum("nanmin", lr.reduce_min_p, ew.min, np.inf, a, axis, out, keepdims,
                         initial, where)


# --------------------------------------------------------------------------
# Median (needs functad.numpy.sort)
# --------------------------------------------------------------------------

def _sort():
    from functad.numpy import _sorting
    sort = getattr(_sorting, "sort", None)
    if sort is None:
        raise NotImplementedError("median: needs functad.numpy.sort, which is not available yet")
    return sort


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Median over ``axis``: the middle element, or the mean of the two middle ones.

    Computed by sorting along the axis (``functad.numpy.sort``), so the gradient
    flows to the middle element(s).  A slice containing NaN has median NaN,
    as in NumPy; integers give float64.

    >>> import functad.numpy as fnp
    >>> fnp.median(fnp.array([[3.0, 1.0, 2.0], [4.0, 6.0, 5.0], [1.0, 2.0, 4.0]]), axis=1)
    Array([2., 5., 2.])
    """
    sort = _sort()
    if out is not None:
        _no_out("median", out)
    a = _arr(a)
    av = _aval_of(a)
    shape = av.shape
    axes = _axes(axis, shape, "median")
    a = _astype(a, _float_dtype(av.dtype))
    kept = [i for i in range(len(shape)) if i not in axes]
    n = _reduced_size(shape, axes)
    flat = ls.reshape(ls.transpose(a, tuple(kept) + axes), tuple(shape[i] for i in kept) + (n,))
    last = len(kept)
    if n == 0:
        r = ew.div(_reduce_sum_bind(flat, axes=(last,)), 0.0)      # NaN, as NumPy
    else:
        s = sort(flat, axis=last)
        k = n // 2
        if n % 2:
            mid = lr.shift(s, last, -k, 1)
            r = _reduce_sum_bind(mid, axes=(last,))
        else:
            r = ew.mul(_reduce_sum_bind(lr.shift(s, last, 1 - k, 2), axes=(last,)), 0.5)
        if _is_float(a):
            # NaNs sort last: a NaN anywhere makes the median NaN
            top = _reduce_sum_bind(lr.shift(s, last, 1 - n, 1), axes=(last,))
            r = ew.select(ew.isnan(top), np.nan, r)
    return _keepdims(r, shape, axes) if keepdims else r
