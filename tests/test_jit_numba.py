"""jit's Numba tier: the jit law for the elementwise family, fusion, tiers, caches.

The law ``jit(f)(x) == f(x)`` is checked for every row of the elementwise
tables at once: one program per dtype computes every row on its own input, so
the whole family costs a handful of Numba compiles, and Hypothesis then
varies the values (not the shapes, which would recompile).  The other
families have their own files (test_lower_*.py).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import functad as fd
import functad.numpy as fnp
from functad import core
from helpers import assert_jit_numba, assert_tree_same
from test_elementwise import (BINARY_DOMAINS, NONDIFF_BINARY, NONDIFF_UNARY, UNARY_DOMAINS)

SHAPE = (2, 3)


@pytest.fixture(autouse=True)
def numba_backend():
    with fd.config.override(jit_backend="numba"):
        yield


def _prim(name):
    return core.primitives[name].bind


def _unary_program(names):
    def f(xs):
        return {n: _prim(n)(xs[n]) for n in names}
    return f


def _binary_program(names):
    def f(xs):
        return {n: _prim(n)(*xs[n]) for n in names}
    return f


def _draw(data, domain, dtype, label, shape=SHAPE):
    return data.draw(arrays(dtype, shape, elements=domain.strategy), label=label)


# --------------------------------------------------------------------------
# The law for every elementwise row, float32 and float64
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_every_float_row_jit_equals_eager(dtype, data):
    unary = sorted(UNARY_DOMAINS)
    binary = sorted(BINARY_DOMAINS)
    xs = {n: _draw(data, UNARY_DOMAINS[n], dtype, n) for n in unary}
    ys = {n: tuple(_draw(data, d, dtype, f"{n}[{i}]") for i, d in enumerate(BINARY_DOMAINS[n]))
          for n in binary}
    # float32 transcendental functions differ from NumPy's SIMD versions by an ulp
    tol32 = 4e-6 if dtype == np.float32 else None
    assert_jit_numba(lambda a, b: (_unary_program(unary)(a), _binary_program(binary)(b)),
                     xs, ys, **({"tol32": tol32} if tol32 else {}))


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_every_nondifferentiable_row_jit_equals_eager(data):
    xs = {n: _draw(data, d, dt, n) for n, (dt, d) in NONDIFF_UNARY.items()}
    ys = {n: (_draw(data, d, dt, n + "[0]"), _draw(data, d, dt, n + "[1]"))
          for n, (dt, d) in NONDIFF_BINARY.items()}
    assert_jit_numba(lambda a, b: (_unary_program(sorted(xs))(a),
                                   _binary_program(sorted(ys))(b)), xs, ys)


def test_integer_and_bool_operands_promote_like_numpy():
    i = np.array([[1, -2, 3], [0, 5, -7]], np.int64)
    i32 = i.astype(np.int32)
    b = np.array([[True, False, True], [False, False, True]])
    f32 = np.linspace(-1, 1, 6, dtype=np.float32).reshape(SHAPE)

    def f(i, i32, b, f32):
        return [fnp.sin(i), fnp.sqrt(fnp.abs(i32)), i / 2, i // 2, i % 3, i32 + i, -i32,
                b + b, b * 2, i ** 2, fnp.maximum(i, 0), f32 + i32, f32 * 2, f32 / 3,
                i32 + 1.5, b & True, fnp.invert(b), fnp.invert(i), f32 > 0.25, i == 3,
                fnp.where(b, f32, 0.5), fnp.where(b, i, -1), fnp.abs(i), fnp.sign(i)]
    assert_jit_numba(f, i, i32, b, f32)


def test_special_values_match_numpy():
    x = np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 1e308], np.float64)

    def f(x):
        with np.errstate(all="ignore"):
            return [fnp.maximum(x, 0.5), fnp.minimum(x, np.nan), fnp.exp(x), fnp.log(x),
                    x / 0.0, fnp.sign(x), fnp.floor(x), fnp.round(x + 0.5), x ** 0.5,
                    fnp.arctan2(x, -1.0), fnp.logaddexp(x, x), fnp.mod(x, 0.0), x // 0.0,
                    fnp.max(x), fnp.min(x[:4]), fnp.sum(x[:4]), fnp.isnan(x)]
    with np.errstate(all="ignore"):
        assert_jit_numba(f, x)


def test_integer_division_by_zero_gives_numpy_zero_not_an_exception():
    i = np.array([7, -7, 0], np.int64)
    with np.errstate(all="ignore"):
        assert_jit_numba(lambda i: [i // 0, i % 0, fnp.fmod(i, 0)], i)


def test_broadcasting_and_weak_scalars():
    x = np.arange(3.0, dtype=np.float32).reshape(3, 1)
    y = np.linspace(0, 1, 4, dtype=np.float32)
    assert_jit_numba(lambda x, y, s: (x * y + s, fnp.tanh(x) - 1, s * 2.0), x, y, 1.5)
    assert_jit_numba(lambda x, s: x + s, x, np.float32(2.5))


# --------------------------------------------------------------------------
# What the generated code looks like
# --------------------------------------------------------------------------

def _source(f, *args):
    return fd.jit(f).lower(*args).numba_source


def test_value_and_grad_of_a_chain_is_one_loop():
    x = np.linspace(-1, 1, 40)
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x ** 2) + fnp.sin(x))  # noqa: E731
    src = _source(fd.value_and_grad(f), x)
    fast = src.split("    if unsafe")[0]        # the loop with vectorizable sin/cos ...
    assert fast.count("for ") == 1, src
    # only the gradient is materialized, besides the block of summands that
    # keeps the loop free of a loop-carried float sum (so that it vectorizes)
    assert fast.count("np.empty(") == 2 and fast.count("= np.empty(40, ") == 1, src
    sums = [line.strip() for line in fast.splitlines() if "+=" in line and "unsafe" not in line]
    assert len(sums) == 1 and sums[0].endswith("+= _rt.fsum(sbuf2, 40)"), src
    assert "_vm.sin_f64" in fast and "np.sin(" in src.split("    if unsafe")[1]  # ... and
    # the same loop with the C library's sin/cos, run only if some |x| > 1e5
    got = assert_jit_numba(fd.value_and_grad(f), x)
    assert np.isfinite(got[0])


def test_long_sums_are_added_block_by_block():
    """A sum over more than one block (2048) of a fused loop's innermost axis:
    the loop is cut into blocks, each block's summands added by _rt.fsum; the
    same for sums along rows of a 2-D loop (one block per row)."""
    x = np.linspace(-2, 2, 5000)
    f = lambda x: (fnp.sum(fnp.exp(-x * x)), fnp.sum(fnp.reshape(x, (50, 100)) ** 2, axis=1))  # noqa: E731
    src = _source(f, x)
    assert "for j" in src and "min(2048, 5000 - j" in src, src
    assert src.count("_rt.fsum(") == 2, src
    got = assert_jit_numba(f, x)
    assert abs(got[0] - np.sum(np.exp(-x * x))) < 1e-12
    # max/min over the same axis keep the plain accumulation (no buffer)
    assert "fsum" not in _source(lambda x: fnp.sum(x) + fnp.max(x), x)
    # an empty innermost axis: nothing to add, the buffer is never read
    assert_jit_numba(lambda x: (fnp.sum(fnp.exp(x)), fnp.sum(fnp.exp(x), axis=1)), np.ones((3, 0)))


def test_sin_cos_beyond_the_fast_range_rerun_exactly():
    x = np.array([0.5, 2e5, -3e7, 1e300, np.inf, np.nan, -0.0])
    with np.errstate(invalid="ignore"):
        got = assert_jit_numba(lambda x: (fnp.sin(x), fnp.cos(x) * 2, fnp.sum(fnp.sin(x[:3]))),
                               x, tol64=0)
        assert_jit_numba(lambda x: fnp.sin(x[0]) + fnp.cos(x[1]), x[1:3], tol64=0)
    assert got[0][1] == np.sin(2e5)


def test_float32_programs_compute_in_float32():
    x = np.ones((2, 3), np.float32)
    src = _source(lambda x: fnp.exp(x * 0.5 - 1) / (1 + x ** 2), x)
    assert "float64" not in src, src


def test_broadcast_operands_are_read_in_place():
    x, b = np.ones((4, 3)), np.arange(3.0)
    src = _source(lambda x, b: fnp.tanh(x + b.reshape(1, 3)) * 2, x, b)
    assert "broadcast_to" not in src and "a1[i1]" in src, src
    assert_jit_numba(lambda x, b: fnp.tanh(x + b.reshape(1, 3)) * 2, x, b)


def test_softmax_and_logsumexp_fuse_their_reductions():
    x = np.random.default_rng(0).normal(size=(4, 5))
    for f in [fd.nn.softmax, fd.nn.log_softmax, lambda x: fd.nn.logsumexp(x, axis=1),
              fd.grad(lambda x: fnp.sum(fd.nn.log_softmax(x)[:, 0]))]:
        assert_jit_numba(f, x)
    src = _source(fd.nn.softmax, x)
    assert src.count("for i0") == 4, src      # max, shift (4, 1), exp and sum, divide
    assert src.count("np.empty(") == 3, src      # rows of 5: summed in place, no buffer


def test_seed_examples_are_exact_when_compiled():
    f = lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))  # noqa: E731
    assert fd.jit(fd.grad(f))(0.0) == -1.5
    g = fd.jit(fd.grad(lambda x: fnp.log(1 + fnp.exp(x[0] * x[1]))))
    assert_tree_same(g(np.array([0.0, 1.0])), np.array([0.5, 0.0]))


def test_jit_of_vmap_of_grad_and_nested_jit():
    w = np.linspace(-1, 1, 3)
    xs = np.random.default_rng(1).normal(size=(5, 3))
    loss = lambda w, x: fnp.log1p(fnp.exp(-fnp.tanh(x * w).sum()))  # noqa: E731
    assert_jit_numba(fd.vmap(fd.grad(loss), in_axes=(None, 0)), w, xs)
    inner = fd.jit(lambda x: fnp.sin(x) * 2)
    assert_jit_numba(lambda x: inner(x) + inner(x * 3), xs)     # inlined twice
    assert_jit_numba(fd.grad(lambda x: fnp.sum(inner(x) ** 2)), xs)


def test_custom_rules_and_stop_gradient_are_inlined():
    x = np.array([-2.0, 0.0, 3.0])
    assert_jit_numba(lambda x: (fd.nn.relu(x), fd.nn.softplus(x), fd.stop_gradient(x) * x), x)
    assert_jit_numba(fd.grad(lambda x: fnp.sum(fd.nn.relu(x) + fd.nn.softplus(x))), x)


def test_constants_are_arguments_not_baked_in():
    c = np.arange(3.0)
    f = fd.jit(lambda x: x * c + np.float32(2))
    low = f.lower(np.ones(3))
    assert "def program(a0, c0)" in low.numba_source
    assert_tree_same(f(np.ones(3)), c + 2)


def test_scalar_outputs_have_numpy_types():
    f = fd.jit(lambda x: (fnp.sum(x), x[0] > 0, fnp.argmax(x), fnp.sum(x.astype("float32"))))
    s, b, i, s32 = f(np.arange(3.0))
    assert type(s) is np.float64 and type(b) is np.bool_ and type(i) is np.int64
    assert type(s32) is np.float32


def test_inputs_are_coerced_to_the_compiled_types():
    f = fd.jit(lambda x, s: x * s)
    x = np.arange(6.0).reshape(2, 3)
    assert_tree_same(f(x, 2.0), x * 2)
    assert_tree_same(f(x.T.copy().T, np.array(2.0)), x * 2)   # Fortran order, 0-d array
    assert_tree_same(f(np.asfortranarray(x), 3.0), x * 3)


def test_big_loops_run_on_threads_small_ones_do_not():
    x = np.linspace(-2, 2, 4 * 64).reshape(4, 64)
    f = lambda x: (fnp.sum(fnp.exp(x) ** 2), fnp.tanh(x) * 2, fnp.max(x, axis=1))  # noqa: E731
    with fd.config.override(jit_parallel_threshold=128):
        low = fd.jit(f).lower(x)
        # the max over axis 1 keeps axis 0 (one row per iteration): still parallel
        assert low.numba_source.count("prange") == 1 and low.program.lower().parallel
        assert_jit_numba(f, x)
    assert "prange" not in fd.jit(f).lower(x).numba_source   # default threshold: 2**18
    with fd.config.override(jit_parallel_threshold=128):
        g = lambda x: fnp.max(x, axis=0)  # noqa: E731  (iterations would race on a row)
        assert "prange" not in fd.jit(g).lower(x).numba_source


def test_loops_ask_llvm_for_its_widest_vectors():
    import numba
    from functad import numba_runtime as rt
    x = np.linspace(-2, 2, 4 * 64).reshape(4, 64)
    f = lambda x: fnp.tanh(x) * 2  # noqa: E731
    assert fd.jit(f).lower(x).numba_source.count("_rt.prefer_wide_vectors()") == 1
    with fd.config.override(jit_parallel_threshold=128):
        # and again in the prange loop's body, which Numba compiles apart
        src = fd.jit(f).lower(x).numba_source
        assert src.count("_rt.prefer_wide_vectors()") == 2, src
    assert "prefer_wide_vectors" not in fd.jit(lambda x: x + 1).lower(2.0).numba_source

    def loop(a):
        rt.prefer_wide_vectors()
        for i in range(a.size):
            a[i] = np.float32(2) * a[i]
    k = numba.njit(error_model="numpy")(loop)
    k(np.ones(3, np.float32))
    ir = next(iter(k.inspect_llvm().values()))
    assert '"prefer-vector-width"="512"' in ir


# --------------------------------------------------------------------------
# Tiers and errors
# --------------------------------------------------------------------------

def test_tiered_runs_numpy_first_then_switches_to_numba():
    from functad.compiler import wait_for_background
    with fd.config.override(jit_backend="tiered"):
        f = fd.jit(lambda x: fnp.cos(x) * 3 + 1)
        x = np.linspace(0, 1, 5)
        first = f(x)
        prog = next(iter(f._cache.values())).prog
        assert prog.state == "numpy"
        second = f(x)                       # schedules the compilation
        assert prog.state in ("compiling", "compiled")
        wait_for_background()
        assert prog.state == "compiled"
        third = f(x)
    for r in (first, second, third):
        assert_tree_same(r, np.cos(x) * 3 + 1)
    assert f.trace_count == 1


def test_tiered_switches_at_once_to_a_program_in_the_disk_cache():
    f = lambda x: fnp.sin(x) * 4 + 2  # noqa: E731
    x = np.linspace(0, 1, 4)
    with fd.config.override(jit_backend="numba"):
        fd.jit(f)(x)                        # now in the disk cache
    with fd.config.override(jit_backend="tiered"):
        g = fd.jit(f)                       # a new jit: a new Program, same source
        g(x), g(x)
        prog = next(iter(g._cache.values())).prog
        assert prog.state == "compiled" and prog.job is None
        # the compiled code itself runs, not the NumPy tier under a "compiled" label
        assert prog.run not in (prog.numpy_run, prog._while_compiling)
        assert_tree_same(g(x), np.sin(x) * 4 + 2)


def test_tiered_without_a_writable_cache_compiles_in_a_thread(tmp_path, monkeypatch):
    from functad.compiler import wait_for_background
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("FUNCTAD_CACHE_DIR", str(blocker / "cache"))
    with fd.config.override(jit_backend="tiered"):
        f = fd.jit(lambda x: fnp.cos(x) * 5 - 1)
        x = np.linspace(0, 1, 3)
        f(x), f(x)
        prog = next(iter(f._cache.values())).prog
        assert prog.job is not None and prog.job.proc is None     # a thread, no process
        wait_for_background()
        assert prog.state == "compiled"
        assert_tree_same(f(x), np.cos(x) * 5 - 1)


def test_a_function_called_once_never_compiles():
    with fd.config.override(jit_backend="tiered"):
        f = fd.jit(lambda x: x - 1)
        f(np.ones(2))
        assert next(iter(f._cache.values())).prog.lowered is None


def _unlowerable():
    p = core.Primitive("test_no_lowering")
    p.impl = lambda x: x + 1
    p.abstract_eval = lambda a: a
    return p


def test_missing_lowering_is_an_error_in_numba_mode_and_a_warning_when_tiered():
    from functad.compiler import wait_for_background
    from functad.lowering import LoweringError
    p = _unlowerable()
    try:
        with pytest.raises(LoweringError, match="test_no_lowering"):
            fd.jit(lambda x: p.bind(x) * 2)(np.ones(2))
        with fd.config.override(jit_backend="tiered"):
            f = fd.jit(lambda x: p.bind(x) * 2)
            f(np.ones(2))
            with pytest.warns(RuntimeWarning, match="NumPy executor"):
                f(np.ones(2))
            wait_for_background()
            assert_tree_same(f(np.ones(2)), np.full(2, 4.0))
    finally:
        del core.primitives["test_no_lowering"]


def test_config_rejects_unknown_settings_and_values():
    with pytest.raises(ValueError, match="jit_backend"):
        fd.config.update("jit_backend", "xla")
    with pytest.raises(KeyError, match="known"):
        fd.config.update("jit_backendd", "numba")


# --------------------------------------------------------------------------
# The disk cache, across processes
# --------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import numpy as np, functad as fd, functad.numpy as fnp
    fd.config.update("jit_backend", "numba")
    f = fd.jit(lambda x: fnp.sum(fnp.sin(x) * 3.0 + x ** 2))
    out = f(np.linspace(0, 1, 11))
    prog = next(iter(f._cache.values())).prog
    print(repr(float(out)), prog.run.from_disk)
""")


