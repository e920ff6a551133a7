"""The eager tape (functad.backprop): top-level grad/vjp record each node's
local partials and backpropagate through them.  It must agree with
linearize + transpose (functad.ad), which every transform below the top level
uses, on every kind of primitive."""

import importlib
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import ad, backprop, core
from functad.testing import arrays, mutually_broadcastable_shapes


def _staged_vjp(f, args, ct):
    """The reference: linearize + transpose, as used under any transform."""
    outs, lin = ad.linearize_flat(lambda *xs: [f(*xs)], list(args), "reference")
    return outs[0], lin.transpose([ct])


def _tape_vjp(f, args, ct):
    outs, tape = backprop.reverse_flat(lambda *xs: [f(*xs)], list(args), "tape")
    assert isinstance(tape, backprop.Tape)
    return outs[0], tape.transpose([ct])


def _assert_same(f, *args, ct=None, tol=1e-12):
    out_ref, ref = _staged_vjp(f, args, ct if ct is not None else 1.0)
    if ct is None:
        ct = np.ones(np.shape(out_ref), np.asarray(out_ref).dtype)
        out_ref, ref = _staged_vjp(f, args, ct)
    out, got = _tape_vjp(f, args, ct)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out_ref), rtol=tol, atol=tol)
    for g, r, x in zip(got, ref, args):
        assert np.shape(g) == np.shape(r) == np.shape(x)
        assert np.asarray(g).dtype == np.asarray(r).dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=tol, atol=tol)


def test_the_seed_tape_holds_the_notes_local_partials():
    f = lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))  # noqa: E731
    y, f_vjp = fd.vjp(f, 0.0)
    text = str(f_vjp.linear_function)
    # the forward figure at x = 0: -3, exp' = 1, 1, -1/4, -ln' = 2 ... -1
    partials = [line.split("= ", 2)[-1] for line in text.splitlines()[1:-1]]
    assert partials == ["-3", "1", "1", "-0.25", "2", "-1"]
    assert f_vjp(1.0) == (-1.5,)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_elementwise_with_broadcasting_agrees_with_linearize(data):
    s1, s2 = data.draw(mutually_broadcastable_shapes(2, max_dims=3)).input_shapes
    dt = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data.draw(arrays(dt, s1, min_value=0.5, max_value=3.0))
    y = data.draw(arrays(dt, s2, min_value=0.5, max_value=3.0))

    def f(a, b):
        u = a * b + a / b - fnp.logaddexp(a, b) + fnp.sin(a) * 2.0
        return fnp.sum(u * u + fnp.tanh(b) - a)
    _assert_same(f, x, y, tol=1e-4 if dt == np.float32 else 1e-12)


@pytest.mark.parametrize("name,f,args", [
    ("dot and reductions", lambda w, x: fnp.sum(fnp.tanh(x @ w) ** 2) + fnp.max(w),
     (np.arange(6.0).reshape(3, 2) / 5, np.linspace(-1, 1, 12).reshape(4, 3))),
    ("indexing and at[]", lambda x: fnp.sum(x[1:, ::2] ** 2) + x.at[0, 1].set(7.0)[0, 2]
     * x[np.array([0, 2]), 1].sum(), (np.arange(12.0).reshape(3, 4),)),
    ("where, clip, sort, cumsum", lambda x: fnp.sum(fnp.where(x > 0.3, x ** 3, -x)
                                                   * fnp.sort(x) + fnp.cumsum(fnp.clip(x, 0.1, 0.7))),
     (np.linspace(-1, 1, 7),)),
    ("custom rules: relu, softplus, logsumexp, norm", lambda x: fd.nn.relu(x).sum()
     + fd.nn.softplus(x).sum() + fd.nn.logsumexp(x) + fnp.linalg.norm(x), (np.linspace(-2, 2, 5),)),
    ("stop_gradient and integer ops", lambda x: fnp.sum(x * fd.stop_gradient(x)
                                                       + fnp.floor(x) * x), (np.linspace(-2, 2, 5),)),
    ("cond and scan", lambda x: fd.lax.cond(x.sum() > 0, lambda v: fnp.sum(v ** 2),
                                            lambda v: fnp.sum(v), x)
     + fd.lax.scan(lambda c, v: (c * v + 1.0, c), 1.0, x)[0], (np.linspace(0.5, 1.5, 4),)),
    ("jit and vmap inside", lambda x: fd.jit(lambda v: fnp.sum(fnp.exp(v) * v))(x)
     + fnp.sum(fd.vmap(lambda r: r @ r)(fnp.reshape(x, (2, 2)))), (np.linspace(-1, 1, 4),)),
    ("linalg", lambda a: fnp.linalg.slogdet(a)[1] + fnp.sum(fnp.linalg.inv(a)),
     (np.array([[2.0, 0.5], [0.25, 3.0]]),)),
    ("fan-out", lambda x: fnp.sum(x * x + x) * fnp.sum(x), (np.linspace(-1, 1, 3),)),
])
def test_every_kind_of_primitive_agrees_with_linearize(name, f, args):
    _assert_same(f, *args)


