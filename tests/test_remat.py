"""functad.checkpoint / remat: reverse mode stores only the inputs of the
checkpointed function and recomputes the rest in the backward pass.

The memory saving is measured on the linear jaxpr that ``linearize`` (the
forward pass of ``grad``) builds: its constants are exactly the residuals
kept for the backward pass.
"""

import numpy as np
import pytest

import functad as fd
import functad.numpy as fnp
from functad.core import check_jaxpr
from functad.testing import check_grads

from helpers import assert_jit_numba, assert_tree_same


def chain(x):
    """Ten tanh layers."""
    for _ in range(10):
        x = fnp.tanh(x * 1.1 + 0.1)
    return fnp.sum(x)


def layer(w, b, x):
    """A block with several intermediate values (each with its own partials)."""
    h = fnp.tanh(w @ x + b)
    return x + fnp.sin(h) * fnp.exp(-h * h)


def mlp(params, x, layer_fn=layer):
    for w, b in params:
        x = layer_fn(w, b, x)
    return fnp.sum(x ** 2)


@pytest.fixture
def params(rng):
    return [(rng.standard_normal((6, 6)) * 0.5, rng.standard_normal(6) * 0.1) for _ in range(4)]


def residuals(fun, *args):
    """The residuals reverse mode stores: the constants of the linear jaxpr."""
    _, f_jvp = fd.linearize(fun, *args)
    lin = f_jvp.linear_jaxpr
    check_jaxpr(lin.jaxpr)
    arrays = [c for c in lin.consts if np.ndim(c) > 0]
    return len(arrays), sum(np.asarray(c).nbytes for c in arrays)


# --------------------------------------------------------------------------
# The memory saving, and the same derivatives
# --------------------------------------------------------------------------

def test_chain_of_ten_tanh_layers_stores_only_its_input():
    x = np.linspace(-1.0, 1.0, 1000)
    n_plain, bytes_plain = residuals(chain, x)
    n_ck, bytes_ck = residuals(fd.checkpoint(chain), x)
    assert (n_plain, bytes_plain) == (10, 10 * x.nbytes)     # one local partial per tanh
    assert (n_ck, bytes_ck) == (1, x.nbytes)                 # x itself
    np.testing.assert_allclose(fd.grad(fd.checkpoint(chain))(x), fd.grad(chain)(x),
                               rtol=1e-14, atol=0)
    assert fd.remat is fd.checkpoint


def test_check_grads_through_checkpoint():
    x = np.linspace(-1.0, 1.0, 5)
    check_grads(fd.checkpoint(chain), (x,), order=2)


def test_per_layer_checkpoint_of_an_mlp(params, rng):
    x = rng.standard_normal(6)
    ck_layer = fd.checkpoint(layer)
    n_plain, _ = residuals(lambda p: mlp(p, x), params)
    n_ck, _ = residuals(lambda p: mlp(p, x, ck_layer), params)
    # plain: per block w, x and the partials of tanh, sin, exp, h * h, ...;
    # checkpointed: per block its inputs w, b, x (and the partial of the final x ** 2)
    assert n_plain == 32 and n_ck == 3 * len(params) + 1
    g_plain = fd.grad(mlp)(params, x)
    g_ck = fd.grad(lambda p: mlp(p, x, ck_layer))(params)
    assert_tree_same(g_ck, g_plain)
    check_grads(lambda p: mlp(p, x, ck_layer), (params,), order=1)


def test_backward_pass_recomputes_the_body(capsys):
    def body(x):
        fd.debug.print("forward")
        return fnp.sin(x) * 2.0
    fd.grad(lambda x: body(x))(1.0)
    assert capsys.readouterr().out == "forward\n"
    g = fd.grad(lambda x: fd.checkpoint(body)(x))(1.0)
    assert capsys.readouterr().out == "forward\nforward\n"     # forward + recomputation
    assert g == 2.0 * np.cos(1.0)


def test_debug_nans_in_the_recomputation():
    f = lambda x: fnp.sqrt(x) * 0.0   # noqa: E731 - d sqrt at 0 is inf, and 0 * inf is nan
    with fd.debug.debug_nans(), np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(FloatingPointError, match="mul.*backward pass"):
            fd.grad(fd.checkpoint(f))(0.0)


