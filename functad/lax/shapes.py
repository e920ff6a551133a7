"""Shape primitives: broadcasting, reshaping, transposition, concatenation,
static slicing, padding and reversal.

Each primitive is linear; its transpose undoes the shape change (summing over
broadcast dimensions where values were copied).  ``slice`` and ``pad`` are
each other's transposes: a strided slice transposes to a pad with interior
padding, and a pad transposes to a slice (plus, for the padding value, the
sum of the cotangent over the padded positions).

Batching rules (``vmap``) renumber the static parameters around the batch
axis and leave it where it is: no transpose, except for a ``reshape`` that
splits or merges the axes on both sides of it.  Unbatched operands stay
unbatched, except where every example's output differs: ``concatenate``
broadcasts them, and a per-example padding value of ``pad`` is selected
into the padded positions.

Numba lowering (``functad.lowering``): ``slice`` and ``rev`` are views of
their operand (``x[a:b:s]``, ``x[::-1]``); ``concatenate`` and ``pad``
allocate their result and copy the operands in with loop nests (which Numba
compiles several times faster than slice assignments); fused loops read
through ``broadcast_to``, ``transpose`` and unit-dimension ``reshape``, whose
rules here only run where the value is needed as an array.
"""

from __future__ import annotations

import builtins

import numpy as np

from functad import core
from functad.core import Primitive
from functad.ad import deflinear, is_undefined

__all__ = ["broadcast_to", "reshape", "transpose", "concatenate", "slice", "slice_in_dim", "pad",
           "rev", "iota"]

_pyslice = builtins.slice


def _unchanged(x):
    """A no-op's result: the input itself, as a functad value (a NumPy input
    becomes an immutable Array view, so eager results never alias a mutable array)."""
    return core._wrap(x) if isinstance(x, np.ndarray) else x


