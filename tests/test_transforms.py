"""Laws and API semantics of the transforms: jvp, vjp, grad, value_and_grad,
linearize, jacfwd, jacrev, hessian, custom_jvp, custom_vjp, stop_gradient,
eval_shape and make_jaxpr, and the errors they raise."""

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad import tree_util as tu
from functad.testing import arrays, check_grads, float_dtypes, pytrees, shapes


def _line_of(fn, text):
    """The absolute line number of the first line of ``fn`` containing ``text``."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(f"{text!r} not in the source of {fn}")


def _close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=tol, atol=tol)


# --------------------------------------------------------------------------
# The seed document's worked examples
# --------------------------------------------------------------------------

def test_seed_example_1_logistic_nll():
    a = 3.0

    def f(x):
        return -fnp.log(1.0 / (1.0 + fnp.exp(-a * x)))
    value, slope = fd.value_and_grad(f)(0.0)
    assert abs(value - math.log(2.0)) <= 1e-15
    assert abs(slope - (-1.5)) <= 1e-15            # df/dx(0) = -3/2
    # away from 0 too: df/dx = -a / (1 + exp(a x))
    for x in [-1.0, 0.25, 2.0]:
        _close(fd.grad(f)(x), -a / (1.0 + math.exp(a * x)), 1e-14)


def test_seed_example_1_backward_adjoint():
    # The backward figure: the adjoint between 1/(1+u) and exp is 1/2, the
    # product of d(-ln v)/dv = -2 and d(1/(1+u))/du = -1/4 at x = 0.
    a = 3.0

    def upstream(u):                                   # u = exp(-a x)
        return -fnp.log(1.0 / (1.0 + u))
    assert fd.grad(upstream)(math.exp(-a * 0.0)) == 0.5
    assert fd.grad(lambda v: -fnp.log(v))(0.5) == -2.0
    assert fd.grad(lambda u: 1.0 / (1.0 + u))(1.0) == -0.25


def _two_neuron_loss(params, x, y):
    h = fnp.maximum(0.0, params["theta"] @ x + params["b"])            # ReLU hidden layer
    z = params["w"] @ h + params["b_w"]
    f = 1.0 / (1.0 + fnp.exp(-z))                                      # sigmoid output
    return -(y * fnp.log(f) + (1.0 - y) * fnp.log(1.0 - f))            # binary cross-entropy


def test_seed_example_2_two_neuron_network():
    s = 1.0 / math.sqrt(2.0)
    params = {"theta": np.array([[s, s], [s, s]]), "b": np.zeros(2),
              "w": np.array([1.0, -1.0]), "b_w": 0.0}
    x, y = np.array([s, s]), 1.0
    loss, g = fd.value_and_grad(_two_neuron_loss)(params, x, y)
    assert abs(loss - math.log(2.0)) <= 1e-15
    q = 1.0 / (2.0 * math.sqrt(2.0))
    _close(g["theta"], [[-q, -q], [q, q]], 1e-15)
    _close(g["w"], [-0.5, -0.5], 1e-15)
    assert set(g) == set(params)
    assert g["b"].shape == (2,) and np.ndim(g["b_w"]) == 0
    _close(g["b_w"], -0.5, 1e-15)                      # dL/dz = f - y = -1/2
    # Symmetric initialisation gives symmetric partials (the note's point 8).
    sym = dict(params, w=np.array([1.0, 1.0]))
    gs = fd.grad(_two_neuron_loss)(sym, x, y)
    np.testing.assert_array_equal(gs["theta"][0], gs["theta"][1])


# --------------------------------------------------------------------------
# vjp agrees with jvp on random compositions
# --------------------------------------------------------------------------

OPS = {
    "sin": lambda h, x: fnp.sin(h),
    "tanh": lambda h, x: fnp.tanh(h),
    "arctan": lambda h, x: fnp.arctan(h),
    "sigmoid": lambda h, x: 1.0 / (1.0 + fnp.exp(-h)),
    "mul_x": lambda h, x: h * x,
    "add_x": lambda h, x: h + x,
    "half_square": lambda h, x: 0.5 * h * h,
    "div": lambda h, x: h / (1.0 + x * x),
    "leaky_relu": lambda h, x: fnp.where(h > 0, h, 0.1 * h),
    "max_x": lambda h, x: fnp.maximum(h, x),
    "center": lambda h, x: h - fnp.sum(h) / h.size,
    "pow": lambda h, x: (1.0 + h * h) ** 0.75,
    "stop": lambda h, x: h * fd.stop_gradient(h),
    "rsub": lambda h, x: 2.0 - h,
}


def _composition(names):
    def f(x, y):
        h = x
        for n in names:
            h = OPS[n](h, x) + 0.5 * y
        return {"h": h, "total": fnp.sum(h * h)}
    return f


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=6),
       arrays(np.float64, shapes(max_dims=2, max_side=3), min_value=-2, max_value=2),
       st.integers(0, 2 ** 32 - 1))
def test_vjp_is_the_transpose_of_jvp(names, x, seed):
    f = _composition(names)
    rng = np.random.default_rng(seed)
    y = rng.standard_normal()
    tx, ty = rng.standard_normal(x.shape), rng.standard_normal()
    out, t_out = fd.jvp(f, (x, y), (tx, ty))
    out2, f_vjp = fd.vjp(f, x, y)
    _close(out["h"], out2["h"])
    c = {"h": rng.standard_normal(x.shape), "total": rng.standard_normal()}
    cx, cy = f_vjp(c)
    lhs = np.sum(cx * tx) + cy * ty
    rhs = np.sum(c["h"] * t_out["h"]) + c["total"] * t_out["total"]
    scale = 1.0 + np.sum(np.abs(cx * tx)) + abs(cy * ty)
    assert abs(lhs - rhs) <= 1e-10 * scale, (names, lhs, rhs)
    # and linearize gives the same tangents as jvp
    _, f_lin = fd.linearize(f, x, y)
    t_lin = f_lin(tx, ty)
    _close(t_lin["h"], t_out["h"], 1e-10)
    _close(t_lin["total"], t_out["total"], 1e-10)


# Staging a derivative gives a well-typed program that computes the same thing.
@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=5),
       arrays(float_dtypes(), shapes(max_dims=2, max_side=3), min_value=-1.5, max_value=1.5))
def test_staged_derivatives_match_eager(names, x):
    f = _composition(names)
    y = np.asarray(0.3, x.dtype)
    staged_jvp = fd.make_jaxpr(lambda a, b: fd.jvp(f, (a, b), (a, b))[1])(x, y)
    staged_vjp = fd.make_jaxpr(lambda a, b: fd.vjp(f, a, b)[1](f(a, b)))(x, y)
    eager_jvp = tu.tree_leaves(fd.jvp(f, (x, y), (x, y))[1])
    eager_vjp = tu.tree_leaves(fd.vjp(f, x, y)[1](f(x, y)))
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    for closed, eager in [(staged_jvp, eager_jvp), (staged_vjp, eager_vjp)]:
        assert core.check_jaxpr(closed.jaxpr)
        outs = closed(x, y)
        for o, e, aval in zip(outs, eager, closed.out_avals):
            assert np.asarray(o).dtype == aval.dtype == np.asarray(e).dtype
            assert np.shape(o) == aval.shape == np.shape(e)
            _close(o, e, tol)


def test_staged_float32_pow_gradient_stays_float32():
    closed = fd.make_jaxpr(fd.grad(lambda a: a ** 0.75))(np.float32(0.5))
    assert closed.out_avals[0].dtype == np.float32
    assert np.asarray(closed(np.float32(0.5))[0]).dtype == np.float32


# --------------------------------------------------------------------------
# Second derivatives, perturbation confusion, Jacobians and Hessians
# --------------------------------------------------------------------------

SECOND_DERIVATIVES = [
    (lambda x: fnp.sin(x) * x, lambda x: 2 * np.cos(x) - x * np.sin(x)),
    (lambda x: fnp.exp(fnp.sin(x)), lambda x: np.exp(np.sin(x)) * (np.cos(x) ** 2 - np.sin(x))),
    (lambda x: fnp.log(1.0 + x * x), lambda x: (2 - 2 * x * x) / (1 + x * x) ** 2),
    (lambda x: fnp.tanh(x), lambda x: -2 * np.tanh(x) / np.cosh(x) ** 2),
    (lambda x: x ** 4 - 3.0 * x, lambda x: 12 * x * x),
    (lambda x: 1.0 / (1.0 + fnp.exp(-x)),
     lambda x: np.exp(-x) * (np.exp(-x) - 1) / (1 + np.exp(-x)) ** 3),
]


@pytest.mark.parametrize("k", range(len(SECOND_DERIVATIVES)))
@settings(max_examples=15, deadline=None)
@given(x=st.floats(-3, 3))
def test_grad_of_grad_matches_analytic(k, x):
    f, d2 = SECOND_DERIVATIVES[k]
    _close(fd.grad(fd.grad(f))(x), d2(x), 1e-10)
    # the other three orders of composing forward and reverse mode agree
    fwd = lambda g: lambda z: fd.jvp(g, (z,), (1.0,))[1]      # noqa: E731
    _close(fwd(fwd(f))(x), d2(x), 1e-10)
    _close(fwd(fd.grad(f))(x), d2(x), 1e-10)
    _close(fd.grad(fwd(f))(x), d2(x), 1e-10)


def test_perturbation_confusion():
    assert fd.grad(lambda x: fd.grad(lambda y: x * y)(3.0))(2.0) == 1.0
    # d/dx [x * d/dy (x + y)] = 1 (a confused implementation gives 2)
    assert fd.grad(lambda x: x * fd.grad(lambda y: x + y)(1.0))(1.0) == 1.0
    assert fd.grad(lambda x: x * fd.grad(lambda y: x * y)(3.0))(2.0) == 4.0
    # three levels
    f3 = lambda x: fd.grad(lambda y: fd.grad(lambda z: x * y * z)(1.0))(2.0)   # noqa: E731
    assert fd.grad(f3)(3.0) == 1.0
    # d/dx d/dy d/dz (x y z)^2 / 2 = 4 x y z at (1, 2, 3)... nested closures over all levels
    g3 = lambda x: fd.grad(lambda y: fd.grad(lambda z: (x * y * z) ** 2 / 2.0)(3.0))(2.0)  # noqa
    assert fd.grad(g3)(1.0) == pytest.approx(4 * 1 * 2 * 3, rel=1e-14)
    # mixing modes
    assert fd.grad(lambda x: fd.jvp(lambda y: x * y, (3.0,), (1.0,))[1])(2.0) == 1.0
    assert fd.jvp(lambda x: fd.grad(lambda y: x * y)(3.0), (2.0,), (1.0,))[1] == 1.0
    assert fd.jvp(lambda x: fd.jvp(lambda y: x * y, (3.0,), (1.0,))[1], (2.0,), (1.0,)) == (2.0, 1.0)
    # the inner function's own argument is independent of the outer one
    assert fd.grad(lambda x: fd.grad(lambda y: y * y)(x))(5.0) == 2.0


def _vector_fn(p):
    x, y = p["x"], p["y"]
    return (fnp.sin(x) * fnp.sum(y * y), {"z": x[0] * y + fnp.exp(-y)})


@settings(max_examples=15, deadline=None)
@given(arrays(np.float64, (3,), min_value=-2, max_value=2),
       arrays(np.float64, (2,), min_value=-2, max_value=2))
def test_jacfwd_equals_jacrev(x, y):
    p = {"x": x, "y": y}
    jf = fd.jacfwd(_vector_fn)(p)
    jr = fd.jacrev(_vector_fn)(p)
    assert tu.tree_structure(jf) == tu.tree_structure(jr)
    for a, b in zip(tu.tree_leaves(jf), tu.tree_leaves(jr)):
        assert np.shape(a) == np.shape(b)
        _close(a, b, 1e-12)
    # shapes: output shape + input shape, output structure outside
    assert np.shape(jf[0]["x"]) == (3, 3) and np.shape(jf[0]["y"]) == (3, 2)
    assert np.shape(jf[1]["z"]["y"]) == (2, 2)
    # against the analytic Jacobian of the first output wrt x
    _close(jf[0]["x"], np.diag(np.cos(x)) * np.sum(y * y), 1e-12)


def _h(x):
    return x[0] ** 2 * x[1] + fnp.sin(x[1] * x[2]) + x[2] ** 3


def _h_hessian(x):
    x0, x1, x2 = x
    s, c = np.sin(x1 * x2), np.cos(x1 * x2)
    return np.array([[2 * x1, 2 * x0, 0.0],
                     [2 * x0, -x2 ** 2 * s, c - x1 * x2 * s],
                     [0.0, c - x1 * x2 * s, -x1 ** 2 * s + 6 * x2]])


@settings(max_examples=15, deadline=None)
@given(arrays(np.float64, (3,), min_value=-2, max_value=2))
def test_hessian_symmetric_and_analytic(x):
    h = fd.hessian(_h)(x)
    assert np.shape(h) == (3, 3)
    _close(h, np.asarray(h).T, 1e-12)
    _close(h, _h_hessian(x), 1e-12)
    # reverse-over-reverse and forward-over-forward agree with it
    _close(fd.jacrev(fd.jacrev(_h))(x), h, 1e-12)
    _close(fd.jacfwd(fd.jacfwd(_h))(x), h, 1e-12)


def test_hessian_has_aux():
    h, aux = fd.hessian(lambda x: (fnp.sum(x ** 3), {"double": x * 2.0}), has_aux=True)(
        np.array([1.0, 2.0]))
    _close(h, [[6.0, 0.0], [0.0, 12.0]])
    _close(aux["double"], [2.0, 4.0])


def test_hessian_float32_stays_float32():
    h = fd.hessian(lambda x: fnp.sum(x ** 3))(np.ones(2, np.float32))
    assert h.dtype == np.float32
    _close(h, 6 * np.eye(2), 1e-6)


# --------------------------------------------------------------------------
# grad / value_and_grad: argnums, has_aux, pytrees, dtypes
# --------------------------------------------------------------------------

def test_argnums_int_and_tuple():
    f = lambda x, y, z: x * y ** 2 + z          # noqa: E731
    assert fd.grad(f)(2.0, 3.0, 1.0) == 9.0
    assert fd.grad(f, argnums=1)(2.0, 3.0, 1.0) == 12.0
    assert fd.grad(f, argnums=-1)(2.0, 3.0, 1.0) == 1.0
    g = fd.grad(f, argnums=(0, 1))(2.0, 3.0, 1.0)
    assert isinstance(g, tuple) and g == (9.0, 12.0)
    g1 = fd.grad(f, argnums=(1,))(2.0, 3.0, 1.0)
    assert isinstance(g1, tuple) and g1 == (12.0,)
    v, g = fd.value_and_grad(f, argnums=(2, 0))(2.0, 3.0, 1.0)
    assert v == 19.0 and g == (1.0, 9.0)
    with pytest.raises(ValueError, match="argnums"):
        fd.grad(f, argnums=3)(2.0, 3.0, 1.0)
    with pytest.raises(TypeError, match="argnums"):
        fd.grad(f, argnums=(0, "y"))(2.0, 3.0, 1.0)


def test_argnums_float_is_a_clear_error():
    with pytest.raises(TypeError, match="argnums"):
        fd.grad(lambda x, y: x * y, argnums=1.0)(2.0, 3.0)


def test_keyword_arguments_are_not_differentiated():
    f = lambda x, scale=1.0: scale * x * x          # noqa: E731
    assert fd.grad(f)(3.0, scale=2.0) == 12.0


def test_has_aux():
    def f(x):
        y = fnp.sin(x)
        return fnp.sum(y), {"y": y, "n": 3}
    x = np.array([0.1, 0.2])
    g, aux = fd.grad(f, has_aux=True)(x)
    _close(g, np.cos(x))
    assert set(aux) == {"y", "n"} and aux["n"] == 3
    _close(aux["y"], np.sin(x))
    assert not isinstance(aux["y"], core.Tracer)
    (v, aux2), g2 = fd.value_and_grad(f, has_aux=True)(x)
    _close(v, np.sum(np.sin(x)))
    _close(g2, g)
    _close(aux2["y"], aux["y"])
    # aux under a nested transform is the concrete primal too
    gg, aux3 = fd.grad(lambda x: (fd.grad(lambda y: y * x)(2.0) * x, x * 10.0), has_aux=True)(3.0)
    assert gg == 6.0 and aux3 == 30.0 and not isinstance(aux3, core.Tracer)
    with pytest.raises(TypeError, match="has_aux"):
        fd.grad(lambda x: x, has_aux=True)(1.0)


@settings(max_examples=15, deadline=None)
@given(pytrees(arrays(float_dtypes(), shapes(max_dims=2, max_side=3), min_value=-2, max_value=2),
               max_depth=2, allow_none=True))
def test_gradient_has_the_structure_shape_and_dtype_of_the_input(tree):
    def f(t):
        return sum((fnp.sum(fnp.sin(leaf)) for leaf in tu.tree_leaves(t)), 0.0)
    g = fd.grad(f)(tree)
    assert tu.tree_structure(g) == tu.tree_structure(tree)
    for leaf, gl in zip(tu.tree_leaves(tree), tu.tree_leaves(g)):
        assert np.shape(gl) == leaf.shape
        assert np.asarray(gl).dtype == leaf.dtype          # float32 stays float32
        _close(gl, np.cos(leaf), 1e-6 if leaf.dtype == np.float32 else 1e-12)


def test_nested_pytree_inputs_and_outputs():
    params = {"layer": [{"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}],
              "scale": (np.float32(2.0), None)}

    def loss(p, x):
        h = p["layer"][0]["w"] @ x + p["layer"][0]["b"]
        return p["scale"][0] * fnp.sum(h * h)
    x = np.array([1.0, 2.0], np.float32)
    v, g = fd.value_and_grad(loss)(params, x)
    assert np.asarray(v).dtype == np.float32
    assert tu.tree_structure(g) == tu.tree_structure(params)
    assert g["layer"][0]["w"].dtype == np.float32 and g["layer"][0]["w"].shape == (2, 2)
    assert np.asarray(g["scale"][0]).dtype == np.float32 and g["scale"][1] is None
    _close(g["layer"][0]["b"], 2 * 2.0 * np.array([3.0, 3.0]), 1e-6)
    # vjp with pytree outputs returns one cotangent per primal, with its structure
    out, f_vjp = fd.vjp(lambda p: {"a": p["x"] * 2.0, "b": [p["y"] ** 2]},
                        {"x": np.ones(2), "y": 3.0})
    (ct,) = f_vjp({"a": np.ones(2), "b": [1.0]})
    _close(ct["x"], [2.0, 2.0])
    _close(ct["y"], 6.0)


def test_grad_of_integer_input_raises():
    with pytest.raises(TypeError, match=r"grad requires real- or complex-valued inputs.*int64"):
        fd.grad(lambda x: x * 2.0)(3)
    with pytest.raises(TypeError, match="int"):
        fd.grad(lambda x: fnp.sum(x * 2.0))(np.arange(3))
    with pytest.raises(TypeError, match="bool"):
        fd.grad(lambda x: 1.0)(True)
    # integer arguments that are not differentiated are fine
    assert fd.grad(lambda x, n: x ** n)(2.0, 3) == 12.0


def test_grad_of_non_scalar_output_raises():
    with pytest.raises(TypeError, match=r"scalar-output.*\(2,\)"):
        fd.grad(lambda x: x * 2.0)(np.ones(2))
    with pytest.raises(TypeError, match="scalar"):
        fd.grad(lambda x: (x, x))(1.0)
    with pytest.raises(TypeError, match="real-valued outputs"):
        fd.grad(lambda x: 3)(1.0)


def test_python_control_flow_on_values_under_grad():
    def f(x):
        if x > 0:
            return x * x
        return -x
    assert fd.grad(f)(3.0) == 6.0
    assert fd.grad(f)(-3.0) == -1.0

    def g(x):
        n = 0
        while x < 10.0:
            x = x * 2.0
            n += 1
        return x, n
    assert fd.grad(lambda x: g(x)[0])(3.0) == 4.0     # three doublings
    assert fd.grad(fd.grad(lambda x: x ** 3 if x > 1 else x))(2.0) == 12.0
    # int(), float() and indexing with a traced value work under grad and jvp too
    assert fd.grad(lambda x: x * float(x))(3.0) == 3.0
    assert fd.jvp(lambda x: x * 2.0 if x < 0 else x, (1.0,), (1.0,)) == (1.0, 1.0)


# --------------------------------------------------------------------------
# Errors with tracers
# --------------------------------------------------------------------------

def _branchy(x):
    if x > 0:
        return x
    return -x


def test_bool_of_tracer_under_make_jaxpr():
    with pytest.raises(fd.ConcretizationTypeError) as info:
        fd.make_jaxpr(_branchy)(1.0)
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert "_branchy" in msg
    assert f"{__file__}:{_line_of(_branchy, 'if x > 0')}" in msg
    assert "functad.lax.cond" in msg and "static_argnums" in msg
    with pytest.raises(fd.ConcretizationTypeError):
        fd.make_jaxpr(lambda x: float(x))(1.0)
    with pytest.raises(fd.ConcretizationTypeError):
        fd.make_jaxpr(lambda x: fnp.zeros(3)[int(x)])(1.0)
    # but bool of a value that does not depend on the input is fine
    assert str(fd.make_jaxpr(lambda x: x if fnp.asarray(1.0) > 0 else -x)(2.0)).count("=") == 0


_escaped = []


def _leaky(x):
    _escaped.append(x)
    return x * x


def _escape_a_tracer():
    _escaped.clear()
    fd.grad(_leaky)(1.0)
    return _escaped[0]


def test_escaped_tracer_raises_when_used_by_functad():
    t = _escape_a_tracer()
    with pytest.raises(fd.UnexpectedTracerError) as info:
        fnp.sin(t)
    msg = str(info.value)
    assert "grad" in msg and "_leaky" in msg
    assert f"{__file__}:{_line_of(_leaky, 'def _leaky')}" in msg
    with pytest.raises(fd.UnexpectedTracerError):
        fd.grad(lambda y: y * fnp.cos(t))(2.0)
    with pytest.raises(fd.UnexpectedTracerError):
        bool(t)


def test_escaped_tracer_raises_in_operators():
    t = _escape_a_tracer()
    with pytest.raises(fd.UnexpectedTracerError):
        t + 1.0


def test_escaped_tracer_from_make_jaxpr():
    box = []
    fd.make_jaxpr(lambda x: box.append(x) or x)(1.0)
    with pytest.raises(fd.UnexpectedTracerError, match="make_jaxpr"):
        fnp.exp(box[0])


def test_numpy_conversion_of_a_tracer_raises():
    with pytest.raises(fd.TracerArrayConversionError, match="functad.numpy"):
        fd.grad(lambda x: np.sum(np.asarray(x)))(1.0)
    with pytest.raises(fd.TracerArrayConversionError):
        fd.make_jaxpr(lambda x: np.array(x))(np.ones(2))
    with pytest.raises(fd.TracerArrayConversionError, match="numpy.sin"):
        fd.grad(lambda x: np.sin(x))(1.0)


def test_ndarray_operators_defer_to_tracers():
    a = np.array([1.0, 2.0, 3.0])
    m = np.arange(6.0).reshape(2, 3)
    _close(fd.grad(lambda x: fnp.sum(a + x))(1.0), 3.0)
    _close(fd.grad(lambda x: fnp.sum(a * x))(np.ones(3)), a)
    _close(fd.grad(lambda x: fnp.sum(m @ x))(np.ones(3)), m.sum(0))
    _close(fd.grad(lambda x: fnp.sum(a - x))(1.0), -3.0)
    _close(fd.grad(lambda x: fnp.sum(a / x))(2.0), -np.sum(a) / 4.0)
    jaxpr = fd.make_jaxpr(lambda x: a + x)(np.ones(3))
    assert [e.primitive.name for e in jaxpr.eqns] == ["add"]


# --------------------------------------------------------------------------
# stop_gradient, custom_jvp, custom_vjp, linearize
# --------------------------------------------------------------------------

def test_stop_gradient():
    assert fd.grad(lambda x: x * fd.stop_gradient(x))(3.0) == 3.0
    assert fd.jvp(lambda x: fd.stop_gradient(x * x), (3.0,), (1.0,)) == (9.0, 0.0)
    assert fd.grad(fd.grad(lambda x: fd.stop_gradient(x) * x * x))(3.0) == 6.0
    tree = fd.stop_gradient({"a": 1.0, "n": np.arange(3)})
    assert tree["a"] == 1.0 and tree["n"].dtype == np.int64
    g = fd.grad(lambda p: p["a"] * fd.stop_gradient(p)["a"])({"a": 2.0})
    assert g == {"a": 2.0}
    jaxpr = fd.make_jaxpr(fd.stop_gradient)(1.0)
    assert [e.primitive.name for e in jaxpr.eqns] == ["stop_gradient"]


@fd.custom_jvp
def _softplus(x):
    return fnp.log1p(fnp.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _softplus(x), t / (1.0 + fnp.exp(-x))


def test_custom_jvp():
    x = np.array([-1.0, 0.0, 2.0])
    _close(_softplus(x), np.log1p(np.exp(x)))
    sig = 1 / (1 + np.exp(-x))
    _close(fd.grad(lambda z: fnp.sum(_softplus(z)))(x), sig)
    # grad of grad differentiates the rule itself
    _close(fd.grad(fd.grad(_softplus))(0.5), np.exp(-0.5) / (1 + np.exp(-0.5)) ** 2)
    check_grads(_softplus, (x,), order=2)
    # the rule is used, not the function's own derivative
    assert fd.grad(_clipped)(5.0) == 1.0


@fd.custom_jvp
def _clipped(x):
    return fnp.minimum(x, 1.0)


@_clipped.defjvp
def _clipped_jvp(primals, tangents):
    return _clipped(primals[0]), tangents[0]          # straight-through estimator


def test_custom_jvp_under_make_jaxpr():
    closed = fd.make_jaxpr(_softplus)(1.0)
    assert [e.primitive.name for e in closed.eqns] == ["custom_jvp_call"]
    assert core.check_jaxpr(closed.jaxpr)
    _close(closed(1.0)[0], np.log1p(np.e))
    g = fd.make_jaxpr(fd.grad(_softplus))(1.0)
    assert core.check_jaxpr(g.jaxpr)
    _close(g(1.0)[0], 1 / (1 + np.exp(-1.0)))


def test_custom_jvp_nondiff_argnums():
    from functools import partial

    @partial(fd.custom_jvp, nondiff_argnums=(0,))
    def power(n, x):
        return x ** n

    @power.defjvp
    def power_jvp(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(n, x), n * x ** (n - 1) * t
    assert power(3, 2.0) == 8.0
    assert fd.grad(power, argnums=1)(3, 2.0) == 12.0
    assert fd.grad(fd.grad(power, argnums=1), argnums=1)(3, 2.0) == 12.0
    assert fd.grad(lambda x: power(2, x) * power(3, x))(1.0) == 5.0
    assert core.check_jaxpr(fd.make_jaxpr(fd.grad(lambda x: power(2, x)))(3.0).jaxpr)


def test_custom_jvp_pytree_arguments():
    @fd.custom_jvp
    def f(p):
        return {"out": p["a"] * p["b"]}

    @f.defjvp
    def f_jvp(primals, tangents):
        (p,), (t,) = primals, tangents
        return f(p), {"out": t["a"] * p["b"] + p["a"] * t["b"]}
    g = fd.grad(lambda p: f(p)["out"])({"a": 2.0, "b": 5.0})
    assert g == {"a": 5.0, "b": 2.0}


@fd.custom_vjp
def _clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(_, g):
    return (fnp.clip(g, -1.0, 1.0),)


_clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@fd.custom_vjp
def _sin_vjp(x):
    return fnp.sin(x)


def _sin_fwd(x):
    return fnp.sin(x), fnp.cos(x)


def _sin_bwd(cos_x, g):
    return (cos_x * g,)


_sin_vjp.defvjp(_sin_fwd, _sin_bwd)


def test_custom_vjp():
    assert fd.grad(lambda x: 5.0 * _clip_gradient(x))(2.0) == 1.0
    assert fd.grad(lambda x: 0.5 * _clip_gradient(x))(2.0) == 0.5
    x = np.array([0.1, 1.0, 2.0])
    _close(fd.grad(lambda z: fnp.sum(_sin_vjp(z)))(x), np.cos(x))
    # the residuals are differentiable: grad of grad works
    _close(fd.grad(fd.grad(_sin_vjp))(0.7), -np.sin(0.7))
    check_grads(_sin_vjp, (x,), order=2, modes=("rev",))
    closed = fd.make_jaxpr(_sin_vjp)(1.0)
    assert [e.primitive.name for e in closed.eqns] == ["custom_vjp_call"]
    assert core.check_jaxpr(fd.make_jaxpr(fd.grad(_sin_vjp))(1.0).jaxpr)


def test_custom_vjp_nondiff_argnums_and_pytrees():
    from functools import partial

    @partial(fd.custom_vjp, nondiff_argnums=(1,))
    def scale(p, k):
        return {"y": p[0] * k + p[1]}

    def fwd(p, k):
        return scale(p, k), None

    def bwd(k, _, ct):
        return ((ct["y"] * k, ct["y"]),)
    scale.defvjp(fwd, bwd)
    g = fd.grad(lambda p: scale(p, 3.0)["y"])((2.0, 1.0))
    assert g == (3.0, 1.0)


def _closes_over_custom_jvp(y):
    @fd.custom_jvp
    def g(x):
        return x * y

    @g.defjvp
    def g_jvp(primals, tangents):
        return g(primals[0]), tangents[0] * y
    return g(2.0)


def _closes_over_custom_vjp(y):
    @fd.custom_vjp
    def g(x):
        return x * y
    g.defvjp(lambda x: (g(x), None), lambda _, ct: (ct * y,))
    return g(2.0)


def test_custom_jvp_closing_over_a_tracer():
    assert fd.grad(_closes_over_custom_jvp)(3.0) == 2.0
    # d2/dy2 of (2 y) * y = 4, with the closure at both levels
    assert fd.grad(fd.grad(lambda y: _closes_over_custom_jvp(y) * y))(3.0) == 4.0


def test_custom_vjp_closing_over_a_tracer():
    assert fd.grad(_closes_over_custom_vjp)(3.0) == 2.0


def test_custom_jvp_rule_with_wrong_tangent_shape_is_rejected():
    @fd.custom_jvp
    def f(x):
        return x * 2.0
    f.defjvp(lambda p, t: (f(p[0]), fnp.ones(3)))
    with pytest.raises(TypeError, match="shape"):
        fd.jvp(f, (1.0,), (1.0,))


def test_jvp_of_custom_vjp_raises_a_clear_type_error():
    with pytest.raises(TypeError, match=r"can't apply forward-mode autodiff \(jvp\) to a "
                                        r"custom_vjp function.*_sin_vjp"):
        fd.jvp(_sin_vjp, (1.0,), (1.0,))
    with pytest.raises(TypeError, match="custom_vjp"):
        fd.jacfwd(_sin_vjp)(np.ones(2))


def test_custom_vjp_bwd_must_return_a_tuple():
    @fd.custom_vjp
    def f(x):
        return x

    f.defvjp(lambda x: (x, None), lambda _, g: g)
    with pytest.raises(TypeError, match="tuple"):
        fd.grad(f)(1.0)


def test_linearize():
    f = lambda x, y: fnp.sin(x) * y            # noqa: E731
    x, y = np.array([0.5, 1.0]), 2.0
    out, f_jvp = fd.linearize(f, x, y)
    _close(out, np.sin(x) * y)
    tx, ty = np.array([1.0, -1.0]), 0.5
    _close(f_jvp(tx, ty), fd.jvp(f, (x, y), (tx, ty))[1])
    # linear: f_jvp(a u + b v) = a f_jvp(u) + b f_jvp(v)
    _close(f_jvp(3 * tx, 3 * ty), 3 * np.asarray(f_jvp(tx, ty)))
    lin = f_jvp.linear_jaxpr
    assert core.check_jaxpr(lin.jaxpr)
    # no sin or cos left in the linear program: they ran forward, as residuals
    assert {e.primitive.name for e in lin.jaxpr.eqns} <= {"mul", "add", "neg", "broadcast_to"}
    with pytest.raises(TypeError, match="structure"):
        f_jvp(tx)
    # pytree inputs and outputs
    out, f_jvp = fd.linearize(lambda p: [p["a"] ** 2], {"a": 3.0})
    assert f_jvp({"a": 1.0})[0] == 6.0


# --------------------------------------------------------------------------
# eval_shape and make_jaxpr
# --------------------------------------------------------------------------

def test_eval_shape():
    S = fd.ShapeDtypeStruct
    out = fd.eval_shape(lambda x, y: {"mv": x @ y, "s": fnp.sum(x, axis=0)},
                        S((2, 3), np.float32), S((3,), np.float32))
    assert out == {"mv": S((2,), np.float32), "s": S((3,), np.float32)}
    # mixed with concrete arrays and big shapes: no computation happens
    big = S((100_000, 100_000), np.float64)
    assert fd.eval_shape(lambda a, b: fnp.exp(a) * b, big, np.ones(100_000)) == big
    assert fd.eval_shape(fd.grad(lambda x: fnp.sum(x * x)), S((4,), np.float32)) == \
        S((4,), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)|\(4,\).*\(2, 3\)"):
        fd.eval_shape(lambda a, b: a + b, S((2, 3), np.float64), S((4,), np.float64))


def _jaxpr_example(x, y):
    z = fnp.sin(x) * y
    return fnp.sum(z + 1.0), z


def test_make_jaxpr_pretty_printing():
    closed = fd.make_jaxpr(_jaxpr_example)(np.ones(3, np.float32), np.float32(2.0))
    assert str(closed) == (
        "{ lambda ; a:f32[3] b:f32[]. let\n"
        "    c:f32[3] = sin a\n"
        "    d:f32[3] = mul c b\n"
        "    e:f32[3] = add d 1.0\n"
        "    f:f32[] = reduce_sum[axes=(0,)] e\n"
        "  in (f, d) }")
    assert core.check_jaxpr(closed.jaxpr)


def test_make_jaxpr_constants_and_static_argnums():
    w = np.arange(3.0)
    closed = fd.make_jaxpr(lambda x, n: x * w + n, static_argnums=1)(np.ones(3), 2)
    assert str(closed) == (
        "{ lambda a:f64[3]; b:f64[3]. let\n"
        "    c:f64[3] = mul b a\n"
        "    d:f64[3] = add c 2\n"
        "  in (d,) }")
    _close(closed(np.ones(3))[0], w + 2)


def test_make_jaxpr_of_grad():
    closed = fd.make_jaxpr(fd.grad(lambda x: fnp.sum(fnp.sin(x) * x)))(np.ones(2))
    assert core.check_jaxpr(closed.jaxpr)
    x = np.array([0.3, 1.5])
    _close(closed(x)[0], np.cos(x) * x + np.sin(x))
    assert "cos" in str(closed)
