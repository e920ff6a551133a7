"""Tests of functad.testing: check_grads must pass right rules and catch wrong
ones (at the right mode and order), and the Hypothesis strategies must draw
what they promise."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import tree_util as tu
from functad.testing import (arrays, broadcastable_shapes, check_grads, check_jvp, check_vjp,
                             default_eps, default_tolerance, float_dtypes, floats,
                             mutually_broadcastable_shapes, pytrees, shapes)

X = np.array([0.3, -1.2, 2.0])


# --------------------------------------------------------------------------
# Functions with deliberately wrong derivative rules
# --------------------------------------------------------------------------

def _sin_custom_jvp(scale=1.0, frozen=False):
    """sin with a custom JVP: ``scale != 1`` is wrong at order 1; ``frozen``
    (cos(x) behind stop_gradient) is right at order 1 but its derivative is 0."""
    @fd.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        d = fnp.cos(x)
        if frozen:
            d = fd.stop_gradient(d)
        return f(x), scale * d * t
    return f


def _sin_custom_vjp(scale=1.0, frozen=False):
    @fd.custom_vjp
    def f(x):
        return fnp.sin(x)

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        d = fnp.cos(x)
        if frozen:
            d = fd.stop_gradient(d)
        return (scale * d * g,)
    f.defvjp(fwd, bwd)
    return f


def test_right_rules_pass():
    check_grads(_sin_custom_jvp(), (X,), order=2)
    check_grads(_sin_custom_vjp(), (X,), order=2, modes=("rev",))


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_wrong_custom_jvp_fails_at_order_1(mode):
    f = _sin_custom_jvp(scale=1.01)
    name = "forward mode" if mode == "fwd" else "reverse mode"
    with pytest.raises(AssertionError, match=rf"{name}.*order 1"):
        check_grads(f, (X,), order=1, modes=(mode,))


def test_wrong_custom_vjp_fails_at_order_1():
    f = _sin_custom_vjp(scale=0.99)
    with pytest.raises(AssertionError, match=r"reverse mode.*order 1"):
        check_grads(f, (X,), order=1, modes=("rev",))


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_custom_jvp_wrong_only_at_order_2(mode):
    f = _sin_custom_jvp(frozen=True)
    check_grads(f, (X,), order=1, modes=(mode,))          # first order is right
    name = "forward mode" if mode == "fwd" else "reverse mode"
    with pytest.raises(AssertionError, match=rf"{name}.*order 2"):
        check_grads(f, (X,), order=2, modes=(mode,))


def test_custom_vjp_wrong_only_at_order_2():
    f = _sin_custom_vjp(frozen=True)
    check_grads(f, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match=r"reverse mode.*order 2"):
        check_grads(f, (X,), order=2, modes=("rev",))


def test_custom_vjp_in_forward_mode_is_a_type_error():
    with pytest.raises(TypeError, match="custom_vjp"):
        check_grads(_sin_custom_vjp(), (X,), order=1, modes=("fwd",))


def test_order_3_catches_a_third_derivative():
    # d/dx of the JVP rule is right (-sin), but its own derivative is frozen.
    @fd.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), g(x) * t

    @fd.custom_jvp
    def g(x):
        return fnp.cos(x)

    @g.defjvp
    def g_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return g(x), -fd.stop_gradient(fnp.sin(x)) * t
    check_grads(f, (X,), order=2)
    with pytest.raises(AssertionError, match="order 3"):
        check_grads(f, (X,), order=3, modes=("fwd",))


def test_message_shows_values_and_tolerances():
    f = _sin_custom_jvp(scale=2.0)
    with pytest.raises(AssertionError) as info:
        check_grads(f, (X,), order=1, modes=("fwd",))
    msg = str(info.value)
    for part in ["check_grads", "forward mode (JVP)", "order 1", "max abs error", "atol=1e-05",
                 "finite differences", "eps=0.0001"]:
        assert part in msg, (part, msg)


def test_tolerances_are_used():
    f = _sin_custom_jvp(scale=1.001)
    with pytest.raises(AssertionError):
        check_grads(f, (X,), order=1, modes=("fwd",))
    check_grads(f, (X,), order=1, modes=("fwd",), atol=1e-2, rtol=1e-2)
    with pytest.raises(AssertionError):
        check_grads(f, (X,), order=1, modes=("rev",), rtol=1e-6, atol=1e-6, eps=1e-5)


def test_default_tolerances_by_dtype():
    assert default_tolerance(np.float32) > default_tolerance(np.float64)
    assert default_eps(np.float32) > default_eps(np.float64)
    # float32 arguments get float32 defaults: sin passes there at order 2.
    check_grads(fnp.sin, (X.astype(np.float32),), order=2)
    # ... and a 1% error is still caught in float32.
    with pytest.raises(AssertionError):
        check_grads(_sin_custom_jvp(scale=1.05), (X.astype(np.float32),), order=1)


def test_wrong_primal_output_of_a_rule_is_caught():
    @fd.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return fnp.sin(x) + 1.0, fnp.cos(x) * t
    with pytest.raises(AssertionError, match="primal output"):
        check_grads(f, (X,), order=1, modes=("fwd",))


def _primitive_with_a_float64_tangent():
    """A primitive whose (wrong) JVP rule returns float64 tangents for float32 inputs."""
    from functad import core
    p = core.Primitive("testing_double_f64_tangent")
    del core.primitives[p.name]          # not one of the library's primitives
    p.impl = lambda x: x * 2
    p.abstract_eval = lambda a: a

    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return p.bind(x), fnp.astype(t, np.float64) * 2.0
    p.jvp = jvp
    return p


def test_wrong_tangent_dtype_is_caught():
    p = _primitive_with_a_float64_tangent()
    x32 = X.astype(np.float32)
    assert p.bind(x32).dtype == np.float32
    with pytest.raises(AssertionError, match="dtype float64, expected float32"):
        check_grads(p.bind, (x32,), order=1, modes=("fwd",))


def test_pytree_arguments_and_outputs():
    def f(p, xs):
        return {"y": fnp.sin(p["w"]) * xs[0], "z": [fnp.exp(p["b"] * xs[1]), None]}
    p = {"w": X, "b": 0.5}
    xs = (np.array(2.0), np.array([0.1, 0.2, 0.3]))
    check_grads(f, (p, xs), order=2)


def test_integer_leaves_are_held_fixed():
    def f(x, n):
        return x ** n
    check_grads(f, (X, 3), order=2)
    check_grads(lambda x, k: x * fnp.asarray(k), (X, np.arange(3)), order=1)


def test_argument_validation():
    with pytest.raises(ValueError, match="order"):
        check_grads(fnp.sin, (X,), order=0)
    with pytest.raises(ValueError, match="modes"):
        check_grads(fnp.sin, (X,), modes=("bwd",))
    with pytest.raises(ValueError, match="modes"):
        check_grads(fnp.sin, (X,), modes=())
    with pytest.raises(TypeError, match="tuple"):
        check_grads(fnp.sin, X)
    check_grads(fnp.sin, (X,), order=1, modes="rev")       # a single mode as a string


def test_check_jvp_and_check_vjp_directly():
    check_jvp(fnp.tanh, (X,))
    check_vjp(fnp.tanh, (X,))
    with pytest.raises(AssertionError, match="check_vjp"):
        check_vjp(_sin_custom_vjp(scale=3.0), (X,))


def test_import_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import functad.testing as t\n"
            "import functad.numpy as fnp\n"
            "t.check_grads(fnp.sin, (fnp.ones(2),))\n"
            "try:\n    t.arrays()\nexcept ImportError as e:\n    print('ImportError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ImportError" in out.stdout and "hypothesis" in out.stdout


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

@settings(max_examples=30)
@given(arrays(np.float32, shapes(max_dims=2), min_value=0.1, max_value=0.9))
def test_arrays_float32_bounds(x):
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim <= 2
    assert np.all((x >= np.float32(0.1)) & (x <= np.float32(0.9)))
    x64 = x.astype(np.float64)                            # compare exactly (NEP 50 would
    assert np.all(x64 >= 0.1) and np.all(x64 <= 0.9)      # round 0.1 to float32): inward


@settings(max_examples=20)
@given(arrays(float_dtypes(), (2, 3), elements=st.floats(-1, 1)))
def test_arrays_dtype_strategy_and_cast_elements(x):
    assert x.shape == (2, 3) and x.dtype in (np.float32, np.float64)
    assert np.all(np.abs(x) <= 1)


@settings(max_examples=20)
@given(arrays(np.int64, 4, min_value=-3, max_value=3), arrays(np.bool_, ()))
def test_arrays_integer_and_bool(i, b):
    assert i.dtype == np.int64 and i.shape == (4,) and np.all(np.abs(i) <= 3)
    assert b.dtype == np.bool_ and b.shape == ()


@settings(max_examples=30)
@given(shapes(min_dims=1, max_dims=3, min_side=2, max_side=3))
def test_shapes(s):
    assert 1 <= len(s) <= 3 and all(2 <= d <= 3 for d in s)


@settings(max_examples=30)
@given(broadcastable_shapes((3, 4)))
def test_broadcastable_shapes(s):
    assert np.broadcast_shapes(s, (3, 4))[-2:] == (3, 4)


@settings(max_examples=30)
@given(mutually_broadcastable_shapes(3))
def test_mutually_broadcastable_shapes(bs):
    assert len(bs.input_shapes) == 3
    assert np.broadcast_shapes(*bs.input_shapes) == bs.result_shape


@settings(max_examples=30)
@given(floats(np.float32, -0.3, 0.7))
def test_floats(v):
    assert -0.3 <= v <= 0.7 and float(np.float32(v)) == v


def _depth(tree):
    if isinstance(tree, (tuple, list)):
        return 1 + max((_depth(c) for c in tree), default=0)
    if isinstance(tree, dict):
        return 1 + max((_depth(c) for c in tree.values()), default=0)
    return 0


@settings(max_examples=40)
@given(pytrees(arrays(shape=shapes(max_dims=1, max_side=2)), max_depth=2))
def test_pytrees(tree):
    assert _depth(tree) <= 2
    for leaf in tu.tree_leaves(tree):
        assert isinstance(leaf, np.ndarray) and leaf.dtype == np.float64


@settings(max_examples=10)
@given(pytrees(arrays(shape=shapes(max_dims=1, max_side=2), min_value=-2, max_value=2),
               max_depth=2))
def test_check_grads_on_random_pytrees(tree):
    def f(t):
        return sum((fnp.sum(fnp.sin(x) * x) for x in tu.tree_leaves(t)), 0.0)
    check_grads(f, (tree,), order=2)


def test_docs_examples_run():
    """The Python blocks of docs/testing.md run, in order, and their tests pass."""
    import pathlib
    import re
    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "testing.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) >= 4
    ns = {"__name__": "docs_testing"}
    for block in blocks:
        if block.lstrip().startswith("check_grads("):
            continue          # the signature line
        exec(compile(block, str(doc), "exec"), ns)
    tests = [v for k, v in ns.items() if k.startswith("test_") and callable(v)]
    assert len(tests) == 2
    for t in tests:
        t()


def test_check_vmap_passes_on_correct_rules_and_catches_a_wrong_one(monkeypatch):
    from functad.testing import check_vmap
    from functad.lax import elementwise as ew
    x = np.arange(12.0).reshape(3, 4) / 10
    check_vmap(lambda a, w: fnp.sum(fnp.sin(a) * w), (x, np.ones(4)), in_axes=(0, None))
    check_vmap(lambda a: {"s": fnp.sin(a), "i": fnp.argmax(a)}, (x,), in_axes=1,
               out_axes={"s": -1, "i": 0})
    wrong = lambda vals, dims: (ew.cos(vals[0]), dims[0])       # noqa: E731
    monkeypatch.setattr(ew.sin_p, "batch", wrong)
    with pytest.raises(AssertionError, match="vmap"):
        check_vmap(fnp.sin, (x,))
    with pytest.raises(ValueError, match="one size"):
        check_vmap(lambda a, b: a + b, (x, np.ones(5)))
