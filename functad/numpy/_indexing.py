"""Indexing of functad.numpy: ``x[idx]``, ``x.at[idx]`` updates, take, nonzero, ...

Every NumPy index (integers, slices, ``None``, ``Ellipsis``, integer arrays,
boolean masks, and any mix of them) becomes one ``gather`` primitive, and
every ``x.at[idx].set/add/multiply/min/max`` one ``scatter``, both defined in
:mod:`functad.lax.indexing`.

Semantics decisions (see ``docs/numpy_shapes_indexing.md``):

* **Out of bounds.** Static integers and *concrete* index arrays are checked
  and raise ``IndexError``, as in NumPy.  Index arrays only known at run time
  (traced under ``make_jaxpr``/``jit``) follow JAX: reads clamp to the valid
  range (after wrapping negative indices once), updates out of bounds are
  dropped.
* **Boolean masks** need a concrete mask (the output shape depends on it).
  That holds eagerly and under ``grad`` (comparisons of traced values are
  concrete there); under staging it raises
  :class:`NonConcreteBooleanIndexError`: use ``fnp.where`` instead.
"""

from __future__ import annotations

import operator

import numpy as np

from functad import core
from functad.core import Tracer, _wrap
from functad.lax import indexing as li
from functad.lax.elementwise import convert_element_type
from functad.numpy._ufuncs import _arr

__all__ = ["_getitem", "_scatter", "take", "take_along_axis", "nonzero", "argwhere",
           "flatnonzero", "diag_indices", "diag_indices_from", "tril_indices", "triu_indices",
           "tril_indices_from", "triu_indices_from", "ix_", "put_along_axis",
           "NonConcreteBooleanIndexError", "unravel_index", "ravel_multi_index"]


class NonConcreteBooleanIndexError(core.ConcretizationTypeError):
    """A boolean mask index (or ``nonzero``) was used on a value only known at run
    time, so the shape of the result is unknown while staging."""


def _concrete_value(x, fname, what, hint):
    """A NumPy value for ``x`` if it is concrete (always, eagerly; under ``grad``
    for values that do not depend on the differentiated inputs), else ``None``."""
    if not isinstance(x, Tracer):
        return np.asarray(x)
    try:
        return np.asarray(x.to_concrete(f"{fname}: {what}"))
    except core.ConcretizationTypeError:
        return None


def _bool_mask_error(fname, shape):
    return NonConcreteBooleanIndexError(
        f"{fname}: a boolean mask of shape {shape} was used while staging (make_jaxpr/jit), "
        "where its value, and so the shape of the result, is unknown. Use "
        "fnp.where(mask, x, other) (or x.at[...] updates with fnp.where) to keep shapes "
        "static, or compute the mask outside the staged function.")


# --------------------------------------------------------------------------
# Index normalisation: NumPy index -> (static Indexer, index arrays)
# --------------------------------------------------------------------------


