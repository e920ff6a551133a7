"""jit's Numba tier for lax.linalg: dot_general, diagonal, embed_diagonal and
the matrix functions (cholesky, triangular_solve, solve, inv, det, slogdet,
eigh, svd, qr).

The law is ``jit(f)(x) == f(x)`` with ``f`` compiled by Numba
(``helpers.assert_jit_numba``).  A Numba compile costs ~0.1-0.5 s, so related
cases share one program (a function returning a dict of results), and
Hypothesis varies values over fixed shapes (one compile for all examples)
except where it draws dimension numbers or axes (few examples).  The matrix
functions call the LAPACK routines NumPy calls, in float64 as NumPy does, so
their results (eigenvector and singular vector signs included) equal the
eager ones.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lax
from helpers import assert_jit_numba, draw_dot_general_axes


@pytest.fixture(autouse=True)
def numba_backend():
    with fd.config.override(jit_backend="numba"):
        yield


def arr(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def ints(shape, dtype, seed=0, lo=-4, hi=5):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(dtype)


def dg(dn):
    """``lambda x, y: dot_general(x, y, dn)``, with dn as ((lc, rc), (lb, rb))."""
    return lambda x, y: lax.dot_general(x, y, dn)


NO = ((), ())


# --------------------------------------------------------------------------
# dot_general: fixed cases, one program per dtype family
# --------------------------------------------------------------------------

# name -> (x shape, y shape, dimension numbers): every BLAS layout (operands
# as they are, transposed, or needing a copy), vectors, batches with leading
# and other batch axes, several contracting axes, outer products
FLOAT_CASES = {
    "vv": ((3,), (3,), (((0,), (0,)), NO)),
    "mv": ((4, 3), (3,), (((1,), (0,)), NO)),
    "vm": ((3,), (3, 5), (((0,), (0,)), NO)),
    "mv_t": ((3, 4), (3,), (((0,), (0,)), NO)),
    "vm_t": ((3,), (5, 3), (((0,), (1,)), NO)),
    "nn": ((4, 3), (3, 5), (((1,), (0,)), NO)),
    "tn": ((3, 4), (3, 5), (((0,), (0,)), NO)),
    "nt": ((4, 3), (5, 3), (((1,), (1,)), NO)),
    "tt": ((3, 4), (5, 3), (((0,), (1,)), NO)),
    "merged_free": ((2, 4, 3), (3, 2, 5), (((2,), (0,)), NO)),
    "merged_contract_t": ((3, 2, 4), (3, 2, 5), (((0, 1), (0, 1)), NO)),
    "copied": ((3, 2, 4), (2, 5, 3), (((0, 1), (2, 0)), NO)),
    "vec_3d": ((2, 3, 4), (4, 3, 2), (((0, 1, 2), (2, 1, 0)), NO)),
    "batch_nn": ((2, 4, 3), (2, 3, 5), (((2,), (1,)), ((0,), (0,)))),
    "batch_nt": ((2, 4, 3), (2, 5, 3), (((2,), (2,)), ((0,), (0,)))),
    "batch_tn": ((2, 3, 4), (2, 3, 5), (((1,), (1,)), ((0,), (0,)))),
    "batch_tt": ((2, 3, 4), (2, 5, 3), (((1,), (2,)), ((0,), (0,)))),
    "batch_inner": ((4, 2, 3), (3, 2, 5), (((2,), (0,)), ((1,), (1,)))),
    "batch_vv": ((2, 3), (2, 3), (((1,), (1,)), ((0,), (0,)))),
    "batch2": ((2, 3, 4, 5), (3, 2, 5), (((3,), (2,)), ((0, 1), (1, 0)))),
    "outer": ((3,), (4,), (NO, NO)),
    "outer_2d": ((2, 3), (4,), (NO, NO)),
    "batch_outer": ((2, 3), (2, 4), (NO, ((0,), (0,)))),
}


def _float_args(dtype):
    xs = {k: arr(s, dtype, i) for i, (k, (s, _, _)) in enumerate(FLOAT_CASES.items())}
    ys = {k: arr(s, dtype, 100 + i) for i, (k, (_, s, _)) in enumerate(FLOAT_CASES.items())}
    xs["nn"] = xs["nn"].copy()
    xs["nn"][1, 2] = np.nan                 # NaN propagates through the product
    return xs, ys


def _all_cases(cases):
    def f(xs, ys):
        return {k: lax.dot_general(xs[k], ys[k], dn) for k, (_, _, dn) in cases.items()}
    return f


def test_dot_general_float_cases():
    assert_jit_numba(_all_cases(FLOAT_CASES), *_float_args(np.float64))


def test_dot_general_float32_cases():
    # the same helpers as float64 (compiled for float32): a few of each kind
    cases = {k: FLOAT_CASES[k] for k in ("vv", "vm_t", "tt", "batch_tn", "outer")}
    xs, ys = _float_args(np.float32)
    assert_jit_numba(_all_cases(cases), {k: xs[k] for k in cases}, {k: ys[k] for k in cases})


def test_dot_general_integer_and_bool_cases():
    # int8/uint8 products overflow: NumPy wraps around, and so must the loops
    rng = np.random.default_rng(1)
    cases = {np.int8: ("tt", "batch_nt"), np.uint8: ("mv",),
             np.int32: ("vv", "copied", "batch_outer"), np.bool_: ("mv", "batch_nt", "outer")}

    def draw(s, dtype):
        if dtype == np.bool_:
            return rng.integers(0, 2, s).astype(bool)
        return rng.integers(0 if dtype == np.uint8 else -100, 100, s).astype(dtype)
    keys = [(k, d) for d, names in cases.items() for k in names]
    xs = {(k, d.__name__): draw(FLOAT_CASES[k][0], d) for k, d in keys}
    ys = {(k, d.__name__): draw(FLOAT_CASES[k][1], d) for k, d in keys}

    def f(xs, ys):
        return {key: lax.dot_general(xs[key], ys[key], FLOAT_CASES[key[0]][2]) for key in xs}
    assert_jit_numba(f, xs, ys)


def test_dot_general_mixed_dtypes_and_scalars():
    x32, x64 = arr((4, 3), np.float32), arr((3, 5), np.float64, 1)
    i32, b = ints((3, 5), np.int32, 2), ints((4, 3), np.int64, 3) > 0
    mm = (((1,), (0,)), NO)

    def f(x32, x64, i32, b, s32, s64, v):
        return {
            "f32_f64": lax.dot_general(x32, x64, mm),        # float64, by BLAS
            "f32_i32": lax.dot_general(x32, i32, mm),        # float64 (NEP 50)
            "bool_i32": lax.dot_general(b, i32, mm),         # int32, a loop
            "scalar_scalar": lax.dot_general(s32, s64, (NO, NO)),
            "scalar_array": lax.dot_general(s32, x32, (NO, NO)),
            "array_scalar": lax.dot_general(v, s64, (NO, NO)),
            "weak_literal": lax.dot_general(x32, 2.5, (NO, NO)),   # stays float32
            "bool_scalars": lax.dot_general(b[0, 0], b[1, 1], (NO, NO)),
            "int_scalars": lax.dot_general(i32[0, 0], i32[1, 1], (NO, NO)),
        }
    assert_jit_numba(f, x32, x64, i32, b, np.float32(1.5), np.float64(-2.0),
                     arr((2, 3), np.float32, 4))


def test_dot_general_empty_dimensions():
    def f(a, b, c, d, e, g):
        return {
            "no_rows": lax.dot_general(a, b, (((1,), (0,)), NO)),             # (0, 5)
            "empty_sum": lax.dot_general(c, d, (((1,), (0,)), NO)),           # zeros (4, 5)
            "empty_sum_vv": lax.dot_general(c[0], d[:, 0], (((0,), (0,)), NO)),
            "no_batch": lax.dot_general(e, g, (((2,), (1,)), ((0,), (0,)))),  # (0, 2, 4)
            "empty_sum_int": lax.dot_general(c.astype(np.int32), d.astype(np.int32),
                                             (((1,), (0,)), NO)),
        }
    assert_jit_numba(f, np.ones((0, 3)), np.ones((3, 5)), np.ones((4, 0)), np.ones((0, 5)),
                     np.ones((0, 2, 3)), np.ones((0, 3, 4)))


def test_dot_general_operands_that_are_views():
    # transposes that are not fused into a loop reach dot_general as
    # np.transpose views of unknown layout: used in place when C- or
    # Fortran-contiguous, copied when not
    x, w, t = arr((4, 3), np.float32), arr((5, 3), np.float32, 1), arr((3, 4, 2), np.float32, 2)

    def f(x, w, t):
        wt = lax.transpose(w, (1, 0))                      # Fortran-ordered (3, 5)
        tt = lax.transpose(t, (1, 0, 2))                   # neither
        return {"fortran_rhs": x @ wt,
                "fortran_lhs": lax.dot_general(wt, x, (((0,), (1,)), NO)),
                "both": lax.dot_general(lax.transpose(x, (1, 0)), wt, (((0,), (0,)), NO)),
                "batch_from_view": lax.dot_general(tt, t, (((2,), (2,)), ((1,), (0,))))}
    assert_jit_numba(f, x, w, t)


# --------------------------------------------------------------------------
# dot_general: the law over random dimension numbers and dtypes
# --------------------------------------------------------------------------

@st.composite
def dot_general_cases(draw):
    """(x, y, dimension_numbers): 0-2 batch, contracting and free axes of each
    kind, sizes 0-3, axes in any order, float64 or bool values."""
    x_labels, y_labels, size, dn = draw_dot_general_axes(draw, min_side=0)
    dtype = draw(st.sampled_from([np.float64, np.bool_]))      # the BLAS path and a loop
    seed = draw(st.integers(0, 2**31))
    x = ints([size[a] for a in x_labels], np.int64, seed)
    y = ints([size[a] for a in y_labels], np.int64, seed + 1)
    return x.astype(dtype), y.astype(dtype), dn


@settings(max_examples=6, deadline=None)
@given(case=dot_general_cases())
def test_dot_general_law(case):
    x, y, dn = case
    assert_jit_numba(dg(dn), x, y)


# --------------------------------------------------------------------------
# dot_general in derivative and batched programs; BLAS without copies
# --------------------------------------------------------------------------

def test_dot_general_under_grad_and_vmap():
    x, w, v = arr((5, 4)), arr((4, 3), seed=1), arr((6, 4), seed=2)

    def f(x, w, v):
        loss = lambda x, w: fnp.sum(fnp.tanh(x @ w) ** 2) + fnp.sum(fnp.einsum("ij,kj->ik", x, v))
        per_row = fd.vmap(lambda r, w: fnp.tanh(r @ w), in_axes=(0, None))(x, w)
        per_pair = fd.vmap(lambda a, b: a @ b)(fnp.reshape(x, (5, 2, 2)),
                                                fnp.reshape(v[:5], (5, 2, 2)))
        per_col = fd.vmap(lambda c: x @ c, in_axes=1, out_axes=1)(w)
        return fd.grad(loss, argnums=(0, 1))(x, w), per_row, per_pair, per_col
    assert_jit_numba(f, x, w, v)


def _mlp_step(params, x, y):
    def loss(params):
        h = x
        for w, b in params[:-1]:
            h = fnp.tanh(h @ w + b)
        w, b = params[-1]
        logits = h @ w + b
        return -fnp.mean(fnp.sum(y * (logits - fnp.log(fnp.sum(fnp.exp(logits), axis=-1,
                                                                    keepdims=True))), axis=-1))
    value, grads = fd.value_and_grad(loss)(params)
    return [(w - 0.1 * gw, b - 0.1 * gb) for (w, b), (gw, gb) in zip(params, grads)], value


def _mlp(sizes, batch, seed=0):
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((m, n), dtype=np.float32) / np.float32(np.sqrt(m)),
               np.zeros(n, np.float32)) for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
    return params, x, y


def test_mlp_step_products_are_blas_calls_on_views():
    """A training step's products (x @ W forward; the weight gradients, staged
    as transpose(g.T @ h) and computed as h.T @ g in the weight's layout; the
    input gradients g @ W.T) each call BLAS on the arrays as they are:
    C-ordered, or transposed views (Fortran-ordered), never a copy."""
    params, x, y = _mlp((6, 5, 3), 7)
    source = fd.jit(_mlp_step).lower(params, x, y).numba_source
    calls = [line for line in source.splitlines() if "_rt.dot" in line]
    assert len(calls) == 5 and all("_rt.dot_blas_mm(" in c for c in calls), source
    assert not any("ascontiguousarray" in c or "astype" in c for c in calls), source
    # 2 h.T @ g and 1 g @ W.T: transposed views, which BLAS reads as they are
    assert sum(c.count(".T)") for c in calls) == 3, source
    # no weight gradient is transposed after the product: the update reads rows
    assert "transpose" not in source and "[i1, i0]" not in source, source
    assert_jit_numba(_mlp_step, params, x, y, tol32=1e-5)


def test_per_example_outer_products_are_fused_multiplies():
    """vmap(grad) of a linear model: the per-example gradient err[b] * x[b, :]
    is a dot_general without contraction; it lowers to one contiguous loop,
    and the stable softplus (logaddexp) to the vectorizable numba_math one."""
    def loss(w, x, y):
        z = fnp.dot(x, w)
        return fd.nn.softplus(z) - y * z
    f = fd.vmap(fd.grad(loss), in_axes=(None, 0, 0))
    w, x, y = arr((7,), np.float32), arr((9, 7), np.float32, 1), arr((9,), np.float32, 2)
    src = fd.jit(f).lower(w, x, y).numba_source
    assert "dot_outer" not in src and "np.logaddexp" not in src, src
    assert "_vm.logaddexp_f32(" in src, src
    assert_jit_numba(f, w, x, y, tol32=1e-5)
    # batch dimensions that are not leading keep the general loop
    g = dg((((), ()), ((1,), (0,))))
    assert_jit_numba(g, arr((3, 2)), arr((2, 4), seed=1))


def test_products_fuse_with_elementwise_ops_into_one_program():
    x, w, b = arr((5, 4), np.float32), arr((4, 3), np.float32, 1), arr((3,), np.float32, 2)
    a = arr((3, 3), seed=3) + 3 * np.eye(3)

    def f(x, w, b, a):
        h = fnp.tanh(x @ w + b)                       # BLAS, then one loop for + and tanh
        return fnp.sum(h * 2.0), fnp.trace(lax.inv(a) @ a) + lax.det(a)
    low = fd.jit(f).lower(x, w, b, a)
    src = low.numba_source
    assert src.count("def ") == 1
    assert "_rt.dot_blas_mm(_rt.as_any_layout(a0), _rt.as_any_layout(a1)" in src, src
    assert "_rt.la_inv(" in src and "_rt.la_det(" in src, src
    # the bias add, tanh, * 2 and the sum are one loop nest reading the
    # product; neither h nor h * 2 is materialized
    assert src.count("for i1 in range(3)") == 1 and "tanh" in src, src
    assert src.count("np.empty((5, 3)") == 1, src          # the product only
    assert_jit_numba(f, x, w, b, a)


# --------------------------------------------------------------------------
# diagonal and embed_diagonal
# --------------------------------------------------------------------------

def test_diagonal_and_embed_diagonal_cases():
    m, t = arr((3, 4)), arr((2, 3, 4), np.float32, 1)
    bools, v = ints((3, 3), np.int64, 2) > 0, arr((2, 3), seed=3)

    def f(m, t, bools, v, iv):
        return {
            "main": lax.diagonal(m), "above": lax.diagonal(m, 1), "below": lax.diagonal(m, -2),
            "past_the_end": lax.diagonal(m, 4), "swapped_axes": lax.diagonal(m, 1, 1, 0),
            "rank3_02": lax.diagonal(t, -1, 0, 2), "rank3_21": lax.diagonal(t, 1, 2, 1),
            "bool": lax.diagonal(bools, 1), "int": lax.diagonal(iv),
            "embed": lax.embed_diagonal(v[0]), "embed_above": lax.embed_diagonal(v[0], offset=1),
            "embed_below_wide": lax.embed_diagonal(v[1], n=4, m=5, offset=-1),
            "embed_batched": lax.embed_diagonal(v, offset=2),
            "embed_bool": lax.embed_diagonal(lax.diagonal(bools), offset=-1),
            "embed_int": lax.embed_diagonal(iv[0], n=3, m=2),
            "trace": fnp.trace(m), "trace_int": fnp.trace(iv, 1),
        }
    assert_jit_numba(f, m, t, bools, v, ints((2, 2), np.int32, 4))


@settings(max_examples=6, deadline=None)
@given(axes=st.permutations([0, 1, 2]), offset=st.integers(-4, 4))
def test_diagonal_law(axes, offset):
    x = arr((2, 3, 4), seed=offset + 10)
    assert_jit_numba(lambda x: lax.diagonal(x, offset, axes[0], axes[1]), x)


def test_diagonal_under_grad_and_vmap():
    m = arr((3, 3))
    assert_jit_numba(lambda m: (fd.grad(lambda m: fnp.sum(lax.diagonal(m, 1) ** 2))(m),
                                fd.vmap(lax.diagonal)(arr((4, 3, 3), seed=1) + m),
                                fd.vmap(lambda d: lax.embed_diagonal(d, offset=-1))(m)), m)


# --------------------------------------------------------------------------
# The matrix functions: every primitive and parameter in one program
# --------------------------------------------------------------------------

N = 4


def _matrix_inputs(dtype, batch, seed=0):
    """Well-conditioned inputs: a general square matrix, a symmetric positive
    definite one, tall and wide ones, right-hand sides and a triangle with a
    strong diagonal (so that float32 substitution errors stay tiny)."""
    rng = np.random.default_rng(seed)

    def draw(*core):
        return rng.standard_normal(batch + core)
    a = draw(N, N) + 2 * np.eye(N)
    spd = a @ np.swapaxes(a, -1, -2) + np.eye(N)
    tri = draw(N, N) / 4 + 3 * np.eye(N)
    return [v.astype(dtype) for v in (a, spd, draw(6, 3), draw(3, 5), draw(N, 2), tri)]


def _matrix_program(a, spd, tall, wide, b, tri):
    out = {"cholesky": lax.cholesky(spd), "inv": lax.inv(a), "det": lax.det(a),
           "slogdet": lax.slogdet(a), "solve": lax.solve(a, b),
           # eigh reads one triangle of a (not symmetric): L and U differ
           "eigh_lower": lax.eigh(a, lower=True), "eigh_upper": lax.eigh(a, lower=False),
           "svd_square": lax.svd(a), "qr_square": lax.qr(a),
           "solve_right": lax.triangular_solve(tri, fnp.swapaxes(b, -1, -2), left_side=False)}
    for name, m in (("tall", tall), ("wide", wide)):
        for full in (False, True):
            out[f"svd_{name}_{full}"] = lax.svd(m, full_matrices=full)
            if full or name == "tall":      # complete and reduced QR of wide ones agree
                out[f"qr_{name}_{full}"] = lax.qr(m, full_matrices=full)
    for lower in (True, False):
        for trans in (False, True):
            out[f"tri_{lower}_{trans}"] = lax.triangular_solve(
                tri, b, lower=lower, transpose_a=trans, unit_diagonal=lower != trans)
    return out


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31))
@example(seed=0)
def test_matrix_functions(seed):
    # one compiled program (fixed shapes) for every example
    assert_jit_numba(_matrix_program, *_matrix_inputs(np.float64, (), seed))


def test_matrix_functions_float32_stacks():
    # float32 in and out (computed in float64, as NumPy), two batch axes; the
    # helpers round into their outputs alike, so a few primitives suffice
    def f(a, spd, tall, wide, b, tri):
        return (lax.slogdet(a), lax.svd(tall),
                lax.triangular_solve(tri, b, lower=False, transpose_a=True))
    assert_jit_numba(f, *_matrix_inputs(np.float32, (2, 3)))


def test_matrix_functions_mixed_dtypes():
    a32, b64 = _matrix_inputs(np.float32, ())[0], _matrix_inputs(np.float64, (), 1)[4]
    assert_jit_numba(lambda a32, b64, a64, b32: (
        lax.solve(a32, b64), lax.triangular_solve(a64, b32, lower=False)),
        a32, b64, a32.astype(np.float64), b64.astype(np.float32))


def test_matrix_functions_edge_values():
    sing = np.array([[1.0, 2.0], [2.0, 4.0]])             # exactly singular
    neg = np.array([[0.0, 1.0], [1.0, 0.0]])             # det -1
    nan = np.array([[2.0, np.nan], [1.0, 3.0]])          # NaN in the upper triangle

    def f(sing, neg, nan):
        return {"det_singular": lax.det(sing), "slogdet_singular": lax.slogdet(sing),
                "slogdet_negative": lax.slogdet(neg), "det_negative": lax.det(neg),
                "inv_nan": lax.inv(nan), "det_nan": lax.det(nan), "slogdet_nan": lax.slogdet(nan),
                "solve_nan": lax.solve(nan, neg), "eigh_nan_unread": lax.eigh(nan, lower=True),
                "cholesky_nan_unread": lax.cholesky(nan + 2 * np.eye(2)),
                "qr_nan": lax.qr(nan)}
    assert_jit_numba(f, sing, neg, nan)


def test_matrix_functions_empty():
    def f(e00, e20, e03, a33, e30, e02):
        out = {"inv": lax.inv(e00), "det": lax.det(e00), "slogdet": lax.slogdet(e00),
               "cholesky": lax.cholesky(e00), "eigh": lax.eigh(e00),
               "solve_no_columns": lax.solve(a33, e30), "solve_empty": lax.solve(e00, e02),
               "tri_empty": lax.triangular_solve(e00, e02)}
        for name, m, full in (("e20", e20, True), ("e03", e03, False)):
            out[f"svd_{name}"] = lax.svd(m, full_matrices=full)
            out[f"qr_{name}"] = lax.qr(m, full_matrices=full)
        return out
    assert_jit_numba(f, np.ones((0, 0)), np.ones((2, 0)), np.ones((0, 3)), np.eye(3),
                     np.ones((3, 0)), np.ones((0, 2)))


@pytest.mark.parametrize("fun, a", [
    (lax.inv, np.array([[1.0, 2.0], [2.0, 4.0]])),
    (lambda a: lax.solve(a, np.ones((2, 1))), np.array([[1.0, 2.0], [2.0, 4.0]])),
    (lax.cholesky, np.array([[1.0, 2.0], [2.0, 1.0]])),
    (lambda a: lax.svd(a), np.array([[1.0, np.nan], [0.0, 1.0]])),
    (lambda a: lax.triangular_solve(a, np.ones((2, 1))), np.array([[1.0, 0.0], [2.0, 0.0]])),
])
def test_matrix_function_errors_as_eagerly(fun, a):
    with pytest.raises(np.linalg.LinAlgError):
        fun(a)
    with pytest.raises(np.linalg.LinAlgError):
        fd.jit(fun)(a)


# --------------------------------------------------------------------------
# The matrix functions in derivative and batched programs
# --------------------------------------------------------------------------

def test_matrix_functions_under_grad():
    a, spd, tall, _, b, tri = _matrix_inputs(np.float64, ())

    def f(a, spd, tall, b, tri):
        # functions of eigen- and singular vectors that do not depend on their signs
        def solves(a, b):
            return (lax.det(a) + lax.slogdet(a)[1] + fnp.sum(lax.inv(a) * a)
                    + fnp.sum(lax.solve(a, b) ** 2))

        def factors(spd, tri, b):
            w, v = lax.eigh(spd)
            return (fnp.sum(lax.cholesky(spd) ** 2) + fnp.sum(w * w) + fnp.sum(v ** 4)
                    + fnp.sum(lax.triangular_solve(tri, b, transpose_a=True) ** 2))

        def decompositions(tall):
            u, s, vh = lax.svd(tall)
            q, r = lax.qr(tall)
            return fnp.sum(s ** 3) + fnp.sum(u ** 4) + fnp.sum(q ** 4) + fnp.sum(r ** 2)
        return (fd.grad(solves, argnums=(0, 1))(a, b),
                fd.grad(factors, argnums=(0, 1))(spd, tri, b), fd.grad(decompositions)(tall))
    assert_jit_numba(f, a, spd, tall, b, tri, tol64=1e-10)


def test_matrix_functions_under_vmap():
    a, spd, _, _, b, tri = _matrix_inputs(np.float64, (3,))

    def f(a, spd, b, tri):
        return {"solve_b_batched": fd.vmap(lax.solve, in_axes=(None, 0))(a[0], b),
                "solve_both": fd.vmap(lax.solve, in_axes=(0, 2), out_axes=1)(
                    a, fnp.moveaxis(b, 0, 2)),
                "tri_b_batched": fd.vmap(lambda b: lax.triangular_solve(tri[0], b))(b),
                "inv": fd.vmap(lax.inv, in_axes=2)(fnp.moveaxis(a, 0, 2)),
                "det": fd.vmap(lax.det)(a), "eigh": fd.vmap(lax.eigh)(spd),
                "cholesky": fd.vmap(lax.cholesky, in_axes=1)(fnp.moveaxis(spd, 0, 1))}
    assert_jit_numba(f, a, spd, b, tri)