def test_custom_vjp_on_the_tape():
    @fd.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -0.5, 0.5),))
    f = lambda x: fnp.sum(clip_gradient(x) * 3.0)  # noqa: E731
    _assert_same(f, np.ones(3))
    np.testing.assert_array_equal(fd.grad(f)(np.ones(3)), [0.5, 0.5, 0.5])


def test_higher_order_through_the_tape():
    # the outer grad is a tape; the inner one is linearize + transpose recorded on it
    f = lambda x: fnp.sin(x) * x ** 3  # noqa: E731
    x = 0.7
    d2 = fd.grad(fd.grad(f))(x)
    expected = -math.sin(x) * x ** 3 + 6 * math.cos(x) * x ** 2 + 6 * math.sin(x) * x
    assert abs(d2 - expected) < 1e-12
    d3 = fd.grad(fd.grad(fd.grad(f)))(x)
    assert abs(d3 - fd.jit(fd.grad(fd.grad(fd.grad(f))))(x)) < 1e-11


def test_vjp_function_is_reusable_and_vmappable():
    f = lambda x: fnp.tanh(x) * fnp.sum(x ** 2)  # noqa: E731
    x = np.linspace(-1, 1, 4)
    y, f_vjp = fd.vjp(f, x)
    assert isinstance(f_vjp.linear_function, backprop.Tape)
    first, again = f_vjp(np.ones(4))[0], f_vjp(np.ones(4))[0]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(fd.jacrev(f)(x), fd.jacfwd(f)(x), rtol=1e-12, atol=1e-12)


def test_dtypes_and_structure_of_gradients():
    x32 = np.ones(3, np.float32)
    g = fd.grad(lambda p: fnp.sum(p["w"] * 2.0 + p["b"]))({"w": x32, "b": np.float32(1.0)})
    assert g["w"].dtype == np.float32 and g["b"].dtype == np.float32
    assert type(fd.grad(lambda x: x * x)(3.0)) is np.float64
    gi = fd.grad(lambda x, n: x * n, argnums=(0, 1), allow_int=True)(2.0, 3)
    assert gi[0] == 3.0 and gi[1] == 0
    np.testing.assert_array_equal(fd.grad(lambda x: 5.0)(np.ones(2)), [0.0, 0.0])


def test_aux_leaves_the_tape_as_values():
    (v, aux), g = fd.value_and_grad(lambda x: (x * x, {"twice": 2 * x}), has_aux=True)(3.0)
    assert (v, g) == (9.0, 6.0)
    assert type(aux["twice"]) is np.float64 and aux["twice"] == 6.0


def test_an_escaped_tape_value_raises():
    box = []

    def f(x):
        box.append(x * 2.0)
        return x
    fd.grad(f)(1.0)
    with pytest.raises(core.UnexpectedTracerError, match="grad"):
        fnp.sin(box[0])


def test_the_tape_runs_at_the_top_level_and_below_an_eager_vmap():
    seen = []

    def f(x):
        seen.append(type(core.current_interpreter()).__name__)
        return x * x
    fd.grad(f)(1.0)
    fd.jit(fd.grad(f))(1.0)
    fd.vmap(fd.grad(f))(np.ones(2))             # a batching level above a tape
    fd.jit(fd.vmap(fd.grad(f)))(np.ones(2))
    assert seen == ["TapeInterpreter", "JVPInterpreter", "_SwappedBatch", "JVPInterpreter"]


def _vjp_nodes(f, *args):
    tape = fd.vjp(f, *args)[1].linear_function
    return [n for n in tape.nodes if n[0] is backprop.VJP]


