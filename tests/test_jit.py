"""functad.jit, tier 0: staging, the cache, the NumPy executor, composition."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad.jit import jit_call_p


def seed(x):
    return -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))


def close(a, b, rtol=1e-12, atol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def tree_close(a, b, **kw):
    la, ta = fd.tree_util.tree_flatten(a)
    lb, tb = fd.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        close(x, y, **kw)


# --------------------------------------------------------------------------
# jit equals eager
# --------------------------------------------------------------------------

UNARY = [fnp.sin, fnp.tanh, fnp.exp, lambda x: x * x, lambda x: fnp.sqrt(fnp.abs(x) + 1),
         lambda x: fnp.sum(x, axis=-1, keepdims=True), lambda x: fnp.maximum(x, 0.5),
         lambda x: fnp.where(x > 0, x, -2 * x), lambda x: fnp.cumsum(x, axis=0),
         lambda x: fnp.transpose(fnp.transpose(x) * 0.5),
         lambda x: x @ fnp.ones((x.shape[-1], 2), dtype=x.dtype), lambda x: x - fnp.mean(x ** 2)]


@settings(max_examples=30)
@given(ops=st.lists(st.sampled_from(range(len(UNARY))), min_size=1, max_size=4),
       shape=st.sampled_from([(3,), (2, 3), (4, 1), (1,)]),
       dtype=st.sampled_from([np.float32, np.float64]),
       seed_=st.integers(0, 2 ** 16))
def test_jit_equals_eager_on_compositions(ops, shape, dtype, seed_):
    x = np.random.default_rng(seed_).normal(size=shape).astype(dtype)

    def f(x):
        for i in ops:
            x = UNARY[i](x)
        return x
    want = f(x)
    got = fd.jit(f)(x)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    close(got, want, rtol=tol, atol=tol)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    if dtype == np.float32:
        assert np.asarray(got).dtype == np.float32


def test_integer_and_bool_exact():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    f = lambda x: (x * 3 - 1, x > 2, fnp.sum(x, axis=0))  # noqa: E731
    for a, b in zip(fd.jit(f)(x), f(x)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_result_types_match_eager():
    x = np.ones(3)
    assert type(fd.jit(lambda x: x + 1)(x)) is type(fnp.add(x, 1))
    assert type(fd.jit(fnp.sum)(x)) is type(fnp.sum(x))
    assert fd.jit(lambda x: 2.0)(x) == 2.0
    y = fd.jit(lambda x: x + 1)(x)
    with pytest.raises((TypeError, ValueError)):
        y[0] = 3.0


# --------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------

def counting(fn):
    calls = []

    @functools.wraps(fn)        # keeps the signature: static_argnums maps to names
    def f(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)
    f.calls = calls
    return f


def test_no_retrace_on_same_key_and_retrace_on_new_key():
    f = counting(lambda x: x * 2.0)
    jf = fd.jit(f)
    jf(np.ones(3))
    jf(np.zeros(3))
    jf(np.full(3, 7.0))
    assert len(f.calls) == 1
    jf(np.ones(4))                          # new shape
    assert len(f.calls) == 2
    jf(np.ones(3, np.float32))              # new dtype
    assert len(f.calls) == 3
    jf(1.0)                                 # weak scalar
    jf(2.0)
    assert len(f.calls) == 4
    jf(np.float64(1.0))                     # strong scalar: not weak, a new key
    assert len(f.calls) == 5
    assert jf.trace_count == 5


def test_retrace_on_new_treedef_and_kwargs():
    f = counting(lambda d: d["a"] + d["b"])
    jf = fd.jit(f)
    jf({"a": 1.0, "b": np.ones(2)})
    jf({"a": 3.0, "b": np.ones(2)})
    assert len(f.calls) == 1
    jf({"a": 1.0, "b": np.ones(2), "c": 0.0})
    assert len(f.calls) == 2
    g = counting(lambda x, y=1.0: x * y)
    jg = fd.jit(g)
    close(jg(np.ones(2), y=3.0), np.full(2, 3.0))
    jg(np.ones(2), y=4.0)
    assert len(g.calls) == 1
    jg(np.ones(2))
    assert len(g.calls) == 2


def test_static_argnums_and_argnames():
    f = counting(lambda x, n: x ** n if n > 1 else -x)
    jf = fd.jit(f, static_argnums=1)
    close(jf(np.full(2, 2.0), 3), np.full(2, 8.0))
    close(jf(np.full(2, 3.0), 3), np.full(2, 27.0))
    assert len(f.calls) == 1
    close(jf(np.full(2, 2.0), 1), np.full(2, -2.0))
    assert len(f.calls) == 2
    close(jf(np.full(2, 2.0), n=3), np.full(2, 8.0))   # by name: still static
    g = counting(lambda x, mode="sum": fnp.sum(x) if mode == "sum" else fnp.max(x))
    jg = fd.jit(g, static_argnames="mode")
    assert jg(np.arange(3.0)) == 3.0
    assert jg(np.arange(3.0), mode="max") == 2.0
    assert jg(np.arange(3.0), mode="max") == 2.0
    assert len(g.calls) == 2


def test_partial_decorator():
    @functools.partial(fd.jit, static_argnums=1)
    def power(x, n):
        out = 1.0
        for _ in range(n):
            out = out * x
        return out
    assert power(2.0, 5) == 32.0

    @fd.jit
    def h(x):
        return x + 1
    assert h(1.0) == 2.0


def test_unhashable_static_argument():
    jf = fd.jit(lambda x, shape: fnp.reshape(x, shape), static_argnums=1)
    with pytest.raises(TypeError, match=r"static argument 1 .*unhashable type list"):
        jf(np.ones(4), [2, 2])
    close(jf(np.ones(4), (2, 2)), np.ones((2, 2)))
    jg = fd.jit(lambda x, opts: x, static_argnames="opts")
    with pytest.raises(TypeError, match="'opts'.*unhashable type dict"):
        jg(1.0, opts={})


def test_bool_of_argument_raises_concretization_error():
    def f(x):
        return x if x > 0 else -x
    with pytest.raises(fd.ConcretizationTypeError, match="static_argnums"):
        fd.jit(f)(1.0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        fd.jit(3)
    with pytest.raises(TypeError, match="static_argnums"):
        fd.jit(lambda x: x, static_argnums="x")


# --------------------------------------------------------------------------
# Pytrees, kwargs, closures
# --------------------------------------------------------------------------

def test_pytrees_in_and_out():
    def f(params, x, *, scale):
        w, b = params["w"], params["b"]
        y = x @ w + b
        return {"y": y * scale, "stats": (fnp.sum(y), [fnp.max(y)])}, None
    params = {"w": np.arange(6.0).reshape(3, 2), "b": np.ones(2)}
    x = np.ones((4, 3))
    tree_close(fd.jit(f)(params, x, scale=2.0), f(params, x, scale=2.0))


def test_closure_over_array_becomes_constant():
    w = np.arange(3.0)
    f = fd.jit(lambda x: fnp.sum(x * w))
    assert f(np.ones(3)) == 3.0
    text = f.lower(np.ones(3)).as_text()
    assert text.startswith("{ lambda a:f64[3]; b:f64[3]. let")


def test_closure_over_outer_tracer():
    def outer(y):
        return fd.jit(lambda x: x * y + y ** 2)(2.0)
    # d/dy (2 y + y^2) = 2 + 2 y
    assert fd.grad(outer)(3.0) == 8.0
    close(fd.vmap(outer)(np.arange(3.0)), 2 * np.arange(3.0) + np.arange(3.0) ** 2)
    close(fd.vmap(fd.grad(outer))(np.arange(3.0)), 2 + 2 * np.arange(3.0))
    assert fd.jit(outer)(3.0) == 15.0


# --------------------------------------------------------------------------
# Composition with the other transforms
# --------------------------------------------------------------------------

def f_vec(x):
    return fnp.sum(fnp.tanh(x) * fnp.exp(-x ** 2) + fnp.sin(x))


def test_seed_example():
    assert fd.jit(fd.grad(seed))(0.0) == -1.5
    assert fd.grad(fd.jit(seed))(0.0) == -1.5


@pytest.mark.parametrize("name,transformed,reference", [
    ("jit(grad)", lambda f: fd.jit(fd.grad(f)), fd.grad),
    ("grad(jit)", lambda f: fd.grad(fd.jit(f)), fd.grad),
    ("jit(jit)", lambda f: fd.jit(fd.jit(f)), lambda f: f),
    ("hessian(jit)", lambda f: fd.hessian(fd.jit(f)), fd.hessian),
    ("jit(hessian)", lambda f: fd.jit(fd.hessian(f)), fd.hessian),
    ("jacfwd(jit)", lambda f: fd.jacfwd(fd.jit(f)), fd.jacfwd),
    ("jit(grad(jit))", lambda f: fd.jit(fd.grad(fd.jit(f))), fd.grad),
    ("grad(grad(jit))-diag", lambda f: fd.jit(fd.jacrev(fd.grad(fd.jit(f)))), fd.hessian),
])
def test_compositions_scalar_fn(name, transformed, reference):
    x = np.array([0.3, -1.2, 2.0])
    close(transformed(f_vec)(x), reference(f_vec)(x))


def test_vmap_compositions():
    xs = np.random.default_rng(0).normal(size=(5, 3))
    per_example = fd.vmap(fd.grad(f_vec))(xs)
    close(fd.jit(fd.vmap(fd.grad(f_vec)))(xs), per_example)
    close(fd.vmap(fd.jit(fd.grad(f_vec)))(xs), per_example)
    close(fd.vmap(fd.grad(fd.jit(f_vec)))(xs), per_example)
    close(fd.vmap(fd.jit(f_vec))(xs), fd.vmap(f_vec)(xs))
    close(fd.vmap(fd.jit(lambda x, y: x * y), in_axes=(0, None))(xs, np.arange(3.0)),
          xs * np.arange(3.0))
    close(fd.vmap(fd.jit(fnp.sum), in_axes=1)(xs), xs.sum(0))
    close(fd.vmap(fd.vmap(fd.jit(fnp.sin)))(xs), np.sin(xs))


def test_vmap_of_jit_stays_jitted():
    xs = np.ones((4, 3))
    jaxpr = fd.make_jaxpr(fd.vmap(fd.jit(f_vec)))(xs)
    assert [e.primitive.name for e in jaxpr.eqns] == ["jit_call"]
    inner = jaxpr.eqns[0].params["jaxpr"]
    assert inner.in_avals[0].shape == (4, 3)
    assert "jit_call" not in str(inner)
    fd.check_jaxpr(jaxpr.jaxpr)


def test_jvp_of_jit():
    x, t = np.array([0.1, 0.7]), np.array([1.0, -2.0])
    p1, t1 = fd.jvp(fd.jit(f_vec), (x,), (t,))
    p2, t2 = fd.jvp(f_vec, (x,), (t,))
    close(p1, p2)
    close(t1, t2)
    p3, t3 = fd.jit(lambda x, t: fd.jvp(fd.jit(f_vec), (x,), (t,)))(x, t)
    close(p3, p2)
    close(t3, t2)


def test_vjp_and_linearize_of_jit():
    x = np.array([0.1, 0.7])
    y, f_vjp = fd.vjp(fd.jit(fnp.sin), x)
    close(y, np.sin(x))
    close(f_vjp(np.ones(2))[0], np.cos(x))
    y, f_lin = fd.linearize(fd.jit(fnp.sin), x)
    close(f_lin(np.ones(2)), np.cos(x))
    for eqn in f_lin.linear_jaxpr.jaxpr.eqns:
        assert eqn.primitive.name != "jit_call"


def test_nested_jit_and_make_jaxpr():
    inner = fd.jit(lambda x: fnp.sin(x) * 2.0)
    outer = fd.jit(lambda x: inner(x) + inner(x * 3.0))
    x = np.linspace(0, 1, 4)
    close(outer(x), np.sin(x) * 2 + np.sin(3 * x) * 2)
    jaxpr = outer.lower(x).jaxpr
    names = [e.primitive.name for e in jaxpr.eqns]
    assert names.count("jit_call") == 2
    fd.check_jaxpr(jaxpr.jaxpr)
    text = str(fd.make_jaxpr(outer)(x))
    assert text.count("jit_call") == 3 and "sin" in text


def test_jit_call_abstract_eval_checks_types():
    closed = fd.jit(fnp.sin).lower(np.ones(3)).jaxpr
    with pytest.raises(TypeError, match="argument 0 has type f64\\[4\\]"):
        jit_call_p.abstract_eval(core.ShapedArray((4,), np.float64), jaxpr=closed, name="sin")


def test_jit_call_has_every_rule():
    for rule in ("impl", "abstract_eval", "jvp", "batch"):
        assert callable(getattr(jit_call_p, rule))


def test_custom_jvp_inside_jit():
    @fd.custom_jvp
    def f(x):
        return fnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return fnp.sin(x), 10.0 * t
    assert fd.jit(f)(0.5) == np.sin(0.5)
    assert fd.grad(fd.jit(f))(0.5) == 10.0
    assert fd.jit(fd.grad(f))(0.5) == 10.0


# --------------------------------------------------------------------------
# lower()
# --------------------------------------------------------------------------

def test_lower_as_text_and_executor_source():
    f = fd.jit(lambda x: fnp.exp(x) + 1.0)
    low = f.lower(np.ones(3, np.float32))
    assert isinstance(low.jaxpr, core.ClosedJaxpr)
    text = low.as_text()
    assert "a:f32[3]" in text and "exp a" in text and "add b 1.0" in text
    assert text.startswith(str(low.jaxpr))
    assert "def program(a0):" in low.numba_source and low.numba_source in text
    assert "def run(a0):" in low.executor_source
    assert f.trace_count == 1
    f(np.ones(3, np.float32))
    assert f.trace_count == 1           # lower() filled the cache


def test_method_decorator():
    class Model:
        def __init__(self, w):
            self.w = w

        @functools.partial(fd.jit, static_argnums=0)
        def apply(self, x):
            return x * self.w
    assert Model(2.0).apply(3.0) == 6.0


def test_multiple_result_primitives_and_custom_vjp():
    a = np.random.default_rng(0).normal(size=(3, 3))
    a = a @ a.T + 3 * np.eye(3)
    for fn in (fnp.linalg.eigh, fnp.linalg.slogdet, fnp.linalg.qr, fnp.linalg.svd):
        tree_close(fd.jit(fn)(a), fn(a), rtol=1e-10, atol=1e-10)

    @fd.custom_vjp
    def clip_grad(x):
        return x

    clip_grad.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -1.0, 1.0),))
    f = lambda x: fnp.sum(clip_grad(x) * 5.0)  # noqa: E731
    close(fd.jit(fd.grad(f))(np.ones(2)), np.ones(2))
    close(fd.grad(fd.jit(f))(np.ones(2)), np.ones(2))


def test_degenerate_signatures():
    assert fd.jit(lambda: 3.0)() == 3.0
    close(fd.jit(lambda: fnp.ones(2))(), np.ones(2))
    x = np.arange(3.0)
    a, b = fd.jit(lambda x: (x, x))(x)
    close(a, x)
    close(b, x)
    assert fd.jit(lambda x: None)(x) is None
    assert fd.jit(lambda x: {})(x) == {}


def test_negative_static_argnums_and_derived_caches_stay_bounded():
    import importlib
    jit_mod = importlib.import_module("functad.jit")     # functad.jit is the function
    jf = fd.jit(lambda x, n: x * n, static_argnums=-1)
    assert jf(2.0, 3) == 6.0 and jf.trace_count == 1
    assert jf(4.0, 3) == 12.0 and jf.trace_count == 1

    def outer(y):       # closes over a vmap tracer: retraced on every call
        return fd.jit(lambda x: x * y)(2.0)
    for _ in range(3):
        close(fd.vmap(outer)(np.arange(3.0)), 2 * np.arange(3.0))
    assert len(jit_mod._batched) <= jit_mod._MAX_DERIVED
    assert len(jit_mod._programs) <= jit_mod._MAX_DERIVED
