"""functad.lax control flow: cond, switch, while_loop, fori_loop, scan, map.

Each primitive is compared with a Python-loop reference (the same function
written with Python ``for``/``if`` on concrete values, which functad
differentiates and batches by tracing through it), under grad, jacfwd, vmap
and jit, with Hypothesis drawing trip counts, shapes and values.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core, lax
from functad.lax.control_flow import cond_p, scan_p, while_p
from functad.testing import check_grads, check_vmap
from helpers import assert_tree_same

FEW = settings(max_examples=15, deadline=None)


def arr(shape, seed, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def close(got, want, tol=1e-10):
    """Same pytree, shapes and dtypes; values within ``tol``."""
    assert_tree_same(got, want, tol32=1e-5, tol64=tol)


def eqns_of(jaxpr, name):
    """The equations of primitive ``name`` in ``jaxpr`` and its sub-jaxprs."""
    found = []
    for e in jaxpr.eqns:
        if e.primitive.name == name:
            found.append(e)
        for p in e.params.values():
            subs = p if isinstance(p, tuple) else (p,)
            for s in subs:
                if isinstance(s, core.ClosedJaxpr):
                    found += eqns_of(s.jaxpr, name)
    return found


# --------------------------------------------------------------------------
# scan
# --------------------------------------------------------------------------

def rnn_step(w, h, x):
    return fnp.tanh(w @ h + x)


def rnn_scan(w, h0, xs, reverse=False):
    def step(carry, x):
        h, acc = carry
        h = rnn_step(w, h, x)
        return (h, acc + fnp.sum(h * x)), {"h": h, "sq": fnp.sum(h ** 2)}
    (h, acc), ys = lax.scan(step, (h0, 0.0), xs, reverse=reverse)
    return fnp.sum(h) + acc + fnp.sum(ys["h"][-1:] * 0.5) + fnp.sum(ys["sq"])


def rnn_loop(w, h0, xs, reverse=False):
    h, acc, hs, sqs = h0, 0.0, [], []
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    out = [None] * len(xs)
    for i in order:
        h = rnn_step(w, h, xs[i])
        acc = acc + fnp.sum(h * xs[i])
        out[i] = (h, fnp.sum(h ** 2))
    hs = fnp.stack([o[0] for o in out]) if out else fnp.zeros((0,) + np.shape(h0))
    sqs = fnp.stack([o[1] for o in out]) if out else fnp.zeros(0)
    return fnp.sum(h) + acc + fnp.sum(hs[-1:] * 0.5) + fnp.sum(sqs)


rnn_cases = st.tuples(st.integers(0, 6), st.integers(1, 3), st.booleans(), st.integers(0, 999))


@FEW
@given(rnn_cases)
def test_scan_matches_loop_eagerly_jitted_and_staged(case):
    length, n, reverse, seed = case
    w, h0, xs = arr((n, n), seed, 0.5), arr(n, seed + 1), arr((length, n), seed + 2)
    want = rnn_loop(w, h0, xs, reverse)
    close(rnn_scan(w, h0, xs, reverse), want)
    close(fd.jit(rnn_scan, static_argnums=3)(w, h0, xs, reverse), want)
    closed = fd.make_jaxpr(rnn_scan, static_argnums=3)(w, h0, xs, reverse)
    core.check_jaxpr(closed.jaxpr)
    assert len(eqns_of(closed.jaxpr, "scan")) == 1
    close(closed(w, h0, xs)[0], want)


@FEW
@given(rnn_cases)
def test_scan_grad_and_jacfwd_match_loop(case):
    length, n, reverse, seed = case
    w, h0, xs = arr((n, n), seed, 0.5), arr(n, seed + 1), arr((length, n), seed + 2)
    args = (w, h0, xs, reverse)
    want = fd.grad(rnn_loop, argnums=(0, 1, 2))(*args)
    close(fd.grad(rnn_scan, argnums=(0, 1, 2))(*args), want)
    close(fd.jit(fd.grad(rnn_scan, argnums=(0, 1, 2)), static_argnums=3)(*args), want)
    close(fd.jacfwd(rnn_scan, argnums=(0, 1, 2))(*args),
          fd.jacfwd(rnn_loop, argnums=(0, 1, 2))(*args))


@FEW
@given(rnn_cases, st.sampled_from([(0, None, None), (None, 0, 1), (None, None, 0), (0, 0, 1),
                                   (1, None, 2)]))
def test_scan_vmap_matches_loop(case, in_axes):
    length, n, reverse, seed = case
    b = 3
    shapes = [(n, n), (n,), (length, n)]
    args = []
    for k, (shape, ax) in enumerate(zip(shapes, in_axes)):
        x = arr(shape if ax is None else shape[:ax] + (b,) + shape[ax:], seed + k, 0.5)
        args.append(x)
    check_vmap(lambda w, h, x: rnn_scan(w, h, x, reverse), tuple(args), in_axes=in_axes,
               atol=1e-10, rtol=1e-10)
    # and the per-example gradients
    check_vmap(lambda w, h, x: fd.grad(rnn_scan, argnums=(0, 1))(w, h, x, reverse), tuple(args),
               in_axes=in_axes, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_check_grads_to_order_2(reverse):
    w, h0, xs = arr((2, 2), 0, 0.5), arr(2, 1), arr((3, 2), 2)
    check_grads(lambda w, h, x: rnn_scan(w, h, x, reverse), (w, h0, xs), order=2)
    check_grads(fd.jit(lambda w, h, x: rnn_scan(w, h, x, reverse)), (w, h0, xs), order=2)


def test_scan_hessian_matches_loop():
    w, h0, xs = arr((2, 2), 3, 0.5), arr(2, 4), arr((4, 2), 5)
    close(fd.hessian(rnn_scan)(w, h0, xs), fd.hessian(rnn_loop)(w, h0, xs))
    close(fd.jit(fd.hessian(rnn_scan))(w, h0, xs), fd.hessian(rnn_loop)(w, h0, xs))


def test_scan_reverse_mode_stores_per_iteration_residuals_only():
    """The linear scan of reverse mode reads loop-invariant residuals (the
    weight matrix, anything computed from it alone) once, and the slices of
    xs from xs itself; only values that change per iteration are stacked."""
    T, n = 50, 4
    w, h0, xs = arr((n, n), 0, 0.5), arr(n, 1), arr((T, n), 2)

    def loss(w):
        def step(h, x):
            return fnp.tanh((w * 2.0).T @ h + x), None
        return fnp.sum(lax.scan(step, h0, xs)[0])
    _, f_lin = fd.linearize(loss, w)
    lin = f_lin.linear_jaxpr.jaxpr
    core.check_jaxpr(lin)
    (eqn,) = eqns_of(lin, "scan")
    ops = [a.aval for a in eqn.inputs]
    stacked = [a for a, is_lin in zip(ops[eqn.params["num_consts"] + eqn.params["num_carry"]:],
                                       eqn.params["linear"][eqn.params["num_consts"]
                                                            + eqn.params["num_carry"]:])
               if not is_lin]
    invariant = [a for a, is_lin in zip(ops[:eqn.params["num_consts"]], eqn.params["linear"])
                 if not is_lin]
    # per step: h (an operand of the matmul's derivative) and tanh's partial
    assert sorted(a.shape for a in stacked) == [(T, n), (T, n)]
    assert [a.shape for a in invariant] == [(n, n)]        # (2w).T, once
    stored = sum(a.size for a in stacked + invariant)
    assert stored == 2 * T * n + n * n
    close(fd.grad(loss)(w), fd.grad(lambda w: fnp.sum(_loop_h(w, h0, xs)))(w))


def _loop_h(w, h, xs):
    for x in xs:
        h = fnp.tanh((w * 2.0).T @ h + x)
    return h


def test_scan_xs_none_pytrees_and_none_outputs():
    def f(c, _):
        return {"a": c["a"] * 2.0, "b": (c["b"][0] + 1,)}, (None, c["a"])
    carry, (none, ys) = lax.scan(f, {"a": fnp.ones(2), "b": (0,)}, None, length=3)
    assert none is None
    close(carry, {"a": np.full(2, 8.0), "b": (np.int64(3),)})
    close(ys, np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]]))
    # zero-length scans return the initial carry and empty stacks
    carry, ys = lax.scan(lambda c, x: (c + x, c * x), 1.5, np.zeros(0))
    assert float(carry) == 1.5 and np.shape(ys) == (0,)
    # map is a scan without a carry
    close(lax.map(lambda r: fnp.sum(r ** 2), np.arange(6.0).reshape(3, 2)),
          np.array([1.0, 13.0, 41.0]))
    close(fd.jit(fd.grad(lambda x: fnp.sum(lax.map(fnp.sin, x))))(np.arange(3.0)),
          np.cos(np.arange(3.0)))


@FEW
@given(st.integers(0, 5), st.integers(0, 2), st.integers(0, 999))
def test_map_matches_loop(length, ndim, seed):
    xs, w = arr((length,) + (3,) * ndim, seed), arr(3, seed + 1)

    def f(xs, w):
        return lax.map(lambda x: {"s": fnp.sin(x) * w[0], "t": fnp.sum(x * x)}, xs)

    def ref(xs, w):
        outs = [{"s": fnp.sin(x) * w[0], "t": fnp.sum(x * x)} for x in xs]
        if not outs:
            return {"s": fnp.zeros(xs.shape), "t": fnp.zeros(0)}
        return {"s": fnp.stack([o["s"] for o in outs]), "t": fnp.stack([o["t"] for o in outs])}
    close(f(xs, w), ref(xs, w))
    close(fd.jit(f)(xs, w), ref(xs, w))

    def loss(f):
        return lambda xs, w: fnp.sum(f(xs, w)["s"] ** 2) + fnp.sum(f(xs, w)["t"])
    close(fd.grad(loss(f), argnums=(0, 1))(xs, w), fd.grad(loss(ref), argnums=(0, 1))(xs, w))
    close(fd.jacfwd(loss(f), argnums=(0, 1))(xs, w), fd.jacfwd(loss(ref), argnums=(0, 1))(xs, w))
    if length:
        check_vmap(f, (xs, arr((2, 3), seed + 2)), in_axes=(None, 0))
        check_vmap(f, (np.stack([xs, -xs], -1), w), in_axes=(-1, None))


def test_scan_unroll_is_accepted_and_changes_nothing():
    xs = np.arange(5.0)
    want = lax.scan(lambda c, x: (c * 0.5 + x, c), 1.0, xs)
    for unroll in (2, 5, True, False):
        close(lax.scan(lambda c, x: (c * 0.5 + x, c), 1.0, xs, unroll=unroll), want)
    with pytest.raises(TypeError, match="unroll"):
        lax.scan(lambda c, x: (c, c), 1.0, xs, unroll=1.5)


def test_scan_weak_carry_takes_the_body_dtype():
    c, _ = lax.scan(lambda c, x: (c + x, None), 0, np.ones(3, np.float32))
    assert np.asarray(c).dtype == np.float32 and float(c) == 3.0
    c, _ = lax.scan(lambda c, x: (c * x, None), 1.0, np.full(3, 2.0, np.float32))
    assert np.asarray(c).dtype == np.float32 and float(c) == 8.0


def test_scan_errors():
    init = {"h": fnp.zeros(2), "n": (np.int64(0),)}
    with pytest.raises(TypeError, match=r"carry\['h'\] has shape \(2,\) and dtype float64 "
                                        r"\(f64\[2\]\) in the carry input \(init\) but shape "
                                        r"\(3,\) and dtype float64"):
        lax.scan(lambda c, x: ({"h": fnp.ones(3), "n": c["n"]}, None), init, None, length=2)
    with pytest.raises(TypeError, match=r"carry\['n'\]\[0\] has shape \(\) and dtype int64 "
                                        r"\(i64\[\]\).*dtype float32"):
        lax.scan(lambda c, x: ({"h": c["h"], "n": (np.float32(1.0),)}, None), init, None,
                 length=2)
    with pytest.raises(TypeError, match="pytree structure"):
        lax.scan(lambda c, x: ((c["h"],), None), init, None, length=2)
    with pytest.raises(TypeError, match="must be a pair"):
        lax.scan(lambda c, x: c, 0.0, np.ones(2))
    with pytest.raises(ValueError, match="`length` not provided"):
        lax.scan(lambda c, x: (c, x), 0.0, None)
    with pytest.raises(ValueError, match="disagrees with leading axis sizes"):
        lax.scan(lambda c, x: (c, x), 0.0, np.ones(3), length=4)
    with pytest.raises(ValueError, match="different leading axis sizes"):
        lax.scan(lambda c, x: (c, x), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="no leading axis"):
        lax.scan(lambda c, x: (c, x), 0.0, 1.0)


# --------------------------------------------------------------------------
# cond and switch
# --------------------------------------------------------------------------

def piecewise(x, y):
    def pos(ops):
        x, y = ops
        return {"v": fnp.sin(x) * y, "w": x * x}

    def neg(ops):
        x, y = ops
        return {"v": fnp.exp(0.3 * x) - y, "w": fnp.cos(x) * y}
    return lax.cond(fnp.sum(x) > 0, pos, neg, (x, y))


def piecewise_loop(x, y):
    if fnp.sum(x) > 0:
        return {"v": fnp.sin(x) * y, "w": x * x}
    return {"v": fnp.exp(0.3 * x) - y, "w": fnp.cos(x) * y}


def total(f):
    return lambda *a: fnp.sum(f(*a)["v"]) + fnp.sum(f(*a)["w"] ** 2)


@FEW
@given(st.integers(0, 2), st.integers(0, 999))
def test_cond_matches_python_if_under_every_transform(ndim, seed):
    shape = (2,) * ndim
    x, y = arr(shape, seed), arr(shape, seed + 1)
    close(piecewise(x, y), piecewise_loop(x, y))
    close(fd.jit(piecewise)(x, y), piecewise_loop(x, y))
    g = fd.grad(total(piecewise), argnums=(0, 1))
    want = fd.grad(total(piecewise_loop), argnums=(0, 1))(x, y)
    close(g(x, y), want)
    close(fd.jit(g)(x, y), want)                    # a traced predicate: known + linear cond
    close(fd.jacfwd(piecewise)(x, y), fd.jacfwd(piecewise_loop)(x, y))
    close(fd.jit(fd.jacrev(piecewise))(x, y), fd.jacrev(piecewise_loop)(x, y))
    # vmap: a batched predicate runs both branches and selects per example
    xb, yb = arr((4,) + shape, seed + 2), arr((4,) + shape, seed + 3)
    check_vmap(piecewise, (xb, yb))
    check_vmap(g, (xb, yb), atol=1e-10, rtol=1e-10)
    check_vmap(fd.jit(g), (xb, yb), atol=1e-10, rtol=1e-10)
    # an unbatched predicate stays a cond
    check_vmap(piecewise, (x, yb), in_axes=(None, 0))
    assert len(eqns_of(fd.make_jaxpr(fd.vmap(piecewise, (None, 0)))(x, yb).jaxpr, "cond")) == 1


def test_cond_check_grads_to_order_2():
    for x in (np.array([0.4, 0.9]), np.array([-0.4, -0.9])):
        y = np.array([1.3, -0.2])
        check_grads(total(piecewise), (x, y), order=2)
        check_grads(fd.jit(total(piecewise)), (x, y), order=2)
        check_grads(piecewise, (x, y), order=1)


def test_cond_linearization_under_jit_is_a_known_and_a_linear_cond():
    jaxpr = fd.make_jaxpr(fd.grad(lambda x: lax.cond(x > 0, fnp.sin, fnp.cos, x)))(0.5).jaxpr
    core.check_jaxpr(jaxpr)
    conds = eqns_of(jaxpr, "cond")
    # the known cond returns both branches' residuals (cos x, -sin x), the linear
    # cond takes them (not linear) and the tangent (linear)
    assert [e.params["linear"] for e in conds] == [(False,), (False, False, True)]
    for e in conds:
        for b in e.params["branches"]:
            core.check_jaxpr(b.jaxpr)
    # eagerly the predicate is concrete: only the chosen branch is differentiated
    _, f_lin = fd.linearize(lambda x: lax.cond(x > 0, fnp.sin, fnp.cos, x), 0.5)
    assert not eqns_of(f_lin.linear_jaxpr.jaxpr, "cond")


@FEW
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=5), st.integers(0, 999))
def test_switch_clamps_and_matches_python(indices, seed):
    fns = [lambda x: x + 1.0, lambda x: x * x, lambda x: fnp.sin(x), lambda x: -x]

    def ref(i, x):
        return fns[min(max(i, 0), len(fns) - 1)](x)

    def f(i, x):
        return lax.switch(i, fns, x)
    xs = arr(len(indices), seed)
    idx = np.array(indices)
    for i, x in zip(indices, xs):
        close(f(i, x), ref(i, x))
        close(fd.jit(f)(i, x), ref(i, x))
        close(fd.grad(f, argnums=1)(i, x), fd.grad(ref, argnums=1)(i, x))
        close(fd.jit(fd.grad(f, argnums=1))(i, x), fd.grad(ref, argnums=1)(i, x))
        close(fd.jacfwd(f, argnums=1)(i, x), fd.jacfwd(ref, argnums=1)(i, x))
    check_vmap(f, (idx, xs))
    check_vmap(fd.grad(f, argnums=1), (idx, xs))
    check_vmap(f, (idx, xs[0]), in_axes=(0, None))


def test_switch_check_grads_to_order_2_through_a_traced_index():
    fns = [lambda x: fnp.sin(x) * x, lambda x: fnp.exp(x), lambda x: x ** 3]
    for i in range(3):
        f = fd.jit(lambda x, i: lax.switch(i, fns, x))
        check_grads(lambda x: f(x, i), (0.7,), order=2)


def test_cond_with_integer_predicate_and_weak_outputs():
    assert lax.cond(2, lambda: 1.0, lambda: 2.0) == 1.0
    out = lax.cond(True, lambda: 1.0, lambda: np.float32(2.0))
    assert np.asarray(out).dtype == np.float32
    assert lax.switch(0, [lambda x: x], 5.0) == 5.0       # one branch: just a call


def test_cond_errors():
    with pytest.raises(TypeError, match=r"identical types: the leaf output has shape \(2,\) and "
                                        r"dtype float32 \(f32\[2\]\) in the output of false_fun"
                                        r" but shape \(2,\) and dtype float64"):
        lax.cond(True, lambda x: x, lambda x: x.astype(np.float32), fnp.ones(2))
    with pytest.raises(TypeError, match=r"output\['a'\]\[1\] has shape \(1,\)"):
        lax.cond(True, lambda x: {"a": (x, x)}, lambda x: {"a": (x, x[:1])}, fnp.ones(2))
    with pytest.raises(TypeError, match=r"branches\[2\] returns a pytree with structure"):
        lax.switch(1, [lambda x: (x, x), lambda x: (x, x), lambda x: [x, x]], 1.0)
    with pytest.raises(TypeError, match="Pred must be a scalar"):
        lax.cond(fnp.ones(2) > 0, lambda x: x, lambda x: x, 1.0)
    with pytest.raises(TypeError, match="Pred type must be either boolean or number"):
        lax.cond(1.0, lambda x: x, lambda x: x, 1.0)
    with pytest.raises(TypeError, match="Index must be scalar integers"):
        lax.switch(1.0, [lambda x: x, lambda x: x], 1.0)
    with pytest.raises(ValueError, match="Empty branch sequence"):
        lax.switch(0, [], 1.0)


# --------------------------------------------------------------------------
# while_loop and fori_loop
# --------------------------------------------------------------------------

def collatz_like(x, limit):
    """Iterate x <- 1.5 sin(x) + 0.1 until the counter reaches limit or x > 1.2."""
    def cond_fun(c):
        i, x = c
        return (i < limit) & (fnp.max(x) < 1.2)

    def body_fun(c):
        i, x = c
        return i + 1, 1.5 * fnp.sin(x) + 0.1
    return lax.while_loop(cond_fun, body_fun, (0, x))


def collatz_loop(x, limit):
    i = 0
    while i < limit and fnp.max(x) < 1.2:
        i, x = i + 1, 1.5 * fnp.sin(x) + 0.1
    return np.int64(i), x


@FEW
@given(st.integers(0, 8), st.integers(0, 2), st.integers(0, 999))
def test_while_matches_loop_with_jvp_jacfwd_and_jit(limit, ndim, seed):
    x = arr((2,) * ndim, seed, 0.3)
    want = collatz_loop(x, limit)
    close(collatz_like(x, limit), want)
    close(fd.jit(collatz_like)(x, limit), want)
    t = arr((2,) * ndim, seed + 1)
    f, f_ref = (lambda x: collatz_like(x, limit)[1]), (lambda x: collatz_loop(x, limit)[1])
    close(fd.jvp(f, (x,), (t,)), fd.jvp(f_ref, (x,), (t,)))
    close(fd.jacfwd(f)(x), fd.jacfwd(f_ref)(x))
    close(fd.jit(fd.jacfwd(f))(x), fd.jacfwd(f_ref)(x))
    y, f_jvp = fd.linearize(f, x)                 # the linear jaxpr reruns the loop
    close(f_jvp(t), fd.jvp(f_ref, (x,), (t,))[1])


def test_while_forward_mode_to_order_2():
    f = lambda x: collatz_like(x, 4)[1]       # noqa: E731
    x = np.array([0.2, 0.4])
    check_grads(f, (x,), order=2, modes=("fwd",))
    close(fd.jacfwd(fd.jacfwd(f))(x), fd.jacfwd(fd.jacfwd(lambda x: collatz_loop(x, 4)[1]))(x))


def test_while_reverse_mode_raises_the_jax_error():
    f = lambda x: collatz_like(x, 5)[1]       # noqa: E731
    for transform in (fd.grad, fd.jacrev, lambda g: fd.jit(fd.grad(g))):
        with pytest.raises(ValueError, match="Reverse-mode differentiation does not work for "
                                             "lax.while_loop or lax.fori_loop with dynamic "
                                             "start/stop values. Try using lax.scan"):
            transform(f)(0.3)
    # fori_loop with traced bounds is a while_loop
    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
        fd.jit(fd.grad(lambda x, n: lax.fori_loop(0, n, lambda i, v: v * x, x)))(2.0, 3)


def test_batched_while_lanes_take_their_own_trip_counts():
    limits = np.array([0, 3, 1, 7, 5])
    x0 = np.array([0.1, 0.2, 0.05, 0.01, 0.3])
    got_i, got_x = fd.vmap(collatz_like)(x0, limits)
    want = [collatz_loop(x, n) for x, n in zip(x0, limits)]
    np.testing.assert_array_equal(got_i, [w[0] for w in want])
    np.testing.assert_allclose(got_x, [w[1] for w in want], rtol=1e-14)
    assert len(set(np.asarray(got_i).tolist())) > 2      # the lanes finished at different times
    check_vmap(collatz_like, (x0, limits))
    # the tangent of a finished lane is frozen with its value
    jac = fd.vmap(fd.jacfwd(lambda x, n: collatz_like(x, n)[1]))(x0, limits)
    close(jac, np.array([fd.jacfwd(lambda x: collatz_loop(x, n)[1])(x)
                         for x, n in zip(x0, limits)]))
    check_vmap(fd.jit(collatz_like), (x0, limits))


def test_batched_while_with_an_unbatched_predicate_stays_a_while():
    f = lambda x: lax.while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, c[1] * 1.5),  # noqa: E731
                                 (0, x))
    check_vmap(f, (np.arange(3.0),))
    jaxpr = fd.make_jaxpr(fd.vmap(f))(np.arange(3.0)).jaxpr
    (w,) = eqns_of(jaxpr, "while")
    assert not eqns_of(w.params["body_jaxpr"].jaxpr, "select")


def test_while_errors():
    with pytest.raises(TypeError, match=r"init_val\[1\]\['x'\] has shape \(2,\) and dtype "
                                        r"float64 \(f64\[2\]\) in the input \(init_val\) but "
                                        r"shape \(3,\)"):
        lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, {"x": fnp.ones(3)}),
                       (0, {"x": fnp.ones(2)}))
    with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
        lax.while_loop(lambda c: c, lambda c: c, 1.0)
    with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
        lax.while_loop(lambda c: c > 0, lambda c: c, fnp.ones(2))


@FEW
@given(st.integers(-2, 4), st.integers(-2, 6), st.integers(0, 999))
def test_fori_loop_concrete_bounds_is_a_scan_with_reverse_mode(lower, upper, seed):
    x = arr(2, seed, 0.5)

    def body(i, v):
        return fnp.sin(v) * (i + 1.5)

    def f(x):
        return lax.fori_loop(lower, upper, body, x)

    def ref(x):
        for i in range(lower, upper):
            x = body(i, x)
        return x
    close(f(x), ref(x))
    close(fd.jit(f)(x), ref(x))
    close(fd.jacrev(f)(x), fd.jacrev(ref)(x))
    close(fd.jit(fd.jacrev(f))(x), fd.jacrev(ref)(x))
    jaxpr = fd.make_jaxpr(f)(x).jaxpr
    assert eqns_of(jaxpr, "scan") and not eqns_of(jaxpr, "while")
    # traced bounds: a while_loop, with forward mode
    g = fd.jit(lambda x, lo, hi: lax.fori_loop(lo, hi, body, x))
    close(g(x, lower, upper), ref(x))
    assert eqns_of(fd.make_jaxpr(lambda x, lo, hi: lax.fori_loop(lo, hi, body, x))(
        x, lower, upper).jaxpr, "while")
    close(fd.jacfwd(g)(x, lower, upper), fd.jacfwd(ref)(x))


def test_fori_loop_vmapped_over_bounds():
    f = lambda n, x: lax.fori_loop(0, n, lambda i, v: v * x + i, 1.0)  # noqa: E731
    check_vmap(f, (np.array([0, 1, 4, 2]), np.array([0.5, 1.5, 2.0, -1.0])))
    check_vmap(fd.jacfwd(f, argnums=1), (np.array([0, 1, 4, 2]), np.array([0.5, 1.5, 2.0, -1.0])))


# --------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------

def nested(x, xs):
    """A cond and an inner scan inside a reverse scan."""
    def step(c, xi):
        c = lax.cond(xi > 0, lambda c: c * fnp.sin(xi), lambda c: c + xi ** 2, c)
        d, ds = lax.scan(lambda d, _: (d * 0.9 + fnp.cos(d), d), c, None, length=3)
        return d, fnp.sum(ds)
    c, ys = lax.scan(step, x, xs, reverse=True)
    return c + fnp.sum(ys)


def nested_loop(x, xs):
    c, total_ = x, 0.0
    for xi in xs[::-1]:
        c = c * fnp.sin(xi) if xi > 0 else c + xi ** 2
        for _ in range(3):
            total_ = total_ + c
            c = c * 0.9 + fnp.cos(c)
    return c + total_


def test_nested_control_flow_under_grad_hessian_vmap_and_jit():
    x, xs = 0.7, np.array([0.5, -0.3, 1.2, -2.0])
    close(nested(x, xs), nested_loop(x, xs))
    want = fd.grad(nested_loop, argnums=(0, 1))(x, xs)
    close(fd.grad(nested, argnums=(0, 1))(x, xs), want)
    close(fd.jit(fd.grad(nested, argnums=(0, 1)))(x, xs), want)
    close(fd.hessian(nested, argnums=1)(x, xs), fd.hessian(nested_loop, argnums=1)(x, xs))
    close(fd.jit(fd.hessian(nested, argnums=1))(x, xs), fd.hessian(nested_loop, argnums=1)(x, xs))
    check_grads(nested, (x, xs), order=2)
    xb, xsb = np.array([0.1, 0.7, 1.0]), np.stack([xs, -xs, xs * 2], 1)
    check_vmap(nested, (xb, xsb), in_axes=(0, 1))
    check_vmap(fd.grad(nested, argnums=(0, 1)), (xb, xsb), in_axes=(0, 1), atol=1e-10,
               rtol=1e-10)


def test_closures_over_outer_tracers_become_operands():
    # the body closes over the differentiated w: grad(grad) through it
    def f(w):
        return lax.scan(lambda c, x: (c * w + x, None), 1.0, np.arange(3.0))[0]
    # f(w) = w^3 + 0 w^2 + 1 w + 2
    close(fd.grad(f)(2.0), np.float64(3 * 4.0 + 1))
    close(fd.grad(fd.grad(f))(2.0), np.float64(6 * 2.0))
    close(fd.vmap(fd.grad(f))(np.array([1.0, 2.0])), np.array([4.0, 13.0]))


def test_primitives_have_every_rule():
    for p in (cond_p, while_p, scan_p):
        for rule in ("impl", "abstract_eval", "jvp", "batch", "transpose"):
            assert callable(getattr(p, rule)), (p, rule)
    assert lax.select is fd.lax.elementwise.select