def test_forward_mode_and_linearize():
    x = np.linspace(-1.0, 1.0, 4)
    t = np.arange(4.0)
    ck = fd.checkpoint(chain)
    assert_tree_same(fd.jvp(ck, (x,), (t,)), fd.jvp(chain, (x,), (t,)))
    y, f_jvp = fd.linearize(ck, x)
    _, f_ref = fd.linearize(chain, x)
    assert_tree_same(f_jvp(t), f_ref(t))
    # jvp of the linear map (remat_lin's own jvp rule): linear, so its tangent is f_jvp(t)
    _, tt = fd.jvp(f_jvp, (x,), (t,))
    np.testing.assert_allclose(tt, f_ref(t), rtol=1e-13)


def test_reverse_over_forward_still_rematerialises():
    x = np.linspace(-1.0, 1.0, 3)
    ones = np.ones(3)

    def jvp_sum(fun):
        return lambda x: fnp.sum(fd.jvp(fun, (x,), (ones,))[1])
    assert_tree_same(fd.grad(jvp_sum(fd.checkpoint(chain)))(x), fd.grad(jvp_sum(chain))(x))
    n_ck, _ = residuals(jvp_sum(fd.checkpoint(chain)), x)
    n_plain, _ = residuals(jvp_sum(chain), x)
    assert n_ck == 2 and n_plain > 10        # x and the tangent direction


def test_higher_order_and_jacobians():
    x = np.linspace(-1.0, 1.0, 3)
    f = lambda x: fnp.sin(x) * fnp.exp(x)   # noqa: E731
    ck = fd.checkpoint(f)
    assert_tree_same(fd.jacfwd(ck)(x), fd.jacfwd(f)(x))
    assert_tree_same(fd.jacrev(ck)(x), fd.jacrev(f)(x))
    assert_tree_same(fd.hessian(fd.checkpoint(chain))(x), fd.hessian(chain)(x))


# --------------------------------------------------------------------------
# Composition: nesting, closures, pytrees, vmap, jit
# --------------------------------------------------------------------------

def test_nested_checkpoints():
    x = np.linspace(-1.0, 1.0, 50)
    inner = fd.checkpoint(lambda x: fnp.sin(x) * fnp.cos(x))
    outer = fd.checkpoint(lambda x: fnp.sum(inner(inner(x)) ** 2))
    plain = lambda x: fnp.sum(fnp.sin(fnp.sin(x) * fnp.cos(x)) * fnp.cos(fnp.sin(x) * fnp.cos(x))) ** 2  # noqa: E731, E501
    ref = lambda x: fnp.sum((lambda y: fnp.sin(y) * fnp.cos(y))(fnp.sin(x) * fnp.cos(x)) ** 2)  # noqa: E731, E501
    del plain
    np.testing.assert_allclose(fd.grad(outer)(x), fd.grad(ref)(x), rtol=1e-13)
    assert residuals(outer, x) == (1, x.nbytes)
    check_grads(outer, (x[:4],), order=2)


def test_closure_over_an_outer_tracer():
    x = np.linspace(0.1, 1.0, 4)

    def loss(w):
        return fd.checkpoint(lambda x: fnp.sum(fnp.tanh(w * x) ** 2))(x)
    ref = lambda w: fnp.sum(fnp.tanh(w * x) ** 2)   # noqa: E731
    np.testing.assert_allclose(fd.grad(loss)(0.7), fd.grad(ref)(0.7), rtol=1e-13)
    np.testing.assert_allclose(fd.hessian(loss)(0.7), fd.hessian(ref)(0.7), rtol=1e-12)


def test_pytrees_kwargs_static_and_integer_arguments():
    x = np.linspace(-1.0, 1.0, 3)

    def f(d, n, scale=1.0):
        y = d["x"]
        for _ in range(n):
            y = fnp.sin(y) * scale + d["k"]
        return {"y": y, "i": fnp.argmax(y), "c": 3.0}
    ck = fd.checkpoint(f, static_argnums=1)

    def loss(fun):
        def L(x):
            out = fun({"x": x, "k": np.int64(2)}, 3, scale=0.5)
            return fnp.sum(out["y"]) + out["c"]
        return L
    assert_tree_same(fd.grad(loss(ck))(x), fd.grad(loss(f))(x))
    assert_tree_same(fd.jvp(loss(ck), (x,), (x,)), fd.jvp(loss(f), (x,), (x,)))
    out = ck({"x": x, "k": np.int64(2)}, 3)       # eager: just calls f
    assert_tree_same(out, f({"x": x, "k": np.int64(2)}, 3))


