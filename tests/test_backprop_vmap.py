"""Per-example gradients on one batched tape (functad.backprop.record_batched_tape).

``grad`` called directly under an eager ``vmap`` records the batched
computation on a single tape instead of staging a linear jaxpr.  It must agree
with the definition of vmap (a loop of top-level gradients) and with the staged
path that ``jit(vmap(grad))`` takes, for every kind of primitive, any in_axes,
and the ways a function can reach batched values (arguments, closures, aux).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import backprop, core
from functad.testing import arrays, mutually_broadcastable_shapes

B = 3


@pytest.fixture
def taped(monkeypatch):
    """Counts the calls of the batched tape, to show that the path is taken."""
    calls = []
    real = backprop.record_batched_tape

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(backprop, "record_batched_tape", spy)
    return calls


def _loop(f, args, in_axes):
    """vmap by definition: f on each example, stacked."""
    n = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    rows = [f(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes)])
            for i in range(n)]
    return fd.tree_util.tree_map(lambda *r: np.stack([np.asarray(x) for x in r]), *rows)


def _check(f, args, in_axes, taped, tol=1e-12, **grad_kw):
    g = fd.grad(f, **grad_kw)
    got = fd.vmap(g, in_axes=in_axes)(*args)
    assert taped, "the batched tape was not used"
    want = _loop(g, args, in_axes)
    staged = fd.jit(fd.vmap(g, in_axes=in_axes))(*args)
    for a, b, c in zip(fd.tree_util.tree_leaves(got), fd.tree_util.tree_leaves(want),
                       fd.tree_util.tree_leaves(staged)):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(np.asarray(a), b, rtol=tol, atol=tol)
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=tol, atol=tol)
    return got


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_elementwise_per_example_gradients_equal_a_loop(data):
    taped = []
    real = backprop.record_batched_tape
    backprop.record_batched_tape = lambda *a, **k: taped.append(1) or real(*a, **k)
    try:
        s1, s2 = data.draw(mutually_broadcastable_shapes(2, max_dims=2)).input_shapes
        dt = data.draw(st.sampled_from([np.float32, np.float64]))
        x = data.draw(arrays(dt, s1, min_value=0.5, max_value=3.0))
        y = data.draw(arrays(dt, s2, min_value=0.5, max_value=3.0))
        axes = []
        args = []
        for v in (x, y):      # each argument: unbatched, or batched on a drawn axis
            ax = data.draw(st.sampled_from([None] + list(range(v.ndim + 1))))
            axes.append(ax)
            if ax is not None:
                v = np.stack([v * (1.0 + 0.25 * i) for i in range(B)], axis=ax).astype(dt)
            args.append(v)
        if axes == [None, None]:
            axes[1] = 0
            args[1] = np.stack([y] * B)

        def f(a, b):
            u = a * b + a / b - fnp.logaddexp(a, b) + fnp.sin(a) * 2.0
            return fnp.sum(u * u + fnp.tanh(b) - a)
        argnums = data.draw(st.sampled_from([0, 1, (0, 1)]))
        _check(f, args, tuple(axes), taped, tol=2e-4 if dt == np.float32 else 1e-10,
               argnums=argnums)
    finally:
        backprop.record_batched_tape = real


W = np.arange(6.0).reshape(3, 2) / 5
XS = np.linspace(-1, 1, B * 12).reshape(B, 4, 3)


@pytest.mark.parametrize("name,f,args,in_axes", [
    ("logistic regression", lambda w, x, y: fd.nn.softplus(fnp.dot(x, w)) - y * fnp.dot(x, w),
     (np.linspace(-1, 1, 5), np.linspace(-2, 2, B * 5).reshape(B, 5), np.array([0.0, 1.0, 1.0])),
     (None, 0, 0)),
    ("dot and reductions", lambda w, x: fnp.sum(fnp.tanh(x @ w) ** 2) + fnp.max(w), (W, XS),
     (None, 0)),
    ("both operands of a product batched", lambda w, x: fnp.sum(fnp.tanh(x @ w)),
     (np.stack([W, 2 * W, -W]), XS), (0, 0)),
    ("batch axis inside", lambda w, x: fnp.sum(fnp.tanh(x @ w)), (W, XS.transpose(1, 0, 2)),
     (None, 1)),
    ("indexing and at[]", lambda x: fnp.sum(x[1:, ::2] ** 2) + x.at[0, 1].set(7.0)[0, 2]
     * x[np.array([0, 2]), 1].sum(), (XS,), (0,)),
    ("where, clip, sort, cumsum", lambda x: fnp.sum(fnp.where(x > 0.3, x ** 3, -x)
                                                   * fnp.sort(x) + fnp.cumsum(fnp.clip(x, 0.1, 0.7))),
     (np.linspace(-1, 1, 7 * B).reshape(B, 7),), (0,)),
    ("shapes: reshape, transpose, concatenate with a constant, pad",
     lambda x: fnp.sum(fnp.concatenate([fnp.reshape(x, (3, 4)).T, fnp.ones((4, 1))], axis=1) ** 2)
     + fnp.sum(fnp.pad(x, ((1, 0), (0, 2))) * 1.5), (XS,), (0,)),
    ("custom rules: relu, softplus, logsumexp, norm", lambda x: fd.nn.relu(x).sum()
     + fd.nn.softplus(x).sum() + fd.nn.logsumexp(x) + fnp.linalg.norm(x),
     (np.linspace(-2, 2, 5 * B).reshape(B, 5),), (0,)),
    ("stop_gradient and integer ops", lambda x: fnp.sum(x * fd.stop_gradient(x)
                                                       + fnp.floor(x) * x),
     (np.linspace(-2, 2, 5 * B).reshape(B, 5),), (0,)),
    ("cond and scan", lambda x: fd.lax.cond(x.sum() > 0, lambda v: fnp.sum(v ** 2),
                                            lambda v: fnp.sum(v), x)
     + fd.lax.scan(lambda c, v: (c * v + 1.0, c), 1.0, x)[0],
     (np.linspace(-1.5, 1.5, 4 * B).reshape(B, 4),), (0,)),
    ("jit and vmap inside", lambda x: fd.jit(lambda v: fnp.sum(fnp.exp(v) * v))(x)
     + fnp.sum(fd.vmap(lambda r: r @ r)(fnp.reshape(x, (2, 2)))),
     (np.linspace(-1, 1, 4 * B).reshape(B, 4),), (0,)),
    ("linalg: slogdet, inv, solve, triangular solve",
     lambda a, b: fnp.linalg.slogdet(a)[1] + fnp.sum(fnp.linalg.inv(a))
     + fnp.sum(fnp.linalg.solve(a, b)) + fnp.sum(fd.lax.linalg.triangular_solve(
         a, b[:, None], lower=True, left_side=True)),
     (np.array([[[2.0, 0.5], [0.25, 3.0]], [[1.5, 0.1], [0.3, 2.0]], [[3.0, -0.5], [0.2, 1.0]]]),
      np.array([1.0, -2.0])), (0, None)),
    ("fan-out", lambda x: fnp.sum(x * x + x) * fnp.sum(x), (np.linspace(-1, 1, 3 * B).reshape(B, 3),),
     (0,)),
])
def test_every_kind_of_primitive_per_example(name, f, args, in_axes, taped):
    nums = tuple(i for i, a in enumerate(args) if a.dtype.kind == "f")
    _check(f, args, in_axes, taped, argnums=nums if len(nums) > 1 else nums[0])


def test_values_closed_over_and_auxiliary_outputs(taped):
    xs = np.linspace(-1, 1, B * 4).reshape(B, 4)
    w = np.array([0.5, -1.0, 2.0, 0.25])

    def per_example(x):     # grad of a function closing over the batched x
        def loss(w):
            z = fnp.tanh(x * w)
            return fnp.sum(z ** 2), {"z": z, "n": fnp.sum(x)}
        return fd.value_and_grad(loss, has_aux=True)(w)
    (value, aux), g = fd.vmap(per_example)(xs)
    assert taped
    for i in range(B):
        (v_i, aux_i), g_i = per_example(xs[i])
        np.testing.assert_allclose(value[i], v_i, rtol=1e-12)
        np.testing.assert_allclose(aux["z"][i], aux_i["z"], rtol=1e-12)
        np.testing.assert_allclose(aux["n"][i], aux_i["n"], rtol=1e-12)
        np.testing.assert_allclose(g[i], g_i, rtol=1e-12)
    for out in (value, aux["z"], g):     # results are immutable functad arrays
        assert isinstance(out, core.Array) and not out.flags.writeable


def test_pytrees_integers_and_an_output_that_does_not_depend(taped):
    params = {"w": np.array([[1.0, 2.0], [0.5, -1.0]]), "b": np.array([0.1, 0.2])}
    xs = np.arange(B * 2.0).reshape(B, 2)
    loss = lambda p, x: fnp.sum(fnp.tanh(x @ p["w"] + p["b"]))  # noqa: E731
    _check(loss, (params, xs), (None, 0), taped)
    with_int = fd.grad(lambda w, k: fnp.sum(w * k), argnums=(0, 1), allow_int=True)
    g = fd.vmap(with_int, in_axes=(None, 0))(np.ones(2), np.arange(B * 2).reshape(B, 2))
    np.testing.assert_array_equal(g[0], np.arange(B * 2).reshape(B, 2))
    one = with_int(np.ones(2), np.arange(2))[1]      # integers get zeros, as at the top level
    assert g[1].shape == (B, 2) and g[1].dtype == one.dtype and not np.any(g[1])
    zero = fd.vmap(fd.grad(lambda w, x: fnp.sum(x)), in_axes=(None, 0))(np.ones(2), xs)
    np.testing.assert_array_equal(zero, np.zeros((B, 2)))


def test_nested_transforms_around_the_batched_tape(taped):
    f = lambda w, x: fnp.sin(w * x) * w ** 3  # noqa: E731
    xs = np.linspace(0.1, 1.0, B)
    w = 0.7
    d2 = fd.vmap(fd.grad(fd.grad(f)), in_axes=(None, 0))(w, xs)
    want = [fd.grad(fd.grad(f))(w, x) for x in xs]
    np.testing.assert_allclose(d2, want, rtol=1e-12)
    # grad of a sum of per-example gradients: a tape above the vmap (no batched tape)
    outer = fd.grad(lambda w: fnp.sum(fd.vmap(fd.grad(f), in_axes=(None, 0))(w, xs)))(w)
    np.testing.assert_allclose(outer, sum(want), rtol=1e-12)
    two = fd.vmap(fd.vmap(fd.grad(f), in_axes=(None, 0)), in_axes=(0, None))(xs, xs)
    np.testing.assert_allclose(two, [[fd.grad(f)(a, b) for b in xs] for a in xs], rtol=1e-12)


def test_errors_under_vmap_are_the_usual_ones(taped):
    with pytest.raises(TypeError, match="scalar-output"):
        fd.vmap(fd.grad(lambda x: x * 2.0))(np.ones((B, 2)))
    with pytest.raises(fd.ConcretizationTypeError, match="batched value"):
        fd.vmap(fd.grad(lambda x: x if x > 0 else -x))(np.ones(B))


def test_results_keep_the_dtypes_of_one_example(taped):
    # a Python float parameter is weakly typed: float32 data keeps the value float32
    x = np.linspace(-1, 1, B * 2).reshape(B, 2).astype(np.float32)
    f = lambda w, x: fnp.sum(fnp.tanh(x * w))  # noqa: E731
    for w in (0.5, np.float32(0.5), np.full(2, 0.5, np.float32)):
        v, g = fd.vmap(fd.value_and_grad(f), in_axes=(None, 0))(w, x)
        v1, g1 = fd.value_and_grad(f)(w, x[0])
        assert v.dtype == np.asarray(v1).dtype and g.dtype == np.asarray(g1).dtype, w
        np.testing.assert_allclose(v[0], v1, rtol=1e-6)
        np.testing.assert_allclose(g[0], g1, rtol=1e-6)
    assert taped            # (the NumPy-typed parameters took the batched tape)