def test_grad_of_jit_runs_one_compiled_vjp_program():
    jit_module = importlib.import_module("functad.jit")     # (functad.jit is the function)
    y = np.array([0.5, -1.0, 2.0])

    def f(x, k):                  # several outputs, an integer one; an integer input
        return fnp.sum(fnp.tanh(x * y) ** 2) * k, k * 2, fnp.exp(x)
    jf = fd.jit(f)
    x = np.linspace(-1, 1, 3)
    before = len(jit_module._vjps)
    assert len(_vjp_nodes(lambda x: jf(x, 3)[0], x)) == 1
    for _ in range(3):            # staged once, then reused
        g = fd.grad(lambda x: jf(x, 3)[0] + fnp.sum(jf(x, 3)[2][:2]))(x)
    assert len(jit_module._vjps) == before + 1
    want = fd.grad(lambda x: f(x, 3)[0] + fnp.sum(f(x, 3)[2][:2]))(x)
    np.testing.assert_allclose(g, want, rtol=1e-12)
    _assert_same(lambda x: jf(x, 2)[0] * fnp.sum(jf(x, 2)[2]), x)
    # a jitted function closing over a value on the tape: the value is an input of the call
    h = lambda x: fd.jit(lambda v: fnp.sum(v * fnp.sin(x)))(x ** 2)  # noqa: E731
    assert len(_vjp_nodes(h, x)) == 1
    np.testing.assert_allclose(fd.grad(h)(x), fd.grad(lambda x: fnp.sum(x ** 2 * fnp.sin(x)))(x),
                               rtol=1e-12)


def test_grad_of_jit_composes():
    f = fd.jit(lambda x: fnp.sin(x) * x ** 3)
    x = 0.7
    expected = -math.sin(x) * x ** 3 + 6 * math.cos(x) * x ** 2 + 6 * math.sin(x) * x
    assert abs(fd.grad(fd.grad(f))(x) - expected) < 1e-12
    xs = np.linspace(0.1, 1.0, 4)
    np.testing.assert_allclose(fd.vmap(fd.grad(f))(xs), [fd.grad(f)(v) for v in xs], rtol=1e-12)
    g = fd.jit(lambda v: fnp.tanh(v) * fnp.sum(v ** 2))
    np.testing.assert_allclose(fd.jacrev(g)(xs), fd.jacfwd(g)(xs), rtol=1e-12, atol=1e-12)
    assert "its own VJP" in str(fd.debug.show_backprop(lambda v: fnp.sum(g(v)), xs))


def test_show_backprop_draws_both_phases_of_the_note():
    f = lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))  # noqa: E731
    r = fd.debug.show_backprop(f, 0.0)
    assert r.grad == -1.5 and abs(r.value - math.log(2.0)) < 1e-15
    # figure 7: the adjoint between 1/(1+u) and exp is 1/2, the input's -3/2
    exp_node = next(n for n in r.tape.nodes if n[4].name == "exp")[1]
    assert r.adjoints[exp_node] == 0.5 and r.adjoints[r.tape.in_vids[0]] == -1.5
    text = str(r)
    assert "forward" in text and "backward" in text and "d/d%4 = -0.25" in text
    assert text.splitlines()[-1].split() == ["%1", "-1.5", "input"]


def test_show_backprop_of_arrays_pytrees_and_errors():
    w = {"w": np.ones((2, 2)), "b": np.zeros(2)}
    x = np.arange(6.0).reshape(3, 2)
    loss = lambda p, x: fnp.sum(fnp.tanh(x @ p["w"] + p["b"]))  # noqa: E731
    r = fd.debug.show_backprop(loss, w, x)
    want = fd.grad(loss)(w, x)
    np.testing.assert_allclose(r.grad["w"], want["w"])
    np.testing.assert_allclose(r.grad["b"], want["b"])
    assert "<f64[3,2]>" in str(r)                                # big values
    assert re.search(r"dot_general\(_, %2\) +<f64\[3,2\]> +linear: transposed going backward",
                     str(r))
    sorted_sq = fd.debug.show_backprop(lambda x: fnp.sum(fnp.sort(x) ** 2), np.arange(3.0))
    assert "= sort(%1)" in str(sorted_sq) and "linearized: 1 linear equation" in str(sorted_sq)
    gx = fd.debug.show_backprop(loss, w, x, argnums=1).grad
    np.testing.assert_allclose(gx, fd.grad(loss, argnums=1)(w, x))
    with pytest.raises(TypeError, match="scalar"):
        fd.debug.show_backprop(lambda x: x * 2.0, np.ones(2))
    with pytest.raises(TypeError, match="top level"):
        fd.jit(lambda x: fd.debug.show_backprop(fnp.sin, x).grad)(1.0)
