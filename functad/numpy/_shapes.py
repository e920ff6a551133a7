"""Shape manipulation of functad.numpy: reshape, transpose, stack, split, pad, ...

Everything here is differentiable: each function is written with the linear
shape primitives of :mod:`functad.lax.shapes` (reshape, broadcast_to,
transpose, concatenate, slice, pad, rev) and, for array-valued ``repeat`` and
traced ``roll`` shifts, the gather of :mod:`functad.lax.indexing`.
"""

from __future__ import annotations

import numpy as np

import operator

from functad import core
from functad.core import Tracer
from functad.lax import shapes as ls
from functad.lax.elementwise import convert_element_type
from functad.numpy._core import result_type
from functad.numpy._ufuncs import _arr

__all__ = ["reshape", "transpose", "ravel", "expand_dims", "squeeze", "broadcast_to",
           "permute_dims", "matrix_transpose",
           "concatenate", "concat", "stack", "hstack", "vstack", "row_stack", "dstack",
           "column_stack", "atleast_1d", "atleast_2d", "atleast_3d", "split", "array_split",
           "hsplit", "vsplit", "dsplit", "tile", "repeat", "flip", "fliplr", "flipud", "roll",
           "swapaxes", "moveaxis", "rollaxis", "rot90", "broadcast_arrays", "broadcast_shapes",
           "pad"]


def _resolve_shape(newshape, size):
    if isinstance(newshape, (int, np.integer)):
        newshape = (int(newshape),)
    newshape = [int(d) for d in newshape]
    if newshape.count(-1) > 1:
        raise ValueError(f"reshape: can only specify one unknown dimension, got {tuple(newshape)}")
    if -1 in newshape:
        known = int(np.prod([d for d in newshape if d != -1]))
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {tuple(newshape)}")
        newshape[newshape.index(-1)] = size // known
    return tuple(newshape)


def reshape(a, shape=None, order="C", *, newshape=None):
    """Give ``a`` a new shape (one dimension may be ``-1``)."""
    if order != "C":
        raise NotImplementedError("reshape: only order='C' is supported")
    shape = newshape if shape is None else shape
    a = _arr(a)
    av = core.aval_of(a)
    return ls.reshape(a, _resolve_shape(shape, av.size))


def ravel(a, order="C"):
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    a = _arr(a)
    nd = core.aval_of(a).ndim
    axes = tuple(reversed(range(nd))) if axes is None else tuple(int(i) % nd for i in axes)
    return ls.transpose(a, axes)


permute_dims = transpose


