"""Products, einsum and linear algebra: values against NumPy, derivatives with
check_grads (both modes, order 2), staging, linear jaxprs, and dtypes."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lax
from functad.core import check_jaxpr
from functad.testing import check_grads
from helpers import draw_dot_general_axes

SETTINGS = settings(max_examples=20, deadline=None)


def rng_from(seed):
    return np.random.default_rng(seed)


def check_staging(f, *args):
    """make_jaxpr of f, of its linearization and of its VJP all type-check, and
    the staged jaxpr computes what f computes."""
    closed = fd.make_jaxpr(f)(*args)
    check_jaxpr(closed.jaxpr)
    expected = fd.tree_util.tree_leaves(f(*args))
    got = closed(*args)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-12, atol=1e-12)
    out, f_lin = fd.linearize(f, *args)
    check_jaxpr(f_lin.linear_jaxpr.jaxpr)
    cts = fd.tree_util.tree_map(lambda o: np.ones(np.shape(o), np.asarray(o).dtype), out)
    vjp_closed = fd.make_jaxpr(lambda *a: fd.vjp(f, *a)[1](cts))(*args)
    check_jaxpr(vjp_closed.jaxpr)


# --------------------------------------------------------------------------
# dot_general over random dimension numbers
# --------------------------------------------------------------------------

@st.composite
def dot_general_cases(draw):
    x_labels, y_labels, size, dn = draw_dot_general_axes(draw, min_side=1)
    batch = [x_labels[i] for i in dn[1][0]]
    rng = rng_from(draw(st.integers(0, 2**31)))
    x = rng.standard_normal([size[a] for a in x_labels])
    y = rng.standard_normal([size[a] for a in y_labels])
    letters = {lab: chr(ord("a") + i) for i, lab in enumerate(size)}
    out = batch + [lab for lab in x_labels if lab[0] == "l"] + [lab for lab in y_labels if lab[0] == "r"]
    spec = "{},{}->{}".format("".join(letters[a] for a in x_labels),
                              "".join(letters[a] for a in y_labels),
                              "".join(letters[a] for a in out))
    return x, y, dn, spec


@SETTINGS
@given(dot_general_cases())
def test_dot_general_values_and_grads(case):
    x, y, dn, spec = case
    f = lambda x, y: lax.dot_general(x, y, dn)      # noqa: E731
    out = f(x, y)
    assert isinstance(out, fd.Array if np.ndim(out) else np.generic)
    np.testing.assert_allclose(out, np.einsum(spec, x, y), rtol=1e-12, atol=1e-12)
    check_grads(f, (x, y), order=2, modes=("fwd", "rev"))
    check_staging(f, x, y)


@SETTINGS
@given(dot_general_cases())
def test_dot_general_transpose_is_adjoint(case):
    """<ct, x . y> == <T_x(ct), x> == <T_y(ct), y>, computed by backward_pass."""
    x, y, dn, _ = case
    ct = rng_from(0).standard_normal(np.shape(lax.dot_general(x, y, dn)))
    _, f_vjp_x = fd.vjp(lambda x: lax.dot_general(x, y, dn), x)
    _, f_vjp_y = fd.vjp(lambda y: lax.dot_general(x, y, dn), y)
    gx, = f_vjp_x(ct)
    gy, = f_vjp_y(ct)
    assert gx.shape == x.shape and gy.shape == y.shape
    lhs = np.sum(ct * np.asarray(lax.dot_general(x, y, dn)))
    np.testing.assert_allclose(np.sum(gx * x), lhs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(gy * y), lhs, rtol=1e-10, atol=1e-10)


def test_dot_general_float32_and_errors():
    x = np.ones((2, 3), np.float32)
    y = np.ones((3, 4), np.float32)
    dn = (((1,), (0,)), ((), ()))
    assert lax.dot_general(x, y, dn).dtype == np.float32
    assert fd.grad(lambda x: fnp.sum(lax.dot_general(x, y, dn)))(x).dtype == np.float32
    assert lax.dot_general(x, np.ones((3, 4)), dn).dtype == np.float64
    assert lax.dot_general(2.0, np.float32(3.0), (((), ()), ((), ()))).dtype == np.float32
    with pytest.raises(ValueError, match=r"contracting dimension 1 of the lhs \(shape \(2, 3\)\)"):
        lax.dot_general(x, np.ones((4, 4)), dn)
    with pytest.raises(ValueError, match="out of bounds"):
        lax.dot_general(x, y, (((2,), (0,)), ((), ())))
    with pytest.raises(ValueError, match="batch dimension"):
        lax.dot_general(np.ones((2, 3)), np.ones((3, 3)), (((1,), (0,)), ((0,), (1,))))


# --------------------------------------------------------------------------
# matmul and dot
# --------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
                 ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((1, 2, 3), (4, 3, 1))]


@pytest.mark.parametrize("xs,ys", MATMUL_SHAPES)
def test_matmul(xs, ys):
    rng = rng_from(1)
    x, y = rng.standard_normal(xs), rng.standard_normal(ys)
    out = fnp.matmul(x, y)
    np.testing.assert_allclose(out, x @ y, rtol=1e-12)
    assert out.shape == (x @ y).shape
    check_grads(fnp.matmul, (x, y), order=2)
    check_staging(lambda x, y: x @ y, x, y)
    # ndarray @ tracer defers to functad through __array_ufunc__
    g = fd.grad(lambda y: fnp.sum(x @ y))(y)
    np.testing.assert_allclose(g, fd.grad(lambda y: fnp.sum(fnp.matmul(x, y)))(y))
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    assert fnp.matmul(x32, y32).dtype == np.float32
    assert fd.grad(lambda x: fnp.sum(fnp.matmul(x, y32)))(x32).dtype == np.float32


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"matmul: mismatch.*\(2, 3\).*\(4, 5\)"):
        fnp.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="does not have enough dimensions"):
        fnp.matmul(2.0, np.ones(3))
    with pytest.raises(ValueError, match="batch dimensions"):
        fnp.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 4)))


DOT_SHAPES = [((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)),
              ((2, 3), (3, 4)), ((4, 2, 3), (3,)), ((4, 2, 3), (5, 3, 2)), ((2,), (4, 2, 3))]


@pytest.mark.parametrize("xs,ys", DOT_SHAPES)
def test_dot(xs, ys):
    rng = rng_from(2)
    x, y = rng.standard_normal(xs), rng.standard_normal(ys)
    np.testing.assert_allclose(fnp.dot(x, y), np.dot(x, y), rtol=1e-12)
    assert fnp.dot(x, y).shape == np.dot(x, y).shape
    check_grads(fnp.dot, (x, y), order=2)
    check_staging(fnp.dot, x, y)


def test_dot_errors():
    with pytest.raises(ValueError, match=r"dot: shapes \(2, 3\) and \(2, 3\) not aligned"):
        fnp.dot(np.ones((2, 3)), np.ones((2, 3)))


def test_method_dot_and_operator_on_tracers():
    x = np.arange(6.0).reshape(2, 3)
    y = np.arange(3.0)
    g = fd.grad(lambda x: fnp.sum(x.dot(y) + (x @ y)))(x)
    np.testing.assert_allclose(g, 2 * np.broadcast_to(y, (2, 3)))


# --------------------------------------------------------------------------
# vdot, inner, outer, tensordot, vecdot, kron
# --------------------------------------------------------------------------

def small_shapes(min_dims=0, max_dims=3):
    return st.lists(st.integers(1, 3), min_size=min_dims, max_size=max_dims).map(tuple)


@SETTINGS
@given(small_shapes(1, 3), small_shapes(0, 2), st.integers(0, 2**31))
def test_inner_outer_vdot(sa, sb_lead, seed):
    rng = rng_from(seed)
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb_lead + sa[-1:])
    for f, g in ((fnp.inner, np.inner), (fnp.outer, np.outer)):
        np.testing.assert_allclose(f(a, b), g(a, b), rtol=1e-12, atol=1e-12)
        check_grads(f, (a, b), order=2)
    c = rng.standard_normal(sa)
    np.testing.assert_allclose(fnp.vdot(a, c), np.vdot(a, c), rtol=1e-12)
    check_grads(fnp.vdot, (a, c), order=2)
    v = rng.standard_normal(sa[-1:])
    np.testing.assert_allclose(fnp.vecdot(a, v), np.vecdot(a, v), rtol=1e-12, atol=1e-12)
    check_grads(fnp.vecdot, (a, v), order=1)
    check_staging(fnp.inner, a, b)
    check_staging(fnp.outer, a, b)


@st.composite
def tensordot_cases(draw):
    sa = draw(small_shapes(0, 4))
    if draw(st.booleans()):
        n = draw(st.integers(0, len(sa)))
        sb = sa[len(sa) - n:] + draw(small_shapes(0, 2))
        axes = n
    else:
        k = draw(st.integers(0, len(sa)))
        xa = draw(st.permutations(range(len(sa))))[:k]
        extra = draw(small_shapes(0, 2))
        sb_list = [sa[i] for i in xa] + list(extra)
        perm = draw(st.permutations(range(len(sb_list))))
        sb = tuple(sb_list[p] for p in perm)
        xb = [perm.index(i) for i in range(k)]
        # negative axes are allowed too
        axes = ([i - len(sa) if draw(st.booleans()) else i for i in xa], xb)
    rng = rng_from(draw(st.integers(0, 2**31)))
    return rng.standard_normal(sa), rng.standard_normal(sb), axes


@SETTINGS
@given(tensordot_cases())
def test_tensordot(case):
    a, b, axes = case
    f = lambda a, b: fnp.tensordot(a, b, axes)      # noqa: E731
    np.testing.assert_allclose(f(a, b), np.tensordot(a, b, axes), rtol=1e-12, atol=1e-12)
    check_grads(f, (a, b), order=2)
    check_staging(f, a, b)


def test_tensordot_errors():
    with pytest.raises(ValueError, match=r"tensordot: shape mismatch: axis 1 of a \(shape \(2, 3\)\)"):
        fnp.tensordot(np.ones((2, 3)), np.ones((4, 2)), axes=([1], [0]))
    with pytest.raises(ValueError, match="axes=3"):
        fnp.tensordot(np.ones((2, 3)), np.ones((2, 3)), axes=3)


@pytest.mark.parametrize("sa,sb", [((2,), (3,)), ((2, 3), (2, 2)), ((2,), (2, 3)), ((2, 1, 3), (3, 2))])
def test_kron(sa, sb):
    rng = rng_from(3)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(fnp.kron(a, b), np.kron(a, b), rtol=1e-12)
    check_grads(fnp.kron, (a, b), order=2)
    check_staging(fnp.kron, a, b)


# --------------------------------------------------------------------------
# einsum
# --------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]), ("ij->", [(2, 3)]), ("ij->ji", [(2, 3)]), ("ij", [(2, 3)]),
    ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]), ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("i,j->ij", [(2,), (3,)]), ("ijk,kl,lm->im", [(2, 3, 4), (4, 5), (5, 2)]),
    ("iij->j", [(3, 3, 2)]), ("ij,ij->ij", [(2, 1), (2, 4)]), ("ij,jk", [(2, 1), (3, 4)]),
    ("...i,...i", [(5, 2, 4), (2, 4)]), ("i,i", [(3,), (3,)]), ("", [()]), (",i", [(), (3,)]),
    ("Ba", [(2, 3)]), ("abc,cda,bd->", [(2, 3, 4), (4, 5, 2), (3, 5)]),
    ("i...->...", [(3, 4, 5)]), ("ijji->", [(2, 3, 3, 2)]), ("ij,ji->", [(3, 3), (3, 3)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 5), (5, 6)]), ("ab,ab,ab->", [(2, 3)] * 3),
    ("bi,bj,bk->bijk", [(2, 3), (2, 2), (2, 1)]), ("i j , j k -> i k", [(2, 3), (3, 4)]),
    ("...,...->...", [(2, 3), (3,)]), ("ij...,j...->i...", [(2, 3, 4), (3, 1)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES)
def test_einsum_cases(spec, shapes):
    rng = rng_from(4)
    ops = [rng.standard_normal(s) for s in shapes]
    out = fnp.einsum(spec, *ops)
    expected = np.einsum(spec, *ops)
    assert np.shape(out) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    f = lambda *ops: fnp.einsum(spec, *ops)         # noqa: E731
    check_grads(f, tuple(ops), order=2)
    check_staging(f, *ops)
    ops32 = [o.astype(np.float32) for o in ops]
    assert fnp.einsum(spec, *ops32).dtype == np.float32


@st.composite
def einsum_cases(draw):
    sizes = {c: draw(st.integers(1, 3)) for c in "abcde"}
    n_ops = draw(st.integers(1, 3))
    use_ellipsis = draw(st.booleans())
    batch = draw(small_shapes(0, 2))
    specs, shapes, used = [], [], []
    for _ in range(n_ops):
        labs = draw(st.lists(st.sampled_from("abcde"), min_size=0, max_size=3))
        used += labs
        spec, shape = "".join(labs), [sizes[c] for c in labs]
        if use_ellipsis:
            r = draw(st.integers(0, len(batch)))
            eb = tuple(d if draw(st.booleans()) else 1 for d in batch[len(batch) - r:])
            pos = draw(st.integers(0, len(labs)))
            spec = spec[:pos] + "..." + spec[pos:]
            shape = shape[:pos] + list(eb) + shape[pos:]
        specs.append(spec)
        shapes.append(tuple(shape))
    s = ",".join(specs)
    if draw(st.booleans()):
        out = draw(st.permutations(sorted(set(used))))
        out = out[:draw(st.integers(0, len(out)))]
        out = "".join(out)
        if use_ellipsis:
            pos = draw(st.integers(0, len(out)))
            out = out[:pos] + "..." + out[pos:]
        s += "->" + out
    rng = rng_from(draw(st.integers(0, 2**31)))
    return s, [rng.standard_normal(sh) for sh in shapes]


@settings(max_examples=40, deadline=None)
@given(einsum_cases())
def test_einsum_random(case):
    spec, ops = case
    expected = np.einsum(spec, *ops)
    out = fnp.einsum(spec, *ops)
    assert np.shape(out) == expected.shape, spec
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    f = lambda *ops: fnp.einsum(spec, *ops)         # noqa: E731
    check_grads(f, tuple(ops), order=1)
    check_staging(f, *ops)


def test_einsum_sublist_format_and_dtype():
    rng = rng_from(5)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(fnp.einsum(a, [0, 1], b, [1, 2], [0, 2]), a @ b, rtol=1e-12)
    c = rng.standard_normal((2, 3))
    np.testing.assert_allclose(fnp.einsum(a, [Ellipsis, 1], c, [Ellipsis, 1]),
                               np.einsum(a, [Ellipsis, 1], c, [Ellipsis, 1]), rtol=1e-12)
    assert fnp.einsum("ij,jk", a, b, dtype=np.float32).dtype == np.float32
    assert fnp.einsum("ij,jk", a, b, optimize="greedy").shape == (2, 4)
    ai = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(fnp.einsum("ij,ij->i", ai, ai), np.einsum("ij,ij->i", ai, ai))


def test_einsum_greedy_order_avoids_large_intermediates():
    # (a: 2x50, b: 50x50, c: 50x2): contracting b first with a is cheap; the plan
    # should never materialize a 50x50x... outer product
    closed = fd.make_jaxpr(lambda a, b, c: fnp.einsum("ij,jk,kl->il", a, b, c))(
        np.ones((2, 50)), np.ones((50, 50)), np.ones((50, 2)))
    assert [e.primitive.name for e in closed.eqns] == ["dot_general", "dot_general"]
    assert max(int(np.prod(v.aval.shape)) for e in closed.eqns for v in e.outvars) <= 100


@pytest.mark.parametrize("spec,shapes,match", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "subscript 'j' has size 3 in an earlier operand but 4"),
    ("ij,jk", [(2, 3)], "2 operand subscript"),
    ("ij->k", [(2, 3)], "output subscript 'k' does not appear"),
    ("ij->ii", [(2, 2)], "appears more than once"),
    ("ijk", [(2, 3)], "operand 0 has 2 dimension"),
    ("i1", [(2, 3)], "invalid subscript '1'"),
    ("...ij->ij", [(5, 2, 3)], "must contain '...'"),
    ("ii", [(2, 3)], "repeated in operand 0 over dimensions of different sizes"),
])
def test_einsum_errors(spec, shapes, match):
    with pytest.raises(ValueError, match=match):
        fnp.einsum(spec, *[np.ones(s) for s in shapes])


# --------------------------------------------------------------------------
# diagonal, trace, diag, triu, tril, cross
# --------------------------------------------------------------------------

@st.composite
def diagonal_cases(draw):
    shape = draw(small_shapes(2, 4))
    nd = len(shape)
    a1, a2 = draw(st.permutations(range(nd)))[:2]
    a1 = a1 - nd if draw(st.booleans()) else a1
    offset = draw(st.integers(-3, 3))
    return rng_from(draw(st.integers(0, 2**31))).standard_normal(shape), offset, a1, a2


@SETTINGS
@given(diagonal_cases())
def test_diagonal_and_trace(case):
    x, offset, a1, a2 = case
    f = lambda x: fnp.diagonal(x, offset, a1, a2)   # noqa: E731
    np.testing.assert_array_equal(f(x), np.diagonal(x, offset, a1, a2))
    check_grads(f, (x,), order=2)
    check_staging(f, x)
    t = lambda x: fnp.trace(x, offset, a1, a2)      # noqa: E731
    np.testing.assert_allclose(t(x), np.trace(x, offset, a1, a2), rtol=1e-12, atol=1e-12)
    check_grads(t, (x,), order=2)
    assert f(x.astype(np.float32)).dtype == np.float32


@SETTINGS
@given(st.integers(1, 4), st.integers(-3, 3), st.integers(0, 2**31))
def test_diag_and_embed(n, k, seed):
    rng = rng_from(seed)
    v = rng.standard_normal(n)
    np.testing.assert_array_equal(fnp.diag(v, k), np.diag(v, k))
    check_grads(lambda v: fnp.diag(v, k), (v,), order=2)
    check_staging(lambda v: fnp.diag(v, k), v)
    m = rng.standard_normal((n, n + 1))
    np.testing.assert_array_equal(fnp.diag(m, k), np.diag(m, k))
    check_grads(lambda m: fnp.diag(m, k), (m,), order=2)
    v2 = rng.standard_normal((2, n))
    e = lax.embed_diagonal(v2, offset=k)
    np.testing.assert_array_equal(e, np.stack([np.diag(r, k) for r in v2]))
    e = lax.embed_diagonal(v2, n=n + max(-k, 0) + 1, m=n + max(k, 0), offset=k)  # non-square
    np.testing.assert_array_equal(lax.diagonal(e, k, 1, 2), v2)
    with pytest.raises(ValueError, match=r"embed_diagonal: a \(2, 2\) matrix has a diagonal of length"):
        lax.embed_diagonal(np.ones(3), n=2, m=2)


@SETTINGS
@given(small_shapes(1, 4), st.integers(-3, 3), st.integers(0, 2**31))
def test_triu_tril(shape, k, seed):
    x = rng_from(seed).standard_normal(shape)
    for f, g in ((fnp.triu, np.triu), (fnp.tril, np.tril)):
        np.testing.assert_array_equal(f(x, k), g(x, k))
        check_grads(lambda x: f(x, k), (x,), order=2)
        check_staging(lambda x: f(x, k), x)
        assert f(x.astype(np.float32), k).dtype == np.float32
    b = np.ones((3, 3), bool)
    assert fnp.tril(b).dtype == np.bool_
    np.testing.assert_array_equal(fnp.tril(b), np.tril(b))


@pytest.mark.parametrize("sa,sb,kw", [((3,), (3,), {}), ((4, 3), (3,), {}), ((2, 1, 3), (4, 3), {}),
                                      ((3, 2), (3, 2), {"axis": 0}),
                                      ((3, 2), (2, 3), {"axisa": 0, "axisc": 0})])
def test_cross(sa, sb, kw):
    rng = rng_from(6)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(fnp.cross(a, b, **kw), np.cross(a, b, **kw), rtol=1e-12, atol=1e-12)
    check_grads(lambda a, b: fnp.cross(a, b, **kw), (a, b), order=2)
    check_staging(lambda a, b: fnp.cross(a, b, **kw), a, b)
    with pytest.raises(ValueError, match="3-dimensional"):
        fnp.cross(np.ones(2), np.ones(2))


# --------------------------------------------------------------------------
# Linear algebra: well-conditioned inputs
# --------------------------------------------------------------------------

def orthogonal(rng, batch, n):
    q, r = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def spd(rng, batch, n):
    """B B^T + n I: symmetric positive definite, well conditioned."""
    b = rng.standard_normal(batch + (n, n))
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def general(rng, batch, n):
    """U diag(s) V with singular values in [1, 3]: invertible, any sign of det."""
    s = rng.uniform(1.0, 3.0, batch + (n,))
    return orthogonal(rng, batch, n) @ (s[..., :, None] * orthogonal(rng, batch, n))


def distinct_symmetric(rng, batch, n):
    """Q diag(w) Q^T with eigenvalue gaps of at least 0.5."""
    w = np.cumsum(rng.uniform(0.5, 1.5, batch + (n,)), axis=-1) - n
    q = orthogonal(rng, batch, n)
    a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
    return (a + np.swapaxes(a, -1, -2)) / 2


batches = st.sampled_from([(), (2,), (2, 1)])
sizes = st.integers(1, 4)
seeds = st.integers(0, 2**31)


def check_all(f, g, args, atol=1e-9):
    """f against NumPy's g, derivatives (both modes, order 2), staging, float32."""
    out, expected = f(*args), g(*args)
    for o, e in zip(fd.tree_util.tree_leaves(out), fd.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(o, e, rtol=1e-9, atol=atol)
    check_grads(f, args, order=2, modes=("fwd", "rev"))
    check_staging(f, *args)
    out32 = f(*[a.astype(np.float32) for a in args])
    for o in fd.tree_util.tree_leaves(out32):
        assert np.asarray(o).dtype == np.float32


@SETTINGS
@given(batches, sizes, seeds)
def test_cholesky(batch, n, seed):
    a = spd(rng_from(seed), batch, n)
    check_all(fnp.linalg.cholesky, np.linalg.cholesky, (a,))
    check_all(lambda a: fnp.linalg.cholesky(a, upper=True),
              lambda a: np.swapaxes(np.linalg.cholesky(a), -1, -2), (a,))
    # symmetric derivative: the gradient of a function of a symmetric input is symmetric
    g = fd.grad(lambda a: fnp.sum(fnp.sin(fnp.linalg.cholesky(a))))(a)
    np.testing.assert_allclose(g, np.swapaxes(g, -1, -2), atol=1e-12)


@SETTINGS
@given(batches, sizes, seeds, st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_triangular_solve(batch, n, seed, lower, transpose_a, unit, left):
    rng = rng_from(seed)
    a = np.linalg.cholesky(spd(rng, batch, n)) + rng.standard_normal(batch + (n, n))
    a = a + 2 * np.eye(n) * np.sign(np.diagonal(a, axis1=-2, axis2=-1))[..., None]
    b = rng.standard_normal(batch + ((n, 2) if left else (2, n)))
    kw = dict(lower=lower, transpose_a=transpose_a, unit_diagonal=unit, left_side=left)

    def reference(a, b):
        m = np.tril(a) if lower else np.triu(a)
        if unit:
            m = m - np.diagonal(m, axis1=-2, axis2=-1)[..., None] * np.eye(n) + np.eye(n)
        m = np.swapaxes(m, -1, -2) if transpose_a else m
        if left:
            return np.linalg.solve(m, b)
        return np.swapaxes(np.linalg.solve(np.swapaxes(m, -1, -2), np.swapaxes(b, -1, -2)), -1, -2)
    check_all(lambda a, b: lax.triangular_solve(a, b, **kw), reference, (a, b))


@SETTINGS
@given(batches, sizes, seeds, st.sampled_from(["vector", "matrix", "broadcast"]))
def test_solve(batch, n, seed, kind):
    rng = rng_from(seed)
    a = general(rng, batch, n)
    b = rng.standard_normal({"vector": (n,), "matrix": batch + (n, 2), "broadcast": (3, 1) + (n, 2)
                             if len(batch) <= 1 else (n, 2)}[kind])
    check_all(fnp.linalg.solve, np.linalg.solve, (a, b))


@SETTINGS
@given(batches, sizes, seeds)
def test_inv_det_slogdet(batch, n, seed):
    a = general(rng_from(seed), batch, n)
    check_all(fnp.linalg.inv, np.linalg.inv, (a,))
    check_all(fnp.linalg.det, np.linalg.det, (a,))
    check_all(lambda a: tuple(fnp.linalg.slogdet(a)), lambda a: tuple(np.linalg.slogdet(a)), (a,))
    sign, logdet = fnp.linalg.slogdet(a)
    assert fd.jvp(lambda a: fnp.linalg.slogdet(a).sign, (a,), (np.ones_like(a),))[1].shape == sign.shape
    np.testing.assert_array_equal(
        fd.jvp(lambda a: fnp.linalg.slogdet(a).sign, (a,), (np.ones_like(a),))[1], 0.0)
    # d log|det A| / dA = A^-T
    np.testing.assert_allclose(fd.grad(lambda a: fnp.sum(fnp.linalg.slogdet(a).logabsdet))(a),
                               np.swapaxes(np.linalg.inv(a), -1, -2), rtol=1e-9, atol=1e-9)


def eigh_fn(a):
    """Sign-invariant functions of the eigenvectors, and the eigenvalues."""
    w, v = fnp.linalg.eigh(a)
    return w, v * v, v @ (fnp.sin(w)[..., :, None] * fnp.matrix_transpose(v))


def eigh_ref(a):
    w, v = np.linalg.eigh(a)
    return w, v * v, v @ (np.sin(w)[..., :, None] * np.swapaxes(v, -1, -2))


@SETTINGS
@given(batches, sizes, seeds)
def test_eigh(batch, n, seed):
    a = distinct_symmetric(rng_from(seed), batch, n)
    check_all(eigh_fn, eigh_ref, (a,))
    check_all(fnp.linalg.eigvalsh, np.linalg.eigvalsh, (a,))
    w, v = fnp.linalg.eigh(a, symmetrize_input=False, UPLO="U")
    np.testing.assert_allclose(w, np.linalg.eigh(a, UPLO="U")[0], rtol=1e-9, atol=1e-9)
    # eigenvectors themselves, with their sign fixed by a zero-derivative factor
    # (skipped when the sign indicator is too close to 0 for finite differences)
    v = np.linalg.eigh(a)[1]
    if np.min(np.abs(np.sum(v ** 3, axis=-2))) > 0.05:
        fixed = lambda a: (lambda v: v * fnp.sign(fnp.sum(v ** 3, axis=-2, keepdims=True)))(  # noqa: E731
            fnp.linalg.eigh(a)[1])
        check_grads(fixed, (a,), order=2)


def test_eigh_lax_reads_one_triangle():
    a = distinct_symmetric(rng_from(7), (), 3)
    junk = a + np.triu(rng_from(8).standard_normal((3, 3)), 1)
    np.testing.assert_allclose(lax.eigh(junk, lower=True)[0], np.linalg.eigvalsh(a), rtol=1e-12)
    check_grads(lambda x: lax.eigh(x, lower=False)[0], (a + np.tril(junk, -1),), order=2)
    check_grads(lambda x: lax.cholesky(x), (spd(rng_from(9), (), 3) + np.triu(junk, 1),), order=2)


@SETTINGS
@given(batches, sizes, seeds, st.integers(-3, 4))
def test_matrix_power(batch, n, seed, p):
    a = general(rng_from(seed), batch, n) / 2
    check_all(lambda a: fnp.linalg.matrix_power(a, p), lambda a: np.linalg.matrix_power(a, p), (a,))


def test_multi_dot_and_pinv():
    rng = rng_from(10)
    arrs = [rng.standard_normal(3), rng.standard_normal((3, 6)), rng.standard_normal((6, 2)),
            rng.standard_normal((2, 4)), rng.standard_normal(4)]
    for sub in (arrs[1:3], arrs[:3], arrs[1:], arrs, [arrs[0], arrs[0]]):
        np.testing.assert_allclose(fnp.linalg.multi_dot(sub), np.linalg.multi_dot(sub), rtol=1e-10)
        check_grads(lambda *xs: fnp.linalg.multi_dot(list(xs)), tuple(sub), order=2)
    tall = rng.standard_normal((5, 3))
    for m in (tall, tall.T, rng.standard_normal((2, 4, 3))):
        np.testing.assert_allclose(fnp.linalg.pinv(m), np.linalg.pinv(m), rtol=1e-8, atol=1e-10)
        check_grads(fnp.linalg.pinv, (m,), order=2)


def test_linalg_errors():
    with pytest.raises(np.linalg.LinAlgError, match=r"inv: expected a square matrix.*\(2, 3\)"):
        fnp.linalg.inv(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"solve: a of shape \(2, 2\) needs b of shape"):
        fnp.linalg.solve(np.eye(2), np.ones(3))
    with pytest.raises(np.linalg.LinAlgError):
        fnp.linalg.cholesky(-np.eye(2))
    with pytest.raises(TypeError, match="matrix_power: the exponent must be an integer"):
        fnp.linalg.matrix_power(np.eye(2), 1.5)
    with pytest.raises(ValueError, match=r"triangular_solve: a of shape \(2, 2\) needs b"):
        lax.triangular_solve(np.eye(2), np.ones((3, 1)))
    assert fnp.linalg.det(np.eye(2, dtype=int)).dtype == np.float64


def with_singular_values(rng, batch, m, n):
    """U diag(s) V^T with distinct singular values in [1, 1 + 0.7 k]."""
    k = min(m, n)
    s = np.cumsum(rng.uniform(0.5, 0.9, batch + (k,)), axis=-1)[..., ::-1] + 0.5
    u = orthogonal(rng, batch, m)[..., :, :k]
    v = orthogonal(rng, batch, n)[..., :, :k]
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def svd_fn(a):
    u, s, vh = fnp.linalg.svd(a, full_matrices=False)
    return s, u * u, vh * vh, (u * fnp.exp(s)[..., None, :]) @ vh


def svd_ref(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return s, u * u, vh * vh, (u * np.exp(s)[..., None, :]) @ vh


@SETTINGS
@given(batches, sizes, sizes, seeds)
def test_svd(batch, m, n, seed):
    a = with_singular_values(rng_from(seed), batch, m, n)
    check_all(svd_fn, svd_ref, (a,))
    check_all(fnp.linalg.svdvals, np.linalg.svdvals, (a,))
    if m == n:      # full_matrices=True is differentiable for square matrices
        check_grads(lambda a: fnp.linalg.svd(a).S, (a,), order=1)
    elif m > 1 or n > 1:
        with pytest.raises(NotImplementedError, match="full_matrices=False"):
            fd.grad(lambda a: fnp.sum(fnp.linalg.svd(a).U))(a)
    u, s, vh = fnp.linalg.svd(a)
    k = min(m, n)
    assert u.shape == batch + (m, m) and vh.shape == batch + (n, n)
    np.testing.assert_allclose((u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :], a, atol=1e-9)


def _signs(xp, r):
    """Signs of R's diagonal: LAPACK's Householder QR picks each one from the
    sign of a pivot, so a QR factor can flip sign under a tiny perturbation
    (a finite-difference step) where that pivot is small.  Multiplying the
    factors by them gives the unique QR with a positive diagonal, which is
    continuous; its derivative still checks every entry of dQ and dR."""
    s = xp.sign(xp.diagonal(r, axis1=-2, axis2=-1))
    return fd.stop_gradient(s) if xp is fnp else s


def qr_fn(a, xp=fnp, mode="reduced"):
    q, r = xp.linalg.qr(a, mode=mode)
    s = _signs(xp, r)
    return q * s[..., None, :], r * s[..., :, None]


@SETTINGS
@given(batches, sizes, sizes, seeds)
def test_qr(batch, m, n, seed):
    a = with_singular_values(rng_from(seed), batch, m, n)
    check_all(qr_fn, lambda a: qr_fn(a, np), (a,))
    check_all(lambda a: fnp.linalg.qr(a, mode="r") * _signs(fnp, fnp.linalg.qr(a, mode="r"))[..., None],
              lambda a: np.linalg.qr(a, mode="r") * _signs(np, np.linalg.qr(a, mode="r"))[..., None],
              (a,))
    q, r = fnp.linalg.qr(a, mode="complete")
    np.testing.assert_allclose(q @ r, a, atol=1e-10)
    np.testing.assert_allclose(fnp.linalg.qr(a)[0], np.linalg.qr(a)[0], atol=1e-9)  # NumPy's signs
    if m <= n:
        check_grads(lambda a: qr_fn(a, mode="complete"), (a,), order=1)


# --------------------------------------------------------------------------
# Norms
# --------------------------------------------------------------------------

VECTOR_ORDS = [None, 1, 2, np.inf, -np.inf, 3, 1.5]
MATRIX_ORDS = [None, "fro", 1, -1, np.inf, -np.inf, 2, -2, "nuc"]


@SETTINGS
@given(small_shapes(1, 3), seeds, st.sampled_from(VECTOR_ORDS), st.booleans())
def test_vector_norms(shape, seed, ord, keepdims):
    x = rng_from(seed).standard_normal(shape) + 0.1
    axis = len(shape) - 1
    f = lambda x: fnp.linalg.norm(x, ord, axis, keepdims)       # noqa: E731
    check_all(f, lambda x: np.linalg.norm(x, ord, axis, keepdims), (x,))
    assert f(x).shape == np.linalg.norm(x, ord, axis, keepdims).shape
    np.testing.assert_allclose(fnp.linalg.vector_norm(x, ord=2 if ord is None else ord),
                               np.linalg.vector_norm(x, ord=2 if ord is None else ord), rtol=1e-12)
    np.testing.assert_allclose(fnp.linalg.norm(x, 0, axis), np.linalg.norm(x, 0, axis))


@SETTINGS
@given(small_shapes(2, 3), seeds, st.sampled_from(MATRIX_ORDS), st.booleans())
def test_matrix_norms(shape, seed, ord, keepdims):
    x = rng_from(seed).standard_normal(shape) + 0.1
    nd = len(shape)
    axes = (nd - 1, nd - 2) if seed % 2 else (nd - 2, nd - 1)
    f = lambda x: fnp.linalg.norm(x, ord, axes, keepdims)       # noqa: E731
    check_all(f, lambda x: np.linalg.norm(x, ord, axes, keepdims), (x,))
    mo = "fro" if ord is None else ord
    np.testing.assert_allclose(fnp.linalg.matrix_norm(x, ord=mo), np.linalg.matrix_norm(x, ord=mo),
                               rtol=1e-12)


def test_norm_whole_array_and_errors():
    x = rng_from(11).standard_normal((2, 3, 4))
    np.testing.assert_allclose(fnp.linalg.norm(x), np.linalg.norm(x), rtol=1e-12)
    assert fnp.linalg.norm(x, keepdims=True).shape == (1, 1, 1)
    np.testing.assert_allclose(fnp.linalg.vector_norm(x, axis=(0, 2), ord=np.inf),
                               np.linalg.vector_norm(x, axis=(0, 2), ord=np.inf))
    np.testing.assert_allclose(fnp.linalg.norm(np.arange(4)), np.linalg.norm(np.arange(4)))
    with pytest.raises(ValueError, match="pass axis"):
        fnp.linalg.norm(x, 1)
    with pytest.raises(ValueError, match="invalid norm order 'fro' for vectors"):
        fnp.linalg.norm(x[0, 0], "fro")
    with pytest.raises(ValueError, match="invalid norm order 3 for matrices"):
        fnp.linalg.norm(x[0], 3)


@pytest.mark.parametrize("f", [
    lambda x: fnp.linalg.norm(x),
    lambda x: fnp.linalg.norm(x, axis=-1),
    lambda x: fnp.linalg.norm(x, 2, axis=0),
    lambda x: fnp.linalg.vector_norm(x),
    lambda x: fnp.linalg.matrix_norm(x),
    lambda x: fnp.linalg.norm(x, 3, axis=-1),
])
def test_norm_gradient_at_zero_is_zero(f):
    for dtype in (np.float64, np.float32):
        z = np.zeros((2, 3), dtype)
        g = fd.grad(lambda x: fnp.sum(f(x)))(z)
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, 0.0)
        h = fd.jacfwd(fd.grad(lambda x: fnp.sum(f(x))))(z)
        assert not np.any(np.isnan(h))
        _, t = fd.jvp(f, (z,), (np.ones_like(z),))
        np.testing.assert_array_equal(t, 0.0)
    # one zero row among non-zero ones: only the zero row's gradient is zero
    x = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    g = fd.grad(lambda x: fnp.sum(fnp.linalg.norm(x, axis=1)))(x)
    np.testing.assert_allclose(g, [[0, 0, 0], [0.6, 0.8, 0]])