def _cast_shape(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


# -- helpers for the batching rules ----------------------------------------
#
# A rule gets ``vals`` and ``dims`` (the batch axis of each operand, or None);
# ``_batched_axis`` renumbers an example axis into the batched operand.

def _batch_size(vals, dims):
    for v, d in zip(vals, dims):
        if d is not None:
            return core.shape_of(v)[d]
    raise ValueError("batching rule called without a batched operand")


def _batched_axis(axis, bdim):
    return axis + (axis >= bdim)


def _example_shape(x, d):
    shape = tuple(core.shape_of(x))
    return shape if d is None else shape[:d] + shape[d + 1:]


def place_batch(x, d, to, size):
    """``x`` with its batch axis at ``to``: moved from ``d``, or, for an
    unbatched ``x`` (``d`` is None), broadcast there to ``size`` (only for
    rules whose output really differs per example)."""
    from functad.batching import moveaxis
    if d is not None:
        return moveaxis(x, d, to)
    shape = tuple(core.shape_of(x))
    if to:
        x = reshape(x, shape[:to] + (1,) + shape[to:])
    return broadcast_to(x, shape[:to] + (size,) + shape[to:])


# -- broadcast_to ----------------------------------------------------------

broadcast_to_p = Primitive("broadcast_to")
broadcast_to_p.impl = lambda x, shape: np.broadcast_to(x, shape)


def _broadcast_to_abstract_eval(a, shape):
    try:
        out = np.broadcast_shapes(a.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(f"cannot broadcast an array of shape {a.shape} to shape {tuple(shape)}")
    return core._cached_aval(tuple(shape), a.dtype, a.weak_type)


broadcast_to_p.abstract_eval = _broadcast_to_abstract_eval


def _broadcast_to_transpose(ct, x, shape):
    from functad.lax.elementwise import unbroadcast
    return [unbroadcast(ct, x.aval)]


deflinear(broadcast_to_p, _broadcast_to_transpose)


def _broadcast_to_batch(vals, dims, shape):
    # NumPy aligns shapes from the right: the example's axes land on the last
    # ndim(x) axes of ``shape``, so the batch axis goes in among them, where it is
    (x,), (d,) = vals, dims
    n = core.shape_of(x)[d]
    at = len(shape) - (len(core.shape_of(x)) - 1) + d
    return broadcast_to_p.bind(x, shape=shape[:at] + (n,) + shape[at:]), at


broadcast_to_p.batch = _broadcast_to_batch


def _broadcast_to_lower(ctx, x, shape):
    # fused loops read through broadcasts; this materializes one (contiguously)
    if not shape:
        return x                    # rank 0 to rank 0: the scalar itself
    if not ctx.in_avals[0].shape:
        return f"np.full({tuple(shape)}, {x}, {ctx.dtype(ctx.out_avals[0].dtype)})"
    return f"np.ascontiguousarray(np.broadcast_to({x}, {tuple(shape)}))"


broadcast_to_p.lower = _broadcast_to_lower


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules); a no-op if it has that shape."""
    shape = _cast_shape(shape)
    if np.shape(x) == shape and not isinstance(x, (int, float, complex, bool)):
        return _unchanged(x)
    return broadcast_to_p.bind(x, shape=shape)


# -- reshape ---------------------------------------------------------------

reshape_p = Primitive("reshape")
reshape_p.impl = lambda x, new_sizes: np.reshape(x, new_sizes)


def _reshape_abstract_eval(a, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != a.size:
        raise ValueError(f"cannot reshape array of shape {a.shape} (size {a.size}) "
                         f"into shape {tuple(new_sizes)}")
    return core._cached_aval(tuple(new_sizes), a.dtype, a.weak_type)


reshape_p.abstract_eval = _reshape_abstract_eval
deflinear(reshape_p, lambda ct, x, new_sizes: [reshape_p.bind(ct, new_sizes=x.aval.shape)])


def _prod(shape):
    return int(np.prod(shape, dtype=np.int64))


def _reshape_batch(vals, dims, new_sizes):
    # In C order, reshaping (A, n, B) to (A', n, B') with |A| = |A'| and
    # |B| = |B'| reshapes every example alike; so the batch axis stays where
    # it is when some split of new_sizes matches the example's split at it
    # (always the case for a leading or trailing batch axis).
    (x,), (d,) = vals, dims
    n = core.shape_of(x)[d]
    shape = _example_shape(x, d)
    head, tail = _prod(shape[:d]), _prod(shape[d:])
    for k in range(len(new_sizes) + 1):
        if _prod(new_sizes[:k]) == head and _prod(new_sizes[k:]) == tail:
            return reshape_p.bind(x, new_sizes=new_sizes[:k] + (n,) + new_sizes[k:]), k
    from functad.batching import moveaxis
    return reshape_p.bind(moveaxis(x, d, 0), new_sizes=(n,) + new_sizes), 0


reshape_p.batch = _reshape_batch


def _reshape_lower(ctx, x, new_sizes):
    if not ctx.in_avals[0].shape:
        if not new_sizes:
            return x                # rank 0 to rank 0: the scalar itself
        return f"np.full({tuple(new_sizes)}, {x}, {ctx.dtype(ctx.out_avals[0].dtype)})"
    if not new_sizes:
        return f"{x}.ravel()[0]"
    return f"np.ascontiguousarray({x}).reshape({tuple(new_sizes)})"


reshape_p.lower = _reshape_lower


def reshape(x, new_sizes):
    """Reshape ``x`` to the fully specified shape ``new_sizes`` (no ``-1``)."""
    new_sizes = _cast_shape(new_sizes)
    if np.shape(x) == new_sizes:
        return _unchanged(x)
    return reshape_p.bind(x, new_sizes=new_sizes)


# -- transpose -------------------------------------------------------------

transpose_p = Primitive("transpose")
transpose_p.impl = lambda x, permutation: np.transpose(x, permutation)


def _transpose_abstract_eval(a, permutation):
    if sorted(permutation) != list(range(a.ndim)):
        raise ValueError(f"transpose permutation {permutation} is not a permutation of the "
                         f"{a.ndim} axes of an array of shape {a.shape}")
    return core._cached_aval(tuple(a.shape[i] for i in permutation), a.dtype, a.weak_type)


transpose_p.abstract_eval = _transpose_abstract_eval
deflinear(transpose_p, lambda ct, x, permutation: [
    transpose_p.bind(ct, permutation=tuple(int(i) for i in np.argsort(permutation)))])


def _transpose_batch(vals, dims, permutation):
    # the batch axis stays at its position; the example axes are permuted around it
    (x,), (d,) = vals, dims
    perm = [_batched_axis(p, d) for p in permutation]
    perm.insert(d, d)
    return transpose(x, perm), d


transpose_p.batch = _transpose_batch
def _transpose_lower(ctx, x, permutation):
    # Numba types np.transpose(x, axes) very slowly (about 4.5 s the first time
    # in a process, measured); x.T costs 0.07 s.  Other permutations are
    # copied by a loop nest (fused loops read through transposes anyway, so a
    # materialized one feeds a product or an output).
    perm = tuple(permutation)
    if len(perm) < 2 or perm == tuple(range(len(perm))):
        return x
    if perm == (1, 0):
        return f"{x}.T"
    out = ctx.out_avals[0]
    t = ctx.fresh("tr")
    idx = [ctx.fresh("i") for _ in perm]
    src = [None] * len(perm)
    for k, p in enumerate(perm):
        src[p] = idx[k]
    lines = [f"{t} = np.empty({out.shape}, {ctx.dtype(out.dtype)})"]
    for k, n in enumerate(out.shape):
        lines.append("    " * k + f"for {idx[k]} in range({n}):")
    lines.append("    " * len(perm) + f"{t}[{', '.join(idx)}] = {x}[{', '.join(src)}]")
    ctx.emit("\n".join(lines))
    return t


transpose_p.lower = _transpose_lower


def transpose(x, permutation):
    """Permute the axes of ``x``."""
    permutation = tuple(int(i) for i in permutation)
    if permutation == tuple(range(len(permutation))):
        return _unchanged(x)
    return transpose_p.bind(x, permutation=permutation)


# -- concatenate -----------------------------------------------------------

concatenate_p = Primitive("concatenate")
concatenate_p.impl = lambda *xs, dimension: np.concatenate(xs, axis=dimension)


def _concatenate_abstract_eval(*avals, dimension):
    if not avals:
        raise ValueError("concatenate: need at least one array to concatenate")
    first = avals[0]
    if not 0 <= dimension < max(first.ndim, 0) or first.ndim == 0:
        raise ValueError(f"concatenate: dimension {dimension} is out of bounds for operands "
                         f"of shapes {[a.shape for a in avals]} (0-d arrays cannot be "
                         "concatenated)")
    for a in avals[1:]:
        if a.dtype != first.dtype:
            raise TypeError(f"concatenate: all operands must have the same dtype, got "
                            f"{[b.dtype.name for b in avals]}; cast them first "
                            "(functad.numpy.concatenate promotes automatically)")
        if a.ndim != first.ndim or any(d != e for i, (d, e) in enumerate(zip(a.shape, first.shape))
                                       if i != dimension):
            raise ValueError(f"concatenate: operand shapes {[b.shape for b in avals]} must be "
                             f"equal except along dimension {dimension}")
    shape = list(first.shape)
    shape[dimension] = sum(a.shape[dimension] for a in avals)
    return core._cached_aval(tuple(shape), first.dtype, all(a.weak_type for a in avals))


def _concatenate_transpose(ct, *xs, dimension):
    cts, start = [], 0
    for x in xs:
        size = x.aval.shape[dimension] if is_undefined(x) else np.shape(x)[dimension]
        if is_undefined(x):
            starts = [0] * len(x.aval.shape)
            limits = list(np.shape(ct))
            starts[dimension], limits[dimension] = start, start + size
            cts.append(slice(ct, starts, limits))
        else:
            cts.append(None)
        start += size
    return cts


concatenate_p.abstract_eval = _concatenate_abstract_eval
deflinear(concatenate_p, _concatenate_transpose)


def _concatenate_batch(vals, dims, dimension):
    # every operand needs the batch axis (the output has it throughout); unbatched
    # operands are broadcast, batched ones moved to the first batched one's axis
    n = _batch_size(vals, dims)
    d = next(d for d in dims if d is not None)
    xs = [place_batch(x, e, d, n) for x, e in zip(vals, dims)]
    return concatenate_p.bind(*xs, dimension=_batched_axis(dimension, d)), d


concatenate_p.batch = _concatenate_batch


def _copy_loops(ctx, dst, src, shape, dst_index, src_index=None):
    """Statements copying ``src`` (of ``shape``) into ``dst``: a loop nest (Numba
    compiles loops several times faster than a slice assignment), where
    ``dst_index(k, i)`` / ``src_index(k, i)`` give the index along axis ``k``."""
    idx = [ctx.fresh("j") for _ in shape]
    lines = [("    " * k) + f"for {i} in range({n}):" for k, (i, n) in enumerate(zip(idx, shape))]
    src_index = src_index or (lambda k, i: i)
    d = ", ".join(dst_index(k, i) for k, i in enumerate(idx))
    s = ", ".join(src_index(k, i) for k, i in enumerate(idx))
    lines.append(("    " * len(shape)) + f"{dst}[{d}] = {src}[{s}]")
    return lines


def _concatenate_lower(ctx, *xs, dimension):
    # allocate the result, then copy each operand into its part along ``dimension``
    out = ctx.out_avals[0]
    t = ctx.fresh("t")
    lines = [f"{t} = np.empty({out.shape}, {ctx.dtype(out.dtype)})"]
    start = 0
    for x, a in zip(xs, ctx.in_avals):
        if a.size:                  # an empty operand has nothing to copy
            lines += _copy_loops(ctx, t, x, a.shape, lambda k, i, s=start: (
                (f"{s} + {i}" if s else i) if k == dimension else i))
        start += a.shape[dimension]
    ctx.emit("\n".join(lines))
    return t


concatenate_p.lower = _concatenate_lower


def concatenate(operands, dimension):
    """Join arrays of equal dtype along the existing, non-negative ``dimension``.

    >>> concatenate([np.ones(2), np.zeros(1)], 0)
    Array([1., 1., 0.])
    """
    operands = tuple(operands)
    if len(operands) == 1:
        return _unchanged(operands[0])
    return concatenate_p.bind(*operands, dimension=int(dimension))


# -- slice -----------------------------------------------------------------

slice_p = Primitive("slice")


def _slice_impl(x, start_indices, limit_indices, strides):
    return x[tuple(_pyslice(s, l, st) for s, l, st in zip(start_indices, limit_indices, strides))]


def _slice_shape(shape, start_indices, limit_indices, strides):
    if not len(start_indices) == len(limit_indices) == len(strides) == len(shape):
        raise ValueError(f"slice: start_indices {start_indices}, limit_indices {limit_indices} "
                         f"and strides {strides} must each have one entry per dimension of the "
                         f"operand of shape {shape}")
    out = []
    for d, s, l, st in zip(shape, start_indices, limit_indices, strides):
        if not (0 <= s <= l <= d) or st < 1:
            raise ValueError(f"slice: invalid slice {s}:{l}:{st} of a dimension of size {d} "
                             f"(operand shape {shape}); need 0 <= start <= limit <= size and "
                             "stride >= 1")
        out.append(max(0, -(-(l - s) // st)))
    return tuple(out)


slice_p.impl = _slice_impl
slice_p.abstract_eval = lambda a, start_indices, limit_indices, strides: core._cached_aval(
    _slice_shape(a.shape, start_indices, limit_indices, strides), a.dtype, a.weak_type)


def _slice_transpose(ct, x, start_indices, limit_indices, strides):
    shape = x.aval.shape
    config = []
    for d, s, n, st in zip(shape, start_indices, np.shape(ct), strides):
        used = s + (n - 1) * st + 1 if n else s     # one past the last element taken
        config.append((s, d - used, st - 1) if n else (s, d - s, 0))
    zero = np.zeros((), x.aval.dtype)[()]
    return [pad(ct, zero, tuple(config))]


deflinear(slice_p, _slice_transpose)


def _slice_batch(vals, dims, start_indices, limit_indices, strides):
    (x,), (d,) = vals, dims
    n = core.shape_of(x)[d]

    def ins(t, v):
        return t[:d] + (v,) + t[d:]
    return slice_p.bind(x, start_indices=ins(start_indices, 0), limit_indices=ins(limit_indices, n),
                        strides=ins(strides, 1)), d


slice_p.batch = _slice_batch


def _slice_text(start, stop, step, size):
    """``start:stop:step`` without the parts that are defaults, ``:`` for everything."""
    return (f"{start if start else ''}:{stop if stop != size else ''}"
            + (f":{step}" if step != 1 else ""))


def _slice_lower(ctx, x, start_indices, limit_indices, strides):
    # a strided view of the operand (no copy)
    shape = ctx.in_avals[0].shape
    if not shape:
        return x
    idx = [_slice_text(s, l, st, n) for s, l, st, n in zip(start_indices, limit_indices,
                                                              strides, shape)]
    return f"{x}[{', '.join(idx)}]"


slice_p.lower = _slice_lower


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001 - lax's name
    """Static slice ``operand[start:limit:stride, ...]`` with non-negative bounds.

    >>> slice(np.arange(6.0), (1,), (6,), (2,))
    Array([1., 3., 5.])
    """
    start = tuple(int(i) for i in start_indices)
    limit = tuple(int(i) for i in limit_indices)
    strides = (1,) * len(start) if strides is None else tuple(int(i) for i in strides)
    if start == (0,) * len(start) and limit == np.shape(operand) and strides == (1,) * len(start):
        return _unchanged(operand)
    return slice_p.bind(operand, start_indices=start, limit_indices=limit, strides=strides)


def slice_in_dim(operand, start, limit, stride=1, axis=0):
    """Slice ``operand`` along one (non-negative) axis only."""
    shape = np.shape(operand)
    starts, limits, strides = [0] * len(shape), list(shape), [1] * len(shape)
    starts[axis], limits[axis], strides[axis] = start, limit, stride
    return slice(operand, starts, limits, strides)


# -- pad -------------------------------------------------------------------

pad_p = Primitive("pad")


def _pad_shape(shape, config):
    if len(config) != len(shape):
        raise ValueError(f"pad: padding_config {config} must have one (low, high, interior) "
                         f"triple per dimension of the operand of shape {shape}")
    out = []
    for d, (lo, hi, interior) in zip(shape, config):
        if lo < 0 or hi < 0 or interior < 0:
            raise ValueError(f"pad: negative padding {(lo, hi, interior)} is not supported "
                             f"(operand shape {shape}); use slice to crop")
        out.append(lo + hi + d + max(d - 1, 0) * interior)
    return tuple(out)


def _pad_impl(x, padding_value, padding_config):
    x = np.asarray(x)
    shape = _pad_shape(x.shape, padding_config)
    out = np.full(shape, padding_value, dtype=x.dtype)
    out[tuple(_pyslice(lo, lo + (d - 1) * (it + 1) + 1 if d else lo, it + 1)
              for d, (lo, hi, it) in zip(x.shape, padding_config))] = x
    return out


def _pad_abstract_eval(a, pv, padding_config):
    if pv.shape != ():
        raise ValueError(f"pad: the padding value must be a scalar, got shape {pv.shape}")
    if pv.dtype != a.dtype:
        raise TypeError(f"pad: the padding value has dtype {pv.dtype.name} but the operand has "
                        f"dtype {a.dtype.name}; cast it to the operand's dtype")
    return core._cached_aval(_pad_shape(a.shape, padding_config), a.dtype, a.weak_type)


def _pad_transpose(ct, x, pv, padding_config):
    from functad.lax.reductions import reduce_sum
    shape = x.aval.shape if is_undefined(x) else np.shape(x)
    starts = tuple(lo for lo, _, _ in padding_config)
    limits = tuple(n - hi for n, (_, hi, _) in zip(np.shape(ct), padding_config))
    strides = tuple(it + 1 for _, _, it in padding_config)
    inner = slice(ct, starts, limits, strides)
    if np.shape(inner) != shape:   # empty operand dimensions with interior padding
        inner = reshape(inner, shape)
    ct_x = inner if is_undefined(x) else None
    ct_pv = None
    if is_undefined(pv):
        axes = tuple(range(len(shape)))
        from functad.lax.elementwise import sub
        ct_pv = sub(reduce_sum(ct, axes), reduce_sum(inner, axes))
    return [ct_x, ct_pv]


pad_p.impl = _pad_impl
pad_p.abstract_eval = _pad_abstract_eval
deflinear(pad_p, _pad_transpose)


def _pad_batch(vals, dims, padding_config):
    (x, pv), (d, pd) = vals, dims
    config = tuple(padding_config)
    if pd is None:      # one padding value: pad the examples' axes, not the batch axis
        return pad_p.bind(x, pv, padding_config=config[:d] + ((0, 0, 0),) + config[d:]), d
    # one padding value per example: pad with zeros, then select each example's
    # value at the padded positions (a constant mask of the example's shape)
    from functad.lax.elementwise import select
    n = core.shape_of(pv)[0]
    dtype = core.aval_of(x).dtype
    shape = _example_shape(x, d)
    out = _pad_batch([x, dtype.type(0)], [d, None], config)[0] if d is not None else \
        pad_p.bind(x, dtype.type(0), padding_config=config)
    od = 0 if d is None else d
    mask = _pad_impl(np.zeros(shape, np.bool_), np.True_, config)
    out_shape = mask.shape
    mask = core._wrap(mask.reshape(out_shape[:od] + (1,) + out_shape[od:]))
    pv = reshape(pv, (1,) * od + (n,) + (1,) * (len(out_shape) - od))
    return select(mask, pv, out), od


pad_p.batch = _pad_batch


def _pad_placement(shape, padding_config, out_shape):
    """Where the operand lands in the padded result: (source slices, destination
    slices) as ``(start, stop, step)`` triples, or None when no element lands
    (an empty operand, or negative padding that crops everything away).
    Negative ``low``/``high`` crop, as in ``jax.lax.pad``."""
    src, dst = [], []
    for d, (lo, hi, it), n in zip(shape, padding_config, out_shape):
        step = it + 1
        first = max(0, -(lo // step))               # operand element j lands at lo + j * step
        last = min(d - 1, (n - 1 - lo) // step) if n else -1
        if last < first:
            return None
        src.append((first, last + 1, 1))
        dst.append((lo + first * step, lo + last * step + 1, step))
    return src, dst


def _pad_lower(ctx, x, pv, padding_config):
    # allocate the result filled with the padding value, then copy the operand
    # into its (strided, for interior padding) place
    a, out = ctx.in_avals[0], ctx.out_avals[0]
    if not a.shape:
        return x
    t = ctx.fresh("t")
    lines = [f"{t} = np.full({out.shape}, {pv}, {ctx.dtype(out.dtype)})"]
    place = _pad_placement(a.shape, padding_config, out.shape)
    if place is not None:
        src, dst = place

        def affine(start, step, i):
            term = f"{step} * {i}" if step != 1 else i
            return f"{start} + {term}" if start else term
        lines += _copy_loops(ctx, t, x, [stop - start for start, stop, _ in src],
                             lambda k, i: affine(dst[k][0], dst[k][2], i),
                             lambda k, i: affine(src[k][0], 1, i))
    ctx.emit("\n".join(lines))
    return t


pad_p.lower = _pad_lower


def pad(operand, padding_value, padding_config):
    """Pad ``operand`` with the scalar ``padding_value``.

    ``padding_config`` has one ``(low, high, interior)`` triple of non-negative
    ints per dimension: ``interior`` values go between neighbouring elements.
    Linear in both the operand and the padding value.

    >>> pad(np.ones(2), 0.0, [(1, 0, 1)])
    Array([0., 1., 0., 1.])
    """
    config = tuple((int(lo), int(hi), int(it)) for lo, hi, it in padding_config)
    aval = core.aval_of(operand)
    if not isinstance(padding_value, core.Tracer) and np.ndim(padding_value) == 0:
        padding_value = aval.dtype.type(padding_value)
    elif core.aval_of(padding_value).dtype != aval.dtype:
        from functad.lax.elementwise import convert_element_type
        padding_value = convert_element_type(padding_value, aval.dtype)
    if all(c == (0, 0, 0) for c in config):
        return _unchanged(operand)
    return pad_p.bind(operand, padding_value, padding_config=config)


# -- rev -------------------------------------------------------------------

rev_p = Primitive("rev")
rev_p.impl = lambda x, dimensions: np.flip(x, dimensions)


def _rev_abstract_eval(a, dimensions):
    if any(not 0 <= d < a.ndim for d in dimensions) or len(set(dimensions)) != len(dimensions):
        raise ValueError(f"rev: dimensions {dimensions} must be distinct axes of the operand of "
                         f"shape {a.shape}")
    return a


rev_p.abstract_eval = _rev_abstract_eval
deflinear(rev_p, lambda ct, x, dimensions: [rev_p.bind(ct, dimensions=dimensions)])


def _rev_batch(vals, dims, dimensions):
    (x,), (d,) = vals, dims
    return rev_p.bind(x, dimensions=tuple(_batched_axis(a, d) for a in dimensions)), d


rev_p.batch = _rev_batch


def _rev_lower(ctx, x, dimensions):
    # a view with negative strides along ``dimensions`` (no copy)
    if not dimensions:
        return x
    rank = len(ctx.in_avals[0].shape)
    return f"{x}[{', '.join('::-1' if i in dimensions else ':' for i in range(rank))}]"


rev_p.lower = _rev_lower


def rev(operand, dimensions):
    """Reverse ``operand`` along the non-negative axes ``dimensions``.

    >>> rev(np.arange(3.0), (0,))
    Array([2., 1., 0.])
    """
    dimensions = tuple(sorted(int(d) for d in dimensions))
    if not dimensions:
        return _unchanged(operand)
    return rev_p.bind(operand, dimensions=dimensions)


# -- iota (a constant, for index arithmetic) -------------------------------

def iota(dtype, size):
    """``arange(size)`` as a concrete array of ``dtype`` (a constant under any transform)."""
    return core._wrap(np.arange(size, dtype=dtype))
