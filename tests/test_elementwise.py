"""Every row of the elementwise tables (``UNARY``, ``BINARY``) against NumPy and
finite differences.

For each differentiable row: ``check_grads`` in both modes to order 2, over
Hypothesis shapes (broadcasting for binaries) and values inside the function's
domain, in float64 and in float32 (float32 in -> float32 out and float32
tangents).  For every row: the eager result equals NumPy exactly (values and
dtype), the staged jaxpr and the linear jaxpr of ``linearize`` pass
``check_jaxpr``.  Rows without a meaningful derivative (comparisons, logical,
bitwise, isnan...) are checked against NumPy and for zero tangents.

A new row fails ``test_every_row_has_a_domain`` until it is given a domain
below.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad.lax import elementwise as ew
from functad.testing import arrays, check_grads, mutually_broadcastable_shapes, shapes

UNARY_NAMES = [row[0] for row in ew.UNARY]
BINARY_NAMES = [row[0] for row in ew.BINARY]


# --------------------------------------------------------------------------
# Domains: where each function is smooth (away from poles, kinks and jumps)
# --------------------------------------------------------------------------

class Domain:
    """A set of values: a Hypothesis strategy for the property tests, and a
    NumPy sampler for the deterministic ones."""

    def __init__(self, strategy, sampler):
        self.strategy = strategy
        self.sampler = sampler

    def sample(self, shape, dtype, seed=0):
        n = int(np.prod(shape, dtype=np.int64))
        return np.asarray(self.sampler(np.random.default_rng(seed), n), dtype).reshape(shape)


def interval(lo, hi):
    return Domain(st.floats(lo, hi), lambda r, n: r.uniform(lo, hi, n))


def two_sided(lo, hi):
    """|x| in [lo, hi], either sign: away from a singularity or kink at 0."""
    return Domain(st.builds(lambda s, v: s * v, st.sampled_from([-1.0, 1.0]), st.floats(lo, hi)),
                  lambda r, n: r.choice([-1.0, 1.0], n) * r.uniform(lo, hi, n))


def near(offset, jitter):
    """k + offset + j, for an integer k in [-3, 3] and |j| <= jitter."""
    return Domain(st.builds(lambda k, j: k + offset + j, st.integers(-3, 3),
                            st.floats(-jitter, jitter)),
                  lambda r, n: r.integers(-3, 4, n) + offset + r.uniform(-jitter, jitter, n))


def one_of(values):
    return Domain(st.sampled_from(values), lambda r, n: r.choice(np.asarray(values), n))


def integers(lo, hi):
    return Domain(st.integers(lo, hi), lambda r, n: r.integers(lo, hi + 1, n))


BOOLEANS = Domain(st.booleans(), lambda r, n: r.integers(0, 2, n).astype(bool))

# Values >= 0.15 away from any integer and half-integer: floor, ceil, trunc, round
# and sign are locally constant there, so their zero derivative is checkable.
OFF_GRID = near(0.25, 0.1)
NONZERO_INT = one_of([-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0])
# x = k + 1/2 (+-0.2) is >= 0.3 away from every multiple of a nonzero integer y,
# so mod, rem and floor_divide have no jump near (x, y).
MOD_PAIR = (near(0.5, 0.2), NONZERO_INT)
# x = k + 1/4, y = m + 3/4 (+-0.1) are >= 0.3 apart: no tie for max and min.
MAXMIN_PAIR = (near(0.25, 0.1), near(0.75, 0.1))

DEFAULT = interval(-3, 3)
UNARY_DOMAINS = {
    "neg": DEFAULT, "sin": DEFAULT, "cos": DEFAULT, "tan": interval(-1.2, 1.2),
    "arcsin": interval(-0.8, 0.8), "arccos": interval(-0.8, 0.8), "arctan": DEFAULT,
    "sinh": interval(-2, 2), "cosh": interval(-2, 2), "tanh": interval(-2, 2),
    "arcsinh": DEFAULT, "arccosh": interval(1.1, 4), "arctanh": interval(-0.8, 0.8),
    "exp": interval(-2, 2), "exp2": interval(-2, 2), "expm1": interval(-2, 2),
    "log": interval(0.25, 5), "log2": interval(0.25, 5), "log10": interval(0.25, 5),
    "log1p": interval(-0.7, 3), "sqrt": interval(0.25, 4), "rsqrt": interval(0.25, 4),
    "cbrt": two_sided(0.25, 4), "square": DEFAULT, "reciprocal": two_sided(0.3, 3),
    "abs": two_sided(0.1, 3), "logistic": interval(-4, 4), "erf": interval(-2, 2),
    "erfinv": interval(-0.8, 0.8),
    # piecewise constant: the derivative is zero away from the jumps
    "sign": two_sided(0.1, 3), "floor": OFF_GRID, "ceil": OFF_GRID, "round": OFF_GRID,
    "trunc": OFF_GRID,
}
BINARY_DOMAINS = {
    "add": (DEFAULT, DEFAULT), "sub": (DEFAULT, DEFAULT), "mul": (DEFAULT, DEFAULT),
    "div": (DEFAULT, two_sided(0.3, 3)), "pow": (interval(0.25, 3), interval(-2, 2)),
    "max": MAXMIN_PAIR, "min": MAXMIN_PAIR,
    "atan2": (interval(0.3, 3), DEFAULT),           # away from the branch cut x = 0, y < 0
    "hypot": (two_sided(0.3, 3), DEFAULT), "logaddexp": (DEFAULT, DEFAULT),
    "rem": MOD_PAIR, "mod": MOD_PAIR, "floor_divide": MOD_PAIR,
}

# Rows whose outputs are boolean or integer, or whose inputs must be: no
# derivative to check, but their impl must match NumPy and their tangents be zero.
FLOAT_SPECIALS = one_of([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf])
SMALL_FLOATS = one_of([-1.0, 0.0, 0.5, 1.0, 2.0])     # so that ties happen
NONDIFF_UNARY = {"isnan": (np.float64, FLOAT_SPECIALS), "isinf": (np.float64, FLOAT_SPECIALS),
                 "isfinite": (np.float64, FLOAT_SPECIALS),
                 "logical_not": (np.bool_, BOOLEANS),
                 "bitwise_not": (np.int64, integers(-100, 100))}
NONDIFF_BINARY = {name: (np.float64, SMALL_FLOATS) for name in ["eq", "ne", "lt", "le", "gt", "ge"]}
NONDIFF_BINARY.update({name: (np.bool_, BOOLEANS)
                       for name in ["logical_and", "logical_or", "logical_xor"]})
NONDIFF_BINARY.update({name: (np.int64, integers(-100, 100))
                       for name in ["bitwise_and", "bitwise_or", "bitwise_xor"]})

# The NumPy function each row must match exactly (lax names that NumPy spells
# differently, and lax-only functions with their NumPy/SciPy definition).
_NP_NAMES = {"neg": "negative", "sub": "subtract", "mul": "multiply", "div": "true_divide",
             "pow": "power", "max": "maximum", "min": "minimum", "atan2": "arctan2",
             "rem": "fmod", "mod": "remainder", "eq": "equal", "ne": "not_equal", "lt": "less",
             "le": "less_equal", "gt": "greater", "ge": "greater_equal",
             "bitwise_not": "invert", "reciprocal": "reciprocal"}


def _special(name):
    from scipy import special
    return {"erf": special.erf, "erfinv": special.erfinv,
            "rsqrt": lambda x: 1.0 / np.sqrt(x)}.get(name)


def numpy_reference(name):
    ref = _special(name)
    if ref is not None:
        return ref
    if name == "logistic":
        return None           # no exact NumPy spelling: compared with expit to 2 ulp
    return getattr(np, _NP_NAMES.get(name, name))


# functad.numpy's spelling, for checking the user-facing path too
def fnp_function(name):
    np_name = _NP_NAMES.get(name, name)
    return getattr(fnp, np_name, None)


def test_every_row_has_a_domain():
    assert set(UNARY_NAMES) == set(UNARY_DOMAINS) | set(NONDIFF_UNARY)
    assert set(BINARY_NAMES) == set(BINARY_DOMAINS) | set(NONDIFF_BINARY)
    assert not set(UNARY_DOMAINS) & set(NONDIFF_UNARY)
    assert not set(BINARY_DOMAINS) & set(NONDIFF_BINARY)


# --------------------------------------------------------------------------
# Shared strategies
# --------------------------------------------------------------------------

SHAPES = shapes(max_dims=2, max_side=3)
PAIR_SHAPES = mutually_broadcastable_shapes(2, max_dims=2, max_side=3)


def _unary_arg(data, name, dtype):
    return data.draw(arrays(dtype, SHAPES, elements=UNARY_DOMAINS[name].strategy), label="x")


def _binary_args(data, domains, dtype, allow_scalar=True):
    """Two arrays of mutually broadcastable shapes; sometimes a 0-d operand is
    replaced by a (weakly typed) Python scalar."""
    (sx, sy), _ = data.draw(PAIR_SHAPES, label="shapes")
    x = data.draw(arrays(dtype, sx, elements=domains[0].strategy), label="x")
    y = data.draw(arrays(dtype, sy, elements=domains[1].strategy), label="y")
    if allow_scalar and y.shape == () and data.draw(st.booleans(), label="y is a Python scalar"):
        y = y.item()
    return x, y


def _wrap_as(fn, name):
    fn.__name__ = name
    return fn


DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
EXAMPLES = {np.float64: 15, np.float32: 6}


# --------------------------------------------------------------------------
# Derivatives: check_grads in both modes to order 2
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY_DOMAINS))
def test_unary_grads(name, dtype):
    f = getattr(ew, name)

    @settings(max_examples=EXAMPLES[dtype], deadline=None)
    @given(st.data())
    def run(data):
        x = _unary_arg(data, name, dtype)
        out = f(x)
        assert out.dtype == dtype and out.shape == x.shape
        check_grads(f, (x,), order=2, modes=("fwd", "rev"))
    run()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY_DOMAINS))
def test_binary_grads(name, dtype):
    f = getattr(ew, name)

    @settings(max_examples=EXAMPLES[dtype], deadline=None)
    @given(st.data())
    def run(data):
        x, y = _binary_args(data, BINARY_DOMAINS[name], dtype)
        out = f(x, y)
        assert out.dtype == dtype
        assert out.shape == np.broadcast_shapes(np.shape(x), np.shape(y))
        check_grads(f, (x, y), order=2, modes=("fwd", "rev"))
        # the gradient of a float32 input is float32 even next to a Python float
        gx, gy = fd.grad(lambda a, b: fnp.sum(f(a, b)), argnums=(0, 1))(x, y)
        assert gx.dtype == dtype and gx.shape == x.shape
        assert gy.shape == np.shape(y)
    run()


# --------------------------------------------------------------------------
# Eager results equal NumPy exactly
# --------------------------------------------------------------------------

def _assert_same(got, expected):
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    np.testing.assert_array_equal(got, expected, strict=True)


def _check_eager(name, fn_lax, args):
    out = fn_lax(*args)
    # eager results are immutable: functad Arrays, or NumPy scalars when 0-d
    # (Python scalars when every input is one: weakly typed in, weakly typed out)
    py = (bool, int, float, complex)
    assert (isinstance(out, core.Array) or (isinstance(out, np.generic) and np.ndim(out) == 0)
            or (type(out) in py and all(type(a) in py for a in args))), type(out)
    ref = numpy_reference(name)
    with np.errstate(all="ignore"):
        if ref is None:       # logistic
            from scipy.special import expit
            np.testing.assert_allclose(out, expit(args[0]), rtol=4 * np.finfo(out.dtype).eps,
                                       atol=0)
            assert out.dtype == np.result_type(*args)
        elif name == "logaddexp":
            # NumPy's formula from whole-array ufuncs (2-13x faster than
            # np.logaddexp): within a few rounding errors of the larger operand
            got, want = np.asarray(out), np.asarray(ref(*args))
            assert got.dtype == want.dtype
            scale = np.maximum(np.maximum(np.abs(args[0]), np.abs(args[1])), 1.0)
            tol = 4 * np.finfo(want.dtype).eps * scale
            ok = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= tol)
            assert np.all(ok), (args, got, want)
        else:
            _assert_same(out, ref(*args))
    user_fn = fnp_function(name)
    if user_fn is not None:
        _assert_same(user_fn(*args), out)


@pytest.mark.parametrize("name", UNARY_NAMES)
def test_unary_eager_matches_numpy(name):
    fn = getattr(ew, name)
    dtype, elements = NONDIFF_UNARY.get(name, (None, UNARY_DOMAINS.get(name)))

    @settings(max_examples=10, deadline=None)
    @given(st.data())
    def run(data):
        dt = dtype or data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
        x = data.draw(arrays(dt, SHAPES, elements=elements.strategy), label="x")
        with np.errstate(all="ignore"):
            _check_eager(name, fn, (x,))
    run()


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_eager_matches_numpy(name):
    fn = getattr(ew, name)
    if name in NONDIFF_BINARY:
        dtype, el = NONDIFF_BINARY[name]
        domains = (el, el)
    else:
        dtype, domains = None, BINARY_DOMAINS[name]

    @settings(max_examples=10, deadline=None)
    @given(st.data())
    def run(data):
        dt = dtype or data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
        x, y = _binary_args(data, domains, dt)
        with np.errstate(all="ignore"):
            _check_eager(name, fn, (x, y))
    run()


@pytest.mark.parametrize("name, args", [
    ("add", (np.float32(1.5), 2.0)),                    # NEP 50: weak Python float
    ("mul", (np.ones(2, np.float32), 3)),
    ("div", (np.arange(3), 2)),                         # int / int -> float64
    ("pow", (np.arange(3, dtype=np.int32), 2)),
    ("max", (np.ones(2, np.float32), np.ones(2, np.float64))),
    ("add", (2.0, 3.0)),
    ("lt", (np.ones(2, np.float32), 0.5)),
])
def test_dtype_promotion_matches_numpy(name, args):
    _check_eager(name, getattr(ew, name), args)


# --------------------------------------------------------------------------
# Zero tangents for the rows without a derivative
# --------------------------------------------------------------------------

def _nondiff_cases():
    for name, (dtype, el) in NONDIFF_UNARY.items():
        yield pytest.param(name, 1, dtype, el, id=name)
    for name, (dtype, el) in NONDIFF_BINARY.items():
        yield pytest.param(name, 2, dtype, el, id=name)


@pytest.mark.parametrize("name, nargs, dtype, elements", list(_nondiff_cases()))
def test_nondifferentiable_rows_have_zero_tangents(name, nargs, dtype, elements):
    f = getattr(ew, name)

    @settings(max_examples=8, deadline=None)
    @given(st.data())
    def run(data):
        if nargs == 1:
            args = (data.draw(arrays(dtype, SHAPES, elements=elements.strategy), label="x"),)
        else:
            args = _binary_args(data, (elements, elements), dtype, allow_scalar=False)
        rng = np.random.default_rng(0)
        tangents = tuple(rng.standard_normal(np.shape(a)).astype(a.dtype)
                         if a.dtype.kind == "f" else np.zeros_like(a) for a in args)
        out, t_out = fd.jvp(f, args, tangents)
        _assert_same(out, f(*args))
        assert np.shape(t_out) == np.shape(out)
        assert not np.any(np.asarray(t_out))
        out, f_vjp = fd.vjp(f, *args)
        cts = f_vjp(np.ones(np.shape(out), np.asarray(out).dtype))
        for a, c in zip(args, cts):
            assert np.shape(c) == np.shape(a) and np.asarray(c).dtype == a.dtype
            assert not np.any(np.asarray(c))
    run()


# --------------------------------------------------------------------------
# Staged programs type-check
# --------------------------------------------------------------------------

def _fixed_args(name):
    """Deterministic in-domain arguments, with broadcasting for binaries."""
    if name in UNARY_DOMAINS:
        return (UNARY_DOMAINS[name].sample((2, 3), np.float64),)
    if name in BINARY_DOMAINS:
        dx, dy = BINARY_DOMAINS[name]
        return (dx.sample((2, 3), np.float64), dy.sample((3,), np.float64, seed=1))
    if name in NONDIFF_UNARY:
        dtype, el = NONDIFF_UNARY[name]
        return (el.sample((7,), dtype),)
    dtype, el = NONDIFF_BINARY[name]
    return (el.sample((2, 1), dtype), el.sample((3,), dtype, seed=1))


@pytest.mark.parametrize("name", UNARY_NAMES + BINARY_NAMES)
def test_staged_jaxpr_type_checks(name):
    f = getattr(ew, name)
    args = _fixed_args(name)
    closed = fd.make_jaxpr(f)(*args)
    assert core.check_jaxpr(closed.jaxpr)
    assert [e.primitive.name for e in closed.eqns] == [name]
    (out,) = core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
    with np.errstate(all="ignore"):
        _assert_same(out, f(*args))
    assert closed.out_avals[0].shape == np.shape(out)
    assert closed.out_avals[0].dtype == np.asarray(out).dtype


@pytest.mark.parametrize("name", sorted(UNARY_DOMAINS) + sorted(BINARY_DOMAINS))
def test_linearized_and_transposed_jaxprs_type_check(name):
    f = getattr(ew, name)
    args = _fixed_args(name)
    _, f_lin = fd.linearize(f, *args)
    lin = f_lin.linear_jaxpr
    assert core.check_jaxpr(lin.jaxpr)
    # the linear jaxpr holds only linear primitives (the residuals are its constants)
    for eqn in lin.jaxpr.eqns:
        assert eqn.primitive.transpose is not None, eqn.primitive.name
    # staging the whole gradient (forward and transposed) also type-checks
    loss = _wrap_as(lambda *a: fnp.sum(f(*a)), f"sum_{name}")
    closed = fd.make_jaxpr(fd.grad(loss, argnums=tuple(range(len(args)))))(*args)
    assert core.check_jaxpr(closed.jaxpr)
    staged = core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
    eager = fd.grad(loss, argnums=tuple(range(len(args))))(*args)
    for s, e in zip(staged, eager):
        np.testing.assert_allclose(s, e, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# select and convert_element_type (not in the tables)
# --------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(st.data())
def test_select_grads(data):
    (sp, sx, sy), _ = data.draw(mutually_broadcastable_shapes(3, max_dims=2, max_side=3))
    dtype = data.draw(st.sampled_from([np.float64, np.float32]))
    pred = data.draw(arrays(np.bool_, sp))
    x = data.draw(arrays(dtype, sx, min_value=-3, max_value=3))
    y = data.draw(arrays(dtype, sy, min_value=-3, max_value=3))
    out = ew.select(pred, x, y)
    _assert_same(out, np.where(pred, x, y))
    check_grads(lambda a, b: ew.select(pred, fnp.sin(a), b * b), (x, y), order=2)


@pytest.mark.parametrize("src, dst", [(np.float32, np.float64), (np.float64, np.float32)])
def test_convert_element_type_grads(src, dst):
    x = np.array([0.5, -1.25, 2.0], src)
    out = ew.convert_element_type(x, dst)
    assert out.dtype == dst
    g = fd.grad(lambda a: fnp.sum(ew.convert_element_type(a, dst) ** 2))(x)
    assert g.dtype == src
    np.testing.assert_allclose(g, 2 * x)
    check_grads(lambda a: ew.convert_element_type(a, dst) * 3.0, (x,), order=2,
                atol=1e-2, rtol=1e-2)
    closed = fd.make_jaxpr(fd.grad(lambda a: fnp.sum(ew.convert_element_type(a, dst))))(x)
    assert core.check_jaxpr(closed.jaxpr)


# --------------------------------------------------------------------------
# Edge cases of individual rules
# --------------------------------------------------------------------------

def test_pow_derivatives_at_zero():
    assert fd.grad(lambda x: x ** 2.0)(0.0) == 0.0
    assert fd.grad(lambda x: x ** 1.0)(0.0) == 1.0
    assert fd.grad(lambda y: 0.0 ** y)(2.0) == 0.0        # d/dy 0**y, y > 0
    assert fd.grad(fd.grad(lambda x: x ** 2.0))(0.0) == 2.0
    # d2/dx dy x**y = x**(y-1) (1 + y ln x): 1/x at y = 0, whatever guards y = 0
    for order in [(0, 1), (1, 0)]:
        d2 = fd.grad(fd.grad(ew.pow, order[0]), order[1])(0.5, 0.0)
        assert d2 == pytest.approx(2.0, rel=1e-14), order


def test_pow_zero_exponent_derivative_at_zero():
    assert fd.grad(lambda x: x ** 0.0)(0.0) == 0.0
    poly = lambda x: sum(c * x ** k for k, c in enumerate([1.0, 2.0, 3.0]))   # noqa: E731
    assert fd.grad(poly)(0.0) == 2.0
    assert fd.grad(fd.grad(lambda x: x ** 1.0))(0.0) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logaddexp_infinities_and_nans_as_numpy(dtype):
    # the vectorized formula has two paths: a finite Python scalar operand
    # (softplus) needs no NaN fix-up; two arrays may hold inf - inf
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -3.5, 80.0], dtype)
    with np.errstate(invalid="ignore"):
        for y in (0.0, 2, -1e3):
            for args in ((special, y), (y, special)):
                got = np.asarray(ew.logaddexp(*args))
                want = np.logaddexp(*args)
                assert got.dtype == want.dtype
                np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps)
        grid = np.array(np.meshgrid(special, special)).reshape(2, -1)
        np.testing.assert_allclose(np.asarray(ew.logaddexp(grid[0], grid[1])),
                                   np.logaddexp(grid[0], grid[1]),
                                   rtol=4 * np.finfo(dtype).eps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # infinities alone warn nothing, as NumPy's
        ew.logaddexp(special[:2], special[:2])
        ew.logaddexp(special[:2], 0.0)
