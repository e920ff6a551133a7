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
    counts = [draw(st.integers(0, 2)) for _ in range(4)]     # batch, contract, lhs free, rhs free
    kinds = "bclr"
    labels = {k: [f"{k}{i}" for i in range(n)] for k, n in zip(kinds, counts)}
    size = {lab: draw(st.integers(1, 3)) for labs in labels.values() for lab in labs}
    x_labels = draw(st.permutations(labels["b"] + labels["c"] + labels["l"]))
    y_labels = draw(st.permutations(labels["b"] + labels["c"] + labels["r"]))
    contract = draw(st.permutations(labels["c"]))
    batch = draw(st.permutations(labels["b"]))
    dn = ((tuple(x_labels.index(c) for c in contract), tuple(y_labels.index(c) for c in contract)),
          (tuple(x_labels.index(b) for b in batch), tuple(y_labels.index(b) for b in batch)))
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
