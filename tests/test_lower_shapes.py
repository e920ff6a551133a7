"""Numba lowering of the shape primitives (functad.lax.shapes) and of the
reductions (functad.lax.reductions).

* ``slice`` and ``rev`` lower to views (``x[a:b:s]``, ``x[::-1]``),
  ``concatenate`` and ``pad`` allocate and copy; ``reshape``, ``transpose`` and
  ``broadcast_to``, which fused loops read through, are tested where they are
  *materialized* (an output, or the operand of a non-fused primitive),
  including rank-0 and size-0 cases;
* ``argmax``/``argmin`` and the cumulative scans call the helpers of
  ``functad.numba_runtime``; the reductions fused into loops by
  ``functad.lowering`` are tested over axes subsets, dtypes, NaN and empty
  axes, and their ``lower`` rule (rank-0 operands) on its own;
* each primitive also appears in a ``jit(grad(...))`` or ``jit(vmap(...))``
  program, and one test checks that they compile, with elementwise code
  around them, into one fused program.

Every check is ``assert_jit_numba``: jit with the Numba backend equals the
eager function (exactly for ints and bools).  Each distinct shape/dtype/param
combination is a Numba compile, so the cases are a fixed, chosen list, plus a
few Hypothesis examples per family.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lax
from functad.lax import reductions as lr, shapes as ls

from helpers import arr, assert_jit_numba, draw_slice, values

FEW = settings(max_examples=10, deadline=None)


def source(f, *args):
    return fd.jit(f).lower(*args).numba_source


def data(shape, dtype, seed=0, nans=False):
    """Small values with ties (halves for floats; 0/1 for bools)."""
    if np.dtype(dtype) == np.bool_:
        return np.random.default_rng(seed).integers(0, 2, shape).astype(np.bool_)
    return values(seed, shape, dtype, nans)


@st.composite
def shape_and_slice(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    return (shape,) + draw_slice(draw, shape)


# --------------------------------------------------------------------------
# slice: a strided view
# --------------------------------------------------------------------------

SLICES = [   # shape, start, limit, strides, dtype
    ((7,), (1,), (6,), (2,), np.float32),
    ((4, 5), (1, 0), (4, 5), (1, 3), np.float64),
    ((3, 4, 5), (0, 1, 2), (3, 4, 5), (2, 1, 2), np.int32),
    ((4, 5), (2, 0), (2, 5), (1, 1), np.bool_),          # empty result
    ((0, 3), (0, 1), (0, 3), (1, 1), np.float64),        # empty operand
]


@pytest.mark.parametrize("shape, start, limit, strides, dtype", SLICES)
def test_slice(shape, start, limit, strides, dtype):
    x = data(shape, dtype)
    # the slice as an output (a view of the input) and read by a fused loop
    assert_jit_numba(lambda x: (lax.slice(x, start, limit, strides),
                                lax.slice(x, start, limit, strides) == x.dtype.type(1)), x)


def test_slice_is_a_view():
    src = source(lambda x: lax.slice(x, (1, 0), (4, 5), (1, 3)), np.ones((4, 5)))
    assert "a0[1:, ::3]" in src and "np.empty" not in src and "ascontiguous" not in src


@FEW
@given(shape_and_slice())
def test_slice_law(case):
    shape, start, limit, strides = case
    assert_jit_numba(lambda x: lax.slice(x, start, limit, strides) * 2.0, arr(shape))


def test_slice_grad_and_vmap():
    # the transpose of a strided slice is a pad with interior padding
    w = arr((2, 3), seed=1)
    f = lambda x: fnp.sum(lax.slice(x, (1, 0), (5, 5), (2, 2)) * w)  # noqa: E731
    assert_jit_numba(fd.grad(f), arr((5, 5)))
    assert_jit_numba(fd.vmap(lambda r: lax.slice(r, (1,), (6,), (2,))), arr((3, 6)))


# --------------------------------------------------------------------------
# rev: a view with negative strides
# --------------------------------------------------------------------------

REVS = [   # shape, dimensions, dtype
    ((5,), (0,), np.float32),
    ((2, 3, 4), (0, 2), np.int64),
    ((3, 4), (1,), np.bool_),
    ((0, 3), (0, 1), np.float64),
]


@pytest.mark.parametrize("shape, dims, dtype", REVS)
def test_rev(shape, dims, dtype):
    x = data(shape, dtype)
    assert_jit_numba(lambda x: (lax.rev(x, dims), lax.rev(x, dims) == x), x)


def test_rev_is_a_view_and_grad_vmap():
    src = source(lambda x: lax.rev(x, (0, 2)), np.ones((2, 3, 4)))
    assert "a0[::-1, :, ::-1]" in src and "np.empty" not in src
    w = arr((3, 4), seed=1)
    assert_jit_numba(fd.grad(lambda x: fnp.sum(fnp.sin(fnp.flip(x, 1)) * w)), arr((3, 4)))
    assert_jit_numba(fd.vmap(lambda r: fnp.flip(r)), arr((2, 3)))


# --------------------------------------------------------------------------
# concatenate: allocate, copy each operand
# --------------------------------------------------------------------------

def test_concatenate_rank1_float32():
    x = arr((3,), np.float32)
    assert_jit_numba(lambda x: lax.concatenate([x, fnp.sin(x), lax.rev(x, (0,)) * 2], 0), x)


def test_concatenate_mixed_operands():
    # an input, a fused loop's result, a strided view, a materialized broadcast
    x, y = arr((2, 3)), arr((1, 2), seed=1)
    assert_jit_numba(lambda x, y: lax.concatenate(
        [x, fnp.exp(x), lax.slice(x, (0, 0), (2, 3), (1, 2)), fnp.broadcast_to(y, (2, 2))], 1),
        x, y)


@pytest.mark.parametrize("shapes, dim, dtype", [
    (((2, 3, 1), (2, 3, 2), (2, 3, 0)), 2, np.int32),     # with an empty operand
    (((0, 2), (3, 2)), 0, np.bool_),
    (((0, 2), (0, 3)), 1, np.float64),                    # an empty result
])
def test_concatenate(shapes, dim, dtype):
    xs = [data(s, dtype, seed=i) for i, s in enumerate(shapes)]
    assert_jit_numba(lambda *xs: lax.concatenate(xs, dim), *xs)


def test_concatenate_grad_and_vmap():
    f = lambda x, y: fnp.sum(fnp.concatenate([x, 2.0 * y]) ** 2)   # noqa: E731
    assert_jit_numba(fd.grad(f, argnums=(0, 1)), arr((3,)), arr((2,), seed=1))
    c = arr((2,), seed=2)       # unbatched: broadcast along the batch axis
    assert_jit_numba(fd.vmap(lambda r: fnp.concatenate([r, c])), arr((4, 3)))


# --------------------------------------------------------------------------
# pad: allocate filled with the padding value, copy the operand into place
# --------------------------------------------------------------------------

PADS = [   # shape, padding_config, dtype
    ((3,), ((1, 2, 0),), np.float32),
    ((2, 3), ((0, 1, 1), (2, 0, 2)), np.float64),
    ((2, 2, 2), ((1, 1, 0), (0, 0, 1), (1, 0, 0)), np.int32),
    ((0, 2), ((1, 1, 3), (0, 1, 0)), np.bool_),          # an empty operand
    ((1, 0), ((0, 0, 5), (0, 0, 2)), np.float64),        # nothing padded in but interior
]


@pytest.mark.parametrize("shape, config, dtype", PADS)
def test_pad(shape, config, dtype):
    x, v = data(shape, dtype), np.ones((), dtype)[()]
    # a traced padding value, and a constant one
    assert_jit_numba(lambda x, v: (lax.pad(x, v, config), lax.pad(x, 0, config)), x, v)


def test_pad_rank0_and_numpy_pad():
    x = np.float32(1.5)
    assert_jit_numba(lambda x: ls.pad_p.bind(x, np.float32(0), padding_config=()), x)
    assert_jit_numba(lambda x: fnp.pad(x, ((1, 2), (0, 1)), constant_values=3) + 1,
                     data((2, 3), np.int64))


def test_pad_grad_and_vmap():
    config = ((1, 0, 1), (0, 2, 0))
    w = arr((4, 5), seed=1)
    assert_jit_numba(fd.grad(lambda x, v: fnp.sum(lax.pad(x, v, config) * w), argnums=(0, 1)),
                     arr((2, 3)), 0.5)
    # a padding value per example: pad with zeros, select each example's value in
    assert_jit_numba(fd.vmap(lambda x, v: lax.pad(x, v, ((1, 1, 1),))),
                     arr((2, 3)), arr((2,), seed=1))


def _pad_reference(x, pv, config):
    """jax.lax.pad semantics, negative low/high included: dilate, pad, crop."""
    for ax, (lo, hi, it) in enumerate(config):
        n = x.shape[ax]
        shape = list(x.shape)
        shape[ax] = n + max(n - 1, 0) * it
        dil = np.full(shape, pv, x.dtype)
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(None, None, it + 1)
        dil[tuple(idx)] = x
        width = [(0, 0)] * x.ndim
        width[ax] = (max(lo, 0), max(hi, 0))
        x = np.pad(dil, width, constant_values=pv)
        idx[ax] = slice(max(-lo, 0), x.shape[ax] - max(-hi, 0))
        x = x[tuple(idx)]
    return x


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_pad_placement_with_negative_padding(draw):
    # the placement the lowering writes, in NumPy (no compile); lax.pad refuses
    # negative padding today, but the rule already handles it as jax.lax.pad does
    shape = tuple(draw.draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    config = []
    for n in shape:
        it = draw.draw(st.integers(0, 2))
        dil = n + max(n - 1, 0) * it
        lo = draw.draw(st.integers(-dil, 3))
        hi = draw.draw(st.integers(-(dil + lo) if dil + lo > 0 else 0, 3))
        config.append((lo, hi, it))
    x = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64).reshape(shape)
    want = _pad_reference(x, 0.0, config)
    got = np.zeros(want.shape)
    place = ls._pad_placement(shape, config, want.shape)
    if place is not None:
        src, dst = place
        got[tuple(slice(*d) for d in dst)] = x[tuple(slice(*s) for s in src)]
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------
# reshape, transpose, broadcast_to: materialized
# --------------------------------------------------------------------------

def test_reshape_materialized():
    x = data((2, 3, 4), np.int32)
    assert_jit_numba(lambda x: (lax.reshape(x, (6, 4)), lax.reshape(x, (4, 3, 2))), x)
    # a non-contiguous operand (a transpose, a reversal) is copied first
    assert_jit_numba(lambda x: (lax.reshape(lax.transpose(x, (2, 0, 1)), (4, 6)),
                                lax.reshape(lax.rev(x, (1,)), (24,))), arr((2, 3, 4), np.float32))
    # feeding a non-fused primitive
    assert_jit_numba(lambda x: fnp.cumsum(lax.reshape(x, (3, 2)), axis=0), arr((2, 3)))


def test_reshape_rank0_and_empty():
    assert_jit_numba(lambda x: (lax.reshape(x, (1, 1)), lax.reshape(x, (1,)) * 2,
                                ls.reshape_p.bind(x, new_sizes=())), np.float32(2.5))
    assert_jit_numba(lambda x: (lax.reshape(x, ()), lax.reshape(lax.rev(x, (1,)), ())),
                     data((1, 1), np.bool_))
    assert_jit_numba(lambda x: (lax.reshape(x, (3, 0)), lax.reshape(x, (0,))),
                     arr((0, 3)))


def test_transpose_materialized():
    x = data((2, 3, 4), np.int64)
    assert_jit_numba(lambda x: (lax.transpose(x, (2, 0, 1)),
                                fnp.cumsum(lax.transpose(x, (1, 0, 2)), axis=0)), x)
    assert_jit_numba(lambda x: (ls.transpose_p.bind(x, permutation=()),
                                lax.transpose(lax.broadcast_to(x, (0, 2)), (1, 0))),
                     np.float64(1.5))


def test_broadcast_to_materialized():
    assert_jit_numba(lambda x: (lax.broadcast_to(x, (2, 3)), fnp.cumprod(
        lax.broadcast_to(x, (2, 3)), axis=0)), data((3,), np.int32))
    assert_jit_numba(lambda x: (lax.broadcast_to(x, (2, 3)), ls.broadcast_to_p.bind(x, shape=()),
                                lax.broadcast_to(x, (0,))), np.float32(0.5))
    assert_jit_numba(lambda x: (lax.concatenate([lax.broadcast_to(x, (2, 4, 3)),
                                                 lax.broadcast_to(x, (2, 1, 3))], 1),
                                lax.broadcast_to(x, (2, 0, 3))), data((1, 3), np.bool_))


# --------------------------------------------------------------------------
# argmax / argmin
# --------------------------------------------------------------------------

def test_arg_extrema_every_axis():
    x = data((2, 3, 4), np.float64, nans=True)         # ties, and NaNs: the first one wins
    assert_jit_numba(lambda x: tuple(f(x, axis=a) for f in (fnp.argmax, fnp.argmin)
                                     for a in range(3)), x)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.bool_])
def test_arg_extrema_dtypes(dtype):
    assert_jit_numba(lambda x: (fnp.argmax(x, axis=1), fnp.argmin(x, axis=2)),
                     data((2, 3, 4), dtype))


def test_arg_extrema_nan_rank0_and_empty():
    x = np.array([1.0, np.nan, 3.0, np.nan, -1.0])
    f = lambda x: (fnp.argmax(x), fnp.argmin(x), fnp.argmax(x[2:]))  # noqa: E731
    got = assert_jit_numba(f, x)
    assert [int(g) for g in got] == [1, 1, 1]
    assert_jit_numba(f, np.array([np.nan] * 5))
    assert_jit_numba(lambda x: (fnp.argmax(x, axis=1), fnp.argmin(x, axis=1, keepdims=True)),
                     arr((0, 3)))


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2),
       st.integers(0, 2**16))
def test_arg_extrema_law(shape, axis, seed):
    axis = axis % len(shape)
    x = values(seed, shape, np.float64, nans=seed % 2)
    assert_jit_numba(lambda x: (lax.argmax(x, axis), lax.argmin(x, axis)), x)


def test_arg_extrema_vmap():
    assert_jit_numba(fd.vmap(lambda r: (fnp.argmax(r), fnp.argmin(r))),
                     data((3, 4), np.float32))


# --------------------------------------------------------------------------
# cumulative scans
# --------------------------------------------------------------------------

SCANS = (lax.cumsum, lax.cumprod, lax.cummax, lax.cummin)


def _all_scans(x):
    return tuple(f(x, a, reverse=r) for f in SCANS for a in range(x.ndim) for r in (False, True))


def test_scans_every_axis():
    assert_jit_numba(_all_scans, data((2, 3, 4), np.float64, nans=True))   # NaNs propagate


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.uint8, np.bool_])
def test_scans_dtypes(dtype):
    # result dtypes as NumPy's: ints and bools sum in int64 (uint64), maxima keep the dtype
    x = data((2, 3, 4), dtype)
    assert_jit_numba(lambda x: (lax.cumsum(x, 1), lax.cumprod(x, 2, reverse=True),
                                lax.cummax(x, 0, reverse=True), lax.cummin(x, 2)), x)


def test_scans_rank1_and_empty():
    assert_jit_numba(_all_scans, np.array([1.0, np.nan, 3.0, -2.0]))
    assert_jit_numba(lambda x: (lax.cumsum(x, 0), lax.cumprod(x, 1, reverse=True),
                                lax.cummax(x, 1), fnp.cumsum(x)), arr((0, 3)))
    assert_jit_numba(lambda x: (fnp.cumsum(x), fnp.cumprod(x, axis=0)), arr((3, 0), np.float32))


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2),
       st.sampled_from([lax.cumsum, lax.cumprod, lax.cummax, lax.cummin]), st.booleans())
def test_scans_law(shape, axis, scan, reverse):
    axis = axis % len(shape)
    assert_jit_numba(lambda x: scan(x, axis, reverse=reverse), arr(shape))


def test_scans_grad_and_vmap():
    w = arr((3, 4), seed=1)
    x = values(2, (3, 4)) + 0.25                  # zeros excluded, ties kept
    for scan in (lax.cumsum, lax.cumprod, lax.cummax):
        # cumprod's and cummax's derivatives use shift (slice and pad) and scans
        assert_jit_numba(fd.grad(lambda x: fnp.sum(scan(x, 1, reverse=True) * w)), x)
    assert_jit_numba(fd.vmap(lambda r: (fnp.cumsum(r), lax.cummin(r, 0))), arr((2, 5)))


# --------------------------------------------------------------------------
# reductions: the rule for rank-0 operands, and the fused loops
# --------------------------------------------------------------------------

REDUCERS = (lr.reduce_sum, lr.reduce_prod, lr.reduce_max, lr.reduce_min, lr.reduce_and,
            lr.reduce_or)


@pytest.mark.parametrize("x", [np.float32(-1.5), np.int8(3), np.True_, np.float64(np.nan)],
                         ids=["float32", "int8", "bool", "nan"])
def test_reduce_rank0_is_a_cast(x):
    # sum/prod of bool and int8 give int64; and/or give bool
    assert_jit_numba(lambda x: tuple(r(x, ()) for r in REDUCERS), x)


def test_reduce_rank0_source_and_grad():
    src = source(lambda x: (lr.reduce_sum(x, ()), lr.reduce_or(x, ())), np.int8(3))
    assert "for " not in src and "np.int64(a0)" in src and "((a0) != 0)" in src
    assert_jit_numba(fd.grad(lambda x: fnp.sum(x * x) + fnp.max(x)), 1.5)


AXES_SUBSETS = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


def test_fused_reductions_every_axes_subset():
    x = data((2, 3, 4), np.float64, nans=True)     # NaNs: max/min choose them
    assert_jit_numba(lambda x: tuple(r(x, axes) for r in (lr.reduce_sum, lr.reduce_max)
                                     for axes in AXES_SUBSETS)
                     + tuple(r(x, axes) for r in (lr.reduce_prod, lr.reduce_min, lr.reduce_and,
                                                  lr.reduce_or) for axes in [(1,), (0, 2)]), x)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8, np.bool_])
def test_fused_reductions_dtypes(dtype):
    # sums of ints and bools in int64, max/min keep the dtype, and/or give bools
    x = data((2, 3, 4), dtype)
    assert_jit_numba(lambda x: tuple(r(x, axes) for r, axes in zip(
        REDUCERS, [(0,), (1, 2), (0, 1, 2), (2,), (0, 2), (1,)])), x)


def test_fused_reductions_float32_accumulate_in_float64():
    # random float32 values: NumPy sums pairwise in float32, the loop in float64
    x = arr((5, 7, 9), np.float32)
    got = assert_jit_numba(lambda x: (fnp.sum(x), fnp.sum(x, axis=(0, 2)), fnp.mean(x, axis=1),
                                      fnp.var(x), fnp.prod(lax.slice(x, (0, 0, 0), (1, 1, 9)) * 0.5)), x, tol32=1e-5)
    assert all(np.asarray(g).dtype == np.float32 for g in got)
    assert "acc" in source(lambda x: fnp.sum(x), x)


def test_fused_reductions_keepdims_and_empty():
    x = arr((3, 4))
    assert_jit_numba(lambda x: (fnp.sum(x, axis=1, keepdims=True), fnp.max(x, axis=0,
                                keepdims=True), fnp.min(x, keepdims=True) - x), x)
    e = arr((0, 3))
    # the sum of nothing is 0, the product 1, all() True, any() False
    assert_jit_numba(lambda e: (fnp.sum(e), fnp.sum(e, axis=0), fnp.sum(e, axis=1),
                                fnp.prod(e, axis=0), fnp.all(e, axis=0), fnp.any(e),
                                fnp.max(e, axis=1)), e)
    assert_jit_numba(lambda e: (fnp.sum(e), fnp.prod(e), fnp.all(e), fnp.any(e, axis=0)),
                     data((3, 0), np.int32))


@FEW
@given(st.lists(st.integers(0, 4), max_size=3), st.data())
def test_fused_reductions_law(shape, draw):
    axes = tuple(sorted(draw.draw(st.sets(st.integers(0, max(len(shape) - 1, 0)),
                                          max_size=len(shape)))))
    x = values(len(shape), shape)
    ok_max = all(shape[a] for a in axes)
    assert_jit_numba(lambda x: (lr.reduce_sum(x, axes), lr.reduce_prod(x, axes))
                     + ((lr.reduce_max(x, axes),) if ok_max else ()), x)


def test_fused_reductions_grad_and_vmap():
    x = arr((3, 4))
    assert_jit_numba(fd.grad(lambda x: fnp.max(x, axis=1).sum() + fnp.sum(x ** 2)), x)
    assert_jit_numba(fd.grad(lambda x: fnp.prod(x)), x)
    assert_jit_numba(fd.vmap(lambda r: fnp.sum(r) / fnp.max(r) + fnp.any(r > 1)), x)


# --------------------------------------------------------------------------
# One program: the shape primitives and scans among fused elementwise loops
# --------------------------------------------------------------------------

def test_one_program_with_fused_elementwise_code():
    def f(x):
        y = fnp.sin(lax.rev(x, (1,))) * 2.0                          # a loop reading a view
        z = lax.concatenate([y, lax.slice(x, (0, 1), (3, 4), (1, 2))], 1)
        p = lax.pad(fnp.exp(z), -1.0, ((1, 0, 0), (0, 1, 1)))
        return fnp.sum(p * 0.5, axis=0) + fnp.cumsum(x, 1).sum(), fnp.argmax(p, axis=1)
    x = arr((3, 4))
    src = source(f, x)
    assert src.count("def ") == 1
    for text in ("a0[:, ::-1]", "a0[:, 1::2]", "np.full(", "_rt.cumulative(",
                 "_rt.arg_extremum("):
        assert text in src, text
    assert_jit_numba(f, x)