def test_make_jaxpr_shows_one_remat_call():
    jaxpr = fd.make_jaxpr(fd.checkpoint(chain, policy=lambda *a: False))(np.ones(3))
    assert [e.primitive.name for e in jaxpr.eqns] == ["remat_call"]
    assert "prevent_cse=True" in str(jaxpr)
    check_jaxpr(jaxpr.jaxpr)


def test_vmap():
    xs = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    ck = fd.checkpoint(chain)
    assert_tree_same(fd.vmap(ck)(xs), fd.vmap(chain)(xs))
    # grad of a vmapped checkpoint keeps rematerialising (batched remat_call)
    loss_ck = lambda xs: fnp.sum(fd.vmap(ck)(xs))      # noqa: E731
    loss = lambda xs: fnp.sum(fd.vmap(chain)(xs))      # noqa: E731
    assert_tree_same(fd.grad(loss_ck)(xs), fd.grad(loss)(xs))
    assert residuals(loss_ck, xs) == (1, xs.nbytes)
    # per-example gradients; and the batched linear map (remat_lin's batching rule)
    assert_tree_same(fd.vmap(fd.grad(ck))(xs), fd.vmap(fd.grad(chain))(xs))
    w = np.array([0.5, -1.0, 2.0, 0.3])
    g = fd.checkpoint(lambda x, w: fnp.sin(x * w))
    assert_tree_same(fd.jacfwd(g)(xs[0], w), fd.jacfwd(lambda x, w: fnp.sin(x * w))(xs[0], w))
    assert_tree_same(fd.vmap(fd.jacfwd(g), in_axes=(0, None))(xs, w),
                     fd.vmap(fd.jacfwd(lambda x, w: fnp.sin(x * w)), in_axes=(0, None))(xs, w))


def test_jit_numpy_tier():
    x = np.linspace(-1.0, 1.0, 5)
    ck = fd.checkpoint(chain)
    assert_tree_same(fd.jit(fd.grad(ck))(x), fd.grad(chain)(x))
    assert_tree_same(fd.grad(fd.jit(ck))(x), fd.grad(chain)(x))
    assert_tree_same(fd.vmap(fd.jit(ck))(np.stack([x, -x])), fd.vmap(chain)(np.stack([x, -x])))
    assert_tree_same(fd.jit(fd.jacfwd(fd.checkpoint(fnp.sin)))(x), fd.jacfwd(fnp.sin)(x))


def test_jit_numba_tier():
    """One compiled program: the forward remat_call is inlined, the backward
    pass recomputes it, and applying a linearization lowers a remat_lin."""
    x = np.linspace(-1.0, 1.0, 3)
    ck = fd.checkpoint(lambda x: fnp.sum(fnp.sin(fnp.sin(x) * 1.1)))
    sin_ck = fd.checkpoint(lambda x: fnp.sin(x) * x)

    def f(x, t):
        return fd.value_and_grad(ck)(x), fd.linearize(sin_ck, x)[1](t)
    jaxpr = fd.make_jaxpr(f)(x, x)
    assert {"remat_call", "remat_lin"} <= {e.primitive.name for e in jaxpr.eqns}
    assert_jit_numba(f, x, x + 0.5)


def test_errors():
    with pytest.raises(TypeError, match="callable"):
        fd.checkpoint(3)
    with pytest.raises(TypeError, match="policy"):
        fd.checkpoint(chain, policy="nothing")
    with pytest.raises(TypeError, match="static_argnums"):
        fd.checkpoint(chain, static_argnums="x")
    with pytest.raises(TypeError, match="not an array"):
        fd.grad(lambda x: fd.checkpoint(lambda x, s: x * 2.0)(x, "s"))(1.0)
