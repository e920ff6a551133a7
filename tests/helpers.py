"""Helpers shared by the test modules (imported as ``from helpers import ...``;
``tests/`` is on ``sys.path`` through ``pythonpath`` in pyproject.toml).

Two families:

* the vmap law (``test_*_vmap.py``, ``test_vmap.py``): ``vmap(f, in_axes,
  out_axes)(*args)`` equals the eager results of ``f`` on each example, taken
  along ``in_axes`` and stacked along ``out_axes`` with NumPy -- ``take``,
  ``stacked``, ``assert_same``, ``assert_tree_same``, ``assert_law``, and the
  Hypothesis pieces ``law``, ``values``, ``out_axis_for``;
* functad against NumPy (``test_indexing.py``, ``test_shapes.py``):
  ``assert_equals_numpy``, ``check_fn``, ``arr``.

The references here are deliberately independent of functad.batching (plain
loops and ``np.stack``), so that they can judge it.
"""

import numpy as np
from hypothesis import given, settings, strategies as st

import functad as fd
from functad import core, tree_util as tu
from functad.core import Array, check_jaxpr
from functad.testing import check_grads


# --------------------------------------------------------------------------
# The vmap law
# --------------------------------------------------------------------------

def law(test, max_examples=20):
    """``@settings(...) @given(data=st.data())``: one law, many Hypothesis examples."""
    return settings(max_examples=max_examples, deadline=None)(given(data=st.data())(test))


def take(x, i, axis):
    """Example ``i`` of ``x`` along ``axis`` (``x`` itself when ``axis`` is None)."""
    return x if axis is None else np.take(np.asarray(x), i, axis=axis)


def batch_size(args, in_axes):
    """The size of the first mapped axis."""
    return next(np.shape(x)[a] for x, a in zip(args, in_axes) if a is not None)


def stacked(f, args, in_axes, out_axes, n=None):
    """The reference: ``f`` on each example, eagerly, each output leaf stacked
    along ``out_axes``; a list of leaves (``(out,) = stacked(...)`` for one
    output).  ``n``, the batch size, is needed only when no axis is mapped."""
    if n is None:
        n = batch_size(args, in_axes)
    outs = [tu.tree_leaves(f(*[take(x, i, a) for x, a in zip(args, in_axes)]))
            for i in range(n)]
    return [np.stack([np.asarray(o[k]) for o in outs], axis=out_axes)
            for k in range(len(outs[0]))]


def assert_same(got, expected, tol32=1e-5, tol64=1e-12):
    """``got`` is concrete (not a tracer) with the shape and dtype of
    ``expected``; integer and boolean values are equal, floating ones equal
    within ``tol32`` (float32) or ``tol64`` (otherwise), NaNs in the same places."""
    assert not isinstance(got, core.Tracer)
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if got.dtype.kind in "fc":
        tol = tol32 if got.dtype == np.float32 else tol64
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, expected)


def assert_tree_same(got, expected, tol32=1e-5, tol64=1e-12):
    """``assert_same`` leaf by leaf, for pytrees of the same structure."""
    g_leaves, g_tree = tu.tree_flatten(got)
    e_leaves, e_tree = tu.tree_flatten(expected)
    assert g_tree == e_tree, (g_tree, e_tree)
    for g, e in zip(g_leaves, e_leaves):
        assert_same(g, e, tol32, tol64)


def assert_law(f, args, in_axes, out_axes):
    """vmap(f) equals the stacked loop, eagerly and staged (the staged jaxpr
    type-checks); returns the staged jaxpr."""
    in_axes = tuple(in_axes)
    expected = stacked(f, args, in_axes, out_axes)
    vf = fd.vmap(f, in_axes=in_axes, out_axes=out_axes)
    got = tu.tree_leaves(vf(*args))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert_same(g, e)
    closed = fd.make_jaxpr(vf)(*args)
    core.check_jaxpr(closed.jaxpr)
    staged = core.eval_jaxpr(closed.jaxpr, closed.consts, *tu.tree_leaves(args))
    for s, e in zip(staged, expected):
        assert_same(s, e)
    return closed.jaxpr


