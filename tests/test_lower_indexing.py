"""jit's Numba tier for the indexing and sorting families: gather, scatter,
sort and searchsorted (functad/lax/indexing.py, functad/lax/sorting.py).

The law: ``jit(f)`` compiled with Numba equals eager ``f`` (exactly for ints
and bools).  Out-of-bounds index arrays are only possible when the indices
are traced, where eager NumPy indexing would raise; there the reference is the
staged jaxpr run by the primitives' own implementations (clamping gathers,
dropping scatters), see :func:`assert_staged_numba`.

Every Numba compile costs ~0.1-0.5 s, so each test computes many cases in one
program (a dict of outputs) per dtype, and the Hypothesis laws draw few
examples (values vary freely; shapes and indices sparingly).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import hypothesis.extra.numpy as hnp

import functad as fd
import functad.numpy as fnp
from functad import lax, tree_util as tu
from functad.lax import indexing as li
from functad.lax.indexing import Indexer
from functad.testing import shapes
from helpers import assert_jit_numba, assert_tree_same
from test_indexing import numpy_indices

FEW = settings(max_examples=10, deadline=None)


def numba_jit(f, *args):
    """``jit(f)(*args)`` on the Numba tier (compiled before the call)."""
    with fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        got = jf(*args)
    prog = jf._cache[next(iter(jf._cache))].prog
    assert prog.state == "compiled"
    return got


def assert_staged_numba(f, *args):
    """``jit(f)`` on the Numba tier equals the staged jaxpr of ``f`` run by the
    primitives' implementations (the reference for traced out-of-bounds indices)."""
    closed = fd.make_jaxpr(f)(*args)
    want = closed(*tu.tree_leaves(args))
    got = numba_jit(f, *args)
    assert_tree_same(tu.tree_leaves(got), list(want))
    return got


def source(f, *args):
    return fd.jit(f).lower(*args).numba_source


