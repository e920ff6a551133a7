"""Scratch arrays: the large temporaries of a compiled program are parameters
that the caller passes again at each call, shared between temporaries whose
lives do not overlap (``functad.lowering._scratch_arrays``).

What must hold: no output, and no view of an output, ever lives in a scratch
buffer (a later call would overwrite it); two temporaries share a buffer only
when the first is dead before the second is allocated, loops included; and
concurrent calls never share a set.  The planning is checked on hand-written
programs (no compile); compiled programs are checked against eager results
over several calls, and the random compositions of ``test_jit_numba`` are run
again with every temporary made scratch.
"""

import contextlib
import textwrap
import threading

import numpy as np
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lowering
from helpers import assert_tree_same
from test_jit_numba import _programs, _run


@contextlib.contextmanager
def every_temporary_is_scratch():
    old = lowering._SCRATCH_MIN_BYTES
    lowering._SCRATCH_MIN_BYTES = 0
    try:
        yield
    finally:
        lowering._SCRATCH_MIN_BYTES = old


def plan(body, rets):
    lines = ["    " + line for line in textwrap.dedent(body).strip("\n").split("\n")]
    with every_temporary_is_scratch():
        kept, scratch = lowering._scratch_arrays(lines, rets)
    return [line.strip() for line in kept], [name for name, _, _ in scratch]


# --------------------------------------------------------------------------
# The plan, on hand-written programs
# --------------------------------------------------------------------------

def test_a_dead_buffer_is_reused_and_a_live_one_is_not():
    kept, params = plan("""
        a = np.empty((4,), np.float32)
        f(a)
        b = np.empty((4,), np.float32)
        g(a, b)
        c = np.empty((4,), np.float32)
        h(c)
        out = np.empty((4,), np.float32)
        k(b, c, out)
        return (out, )""", ["out"])
    # b is allocated while a is live; c after a's last use: it takes a's buffer
    assert params == ["a", "b"]
    assert "c = a" in kept and "out = np.empty((4,), np.float32)" in kept


def test_the_most_recently_freed_buffer_of_the_same_shape_is_taken():
    kept, params = plan("""
        a = np.empty((4,), np.float32)
        b = np.empty((4,), np.float32)
        f(a)
        g(b)
        c = np.empty((4,), np.float32)
        d = np.empty((4,), np.float64)
        h(c, d)
        return ()""", [])
    assert params == ["a", "b", "d"]        # other dtype: a buffer of its own
    assert "c = b" in kept                  # b was freed after a


def test_a_buffer_used_in_a_loop_lives_until_the_loop_ends():
    kept, params = plan("""
        a = np.empty((4,), np.float32)
        for i in range(3):
            f(a)
            b = 1
            g(b)
        c = np.empty((4,), np.float32)
        while t:
            c[0] = a[0]
            d = np.empty((4,), np.float32)
            h(d)
        return ()""", [])
    # c is allocated after the for loop: it may reuse a, but a is read in the
    # while loop, so a lives until that loop ends
    assert params == ["a", "c"]


def test_names_that_reach_an_output_are_never_scratch():
    kept, params = plan("""
        a = np.empty((4,), np.float32)
        b = np.empty((4,), np.float32)
        c = np.empty((4,), np.float32)
        v = a.T
        w, z, = f(b, c)
        return (v, z, )""", ["v", "z"])
    assert params == []


def test_an_alias_extends_the_life_of_its_buffer():
    kept, params = plan("""
        a = np.empty((4,), np.float32)
        v = a[::-1]
        f(v)
        b = np.empty((4,), np.float32)
        g(b, v)
        return ()""", [])
    assert params == ["a", "b"]


def test_small_temporaries_stay_allocated_inside():
    lines = ["    a = np.empty((4,), np.float32)", "    f(a)", "    return ()"]
    kept, scratch = lowering._scratch_arrays(lines, [])
    assert scratch == [] and kept == lines


# --------------------------------------------------------------------------
# Compiled programs
# --------------------------------------------------------------------------

def _mlp_step(params, x):
    def loss(params, x):
        h = x
        for w in params[:-1]:
            h = fnp.tanh(h @ w)
        return fnp.sum((h @ params[-1]) ** 2)
    value, grads = fd.value_and_grad(loss)(params, x)
    return [p - 0.01 * g for p, g in zip(params, grads)], value


def _mlp_args(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s).astype(dtype) / 10 for s in [(64, 128), (128, 128), (128, 8)]]
    return params, rng.normal(size=(256, 64)).astype(dtype)