def _normalize_index(idx, shape, fname):
    """Turn a NumPy index into an :class:`~functad.lax.indexing.Indexer` and the
    list of integer index arrays it refers to."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    items = []           # (kind, payload, dims consumed)
    n_consumed = 0
    ellipsis = False
    for e in idx:
        if isinstance(e, list) and _has_tracer(e):
            from functad.numpy._core import asarray
            e = asarray(e)
        t = type(e)
        if e is None:
            items.append(("n", None))
        elif t is int:
            items.append(("i", e))
            n_consumed += 1
        elif t is slice:
            items.append(("s", e))
            n_consumed += 1
        elif e is Ellipsis:
            if ellipsis:
                raise IndexError(f"{fname}: an index can only have a single ellipsis ('...')")
            ellipsis = True
            items.append(("e", None))
        elif isinstance(e, (bool, np.bool_)):
            raise IndexError(f"{fname}: boolean scalar indices (x[True]) are not supported; "
                             "use expand_dims or fnp.where")
        elif isinstance(e, Tracer) and e.aval.dtype == np.bool_:
            mask = _concrete_value(e, fname, "a boolean mask index", "")
            if mask is None:
                raise _bool_mask_error(fname, e.aval.shape)
            n_consumed += _add_mask(items, mask, fname)
        elif isinstance(e, Tracer):
            av = e.aval
            if av.dtype.kind in "iu":
                items.append(("a", e))
                n_consumed += 1
            else:
                raise IndexError(f"{fname}: index arrays must be integers or booleans, got "
                                 f"dtype {av.dtype.name}; use .astype(int)")
        elif isinstance(e, (int, np.integer)):
            items.append(("i", operator.index(e)))
            n_consumed += 1
        else:
            try:
                a = np.asarray(e)
            except Exception:  # noqa: BLE001 - re-raised with the function name
                raise IndexError(f"{fname}: invalid index {e!r:.80} of type "
                                 f"{type(e).__name__}") from None
            if a.dtype == np.bool_:
                n_consumed += _add_mask(items, a, fname)
            elif a.dtype.kind in "iu":
                if a.ndim == 0:
                    items.append(("i", int(a)))
                else:
                    items.append(("a", a))
                n_consumed += 1
            elif a.size == 0 and isinstance(e, (list, tuple)):
                items.append(("a", a.astype(np.intp)))
                n_consumed += 1
            else:
                raise IndexError(f"{fname}: only integers, slices (':'), ellipsis ('...'), "
                                 "None and integer or boolean arrays are valid indices; got "
                                 f"{type(e).__name__} with dtype {a.dtype.name}")
    ndim = len(shape)
    if n_consumed > ndim:
        raise IndexError(f"{fname}: too many indices for array: array is {ndim}-dimensional, "
                         f"but {n_consumed} were indexed")
    entries, arrays = [], []
    dim = 0
    fill = ndim - n_consumed
    if not ellipsis:
        items.append(("e", "implicit"))
    for k, (kind, payload) in enumerate(items):
        if kind == "n":
            entries.append(("n",))
        elif kind == "e":
            if fill == 0 and payload is None:
                # an explicit '...' covering no dimension still separates advanced
                # indices for NumPy's placement rule
                entries.append(("e",))
            for _ in range(fill):
                entries.append(("s", 0, shape[dim], 1))
                dim += 1
            fill = 0
        elif kind == "m":
            got = tuple(shape[dim:dim + len(payload)])
            if got != payload:
                raise IndexError(f"{fname}: boolean index of shape {payload} does not match "
                                 f"the indexed dimensions {got} of the array of shape {shape}")
        elif kind == "i":
            n = shape[dim]
            if not -n <= payload < n:
                raise IndexError(f"{fname}: index {payload} is out of bounds for axis {dim} "
                                 f"with size {n}")
            entries.append(("i", payload + n if payload < 0 else payload))
            dim += 1
        elif kind == "s":
            n = shape[dim]
            start, stop, step = payload.indices(n)
            length = len(range(start, stop, step))
            if length == 0:          # all empty slices are the same
                entries.append(("s", 0, 0, 1))
            else:
                stop = start + length * step
                entries.append(("s", start, stop if stop >= 0 else None, step))
            dim += 1
        else:
            n = shape[dim]
            if not isinstance(payload, Tracer) and payload.size:
                lo, hi = payload.min(), payload.max()
                if lo < -n or hi >= n:
                    bad = lo if lo < -n else hi
                    raise IndexError(f"{fname}: index {bad} is out of bounds for axis {dim} "
                                     f"with size {n}")
            entries.append(("a", len(arrays)))
            arrays.append(payload)
            dim += 1
    return li.Indexer(entries), arrays


def _add_mask(items, mask, fname):
    """Append the index arrays of a concrete boolean mask; returns the number of
    dimensions it consumes."""
    if mask.ndim == 0:
        raise IndexError(f"{fname}: boolean scalar indices (x[True]) are not supported; use "
                         "expand_dims or fnp.where")
    items.append(("m", mask.shape))      # marker: check the mask's shape against the array
    items.extend(("a", b) for b in np.nonzero(mask))
    return mask.ndim


def _getitem(x, idx):
    """``x[idx]`` with NumPy semantics, differentiable (one ``gather``).

    Out-of-bounds static integers and concrete index arrays raise
    ``IndexError``; traced index arrays clamp (negative ones wrap once first).
    Boolean masks must be concrete (else :class:`NonConcreteBooleanIndexError`).

    >>> import functad.numpy as fnp
    >>> fnp._getitem(fnp.arange(6.0).reshape(2, 3), (slice(None), [2, 0]))
    Array([[2., 0.],
           [5., 3.]])
    """
    if not isinstance(x, Tracer):
        if not _has_tracer(idx):
            return _wrap(np.asarray(x)[idx])
        x = _arr(x)
    indexer, arrays = _normalize_index(idx, core.aval_of(x).shape, "indexing")
    if not arrays and all(e[0] == "s" and e[1] == 0 and e[3] == 1 for e in indexer) and \
            all(e[2] == n for e, n in zip(indexer, core.aval_of(x).shape)):
        return x
    return li.gather_p.bind(x, *arrays, indexer=indexer, oob="clip")


def _has_tracer(idx):
    if isinstance(idx, Tracer):
        return True
    if isinstance(idx, tuple):
        for e in idx:
            if isinstance(e, Tracer):
                return True
            if isinstance(e, list) and any(isinstance(v, Tracer) for v in e):
                return True
    if isinstance(idx, list):
        return any(isinstance(v, Tracer) for v in idx)
    return False


_MODES = {"set": "set", "add": "add", "mul": "mul", "multiply": "mul", "min": "min",
          "max": "max"}


def _scatter(x, idx, values, mode):
    """A copy of ``x`` with ``x[idx]`` set to / combined with ``values`` (``mode``
    is ``"set"``, ``"add"``, ``"mul"``, ``"min"`` or ``"max"``); this is what
    ``x.at[idx].set(values)`` and friends call.  Differentiable in ``x`` and
    ``values``.  Repeated indices accumulate (``"set"``: one update wins).
    Out-of-bounds concrete indices raise ``IndexError``; traced ones are
    dropped.  ``values`` are cast to ``x``'s dtype.

    >>> import functad.numpy as fnp
    >>> fnp._scatter(fnp.zeros(3), [0, 0, 2], 1.0, "add")
    Array([2., 0., 1.])
    """
    m = _MODES.get(mode)
    if m is None:
        raise ValueError(f".at[]: unknown update mode {mode!r}; use one of "
                         "set, add, mul, min, max")
    if isinstance(x, np.ndarray) and not isinstance(values, Tracer) and not _has_tracer(idx):
        out = _scatter_numpy(x, idx, values, m)
        if out is not None:
            return out
    x = _arr(x)
    xa = core.aval_of(x)
    indexer, arrays = _normalize_index(idx, xa.shape, f".at[].{mode}")
    if isinstance(values, Tracer):
        if values.aval.dtype != xa.dtype:
            values = convert_element_type(values, xa.dtype)
    else:
        values = np.asarray(values)
        if values.dtype != xa.dtype:
            values = values.astype(xa.dtype)
    g = li.gather_shape(indexer, xa.shape, [np.shape(a) for a in arrays])
    vshape = core.aval_of(values).shape
    if len(vshape) > len(g):
        extra = len(vshape) - len(g)
        if any(d != 1 for d in vshape[:extra]):
            raise ValueError(f".at[].{mode}: values of shape {vshape} cannot be broadcast to "
                             f"the indexed shape {g} of the array of shape {xa.shape}")
        from functad.lax.shapes import reshape
        values = reshape(values, vshape[extra:])
    return li.scatter_p.bind(x, values, *arrays, indexer=indexer, mode=m, oob="drop")


def _scatter_numpy(x, idx, values, mode):
    """Eager ``.at[]`` update with NumPy (``None`` if NumPy objects: the primitive's
    path then raises its own error)."""
    try:
        out = np.array(x, copy=True)
        if not isinstance(idx, tuple) and type(idx) is not int and type(idx) is not slice:
            idx = np.asarray(idx) if isinstance(idx, list) else idx
        v = np.asarray(values)
        if v.dtype != out.dtype:
            v = v.astype(out.dtype)
        if mode == "set":
            out[idx] = v
        else:   # broadcast first: NumPy 2.4's ufunc.at mis-broadcasts values
            li._UFUNC[mode].at(out, idx, np.broadcast_to(v, out[idx].shape) if v.ndim else v)
    except IndexError:
        raise
    except Exception:  # noqa: BLE001 - the slow path raises a clearer error
        return None
    return _wrap(out)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------

def _axis(axis, ndim, name):
    from functad.numpy._shapes import _axis as ax
    return ax(axis, ndim, name)


_NP_TAKE = {None: "raise", "raise": "raise", "clip": "clip", "wrap": "wrap"}


def take(a, indices, axis=None, mode=None, fill_value=None):
    """Take elements of ``a`` at integer ``indices`` along ``axis`` (of the
    flattened array if ``None``); differentiable in ``a``.

    ``mode``: ``None`` or ``"raise"`` follow indexing (concrete indices are
    checked and raise ``IndexError``; traced ones clamp), ``"clip"`` clamps
    into ``[0, n-1]`` (negative indices become 0, as in NumPy), ``"wrap"``
    wraps around.  ``fill_value`` is not supported.

    >>> import functad.numpy as fnp
    >>> fnp.take(fnp.array([[1.0, 2.0], [3.0, 4.0]]), [1, 1], axis=1)
    Array([[2., 2.],
           [4., 4.]])
    """
    if fill_value is not None:
        raise NotImplementedError("take: fill_value is not supported; use mode='clip'")
    if isinstance(a, np.ndarray) and not isinstance(indices, Tracer) and mode in _NP_TAKE:
        try:
            return _wrap(np.take(a, indices, axis=axis, mode=_NP_TAKE[mode]))
        except (TypeError, ValueError):
            pass      # the path below raises an error naming take
    x = _arr(a)
    if axis is None:
        from functad.numpy._shapes import ravel
        x = ravel(x)
        axis = 0
    shape = core.aval_of(x).shape
    ax = _axis(axis, len(shape), "take")
    n = shape[ax]
    if mode in ("clip", "wrap"):
        if isinstance(indices, Tracer):
            from functad.numpy import clip, remainder
            indices = clip(indices, 0, max(n - 1, 0)) if mode == "clip" else remainder(indices, n)
        else:
            i = np.asarray(indices)
            if i.dtype.kind not in "iu":
                raise IndexError(f"take: indices must be integers, got dtype {i.dtype.name}")
            indices = np.clip(i, 0, max(n - 1, 0)) if mode == "clip" else np.mod(i, max(n, 1))
    elif mode not in (None, "raise"):
        raise ValueError(f"take: mode must be None, 'raise', 'clip' or 'wrap', got {mode!r}")
    elif mode == "raise" and isinstance(indices, Tracer) and \
            _concrete_value(indices, "take", "indices", "") is None:
        raise core.ConcretizationTypeError(
            "take(mode='raise') needs concrete indices to check their bounds; under staging "
            "use mode='clip' or mode='wrap'")
    if not isinstance(indices, Tracer):
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu" and indices.size == 0:
            indices = indices.astype(np.intp)
    return _getitem(x, (slice(None),) * ax + (indices,))


def take_along_axis(arr, indices, axis=-1, mode=None):
    """Take values from ``arr`` at ``indices`` along ``axis``, matching the other
    dimensions (``indices`` has ``arr``'s rank; e.g. the output of argsort).

    >>> import functad.numpy as fnp
    >>> x = fnp.array([[3.0, 1.0, 2.0]])
    >>> fnp.take_along_axis(x, fnp.argsort(x, axis=1), axis=1)
    Array([[1., 2., 3.]])
    """
    if isinstance(arr, np.ndarray) and isinstance(indices, np.ndarray) and mode is None:
        try:
            return _wrap(np.take_along_axis(arr, indices, axis))
        except (TypeError, ValueError):
            pass      # the path below raises an error naming take_along_axis
    x = _arr(arr)
    if axis is None:
        from functad.numpy._shapes import ravel
        x = ravel(x)
        if np.ndim(indices) != 1:
            raise ValueError("take_along_axis: with axis=None, indices must be 1-d, got shape "
                             f"{np.shape(indices)}")
        axis = 0
    shape = core.aval_of(x).shape
    ishape = np.shape(indices) if not isinstance(indices, Tracer) else indices.shape
    if len(ishape) != len(shape):
        raise ValueError(f"take_along_axis: indices (shape {ishape}) and arr (shape {shape}) "
                         "must have the same number of dimensions")
    ax = _axis(axis, len(shape), "take_along_axis")
    if mode == "clip" or mode == "wrap":
        return take_along_axis(x, _fix_indices(indices, shape[ax], mode), ax)
    idx = []
    for d, n in enumerate(shape):
        if d == ax:
            idx.append(indices if isinstance(indices, Tracer) else np.asarray(indices))
        else:
            idx.append(np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1)))
    try:
        np.broadcast_shapes(*[np.shape(i) if not isinstance(i, Tracer) else i.shape
                              for i in idx])
    except ValueError:
        raise ValueError(f"take_along_axis: indices of shape {ishape} do not broadcast against "
                         f"arr of shape {shape} outside axis {ax}") from None
    return _getitem(x, tuple(idx))


def _fix_indices(indices, n, mode):
    if isinstance(indices, Tracer):
        from functad.numpy import clip, remainder
        return clip(indices, 0, max(n - 1, 0)) if mode == "clip" else remainder(indices, n)
    i = np.asarray(indices)
    return np.clip(i, 0, max(n - 1, 0)) if mode == "clip" else np.mod(i, max(n, 1))


def put_along_axis(arr, indices, values, axis, inplace=False, mode=None):
    """Functional ``numpy.put_along_axis``: a copy of ``arr`` with ``values`` set
    at ``indices`` along ``axis`` (``inplace=True`` is not possible).

    >>> import functad.numpy as fnp
    >>> fnp.put_along_axis(fnp.zeros((1, 3)), fnp.array([[2]]), 5.0, axis=1, inplace=False)
    Array([[0., 0., 5.]])
    """
    if inplace:
        raise ValueError("put_along_axis: functad arrays are immutable; pass inplace=False")
    x = _arr(arr)
    shape = core.aval_of(x).shape
    ax = _axis(axis, len(shape), "put_along_axis")
    idx = tuple(indices if d == ax else
                np.arange(n).reshape((1,) * d + (n,) + (1,) * (len(shape) - d - 1))
                for d, n in enumerate(shape))
    return _scatter(x, idx, values, "set")


def nonzero(a, *, size=None, fill_value=None):
    """Indices of the non-zero elements, one array per dimension.

    Needs a concrete ``a`` (the number of results decides the output shape),
    unless ``size`` is given: then exactly ``size`` indices are returned
    (truncated, or padded with ``fill_value``, default 0), which also works
    under staging.

    >>> import functad.numpy as fnp
    >>> fnp.nonzero(fnp.array([0.0, 3.0, 0.0, 4.0]))
    (Array([1, 3]),)
    """
    x = _arr(a)
    if size is not None:
        return _nonzero_static(x, operator.index(size), fill_value)
    v = _concrete_value(x, "nonzero", "the input", "")
    if v is None:
        raise NonConcreteBooleanIndexError(
            f"nonzero: the input ({core.aval_of(x).str_short()}) is traced under staging, so "
            "the number of non-zero elements is unknown. Pass size=... (and fill_value=...) "
            "for a static output shape, or use fnp.where(condition, x, y).")
    if v.ndim == 0:
        raise ValueError("nonzero: calling nonzero on 0-d arrays is not allowed; use "
                         "atleast_1d(a).nonzero() instead")
    return tuple(_wrap(i) for i in np.nonzero(v))


def _nonzero_static(x, size, fill_value):
    from functad.numpy import not_equal, logical_not, sum as fsum, where, less
    from functad.numpy._shapes import ravel, concatenate
    from functad.numpy._sorting import argsort
    shape = core.aval_of(x).shape
    if not shape:
        raise ValueError("nonzero: calling nonzero on 0-d arrays is not allowed")
    flat = ravel(not_equal(x, 0))
    order = argsort(logical_not(flat), stable=True)
    total = int(np.prod(shape))
    if size > total:
        order = concatenate([order, np.zeros(size - total, order.dtype)])
    elif size < total:
        order = _getitem(order, slice(0, size))
    valid = less(np.arange(size), fsum(flat))
    fills = (0,) * len(shape) if fill_value is None else (
        tuple(fill_value) if np.ndim(fill_value) else (fill_value,) * len(shape))
    out = []
    for d, (coord, f) in enumerate(zip(unravel_index(order, shape), fills)):
        out.append(where(valid, coord, f))
    return tuple(out)


def flatnonzero(a, *, size=None, fill_value=None):
    """Indices of the non-zero elements of the flattened array (see :func:`nonzero`).

    >>> import functad.numpy as fnp
    >>> fnp.flatnonzero(fnp.array([[0.0, 1.0], [2.0, 0.0]]))
    Array([1, 2])
    """
    from functad.numpy._shapes import ravel
    return nonzero(ravel(_arr(a)), size=size, fill_value=fill_value)[0]


def argwhere(a, *, size=None, fill_value=None):
    """Indices of the non-zero elements, one row per element (see :func:`nonzero`).

    >>> import functad.numpy as fnp
    >>> fnp.argwhere(fnp.array([[0.0, 1.0], [2.0, 0.0]]))
    Array([[0, 1],
           [1, 0]])
    """
    x = _arr(a)
    if core.aval_of(x).ndim == 0:
        from functad.numpy._shapes import atleast_1d
        return argwhere(atleast_1d(x), size=size, fill_value=fill_value)[:, :0]
    from functad.numpy._shapes import stack
    return stack(nonzero(x, size=size, fill_value=fill_value), axis=1)


def unravel_index(indices, shape):
    """Convert flat indices into a tuple of coordinate arrays for ``shape``.

    >>> import functad.numpy as fnp
    >>> fnp.unravel_index(fnp.array([5, 1]), (2, 3))
    (Array([1, 0]), Array([2, 1]))
    """
    shape = tuple(operator.index(d) for d in (shape if np.ndim(shape) else (shape,)))
    if not isinstance(indices, Tracer):
        return tuple(_wrap(np.asarray(i)) for i in np.unravel_index(indices, shape))
    from functad.numpy import floor_divide, remainder
    out, strides = [], np.cumprod((1,) + shape[::-1][:-1])[::-1]
    for n, s in zip(shape, strides):
        out.append(remainder(floor_divide(indices, int(s)), n))
    return tuple(out)


def ravel_multi_index(multi_index, dims, mode="raise", order="C"):
    """Flat indices of coordinate arrays ``multi_index`` into an array of shape ``dims``.

    >>> import functad.numpy as fnp
    >>> fnp.ravel_multi_index((fnp.array([1, 0]), fnp.array([2, 1])), (2, 3))
    Array([5, 1])
    """
    if order != "C":
        raise NotImplementedError("ravel_multi_index: only order='C' is supported")
    dims = tuple(operator.index(d) for d in dims)
    if not any(isinstance(i, Tracer) for i in multi_index):
        return _wrap(np.asarray(np.ravel_multi_index(multi_index, dims, mode=mode)))
    from functad.numpy import add, multiply, clip
    out = 0
    for i, n in zip(multi_index, dims):
        if mode == "clip":
            i = clip(i, 0, n - 1)
        out = add(multiply(out, n), i)
    return out


def diag_indices(n, ndim=2):
    """Indices of the main diagonal of an ``(n,) * ndim`` array.

    >>> import functad.numpy as fnp
    >>> fnp.diag_indices(2)
    (Array([0, 1]), Array([0, 1]))
    """
    return tuple(_wrap(i) for i in np.diag_indices(n, ndim))


def diag_indices_from(arr):
    """Indices of the main diagonal of the square array ``arr``."""
    shape = np.shape(arr) if not isinstance(arr, Tracer) else arr.shape
    if len(shape) < 2 or len(set(shape)) != 1:
        raise ValueError(f"diag_indices_from: input must be at least 2-d with all dimensions "
                         f"equal, got shape {shape}")
    return diag_indices(shape[0], len(shape))


def tril_indices(n, k=0, m=None):
    """Indices of the lower triangle of an ``(n, m)`` array (concrete).

    >>> import functad.numpy as fnp
    >>> fnp.tril_indices(2)
    (Array([0, 1, 1]), Array([0, 0, 1]))
    """
    return tuple(_wrap(i) for i in np.tril_indices(n, k, m))


def triu_indices(n, k=0, m=None):
    """Indices of the upper triangle of an ``(n, m)`` array (concrete).

    >>> import functad.numpy as fnp
    >>> fnp.triu_indices(2)
    (Array([0, 0, 1]), Array([0, 1, 1]))
    """
    return tuple(_wrap(i) for i in np.triu_indices(n, k, m))


def _shape2(arr, name):
    shape = arr.shape if isinstance(arr, Tracer) else np.shape(arr)
    if len(shape) != 2:
        raise ValueError(f"{name}: input array must be 2-d, got shape {shape}")
    return shape


def tril_indices_from(arr, k=0):
    """Indices of the lower triangle of the 2-d ``arr``."""
    n, m = _shape2(arr, "tril_indices_from")
    return tril_indices(n, k, m)


def triu_indices_from(arr, k=0):
    """Indices of the upper triangle of the 2-d ``arr``."""
    n, m = _shape2(arr, "triu_indices_from")
    return triu_indices(n, k, m)


def ix_(*args):
    """Open mesh from 1-d index sequences: ``x[ix_(rows, cols)]`` picks a sub-grid.

    >>> import functad.numpy as fnp
    >>> x = fnp.arange(9.0).reshape(3, 3)
    >>> x[fnp.ix_([0, 2], [1])]
    Array([[1.],
           [7.]])
    """
    out = []
    k = len(args)
    for d, a in enumerate(args):
        if isinstance(a, Tracer):
            if a.ndim != 1:
                raise ValueError(f"ix_: cross index must be 1-d, got shape {a.shape}")
            if a.dtype == np.bool_:
                a = nonzero(a)[0]
            from functad.lax.shapes import reshape
            out.append(reshape(a, (1,) * d + (a.shape[0],) + (1,) * (k - d - 1)))
            continue
        v = np.asarray(a)
        if v.ndim != 1:
            raise ValueError(f"ix_: cross index must be 1-d, got shape {v.shape}")
        if v.dtype == np.bool_:
            v = np.nonzero(v)[0]
        elif v.size == 0:
            v = v.astype(np.intp)
        out.append(_wrap(v.reshape((1,) * d + (v.size,) + (1,) * (k - d - 1))))
    return tuple(out)