def matrix_transpose(x):
    nd = core.aval_of(x).ndim
    if nd < 2:
        raise ValueError(f"matrix_transpose: x must have at least 2 dimensions, got {nd}")
    return ls.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def expand_dims(a, axis):
    a = _arr(a)
    shape = list(core.aval_of(a).shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = len(shape) + len(axes)
    for ax in sorted(int(x) % nd for x in axes):
        shape.insert(ax, 1)
    return ls.reshape(a, tuple(shape))


def squeeze(a, axis=None):
    a = _arr(a)
    shape = core.aval_of(a).shape
    if axis is None:
        axes = {i for i, d in enumerate(shape) if d == 1}
    else:
        axes = {int(x) % len(shape) for x in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
        for ax in axes:
            if shape[ax] != 1:
                raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size "
                                 f"not equal to one (axis {ax} of shape {shape})")
    return ls.reshape(a, tuple(d for i, d in enumerate(shape) if i not in axes))


def broadcast_to(array, shape):
    return ls.broadcast_to(_arr(array), shape)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _axis(axis, ndim, name):
    """Normalise one axis, with NumPy's AxisError naming the function."""
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(
            f"{name}: axis {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def _axes(axis, ndim, name):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = tuple(_axis(a, ndim, name) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis!r}")
    return out


def _seq(arrays, name):
    """The arrays of a sequence argument (an array is split along its first axis)."""
    if isinstance(arrays, (np.ndarray, Tracer)):
        arrays = [arrays[i] for i in range(np.shape(arrays)[0])] if np.ndim(arrays) else [arrays]
    elif not isinstance(arrays, (list, tuple)):
        arrays = list(arrays)     # generators: NumPy refuses them, we are lenient
    xs = [_arr(a) for a in arrays]
    if not xs:
        raise ValueError(f"{name}: need at least one array")
    return xs


def _cast_all(xs, dtype):
    """Cast each array to the common (NumPy 2) result dtype, or to ``dtype``."""
    avals = [core.aval_of(x) for x in xs]
    if dtype is None:
        d0 = avals[0].dtype
        if all(a.dtype == d0 and not a.weak_type for a in avals):
            return xs
        dtype = result_type(*xs)
    dtype = np.dtype(dtype)
    return [x if a.dtype == dtype else convert_element_type(x, dtype) for x, a in zip(xs, avals)]


def _ndarrays(xs):
    """True if every element is a NumPy array or scalar (or functad Array): then NumPy's
    own function gives our result (Python scalars are excluded: they are weak
    for us, not for NumPy)."""
    if type(xs) is not list and type(xs) is not tuple:
        return False
    for x in xs:
        if not isinstance(x, (np.ndarray, np.generic)):
            return False
    return True


def _numpy(fn, *args, **kwargs):
    """Eager fast path: NumPy's result as functad values, or ``None`` if NumPy
    raised (our own path then raises an error that names our function)."""
    try:
        out = fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - re-raised by the slow path with our message
        return None
    if type(out) is list or type(out) is tuple:
        return type(out)(core._wrap(o) for o in out)
    return core._wrap(out)


# --------------------------------------------------------------------------
# Joining
# --------------------------------------------------------------------------

def concatenate(arrays, axis=0, dtype=None):
    """Join a sequence of arrays along an existing axis (differentiable).

    Dtypes are promoted as in NumPy 2; ``axis=None`` flattens the inputs first.

    >>> import functad.numpy as fnp
    >>> fnp.concatenate([fnp.ones((1, 2)), fnp.zeros((2, 2))]).shape
    (3, 2)
    """
    if _ndarrays(arrays):
        out = _numpy(np.concatenate, arrays, axis=axis, dtype=dtype)
        if out is not None:
            return out
    xs = _seq(arrays, "concatenate")
    if axis is None:
        xs = [ravel(x) for x in xs]
        axis = 0
    shapes = [core.aval_of(x).shape for x in xs]
    nd = len(shapes[0])
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated; "
                         "use stack, or atleast_1d first")
    ax = _axis(axis, nd, "concatenate")
    for s in shapes:
        if len(s) != nd or any(d != e for i, (d, e) in enumerate(zip(s, shapes[0])) if i != ax):
            raise ValueError(f"concatenate: all the input array dimensions except for the "
                             f"concatenation axis {ax} must match exactly, got shapes {shapes}")
    return ls.concatenate(_cast_all(xs, dtype), ax)


concat = concatenate


def stack(arrays, axis=0, dtype=None):
    """Join arrays of equal shape along a new axis (differentiable).

    >>> import functad.numpy as fnp
    >>> fnp.stack([fnp.ones(3), fnp.zeros(3)], axis=-1).shape
    (3, 2)
    """
    if _ndarrays(arrays):
        out = _numpy(np.stack, arrays, axis=axis, dtype=dtype)
        if out is not None:
            return out
    xs = _seq(arrays, "stack")
    shape = core.aval_of(xs[0]).shape
    for x in xs:
        if core.aval_of(x).shape != shape:
            raise ValueError("stack: all input arrays must have the same shape, got "
                             f"{[core.aval_of(y).shape for y in xs]}")
    ax = _axis(axis, len(shape) + 1, "stack")
    new = shape[:ax] + (1,) + shape[ax:]
    xs = [ls.reshape(x, new) for x in _cast_all(xs, dtype)]
    return ls.concatenate(xs, ax)