def test_a_training_step_reuses_its_temporaries_across_calls():
    with fd.config.override(jit_backend="numba"):
        step = fd.jit(_mlp_step)
        lowered = lowering.lower_jaxpr(step.lower(*_mlp_args(0)).jaxpr)
        header, *body = lowered.source.split("\n")
        params = header[:-2].split(", ")[-len(lowered.scratch):] if lowered.scratch else []
        # the large temporaries are parameters (which share them: the plan tests above)
        assert params and all(not p.startswith(("a", "c")) for p in params), header
        assert not any(f"{p} = np.empty" in line for p in params for line in body)
        held = []
        for seed in range(3):
            params_in, x_in = _mlp_args(seed)
            got = step(params_in, x_in)
            assert_tree_same(got, _mlp_step(params_in, x_in), tol32=1e-4)
            held.append((got, _mlp_step(params_in, x_in)))
        for got, want in held:      # earlier results were not overwritten
            assert_tree_same(got, want, tol32=1e-4)


def test_outputs_that_view_a_large_temporary_survive_later_calls():
    def f(x):
        t = fnp.tanh(x) * 2.0               # (128, 256) float32: 128 KiB
        return t.T, t.reshape(-1)[:5], fnp.sum(t * t)
    with fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        x1 = np.linspace(-1, 1, 128 * 256, dtype=np.float32).reshape(128, 256)
        r1 = jf(x1)
        r1_copy = [np.array(r) for r in r1]
        jf(x1[::-1].copy() + 1)
        assert_tree_same([np.asarray(r) for r in r1], r1_copy, tol32=0)
        assert_tree_same(r1, f(x1))


def test_control_flow_with_large_operands():
    def f(x, n):
        def body(c, _):
            return fnp.tanh(c @ x) + 1.0, fnp.sum(c)
        c, ys = fd.lax.scan(body, x, None, length=3)
        d = fd.lax.cond(n > 0, lambda c: c * 2.0, lambda c: c.T - 1.0, c)
        return d, ys, fd.lax.fori_loop(0, n, lambda i, v: fnp.sin(v), c)
    x = np.random.default_rng(0).normal(size=(128, 128)).astype(np.float32) / 16
    with every_temporary_is_scratch(), fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        for n in (2, 0, 3):
            assert_tree_same(jf(x, n), f(x, n), tol32=1e-4)


def test_concurrent_calls_each_have_their_own_scratch():
    with fd.config.override(jit_backend="numba"):
        step = fd.jit(_mlp_step)
        step(*_mlp_args(0))                 # compile once
        errors = []

        def work(seed):
            try:
                for k in range(20):
                    args = _mlp_args(seed * 100 + k % 3)
                    assert_tree_same(step(*args), _mlp_step(*args), tol32=1e-4)
            except Exception as e:          # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


def test_the_scratch_kept_between_calls_stays_within_the_limit():
    import gc
    from functad.compiler import _ScratchPool
    args = _mlp_args(1)
    gc.collect()
    before = _ScratchPool.held
    with fd.config.override(jit_backend="numba", jit_scratch_limit=0):
        step = fd.jit(_mlp_step)
        for _ in range(2):              # nothing kept: each call allocates
            assert_tree_same(step(*args), _mlp_step(*args), tol32=1e-4)
        assert _ScratchPool.held == before
    with fd.config.override(jit_backend="numba"):
        step = fd.jit(_mlp_step)
        step(*args)
        kept = _ScratchPool.held - before
        assert kept >= 256 * 128 * 4    # at least one (256, 128) float32 temporary
        step(*args)
        assert _ScratchPool.held - before == kept


def test_a_scratch_pool_counts_what_it_keeps():
    import gc
    from functad.compiler import _ScratchPool
    gc.collect()
    before = _ScratchPool.held
    pool = _ScratchPool([((128, 64), np.float32), ((10,), np.float64)])
    a, b = pool.take(), pool.take()         # two concurrent calls: two sets
    assert a[0] is not b[0] and a[0].shape == (128, 64) and a[1].dtype == np.float64
    assert all(x.ctypes.data % 64 == 0 and x.flags.writeable for x in a + b)
    pool.give(a)
    pool.give(b)
    assert _ScratchPool.held == before + 2 * pool.nbytes == before + 2 * (128 * 64 * 4 + 80)
    assert pool.take() is b and _ScratchPool.held == before + pool.nbytes
    with fd.config.override(jit_scratch_limit=before + pool.nbytes):
        pool.give(b)                        # over the limit: not kept
    assert len(pool.sets) == 1
    del pool
    gc.collect()
    assert _ScratchPool.held == before


@settings(max_examples=6, deadline=None)
@given(steps=_programs(), dtype=st.sampled_from([np.float32, np.float64]))
def test_random_compositions_with_every_temporary_as_scratch(steps, dtype):
    rng = np.random.default_rng(len(steps))
    f = fd.value_and_grad(lambda x, y: fnp.sum(_run(steps, x, y)[-1]))
    with every_temporary_is_scratch(), fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        for _ in range(2):                  # the second call reuses the buffers
            x = rng.normal(size=(3, 4)).astype(dtype)
            y = rng.normal(size=4).astype(dtype)
            assert_tree_same(jf(x, y), f(x, y), tol32=2e-5, tol64=1e-11)
