"""Control flow on jit's Numba tier: native if/while/for in the generated
code, equal to eager evaluation, under grad and vmap too."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functad as fd
import functad.numpy as fnp
from functad import lax
from helpers import assert_jit_numba


@pytest.fixture(autouse=True)
def numba_backend():
    with fd.config.override(jit_backend="numba"):
        yield


def _rnn(W, xs):
    h, ys = lax.scan(lambda h, x: (fnp.tanh(W @ h + x), h.sum()), fnp.zeros(3), xs)
    return fnp.sum(ys) + fnp.sum(h)


def test_scan_is_a_native_loop_writing_preallocated_outputs():
    W, xs = np.eye(3) * 0.5, np.linspace(-1, 1, 18).reshape(6, 3)
    src = fd.jit(_rnn).lower(W, xs).numba_source
    assert "for i" in src and "np.empty((6,)" in src, src
    assert_jit_numba(_rnn, W, xs)
    assert_jit_numba(fd.grad(_rnn), W, xs)          # the transposed scan runs backwards
    assert_jit_numba(fd.value_and_grad(_rnn, argnums=(0, 1)), W, xs)


def _allocations_in_loop(src, header):
    """The ``np.empty`` lines inside the loop that starts with ``header``."""
    lines = src.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return [line.strip() for line in body if "np.empty(" in line]


def test_loop_bodies_allocate_only_what_the_next_iteration_needs():
    """Temporaries of a scan body are allocated once, before the loop; only
    arrays that become the next carry are allocated per iteration."""
    W, xs = np.eye(3) * 0.5, np.linspace(-1, 1, 18).reshape(6, 3)
    src = fd.jit(_rnn).lower(W, xs).numba_source
    inside = _allocations_in_loop(src, "for i")
    assert len(inside) == 1, src                       # the new h, not W @ h
    grad_src = fd.jit(fd.grad(_rnn)).lower(W, xs).numba_source
    # carries are rebound, not copied, in the loops (copies only of the inputs)
    assert not [line for line in grad_src.splitlines()
                if "np.copy(" in line and line.startswith("        ")], grad_src

    # a carry that is a view of a temporary (rev of a product): the product's
    # buffer must not be reused while the carry still views it
    def rev_rnn(W, xs):
        return lax.scan(lambda h, x: ((W @ h)[::-1] + x, (W @ h).sum()), fnp.ones(3), xs)
    assert_jit_numba(rev_rnn, W + 0.1, xs)
    assert_jit_numba(fd.grad(lambda W, xs: fnp.sum(rev_rnn(W, xs)[1])), W + 0.1, xs)
    f = lambda x: lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, (W @ c[1])[::-1] + x),  # noqa
                                 (0, fnp.ones(3)))
    assert_jit_numba(f, np.arange(3.0))

    # rules that allocate and then fill by loops (3-d transpose, concatenate),
    # as temporaries and as the next carry
    def shifts(c, x):
        t = fnp.transpose(fnp.reshape(c, (2, 3, 2)), (2, 0, 1))          # a temporary
        new = fnp.concatenate([c[1:], fnp.sum(t, axis=(1, 2))[:1] * x])   # the next carry
        return new, fnp.transpose(fnp.reshape(new, (2, 3, 2)), (1, 2, 0))[0, 0]
    g = lambda xs: lax.scan(shifts, fnp.arange(12.0) / 10, xs)  # noqa: E731
    assert_jit_numba(g, np.linspace(0.5, 1.0, 7))


def test_scan_reverse_map_and_fori_loop():
    xs = np.arange(5.0)
    assert_jit_numba(lambda xs: lax.scan(lambda c, x: (c + x, x * c), 2.0, xs, reverse=True),
                     xs)
    assert_jit_numba(lambda xs: lax.map(lambda x: x ** 2 + 1, xs), xs)
    assert_jit_numba(lambda n, x: lax.fori_loop(0, n, lambda i, c: c + i * x, 0.0), 4, 1.5)
    assert_jit_numba(fd.grad(lambda x: lax.fori_loop(0, 3, lambda i, c: c * x, 1.0)), 2.0)


def test_while_loop_is_a_native_while():
    f = lambda x: lax.while_loop(lambda c: c[0] < 10, lambda c: (c[0] + 1, c[1] * x),  # noqa
                                 (0, 1.0))
    assert "while True:" in fd.jit(f).lower(1.1).numba_source
    assert_jit_numba(f, 1.1)
    # batched predicate: lanes stop at different trip counts
    g = fd.vmap(lambda x: lax.while_loop(lambda c: c < x, lambda c: c * 2.0, 1.0))
    assert_jit_numba(g, np.array([1.5, 10.0, 100.0, 0.5]))


def test_cond_and_switch_are_native_branches():
    f = lambda x: lax.cond(x > 1.0, lambda x: x * 10.0, lambda x: -x, x)  # noqa: E731
    src = fd.jit(f).lower(3.0).numba_source
    assert "if " in src and "else:" in src, src
    for v in (3.0, -1.0):
        assert_jit_numba(f, v)
    branches = [lambda x: x * 2, lambda x: fnp.sin(x), lambda x: x[::-1]]
    for i in (-3, 0, 1, 2, 7):                      # the index is clamped, as in JAX
        assert_jit_numba(lambda i, x: lax.switch(i, branches, x), i, np.arange(3.0))
    # batched predicate: both branches and a select
    h = fd.vmap(lambda p, x: lax.cond(p, lambda x: x * 2, lambda x: -x, x))
    assert_jit_numba(h, np.array([True, False]), np.ones((2, 3)))
    assert_jit_numba(fd.grad(lambda x: lax.cond(x > 0, fnp.sin, fnp.cos, x)), 0.5)


@settings(max_examples=6, deadline=None)
@given(n=st.integers(0, 12), x=st.floats(-1.5, 1.5))
def test_trip_counts_against_a_python_loop(n, x):
    f = lambda x: lax.fori_loop(0, n, lambda i, c: fnp.sin(c) + x, x)  # noqa: E731
    want = x
    for _ in range(n):
        want = np.sin(want) + x
    got = assert_jit_numba(f, x)
    np.testing.assert_allclose(got, want, rtol=1e-12)