def _atleast(x, n):
    x = _arr(x)
    shape = core.aval_of(x).shape
    if len(shape) >= n:
        return ls._unchanged(x)
    if n == 3 and len(shape) == 1:
        return ls.reshape(x, (1,) + shape + (1,))
    if n == 3 and len(shape) == 2:
        return ls.reshape(x, shape + (1,))
    return ls.reshape(x, (1,) * (n - len(shape)) + shape)


def _atleast_fn(n):
    def fn(*arys):
        if len(arys) == 1:
            return _atleast(arys[0], n)
        return tuple(_atleast(a, n) for a in arys)
    fn.__name__ = fn.__qualname__ = f"atleast_{n}d"
    example = {1: "(1,)", 2: "(1, 1)", 3: "(1, 1, 1)"}[n]
    fn.__doc__ = (f"View inputs as arrays with at least {n} dimension{'s' if n > 1 else ''} "
                  "(NumPy's rules: a 1-d array becomes a row, and for ``atleast_3d`` a "
                  "``(M, N)`` array becomes ``(M, N, 1)``).\n\n    One input gives one array; "
                  f"several give a tuple.\n\n    >>> import functad.numpy as fnp\n"
                  f"    >>> fnp.atleast_{n}d(1.0).shape\n    {example}\n    ")
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast_fn(1), _atleast_fn(2), _atleast_fn(3)


def hstack(tup, dtype=None):
    """Stack arrays horizontally: along axis 1, or axis 0 for 1-d inputs.

    >>> import functad.numpy as fnp
    >>> fnp.hstack([fnp.ones(2), fnp.zeros(1)])
    Array([1., 1., 0.])
    """
    if _ndarrays(tup):
        out = _numpy(np.hstack, tup, dtype=dtype)
        if out is not None:
            return out
    xs = [_atleast(x, 1) for x in _seq(tup, "hstack")]
    return concatenate(xs, axis=0 if core.aval_of(xs[0]).ndim == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None):
    """Stack arrays vertically (along axis 0, after ``atleast_2d``).

    >>> import functad.numpy as fnp
    >>> fnp.vstack([fnp.ones(2), fnp.zeros(2)]).shape
    (2, 2)
    """
    if _ndarrays(tup):
        out = _numpy(np.vstack, tup, dtype=dtype)
        if out is not None:
            return out
    return concatenate([_atleast(x, 2) for x in _seq(tup, "vstack")], axis=0, dtype=dtype)


row_stack = vstack


def dstack(tup, dtype=None):
    """Stack arrays along the third axis (after ``atleast_3d``).

    >>> import functad.numpy as fnp
    >>> fnp.dstack([fnp.ones(2), fnp.zeros(2)]).shape
    (1, 2, 2)
    """
    if _ndarrays(tup):
        out = _numpy(np.dstack, tup)
        if out is not None:
            return out
    return concatenate([_atleast(x, 3) for x in _seq(tup, "dstack")], axis=2, dtype=dtype)


def column_stack(tup):
    """Stack 1-d arrays as columns of a 2-d array (2-d inputs are stacked as is).

    >>> import functad.numpy as fnp
    >>> fnp.column_stack([fnp.ones(3), fnp.zeros(3)]).shape
    (3, 2)
    """
    if _ndarrays(tup):
        out = _numpy(np.column_stack, tup)
        if out is not None:
            return out
    cols = []
    for x in _seq(tup, "column_stack"):
        shape = core.aval_of(x).shape
        cols.append(ls.reshape(x, (shape[0] if shape else 1, 1)) if len(shape) < 2 else x)
    return concatenate(cols, axis=1)


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------

def _split_at(x, bounds, ax):
    shape = core.aval_of(x).shape
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = min(lo, shape[ax]), min(max(hi, lo), shape[ax])
        hi = max(hi, lo)
        out.append(ls.slice_in_dim(x, lo, hi, 1, ax))
    return out