def _child(cache, numba_cache=None):
    env = dict(os.environ, FUNCTAD_CACHE_DIR=str(cache))
    env.pop("NUMBA_CACHE_DIR", None)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    r = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    value, from_disk = r.stdout.split()
    return float(value), from_disk == "True", r.stderr


@pytest.mark.parametrize("numba_cache_dir", [False, True],
                         ids=["numba files beside the source", "NUMBA_CACHE_DIR set"])
def test_disk_cache_is_reused_across_processes_and_survives_corruption(tmp_path, numba_cache_dir):
    want = float(np.sum(np.sin(np.linspace(0, 1, 11)) * 3.0 + np.linspace(0, 1, 11) ** 2))
    numba_dir = tmp_path / "numba" if numba_cache_dir else None
    cache = tmp_path / "functad"
    v1, disk1, _ = _child(cache, numba_dir)
    v2, disk2, _ = _child(cache, numba_dir)
    assert (disk1, disk2) == (False, True)
    assert v1 == v2 and abs(v1 - want) < 1e-12
    # corrupt every cache file (index and data) as a crash mid-write might
    files = [p for p in (numba_dir or cache / "__pycache__").rglob("*")
             if p.suffix in (".nbi", ".nbc")]
    assert files
    for p in files:
        p.write_bytes(b"\x80\x04garbage")
    v3, disk3, err = _child(cache, numba_dir)
    assert v3 == v1 and not disk3
    assert "could not be read" in err and "recompiling" in err
    v4, disk4, _ = _child(cache, numba_dir)          # the entry was rewritten
    assert v4 == v1 and disk4