def values(seed, shape, dtype=np.float64, nans=False):
    """Small values with many ties (integers, and halves for inexact dtypes),
    with a NaN or two if ``nans`` (floating dtypes only)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-4, 5, shape) / (2.0 if np.dtype(dtype).kind in "fc" else 1.0)
    if nans and v.size and np.dtype(dtype).kind == "f":
        v = v.reshape(-1)
        v[rng.integers(0, v.size, 2)] = np.nan
        v = v.reshape(shape)
    return v.astype(dtype)


def out_axis_for(draw, rank):
    """A random (maybe negative) ``out_axes`` for a per-example output of rank ``rank``."""
    return draw(st.integers(-(rank + 1), rank))


# --------------------------------------------------------------------------
# functad against NumPy
# --------------------------------------------------------------------------

def assert_equals_numpy(got, want, eager=True):
    """Same structure, shapes, dtypes and values (exactly); eager results are
    functad values."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            assert_equals_numpy(g, w, eager)
        return
    want = np.asarray(want)
    if eager:
        assert isinstance(got, (Array, np.generic)), type(got)
    assert np.shape(got) == want.shape, (np.shape(got), want.shape)
    assert np.asarray(got).dtype == want.dtype, (np.asarray(got).dtype, want.dtype)
    np.testing.assert_array_equal(np.asarray(got), want)


def check_fn(f, np_f, args, grads=True, order=2, eager=True):
    """``f`` (functad) agrees with ``np_f`` (NumPy) eagerly (unless ``eager``
    is false) and staged, with the staged output avals' shapes and dtypes; the
    staged and linear jaxprs type-check; derivatives pass check_grads in both
    modes.  ``linearize`` runs even without ``grads``: the JVP's primal output
    runs the primitives' implementations on tracers' values."""
    want = np_f(*[np.asarray(a) for a in args])
    if eager:
        assert_equals_numpy(f(*args), want)
    closed = fd.make_jaxpr(f)(*args)
    check_jaxpr(closed.jaxpr)
    flat_want = tu.tree_leaves(want) if isinstance(want, (list, tuple)) else [want]
    assert [a.shape for a in closed.out_avals] == [np.shape(w) for w in flat_want]
    assert [a.dtype for a in closed.out_avals] == [np.asarray(w).dtype for w in flat_want]
    assert_equals_numpy(closed(*args), flat_want, eager=False)
    _, f_lin = fd.linearize(f, *args)
    if grads:
        check_jaxpr(f_lin.linear_jaxpr.jaxpr)
        check_grads(f, tuple(args), order=order, modes=("fwd", "rev"))


def arr(shape, dtype=np.float64, seed=0):
    """Standard normal values of ``shape`` and ``dtype``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------
# The jit law on the Numba tier (test_jit_numba.py, test_lower_*.py)
# --------------------------------------------------------------------------

def assert_jit_numba(f, *args, tol32=2e-6, tol64=1e-12, **kwargs):
    """``jit(f)`` compiled with Numba equals eager ``f`` (exactly for ints/bools).

    Compiles before the first call (backend "numba"), so a primitive without
    a lowering, or a lowering Numba rejects, fails here with the generated
    source in the message.  Returns the compiled results.  The program is
    staged for the exact shapes of ``args``: vary shapes sparingly, each new
    one is a new compile (~0.1-0.5 s).
    """
    want = f(*args, **kwargs)
    with fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        got = jf(*args, **kwargs)
    prog = jf._cache[next(iter(jf._cache))].prog if jf._cache else None
    assert prog is None or prog.state == "compiled"
    assert_tree_same(got, want, tol32, tol64)
    return got


def draw_dot_general_axes(draw, min_side=0):
    """Random dot_general operands' axes, for Hypothesis ``@st.composite``
    strategies: 0-2 batch, contracting and free axes of each kind, in any
    order, each of size ``min_side``-3.  Returns ``(x_labels, y_labels,
    size, dimension_numbers)``: labels "b*" (batch), "c*" (contracted),
    "l*"/"r*" (free in x/y), and the size of each label."""
    counts = [draw(st.integers(0, 2)) for _ in range(4)]     # batch, contract, lhs free, rhs free
    labels = {k: [f"{k}{i}" for i in range(n)] for k, n in zip("bclr", counts)}
    size = {lab: draw(st.integers(min_side, 3)) for labs in labels.values() for lab in labs}
    x_labels = draw(st.permutations(labels["b"] + labels["c"] + labels["l"]))
    y_labels = draw(st.permutations(labels["b"] + labels["c"] + labels["r"]))
    contract = draw(st.permutations(labels["c"]))
    batch = draw(st.permutations(labels["b"]))
    dn = ((tuple(x_labels.index(c) for c in contract), tuple(y_labels.index(c) for c in contract)),
          (tuple(x_labels.index(b) for b in batch), tuple(y_labels.index(b) for b in batch)))
    return x_labels, y_labels, size, dn


def draw_slice(draw, shape):
    """Random ``lax.slice`` bounds for ``shape``: ``(start, limit, strides)``."""
    start, limit, strides = [], [], []
    for n in shape:
        s = draw(st.integers(0, n))
        start.append(s)
        limit.append(draw(st.integers(s, n)))
        strides.append(draw(st.integers(1, 3)))
    return tuple(start), tuple(limit), tuple(strides)