def _split_bounds(n, indices_or_sections, name, equal):
    if isinstance(indices_or_sections, (int, np.integer)):
        s = int(indices_or_sections)
        if s <= 0:
            raise ValueError(f"{name}: number of sections must be larger than 0, got {s}")
        if equal and n % s:
            raise ValueError(f"{name}: array split does not result in an equal division "
                             f"({n} elements into {s} sections); use array_split for unequal "
                             "parts")
        q, r = divmod(n, s)
        sizes = [q + 1] * r + [q] * (s - r)
        return [0] + list(np.cumsum(sizes, dtype=np.int64).tolist())
    idx = []
    for i in indices_or_sections:
        i = operator.index(i)
        idx.append(max(i + n, 0) if i < 0 else i)
    return [0] + idx + [n]


def split(ary, indices_or_sections, axis=0):
    """Split an array into equal sections, or at the given indices (differentiable).

    >>> import functad.numpy as fnp
    >>> [p.shape for p in fnp.split(fnp.ones(6), [1, 4])]
    [(1,), (3,), (2,)]
    """
    return _split("split", np.split, True, ary, indices_or_sections, axis)


def array_split(ary, indices_or_sections, axis=0):
    """Like :func:`split`, but sections may differ in size by one element.

    >>> import functad.numpy as fnp
    >>> [p.shape for p in fnp.array_split(fnp.ones(5), 2)]
    [(3,), (2,)]
    """
    return _split("array_split", np.array_split, False, ary, indices_or_sections, axis)


def _split(name, np_fn, equal, ary, indices_or_sections, axis):
    """split (``equal`` sections) and array_split: NumPy's fast path for
    ndarrays, else slices at the section bounds."""
    if isinstance(ary, np.ndarray):
        out = _numpy(np_fn, ary, indices_or_sections, axis)
        if out is not None:
            return out
    x = _arr(ary)
    shape = core.aval_of(x).shape
    ax = _axis(axis, len(shape), name)
    return _split_at(x, _split_bounds(shape[ax], indices_or_sections, name, equal), ax)


def _split_fn(name, axis, min_ndim):
    def fn(ary, indices_or_sections):
        nd = core.aval_of(_arr(ary)).ndim
        if nd < min_ndim:
            raise ValueError(f"{name} only works on arrays of {min_ndim} or more dimensions, "
                             f"got {nd}")
        return split(ary, indices_or_sections, 0 if name == "hsplit" and nd == 1 else axis)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``split`` along axis {axis} (as ``numpy.{name}``)."
    return fn


hsplit = _split_fn("hsplit", 1, 1)
vsplit = _split_fn("vsplit", 0, 2)
dsplit = _split_fn("dsplit", 2, 3)


# --------------------------------------------------------------------------
# Repetition
# --------------------------------------------------------------------------