# --------------------------------------------------------------------------
# Hypothesis-generated compositions (fusion across ops, views and reductions)
# --------------------------------------------------------------------------

_UNARY_OPS = [fnp.sin, fnp.tanh, fnp.exp, lambda v: fnp.log1p(fnp.abs(v)), fnp.negative,
              lambda v: v ** 2, lambda v: fnp.sqrt(fnp.abs(v) + 1), fd.nn.relu, fd.nn.sigmoid]
_BINARY_OPS = [fnp.add, fnp.subtract, fnp.multiply, fnp.maximum,
               lambda a, b: a / (1 + b * b), lambda a, b: fnp.where(a > b, a, b * 0.5)]


@st.composite
def _programs(draw):
    """A random straight-line program over x (3, 4) and y (4,): a list of steps."""
    steps = []
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce", "bcast", "transpose"]))
        steps.append((kind, draw(st.integers(0, 8)), draw(st.integers(0, 8))))
    return steps


def _run(steps, x, y):
    vals = [x, y]
    for kind, i, j in steps:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if kind == "unary":
            vals.append(_UNARY_OPS[j % len(_UNARY_OPS)](a))
        elif kind == "binary":
            if fnp.ndim(a) < fnp.ndim(b):
                a, b = b, a
            if fnp.shape(b) not in [(), fnp.shape(a), fnp.shape(a)[-1:]]:
                b = fnp.sum(b)
            vals.append(_BINARY_OPS[j % len(_BINARY_OPS)](a, b))
        elif kind == "reduce":
            axis = None if fnp.ndim(a) < 2 or j % 3 == 0 else j % 2
            vals.append((fnp.sum, fnp.max, fnp.mean)[i % 3](a, axis=axis))
        elif kind == "bcast":
            vals.append(fnp.broadcast_to(a, (3, 4)) if fnp.shape(a) in [(), (4,), (3, 4)]
                        else a)
        else:
            vals.append(a.T if fnp.ndim(a) == 2 else a)
    return [fnp.sum(v) for v in vals[2:]] + [vals[-1]]


@settings(max_examples=8, deadline=None)
@given(steps=_programs(), dtype=st.sampled_from([np.float32, np.float64]))
def test_random_compositions_jit_equals_eager(steps, dtype):
    rng = np.random.default_rng(len(steps))
    x = rng.normal(size=(3, 4)).astype(dtype)
    y = rng.normal(size=4).astype(dtype)
    assert_jit_numba(lambda x, y: _run(steps, x, y), x, y, tol32=2e-5, tol64=1e-11)
    assert_jit_numba(fd.grad(lambda x, y: fnp.sum(_run(steps, x, y)[-1])), x, y,
                     tol32=2e-5, tol64=1e-11)