def values(shape, dtype, seed=0, nans=False):
    """Small values with ties (and NaNs if asked, for floats) of ``dtype``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    v = rng.integers(-4, 5, shape).astype(np.float64)
    if dt.kind == "f":
        v = v / 2.0
        if nans and v.size:
            flat = v.reshape(-1)
            flat[rng.integers(0, flat.size, max(1, flat.size // 6))] = np.nan
    return v.astype(dt)


DTYPES = [np.float64, np.float32, np.int32, np.bool_]


# --------------------------------------------------------------------------
# gather
# --------------------------------------------------------------------------

def basic_views(x):
    """NumPy basic indexing (no index arrays): lowered as Numba views."""
    return {"int": x[1], "mid": x[:, 2], "scalar": x[1, 2, 3], "neg_int": x[-1, :, -2],
            "rev": x[::-1], "rev_stop": x[2:0:-1, ::2], "steps": x[..., None, 1:5:3],
            "empty": x[3:1], "newaxes": x[None, :, -1, None], "rev_step3": x[-1:, ::-3],
            "full": x[:, :, :]}


def test_gather_basic_indexing_is_a_view():
    x = values((3, 4, 5), np.float64, nans=True)
    assert_jit_numba(lambda x, b: (basic_views(x), basic_views(b)), x, x > 0)
    src = source(lambda x: x[1:, None, ::-2], x)
    assert "for " not in src and "a0[1:3, None, 3::-2, :]" in src, src


I = np.array([2, -1, 0, 7, -9, 1])          # out of bounds both ways: clamped when traced
J = np.array([[1], [-4], [3]])
K = np.array([[0, 3, 1, 2, 2], [4, 0, 0, 1, 9]])


def advanced(x, i, j, k):
    """Gathers with traced index arrays (clamped out of bounds)."""
    return {
        "first": x[i],                         # broadcast index shape first, in place
        "middle": x[:, i],
        "last": x[..., k],
        "two": x[j, i],                        # (3, 6) broadcast, adjacent
        "split": x[j, :, i],                   # not adjacent: the index shape goes first
        "int_array": x[1, :, k],               # a static int counts as advanced: split
        "int_adjacent": x[:, 1, k],            # adjacent: in place
        "newaxis": x[None, i, None],
        "ellipsis_split": x[i[:3], ..., j[:, 0]],
        "scalar_index": x[i[3]],               # rank-0 index array
        "scalar_out": x[i[0], j[1, 0], k[1, 4]],
        "take_flat": fnp.take(x, k),
        "fill": li.gather(x, i, indexer=Indexer([("a", 0), ("s", 0, 4, 1), ("s", 4, None, -2)]),
                          oob="fill"),
        "fill_two": li.gather(x, j, i, indexer=Indexer([("s", 0, 3, 1), ("a", 0), ("a", 1)]),
                              oob="fill"),
    }


def advanced_few(x, i, j, k):
    """Fewer cases, for the other dtypes (each case costs compile time)."""
    return {"first": x[i], "split": x[j, :, i], "scalar_out": x[i[0], j[1, 0], k[1, 4]],
            "fill": li.gather(x, j, i, indexer=Indexer([("s", 0, 3, 1), ("a", 0), ("a", 1)]),
                              oob="fill")}


def test_gather_with_traced_index_arrays():
    x = values((3, 4, 5), np.float64, seed=1, nans=True)
    assert_staged_numba(advanced, x, I, J, K)
    others = tuple(values((3, 4, 5), dt, seed=1, nans=True) for dt in DTYPES[1:])
    assert_staged_numba(lambda xs, i, j, k: [advanced_few(x, i, j, k) for x in xs],
                        others, I, J, K)


def test_gather_index_dtypes_and_take_along_axis():
    x = values((3, 4), np.float32, seed=2)

    def f(x, i8, u8, i32, ind):
        return {"i8": x[i8], "u8": x[:, u8], "i32": x[i32, i32], "along": fnp.take_along_axis(
            x, ind, axis=1), "along0": fnp.take_along_axis(x, ind[:2, :1], axis=0)}
    ind = np.array([[3, 0, -1], [1, 1, 2], [0, -2, 3]])
    assert_staged_numba(f, x, np.array([-3, 5, 1], np.int8), np.array([0, 3, 200], np.uint8),
                        np.array([[0, 2], [-1, 1]], np.int32), ind)


def test_gather_edge_cases():
    def f(x, e, i, s, z):
        return {"from_empty_axis": e[:, i],           # size-0 axis: reads zero, as eagerly
                "empty_index": x[z],
                "empty_slice_and_index": x[1:1, i],
                "scalar_none": s[None, None],          # a rank-0 operand
                "scalar_ellipsis": s[...]}
    assert_staged_numba(f, values((3, 4), np.float64), np.zeros((2, 0)), np.array([0, 3, -1]),
                        np.float64(2.5), np.zeros(0, np.int64))


@FEW
@given(st.data())
def test_gather_law(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = values(shape, data.draw(st.sampled_from([np.float64, np.int32])), seed=3)
    idx = data.draw(numpy_indices(shape))
    idx = idx if isinstance(idx, tuple) else (idx,)
    pos = [k for k, e in enumerate(idx) if isinstance(e, np.ndarray)]

    def f(x, *arrs):
        full = list(idx)
        for k, a in zip(pos, arrs):
            full[k] = a
        return x[tuple(full)]
    assert_jit_numba(f, x, *[idx[k] for k in pos])


# --------------------------------------------------------------------------
# scatter
# --------------------------------------------------------------------------

MODES = ["set", "add", "mul", "min", "max"]
IS = np.array([1, -3, 1, 9, 0, -7, 2])             # repeats; out of bounds (dropped) both ways


def updates(x, v, vs, s, i):
    """Every mode, with traced (repeated, out-of-bounds) and static indices."""
    row = Indexer([("a", 0), ("s", 0, x.shape[1], 1)])
    out = {m: li.scatter(x, v, i, indexer=row, mode=m, oob="drop") for m in MODES}
    if x.dtype != np.float64:       # fewer cases (each costs compile time) for the others
        return out
    for m in ("set", "add"):
        out[m + "_clip_bcast"] = li.scatter(x, vs, i, indexer=row, mode=m, oob="clip")
    for m in ("mul", "max"):
        out[m + "_scalar"] = li.scatter(x, s, i, indexer=row, mode=m, oob="drop")
    out["cols"] = li.scatter(x, v[:3, :3], i[:3], indexer=Indexer([("s", 0, 3, 1), ("a", 0)]),
                             mode="add", oob="drop")
    out["basic_set"] = x.at[::-1, 0].set(v[:3, 0])
    out["basic_max"] = x.at[:, None, 1:].max(v[:1, None, 1:])
    return out


def update_args(dtype):
    x = values((3, 4), dtype, seed=4, nans=True)
    v = values((7, 4), dtype, seed=5, nans=True)
    if np.dtype(dtype).kind in "iu":
        v = np.where(v == 0, 1, v).astype(dtype)
    return x, v, v[2], v[3, 1]


def test_scatter_modes():
    assert_staged_numba(updates, *update_args(np.float64), IS)
    others = [update_args(dt) for dt in DTYPES[1:]]
    assert_staged_numba(lambda args, i: [updates(*a, i) for a in args], others, IS)


def test_scatter_edge_cases():
    def f(x, s, i, z):
        return {"scalar_operand": li.scatter(s, np.float64(3.0), indexer=Indexer([("n",)]),
                                             mode="add", oob="drop"),
                "scalar_operand_set": li.scatter(s, np.array([[4.0]]),
                                                 indexer=Indexer([("n",), ("n",)])),
                "no_updates": x.at[z].set(1.0),
                "empty_axis": li.scatter(np.zeros((2, 0)), np.ones((2, 3)), i,
                                         indexer=Indexer([("s", 0, 2, 1), ("a", 0)]),
                                         mode="add", oob="clip"),
                "int8_wraps": li.scatter(np.full(3, 100, np.int8), np.full(3, 100, np.int8),
                                         i, indexer=Indexer([("a", 0)]), mode="add")}
    assert_staged_numba(f, values((3, 4), np.float64), np.float64(1.5), np.array([0, 0, 2]),
                        np.zeros(0, np.int64))


@FEW
@given(st.data())
def test_scatter_law(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = values(shape, np.float64, seed=6)
    idx = data.draw(numpy_indices(shape))
    mode = data.draw(st.sampled_from(MODES))
    vshape = np.shape(x[idx])
    v = data.draw(hnp.arrays(np.float64, vshape, elements=st.integers(-3, 3).map(float)))
    assert_jit_numba(lambda x, v: fnp._scatter(x, idx, v, mode), x, v)


def test_scatter_set_last_update_wins():
    i = np.array([[2, 0, 2], [0, 2, 1]])
    f = lambda x, v, i: x.at[i].set(v)        # noqa: E731
    got = assert_staged_numba(f, np.zeros(4), np.arange(6.0).reshape(2, 3), i)
    np.testing.assert_array_equal(got, [3.0, 5.0, 4.0, 0.0])     # in C order of the updates


# --------------------------------------------------------------------------
# gather and scatter under grad and vmap
# --------------------------------------------------------------------------

def test_grad_of_indexing_is_a_scatter_add():
    x = values((5, 3), np.float64, seed=7)
    idx = np.array([4, 0, 4, -1, 2])
    ind = np.array([[2, 0, 2], [1, 1, 0], [0, 2, 1], [2, 2, 2], [1, 0, 0]])

    def loss(x):
        return fnp.sum(x[idx] ** 2) + fnp.sum(fnp.take_along_axis(x, ind, axis=1) ** 3)
    assert_jit_numba(fd.grad(loss), x)
    assert "+=" in source(fd.grad(loss), x)
    assert_jit_numba(fd.grad(lambda x: fnp.sum(x[idx] ** 2)), x[:, 0])
    assert_jit_numba(fd.grad(lambda x: fnp.sum(fnp.take_along_axis(x, ind, axis=0) ** 2)), x)


def test_grad_with_traced_indices():
    def f(x, v, i):
        return fnp.sum(fnp.sin(x[i]) * 2.0) + fnp.sum(x.at[i[:3]].set(v) ** 2) \
            + fnp.sum(x.at[i[2:]].max(v) ** 2)
    x, v = values((4, 2), np.float64, seed=8) + 0.25, values((3, 2), np.float64, seed=9)
    i = np.array([3, -1, 6, 0, 3])
    assert_staged_numba(fd.grad(f, argnums=(0, 1)), x, v, i)


def test_vmap_of_gather_and_scatter():
    x, v = values((3, 4, 2), np.float64, seed=10), values((3, 5, 2), np.float64, seed=11)
    i = np.array([[0, 3, -1, 2, 3], [1, 1, 0, 9, -2], [3, 2, 1, 0, 0]])
    assert_staged_numba(fd.vmap(lambda x, i: x[i]), x, i)
    assert_staged_numba(fd.vmap(lambda x, i: x[i], in_axes=(None, 0)), x[0], i)
    assert_staged_numba(fd.vmap(lambda x, i, v: x.at[i].add(v), in_axes=(0, 0, 0)), x, i, v)
    assert_staged_numba(fd.jacrev(lambda x: fnp.take(x, i[0]) ** 2), x[0, :, 0])


# --------------------------------------------------------------------------
# sort
# --------------------------------------------------------------------------

def sorts(x, y):
    if x.dtype != np.float64:       # fewer cases (each costs compile time) for the others
        return {"sort": fnp.sort(x), "argsort0": fnp.argsort(x, axis=0)}
    out = {"axis0": fnp.sort(x, axis=0), "axis2": fnp.sort(x, axis=2)}
    out["argsort"] = fnp.argsort(x, axis=2)
    out["two_keys"] = lax.sort((x, y, x), dimension=2, num_keys=2)
    out["lexsort"] = fnp.lexsort((x, y), axis=1)
    return out


def test_sort_stable_nan_last():
    # 40 > 16 along the last axis: insertion-sorted runs, then two merge passes
    y = values((2, 3, 40), np.int32, seed=13)
    assert_jit_numba(sorts, values((2, 3, 40), np.float64, seed=12, nans=True), y)
    others = tuple(values((2, 3, 40), dt, seed=12, nans=True) for dt in DTYPES[1:])
    assert_jit_numba(lambda xs: [sorts(x, None) for x in xs], others)


def test_sort_matches_numpy_on_long_rows():
    x = values((3, 1000), np.float64, seed=14, nans=True)
    x[0, :3] = [np.inf, -np.inf, np.nan]
    got = assert_jit_numba(lambda x: (fnp.sort(x), fnp.argsort(x)), x)
    np.testing.assert_array_equal(got[0], np.sort(x, kind="stable"))
    np.testing.assert_array_equal(got[1], np.argsort(x, kind="stable"))


def test_sort_edge_cases():
    def f(e, one, z):
        return fnp.sort(e, axis=1), fnp.argsort(one, axis=1), fnp.sort(z, axis=0)
    assert_jit_numba(f, np.zeros((2, 0)), np.ones((3, 1), np.float32), np.zeros((0, 3)))


@settings(max_examples=6, deadline=None)      # each example is a new program
@given(st.data())
def test_sort_law(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    dtype = data.draw(st.sampled_from([np.float64, np.int32]))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = values(shape, dtype, data.draw(st.integers(0, 99)), nans=True)
    iota = np.broadcast_to(np.arange(shape[axis]).reshape(
        (-1,) + (1,) * (len(shape) - 1 - axis % len(shape))), shape)
    # one sort primitive gives the sorted values and the permutation (argsort)
    assert_jit_numba(lambda x: lax.sort((x, iota), dimension=axis), x)


def test_sort_under_grad_and_vmap():
    x = values((4, 6), np.float64, seed=15) + np.arange(24).reshape(4, 6) / 100
    w = values((6,), np.float64, seed=16)
    assert_jit_numba(fd.grad(lambda x: fnp.sum(w * fnp.sort(x, axis=1) ** 2)), x)
    assert_jit_numba(fd.vmap(fnp.sort), x)
    assert_jit_numba(fd.vmap(lambda v: lax.sort_key_val(w, v)), x)   # unbatched keys


# --------------------------------------------------------------------------
# searchsorted
# --------------------------------------------------------------------------

A = np.array([-np.inf, -1.0, 0.5, 0.5, 0.5, 2.0, np.inf, np.nan, np.nan])
V = np.array([[0.5, np.nan, -np.inf], [3.0, -2.0, np.inf]])


def lookups(a, v, s):
    if a.dtype != np.float64:       # fewer cases (compiles) for the other dtypes
        return fnp.searchsorted(a, v), fnp.searchsorted(a, s, "right")
    return {"left": fnp.searchsorted(a, v), "right": fnp.searchsorted(a, v, side="right"),
            "scalar": fnp.searchsorted(a, s),
            "empty": fnp.searchsorted(a[:0], v), "int_query": fnp.searchsorted(a, v > 0)}


def test_searchsorted_ties_and_nans():
    def f(a, v, s, a32, v32, s32, ints, q):
        return (lookups(a, v, s), lookups(a32, v32, s32),
                fnp.searchsorted(ints, q), fnp.searchsorted(ints, q, "right"))
    got = assert_jit_numba(f, A, V, np.float64(0.5), A.astype(np.float32), V.astype(np.float32),
                           np.float32(np.nan), np.array([0, 1, 1, 3, 7]), np.array([1, -1, 8, 3]))
    np.testing.assert_array_equal(got[0]["left"], np.searchsorted(A, V))


@FEW
@given(st.data())
def test_searchsorted_law(data):
    # fixed shapes: one compile, Hypothesis varies the values
    a = np.sort(data.draw(hnp.arrays(np.float64, 7, elements=st.sampled_from(
        [-1.0, 0.0, 0.5, 2.0, np.inf, np.nan]))))
    v = data.draw(hnp.arrays(np.float64, (2, 3), elements=st.sampled_from(
        [-2.0, 0.0, 0.5, 1.0, np.inf, -np.inf, np.nan])))
    assert_jit_numba(lambda a, v: (fnp.searchsorted(a, v), fnp.searchsorted(a, v, "right")),
                     a, v)


def test_searchsorted_under_vmap():
    a = np.sort(values((3, 6), np.float64, seed=17, nans=True), axis=1)
    v = values((3, 4), np.float64, seed=18, nans=True)
    assert_jit_numba(fd.vmap(lambda a, v: fnp.searchsorted(a, v, "right")), a, v)
    assert_jit_numba(fd.vmap(lambda v: fnp.searchsorted(a[0], v)), v)


# --------------------------------------------------------------------------
# Complex values: NumPy's orders (lexicographic, a NaN part last / winning)
# --------------------------------------------------------------------------

def test_complex_sort_searchsorted_and_min_max_updates():
    parts = [-1.0, 0.0, 1.0, np.nan, np.inf]
    grid = np.array([complex(r, i) for r in parts for i in parts])
    a, b = np.repeat(grid, grid.size), np.tile(grid, grid.size)      # every pair
    at = Indexer([("a", 0)])

    def f(a, b, i):
        return {"argsort": fnp.argsort(b),      # its sort also sorts b
                "searchsorted": fnp.searchsorted(np.sort(grid), grid),
                "min": li.scatter(a, b, i, indexer=at, mode="min"),
                "max": li.scatter(a, b, i, indexer=at, mode="max")}
    got = assert_jit_numba(f, a, b, np.arange(a.size))
    np.testing.assert_array_equal(got["argsort"], np.argsort(b, kind="stable"))
    np.testing.assert_array_equal(got["min"], np.minimum(a, b))
    np.testing.assert_array_equal(got["max"], np.maximum(a, b))


# --------------------------------------------------------------------------
# One program: the family fuses with the elementwise code around it
# --------------------------------------------------------------------------

def test_one_program_with_elementwise_code():
    x = values((4, 5), np.float32, seed=19)
    i = np.array([3, 0, -1])

    def f(x, i):
        y = fnp.sort(fnp.sin(x) * 2.0, axis=1)[i]
        z = y.at[:, 1].add(fnp.cos(y[:, 0]))
        return fnp.sum(z * z), fnp.searchsorted(z[0], 0.5), z[-1, -1]
    src = source(f, x, i)
    assert src.count("def program") == 1
    for part in ("np.sin", "_rt.sort_perm3", "np.cos", "_rt.searchsorted_one", ".copy()",
                 "acc"):
        assert part in src, (part, src)
    got = assert_jit_numba(f, x, i)
    assert got[0].dtype == got[2].dtype == np.float32