def tile(A, reps):
    """Repeat the whole array ``reps`` times along each axis (differentiable).

    >>> import functad.numpy as fnp
    >>> fnp.tile(fnp.array([1.0, 2.0]), 2)
    Array([1., 2., 1., 2.])
    """
    if isinstance(A, np.ndarray):
        out = _numpy(np.tile, A, reps)
        if out is not None:
            return out
    x = _arr(A)
    reps = (operator.index(reps),) if not np.ndim(reps) else tuple(operator.index(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions {reps}")
    shape = core.aval_of(x).shape
    nd = max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + shape
    reps = (1,) * (nd - len(reps)) + reps
    if all(r == 1 for r in reps):
        return ls.reshape(x, shape)
    inter = tuple(d for r, n in zip(reps, shape) for d in (1, n))
    big = tuple(d for r, n in zip(reps, shape) for d in (r, n))
    x = ls.broadcast_to(ls.reshape(x, inter), big)
    return ls.reshape(x, tuple(r * n for r, n in zip(reps, shape)))


def repeat(a, repeats, axis=None, *, total_repeat_length=None):
    """Repeat each element of ``a`` (along ``axis``, or of the flattened array).

    ``repeats`` is an int or an array of ints with one entry per element along
    ``axis``.  Array repeats must be concrete (they decide the output shape),
    unless ``total_repeat_length`` gives the output length: then extra
    elements are cut off, and missing ones repeat the last element (as in JAX).

    >>> import functad.numpy as fnp
    >>> fnp.repeat(fnp.array([1.0, 2.0]), [1, 2])
    Array([1., 2., 2.])
    """
    if isinstance(a, np.ndarray) and total_repeat_length is None and not isinstance(repeats, Tracer):
        out = _numpy(np.repeat, a, repeats, axis)
        if out is not None:
            return out
    x = _arr(a)
    if axis is None:
        x = ravel(x)
        axis = 0
    shape = core.aval_of(x).shape
    ax = _axis(axis, len(shape), "repeat")
    if isinstance(repeats, (int, np.integer)) or (
            not isinstance(repeats, Tracer) and np.ndim(repeats) == 0):
        r = operator.index(repeats)
        if r < 0:
            raise ValueError(f"repeat: negative repeats {r}")
        if r == 1:
            return ls._unchanged(x)
        x = ls.broadcast_to(ls.reshape(x, shape[:ax + 1] + (1,) + shape[ax + 1:]),
                            shape[:ax + 1] + (r,) + shape[ax + 1:])
        return ls.reshape(x, shape[:ax] + (shape[ax] * r,) + shape[ax + 1:])
    from functad.numpy._indexing import take, _concrete_value
    if isinstance(repeats, Tracer):
        reps = _concrete_value(repeats, "repeat", "the repeats (they decide the output shape)",
                               "pass total_repeat_length=... or concrete repeats")
        if reps is None:
            if total_repeat_length is None:
                raise core.ConcretizationTypeError(
                    "repeat: traced array `repeats` needs total_repeat_length=... (the output "
                    "length must be static); or pass concrete repeats")
            return _repeat_traced(x, repeats, ax, int(total_repeat_length))
    else:
        reps = np.asarray(repeats)
    if reps.dtype.kind not in "iub":
        raise TypeError(f"repeat: repeats must be integers, got dtype {reps.dtype.name}")
    reps = np.broadcast_to(reps, (shape[ax],)) if reps.ndim == 0 or reps.shape == (1,) else reps
    if reps.shape != (shape[ax],):
        raise ValueError(f"repeat: repeats of shape {reps.shape} do not match axis {ax} of "
                         f"length {shape[ax]} (array shape {shape})")
    if np.any(reps < 0):
        raise ValueError("repeat: negative repeats")
    idx = np.repeat(np.arange(shape[ax]), reps)
    if total_repeat_length is not None:
        idx = _fit_length(idx, int(total_repeat_length), shape[ax])
    return take(x, idx, axis=ax)


def _fit_length(idx, length, n):
    if len(idx) >= length:
        return idx[:length]
    fill = idx[-1] if len(idx) else 0
    return np.concatenate([idx, np.full(length - len(idx), fill, idx.dtype)])


def _repeat_traced(x, repeats, ax, length):
    """Repeat with traced repeats and a static output length: the index of each
    output position is the number of cumulative repeat boundaries it passed."""
    from functad.numpy._indexing import take
    from functad.numpy._sorting import searchsorted
    from functad.numpy import cumsum, minimum, subtract
    n = core.aval_of(x).shape[ax]
    ends = cumsum(ls.broadcast_to(repeats, (n,)))
    # positions past the total repeat the last element that was repeated
    pos = minimum(np.arange(length), subtract(ends[n - 1], 1)) if n else np.arange(length)
    idx = searchsorted(ends, pos, side="right")
    return take(x, idx, axis=ax, mode="clip")


# --------------------------------------------------------------------------
# Reordering
# --------------------------------------------------------------------------

def flip(m, axis=None):
    """Reverse the order of elements along ``axis`` (all axes if ``None``).

    >>> import functad.numpy as fnp
    >>> fnp.flip(fnp.array([1.0, 2.0, 3.0]))
    Array([3., 2., 1.])
    """
    if isinstance(m, np.ndarray):
        out = _numpy(np.flip, m, axis)
        if out is not None:
            return out
    x = _arr(m)
    nd = core.aval_of(x).ndim
    axes = tuple(range(nd)) if axis is None else _axes(axis, nd, "flip")
    return ls.rev(x, axes)


def fliplr(m):
    """Reverse the order of columns (axis 1); ``m`` must be at least 2-d.

    >>> import functad.numpy as fnp
    >>> fnp.fliplr(fnp.eye(2))
    Array([[0., 1.],
           [1., 0.]])
    """
    if isinstance(m, np.ndarray):
        out = _numpy(np.fliplr, m)
        if out is not None:
            return out
    x = _arr(m)
    if core.aval_of(x).ndim < 2:
        raise ValueError(f"fliplr: input must be >= 2-d, got shape {core.aval_of(x).shape}")
    return ls.rev(x, (1,))


def flipud(m):
    """Reverse the order of rows (axis 0); ``m`` must be at least 1-d.

    >>> import functad.numpy as fnp
    >>> fnp.flipud(fnp.array([1.0, 2.0]))
    Array([2., 1.])
    """
    if isinstance(m, np.ndarray):
        out = _numpy(np.flipud, m)
        if out is not None:
            return out
    x = _arr(m)
    if core.aval_of(x).ndim < 1:
        raise ValueError("flipud: input must be >= 1-d, got a 0-d array")
    return ls.rev(x, (0,))


def roll(a, shift, axis=None):
    """Roll elements along ``axis`` (of the flattened array if ``None``): elements
    that leave one end come back at the other.  ``shift`` may be traced.

    >>> import functad.numpy as fnp
    >>> fnp.roll(fnp.array([1.0, 2.0, 3.0]), 1)
    Array([3., 1., 2.])
    """
    if isinstance(a, np.ndarray) and not isinstance(shift, Tracer):
        out = _numpy(np.roll, a, shift, axis)
        if out is not None:
            return out
    x = _arr(a)
    if axis is None:
        shape = core.aval_of(x).shape
        return ls.reshape(roll(ravel(x), shift, 0), shape)
    shape = core.aval_of(x).shape
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(_axis(ax, len(shape), "roll") for ax in axes)
    if isinstance(shift, Tracer) and core.aval_of(shift).ndim == 0:
        shifts = (shift,) * len(axes)
    elif isinstance(shift, Tracer) or np.ndim(shift):
        shifts = tuple(shift[i] for i in range(np.shape(shift)[0])) if isinstance(shift, Tracer) \
            else tuple(np.asarray(shift).tolist())
        if len(axes) == 1 and len(shifts) > 1:
            axes = axes * len(shifts)
        if len(shifts) == 1 and len(axes) > 1:
            shifts = shifts * len(axes)
        if len(shifts) != len(axes):
            raise ValueError(f"roll: shift {shift!r} and axis {axis!r} must have the same "
                             "length")
    else:
        shifts = (operator.index(shift),) * len(axes)
    for s, ax in zip(shifts, axes):
        n = shape[ax]
        if n == 0:
            continue
        if isinstance(s, Tracer):
            from functad.numpy._indexing import take
            from functad.numpy import remainder, subtract
            idx = remainder(subtract(np.arange(n), s), n)
            x = take(x, idx, axis=ax, mode="clip")
            continue
        s = int(s) % n
        if s:
            x = ls.concatenate([ls.slice_in_dim(x, n - s, n, 1, ax),
                                ls.slice_in_dim(x, 0, n - s, 1, ax)], ax)
    return ls._unchanged(x)


def swapaxes(a, axis1, axis2):
    """Interchange two axes.

    >>> import functad.numpy as fnp
    >>> fnp.swapaxes(fnp.ones((2, 3)), 0, 1).shape
    (3, 2)
    """
    if isinstance(a, np.ndarray):
        out = _numpy(np.swapaxes, a, axis1, axis2)
        if out is not None:
            return out
    x = _arr(a)
    nd = core.aval_of(x).ndim
    i, j = _axis(axis1, nd, "swapaxes"), _axis(axis2, nd, "swapaxes")
    perm = list(range(nd))
    perm[i], perm[j] = j, i
    return ls.transpose(x, perm)


def moveaxis(a, source, destination):
    """Move axes to new positions; the other axes keep their order.

    >>> import functad.numpy as fnp
    >>> fnp.moveaxis(fnp.ones((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    if isinstance(a, np.ndarray):
        out = _numpy(np.moveaxis, a, source, destination)
        if out is not None:
            return out
    x = _arr(a)
    nd = core.aval_of(x).ndim
    src = _axes(source, nd, "moveaxis")
    dst = _axes(destination, nd, "moveaxis")
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} must "
                         "have the same number of elements")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ls.transpose(x, order)


def rollaxis(a, axis, start=0):
    """Roll ``axis`` backwards until it lies before ``start`` (prefer :func:`moveaxis`)."""
    x = _arr(a)
    nd = core.aval_of(x).ndim
    ax = _axis(axis, nd, "rollaxis")
    if not -nd <= start <= nd:
        raise np.exceptions.AxisError(f"rollaxis: start {start} is out of bounds for an array "
                                      f"of dimension {nd}")
    start = start % (nd + 1) if start < 0 else start
    if ax < start:
        start -= 1
    return moveaxis(x, ax, start)


def rot90(m, k=1, axes=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``, from the first
    axis towards the second.

    >>> import functad.numpy as fnp
    >>> fnp.rot90(fnp.array([[1.0, 2.0], [3.0, 4.0]]))
    Array([[2., 4.],
           [1., 3.]])
    """
    if isinstance(m, np.ndarray):
        out = _numpy(np.rot90, m, k, axes)
        if out is not None:
            return out
    x = _arr(m)
    nd = core.aval_of(x).ndim
    if len(axes) != 2:
        raise ValueError(f"rot90: axes must have length 2, got {axes!r}")
    if nd < 2:
        raise ValueError(f"rot90: the array must be at least 2-d, got {nd}-d")
    a0, a1 = _axis(axes[0], nd, "rot90"), _axis(axes[1], nd, "rot90")
    if a0 == a1:
        raise ValueError(f"rot90: axes must be different, got {axes!r}")
    k = operator.index(k) % 4
    if k == 0:
        return ls._unchanged(x)
    if k == 2:
        return ls.rev(x, (a0, a1))
    perm = list(range(nd))
    perm[a0], perm[a1] = a1, a0
    if k == 1:   # new[..i..j..] = old[..j.., n-1-i]: reverse axis 1, then swap
        return ls.transpose(ls.rev(x, (a1,)), perm)
    return ls.rev(ls.transpose(x, perm), (a1,))


# --------------------------------------------------------------------------
# Broadcasting and padding
# --------------------------------------------------------------------------

def broadcast_arrays(*args):
    """Broadcast arrays against each other; returns a tuple.

    >>> import functad.numpy as fnp
    >>> [a.shape for a in fnp.broadcast_arrays(fnp.ones(3), fnp.ones((2, 1)))]
    [(2, 3), (2, 3)]
    """
    if _ndarrays(args):
        out = _numpy(np.broadcast_arrays, *args)
        if out is not None:
            return out
    xs = [_arr(a) for a in args]
    shape = broadcast_shapes(*(core.aval_of(x).shape for x in xs))
    return tuple(ls.broadcast_to(x, shape) for x in xs)


def broadcast_shapes(*shapes):
    """The broadcast shape of the given shapes (an error names all of them).

    >>> import functad.numpy as fnp
    >>> fnp.broadcast_shapes((3,), (2, 1))
    (2, 3)
    """
    from functad.lax.elementwise import broadcast_shapes as bs
    return tuple(bs(*[(s,) if isinstance(s, (int, np.integer)) else tuple(s) for s in shapes]))


def _is_scalar(v):
    if isinstance(v, Tracer):
        return v.ndim == 0
    if isinstance(v, (list, tuple)):
        return False
    return np.ndim(v) == 0


def _pad_pairs(value, nd, name, what):
    """NumPy's forms of per-axis pairs: scalar, (v,), (before, after), or ((b, a), ...).
    Entries may be traced scalars."""
    def bad():
        return ValueError(f"{name}: {what} {value!r} cannot be broadcast to ({nd}, 2) "
                          f"for an array of {nd} dimensions")
    if _is_scalar(value):
        return [(value, value)] * nd
    if isinstance(value, Tracer):
        raise bad()
    seq = list(value)
    if all(_is_scalar(v) for v in seq):
        if len(seq) == 1:
            return [(seq[0], seq[0])] * nd
        if len(seq) == 2:
            return [(seq[0], seq[1])] * nd
        raise bad()
    rows = []
    for r in seq:
        r = [r] if _is_scalar(r) else list(r)
        if len(r) not in (1, 2) or not all(_is_scalar(v) for v in r):
            raise bad()
        rows.append((r[0], r[-1]))
    if len(rows) == 1:
        return rows * nd
    if len(rows) != nd:
        raise bad()
    return rows


def pad(array, pad_width, mode="constant", **kwargs):
    """Pad an array with constant values (``mode="constant"``, differentiable in
    the array and in ``constant_values``).

    ``pad_width`` is an int, ``(before, after)`` or one such pair per axis;
    ``constant_values`` likewise (it may be traced).  Other modes raise
    ``NotImplementedError``.

    >>> import functad.numpy as fnp
    >>> fnp.pad(fnp.ones(2), 1, constant_values=5.0)
    Array([5., 1., 1., 5.])
    """
    if mode != "constant":
        raise NotImplementedError(
            f"pad: mode={mode!r} is not supported yet, only mode='constant'. Build other modes "
            "from slices and concatenate (e.g. 'edge': concatenate repeated edge slices).")
    unknown = set(kwargs) - {"constant_values"}
    if unknown:
        raise TypeError(f"pad: unexpected keyword argument(s) {sorted(unknown)} for "
                        "mode='constant'")
    x = _arr(array)
    aval = core.aval_of(x)
    nd = aval.ndim
    widths = []
    for lo, hi in _pad_pairs(pad_width, nd, "pad", "pad_width"):
        lo, hi = operator.index(lo), operator.index(hi)
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: pad_width {pad_width!r} contains negative values; index "
                             "the array instead to crop it")
        widths.append((lo, hi))
    cv = kwargs.get("constant_values", 0)
    if isinstance(cv, Tracer) and core.aval_of(cv).ndim != 0:
        raise NotImplementedError("pad: traced constant_values must be a scalar")
    pairs = _pad_pairs(cv, nd, "pad", "constant_values")
    v0 = pairs[0][0] if pairs else None
    if pairs and all(_same_value(v, v0) for p in pairs for v in p):
        return ls.pad(x, _pad_value(pairs[0][0], aval.dtype), [(lo, hi, 0) for lo, hi in widths])
    # per-axis values: pad one axis (and one side) at a time, as NumPy does
    for ax, ((lo, hi), (vlo, vhi)) in enumerate(zip(widths, pairs)):
        for side, w, v in ((0, lo, vlo), (1, hi, vhi)):
            if w:
                cfg = [(0, 0, 0)] * nd
                cfg[ax] = (w, 0, 0) if side == 0 else (0, w, 0)
                x = ls.pad(x, _pad_value(v, aval.dtype), cfg)
    return ls._unchanged(x)


def _same_value(a, b):
    """``a`` and ``b`` are the same padding value: the same object, or equal
    concrete scalars (traced values are never compared: that would need
    their values, unknown under vmap or staging)."""
    if a is b:
        return True
    if isinstance(a, Tracer) or isinstance(b, Tracer):
        return False
    return bool(np.asarray(a) == np.asarray(b))


def _pad_value(v, dtype):
    if isinstance(v, Tracer):
        return v
    return np.asarray(v).astype(dtype)[()]
