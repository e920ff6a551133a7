"""functad.jit against JAX's jit and hand-written references: issue 4's benchmarks.

Run from the repository root::

    python benchmarks/bench_jit.py                   # all cases, under a minute with tier 0
    python benchmarks/bench_jit.py --quick           # fewer, shorter samples
    python benchmarks/bench_jit.py --cases 3,4       # some cases only

Cases (the numbers of issue 4's "Benchmarks" section in brackets):

1. [1] dispatch: ``jit(lambda x: x + 1)`` on a 10-element float64 array.
   Reference: NumPy's ``x + 1``.
2. [2] the seed function ``f(x) = -log(1/(1+exp(-3x)))``: ``jit(grad(f))(0.5)``
   on a Python float.  Reference: the derivative written by hand with NumPy
   scalars.
3. [3] ``sum(tanh(x) * exp(-x**2) + sin(x))``, value and gradient
   (``jit(value_and_grad(f))``), n = 1e6 float64.  Reference: a hand-written
   single-loop ``@numba.njit`` computing the value and the gradient in one pass.
4. [4] MLP 784-512-512-10, tanh, softmax cross-entropy (``log_softmax``),
   float32: one SGD step ``params - lr * grad`` with ``value_and_grad`` under
   jit, batch 128 and 1024.  Reference: the step's 8 matrix products alone
   (``np.dot`` into preallocated outputs, float32), which also give the
   machine's float32 matmul throughput at these shapes; the step's achieved
   fraction of it is printed below the table.
5. [6] per-example gradients of logistic regression (B=1000, D=100, float32):
   ``jit(vmap(grad(loss), in_axes=(None, 0, 0)))``.  Reference: the gradient
   vectorised by hand in NumPy, ``(sigmoid(X w) - y)[:, None] * X``.

6. (no target) the seed's gradient with the jit inside: ``grad(jit(f))(0.5)``,
   against JAX's ``grad(jit(f))``.  Reference: functad's ``jit(grad(f))``, the
   order that compiles the whole gradient.

Issue 4's benchmark 5 (time to first result in a fresh process) is
``bench_jit_startup.py``.

Everything runs on one thread: the BLAS, Numba and XLA thread settings are
put into ``os.environ`` at the top of this file, before NumPy is imported,
and the process is pinned to one CPU (``os.sched_setaffinity``, Linux;
``--no-pin`` to skip).  The pinning is what makes JAX single-threaded: XLA's
CPU runtime splits large fusions and matrix products over a thread pool as
big as the CPUs the process may use, whatever ``XLA_FLAGS`` say (measured
here: unpinned, JAX's MLP step at batch 1024 used 1.9 CPU-seconds per
second, and the chain of case 3 ran in 25 ms or 45 ms depending on whether
the second core was free).
JAX runs with ``jax_enable_x64`` (for the float64 cases; the float32 cases
pass explicit float32 arrays, and every output's dtype is checked).  Inputs
are already JAX arrays for JAX, and every JAX call ends in
``block_until_ready``.  A PyTorch column (eager PyTorch: ``torch.autograd``,
``torch.func`` for case 5) appears when ``import torch`` works.

functad is asked for its compiled tier with
``functad.config.update("jit_backend", "numba")`` (and
``FUNCTAD_JIT_BACKEND=numba``); while that option does not exist, ``jit`` runs
its NumPy executor (tier 0).  The header says which backend ran.
``--backend`` asks for another one (``numpy``, ``tiered``); with ``tiered``,
which compiles in the background while NumPy answers, each functad row is
first called for ``--settle`` seconds (default 10) before it is measured, so
that it has switched to compiled code.

The first call of every row (tracing and compiling for the jit rows and the
``@njit`` reference) is timed on its own and printed in a second table, in
seconds.  functad compiles into an empty temporary ``FUNCTAD_CACHE_DIR``, so
its first calls are cold compiles (the first one in the process also pays
for Numba's own start-up).  Then the rows of a case are measured as in the other benchmarks
(``_timing.measure``): samples of all rows interleaved round by round, the
median time per call, and ratios that are medians of per-round ratios.
"""

import atexit
import os
import shutil
import tempfile

# One thread for BLAS, Numba and XLA; this must happen before NumPy (or JAX,
# or Numba) is imported.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMBA_NUM_THREADS"] = "1"
# (intra_op_parallelism_threads is not an XLA flag and changes nothing; see the
# docstring for what does)
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("FUNCTAD_JIT_BACKEND", "numba")
# An empty disk cache for functad's compiled programs, removed at exit, so that
# a first call compiles (warm-cache start-up is bench_jit_startup.py's job).
CACHE_DIR = tempfile.mkdtemp(prefix="bench_jit_cache_")
atexit.register(shutil.rmtree, CACHE_DIR, True)
os.environ["FUNCTAD_CACHE_DIR"] = CACHE_DIR
os.environ["NUMBA_CACHE_DIR"] = os.path.join(CACHE_DIR, "numba")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _timing import measure, median_ratio  # noqa: E402  (also sets sys.path)
from bench_jit_startup import (init_mlp, make_mlp_step, mlp_flops, pin_to_one_cpu,  # noqa: E402
                               select_backend)
import functad as fd  # noqa: E402
import functad.numpy as fnp  # noqa: E402
from functad.tree_util import tree_map  # noqa: E402

HAVE_JAX = importlib.util.find_spec("jax") is not None


def _importable(name):
    """Whether ``import name`` works (a broken install counts as missing)."""
    try:
        importlib.import_module(name)
    except (ImportError, OSError):
        return False
    return True


HAVE_TORCH = _importable("torch")
KINDS = ("functad", "jax", "ref", "torch")


class Case:
    """A workload: ``rows`` maps a kind in KINDS to a zero-argument callable
    returning NumPy-convertible results.  ``check(got, want)`` compares a
    row's first result with ``want``: the reference row's, or ``expected()``
    when the reference computes something else (the MLP's matmul floor)."""

    def __init__(self, key, name, unit, rows, check, ref_name, expected=None):
        self.key, self.name, self.unit = key, name, unit
        self.rows, self.check, self.ref_name = rows, check, ref_name
        self.expected = expected


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax, jax.numpy


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


def close(rtol, atol=0.0, dtype=None):
    """A check: every leaf of the result close to the reference's, and of ``dtype``."""
    def check(got, want):
        got, want = tree_map(np.asarray, got), tree_map(np.asarray, want)
        gl, wl = fd.tree_util.tree_leaves(got), fd.tree_util.tree_leaves(want)
        if len(gl) != len(wl):
            return f"{len(gl)} results, expected {len(wl)}"
        for g, w in zip(gl, wl):
            if dtype is not None and g.dtype != dtype:
                return f"dtype {g.dtype}, expected {np.dtype(dtype)}"
            if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol):
                return f"result differs from the reference (max abs diff {np.max(np.abs(g - w))})"
        return None
    return check


# --------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------

def case_dispatch():
    x = np.linspace(0.0, 1.0, 10)
    f = fd.jit(lambda x: x + 1)
    rows = {"functad": lambda: f(x), "ref": lambda: x + 1}
    if HAVE_JAX:
        jax, jnp = _jax()
        jf, jx = jax.jit(lambda x: x + 1), jnp.asarray(x)
        rows["jax"] = lambda: jf(jx).block_until_ready()
    if HAVE_TORCH:
        tx = _torch().from_numpy(x)
        rows["torch"] = lambda: tx + 1
    return Case("1", "dispatch x + 1, n=10 f64", "us", rows,
                close(0, dtype=np.float64), "NumPy x + 1")


SEED_X = 0.5


def case_seed():
    def f(x):
        return -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))
    g = fd.jit(fd.grad(f))

    def by_hand(x):
        e = np.exp(-3.0 * x)
        return -3.0 * e / (1.0 + e)
    x64 = np.float64(SEED_X)
    rows = {"functad": lambda: g(SEED_X), "ref": lambda: by_hand(x64)}
    if HAVE_JAX:
        jax, jnp = _jax()
        jg = jax.jit(jax.grad(lambda x: -jnp.log(1.0 / (1.0 + jnp.exp(-3.0 * x)))))
        rows["jax"] = lambda: jg(SEED_X).block_until_ready()
    if HAVE_TORCH:
        torch = _torch()

        def tg():
            x = torch.tensor(SEED_X, dtype=torch.float64, requires_grad=True)
            (gx,) = torch.autograd.grad(-torch.log(1.0 / (1.0 + torch.exp(-3.0 * x))), x)
            return gx.item()
        rows["torch"] = tg
    return Case("2", "seed jit(grad(f))(0.5)", "us", rows,
                close(1e-12), "NumPy derivative by hand")


def case_grad_of_jit():
    def f(x):
        return -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))
    g, whole = fd.grad(fd.jit(f)), fd.jit(fd.grad(f))
    rows = {"functad": lambda: g(SEED_X), "ref": lambda: whole(SEED_X)}
    if HAVE_JAX:
        jax, jnp = _jax()
        jg = jax.grad(jax.jit(lambda x: -jnp.log(1.0 / (1.0 + jnp.exp(-3.0 * x)))))
        rows["jax"] = lambda: jg(SEED_X).block_until_ready()
    return Case("6", "seed grad(jit(f))(0.5)", "us", rows, close(1e-12),
                "functad jit(grad(f))")


def chain_reference():
    """Value and gradient of sum(tanh(x) exp(-x^2) + sin(x)) in one @njit loop."""
    import numba

    @numba.njit(cache=False)
    def chain_value_and_grad(x):
        g = np.empty_like(x)
        s = 0.0
        for i in range(x.shape[0]):
            xi = x[i]
            t = np.tanh(xi)
            e = np.exp(-xi * xi)
            s += t * e + np.sin(xi)
            g[i] = (1.0 - t * t) * e - 2.0 * xi * t * e + np.cos(xi)
        return s, g
    return chain_value_and_grad


def case_chain(n=1_000_000):
    x = np.random.default_rng(0).uniform(-3.0, 3.0, n)
    f = fd.jit(fd.value_and_grad(
        lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x ** 2) + fnp.sin(x))))
    ref = chain_reference()
    rows = {"functad": lambda: f(x), "ref": lambda: ref(x)}
    if HAVE_JAX:
        jax, jnp = _jax()
        jf = jax.jit(jax.value_and_grad(
            lambda x: jnp.sum(jnp.tanh(x) * jnp.exp(-x ** 2) + jnp.sin(x))))
        jx = jnp.asarray(x)
        rows["jax"] = lambda: jax.block_until_ready(jf(jx))
    if HAVE_TORCH:
        torch = _torch()
        tx0 = torch.from_numpy(x)

        def tf():
            tx = tx0.detach().requires_grad_(True)
            v = torch.sum(torch.tanh(tx) * torch.exp(-tx ** 2) + torch.sin(tx))
            (gx,) = torch.autograd.grad(v, tx)
            return v.item(), gx.numpy()
        rows["torch"] = tf
    # the sums add 1e6 terms in different orders: a relative 1e-9 allows for that
    return Case("3", f"tanh*exp+sin value+grad n={n:.0e}", "ms", rows,
                close(1e-9, 1e-9, dtype=np.float64), "single-loop @numba.njit")


def matmul_floor(params, x):
    """The 8 float32 products of one MLP step, as one callable (the reference)."""
    (w1, _), (w2, _), (w3, _) = params
    batch = x.shape[0]
    h1 = np.tanh(x @ w1)
    h2 = np.tanh(h1 @ w2)
    d3 = np.ones((batch, w3.shape[1]), np.float32)
    d2 = np.ones((batch, w2.shape[1]), np.float32)
    d1 = np.ones((batch, w1.shape[1]), np.float32)
    products = [(x, w1), (h1, w2), (h2, w3),                      # forward
                (h2.T, d3), (d3, w3.T), (h1.T, d2), (d2, w2.T), (x.T, d1)]   # backward
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in products]

    def run():
        for (a, b), out in zip(products, outs):
            np.dot(a, b, out=out)
        return outs[-1]
    return run


def case_mlp(batch):
    params, x, y = init_mlp(np, batch)
    step = fd.jit(make_mlp_step(fnp, fd.nn.tanh, fd.nn.log_softmax, fd.value_and_grad,
                                tree_map))
    rows = {"functad": lambda: step(params, x, y), "ref": matmul_floor(params, x)}
    if HAVE_JAX:
        jax, jnp = _jax()
        jstep = jax.jit(make_mlp_step(jnp, jnp.tanh, jax.nn.log_softmax, jax.value_and_grad,
                                      jax.tree_util.tree_map))
        jparams, jx, jy = jax.tree_util.tree_map(jnp.asarray, (params, x, y))
        rows["jax"] = lambda: jax.block_until_ready(jstep(jparams, jx, jy))
    if HAVE_TORCH:
        torch = _torch()
        tparams = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in params]
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def tstep():
            flat = [p.detach().requires_grad_(True) for wb in tparams for p in wb]
            h = tx
            for i in range(0, len(flat) - 2, 2):
                h = torch.tanh(h @ flat[i] + flat[i + 1])
            logits = h @ flat[-2] + flat[-1]
            loss = -torch.mean(torch.sum(ty * torch.log_softmax(logits, dim=-1), dim=-1))
            grads = torch.autograd.grad(loss, flat)
            with torch.no_grad():
                new = [p - 0.01 * g for p, g in zip(flat, grads)]
            return ([(new[i].numpy(), new[i + 1].numpy()) for i in range(0, len(new), 2)],
                    loss.detach().numpy())
        rows["torch"] = tstep
    eager = make_mlp_step(fnp, fd.nn.tanh, fd.nn.log_softmax, fd.value_and_grad, tree_map)
    return Case(f"4 B={batch}", f"MLP SGD step f32, batch {batch}", "ms", rows,
                close(2e-3, 1e-5, dtype=np.float32), "the step's 8 np.dot alone",
                expected=lambda: eager(params, x, y))


def case_vmap(batch=1000, dim=100):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, dim)).astype(np.float32)
    Y = (rng.random(batch) < 0.5).astype(np.float32)
    w = (0.1 * rng.standard_normal(dim)).astype(np.float32)

    def loss(w, x, y):
        z = fnp.dot(x, w)
        return fd.nn.softplus(z) - y * z
    f = fd.jit(fd.vmap(fd.grad(loss), in_axes=(None, 0, 0)))

    def by_hand():
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        return (p - Y)[:, None] * X
    rows = {"functad": lambda: f(w, X, Y), "ref": by_hand}
    if HAVE_JAX:
        jax, jnp = _jax()

        def jloss(w, x, y):
            z = jnp.dot(x, w)
            return jax.nn.softplus(z) - y * z
        jf = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
        jw, jX, jY = map(jnp.asarray, (w, X, Y))
        rows["jax"] = lambda: jf(jw, jX, jY).block_until_ready()
    if HAVE_TORCH:
        torch = _torch()
        from torch.func import grad as tgrad, vmap as tvmap

        def tloss(w, x, y):
            z = torch.dot(x, w)
            return torch.nn.functional.softplus(z) - y * z
        tf = tvmap(tgrad(tloss), in_dims=(None, 0, 0))
        tw, tX, tY = map(torch.from_numpy, (w, X, Y))
        rows["torch"] = lambda: tf(tw, tX, tY).numpy()
    return Case("5", f"vmap per-example grads B={batch} D={dim}", "us", rows,
                close(1e-4, 1e-5, dtype=np.float32), "NumPy by hand")


CASES = [("1", case_dispatch), ("2", case_seed), ("3", case_chain),
         ("4 B=128", lambda: case_mlp(128)), ("4 B=1024", lambda: case_mlp(1024)),
         ("5", case_vmap), ("6", case_grad_of_jit)]


# --------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------

def run_case(case, repeats, sample_ms, settle):
    """First-call seconds and the interleaved samples of each row of ``case``."""
    kinds = [k for k in KINDS if k in case.rows]
    first, results = {}, {}
    for k in kinds:
        t0 = time.perf_counter()
        results[k] = case.rows[k]()
        first[k] = time.perf_counter() - t0
    want = results["ref"] if case.expected is None else case.expected()
    for k in kinds:
        if k == "ref" and case.expected is not None:
            continue
        problem = case.check(results[k], want)
        if problem:
            raise RuntimeError(f"{k}: {problem}")
    if settle:
        t_end = time.perf_counter() + settle
        fn = case.rows["functad"]
        while time.perf_counter() < t_end:
            fn()
    samples = measure([case.rows[k] for k in kinds], repeats, sample_ms)
    return first, dict(zip(kinds, samples))


def fmt(v, width, spec):
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="1,2,3,4,5,6", help="comma-separated case numbers")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--sample-ms", type=float, default=40.0)
    ap.add_argument("--quick", action="store_true", help="5 repeats of 10 ms samples")
    ap.add_argument("--backend", default=os.environ["FUNCTAD_JIT_BACKEND"],
                    help="functad jit backend to ask for (default numba)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the process to one CPU (JAX may then use several)")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds to run each functad row before measuring it (default: "
                         "10 with the tiered backend, else 0)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.sample_ms = 5, 10.0
    cpu = None if args.no_pin else pin_to_one_cpu()    # before JAX starts its thread pool
    backend = select_backend(fd, args.backend)
    settle = args.settle if args.settle is not None else 10.0 if backend == "tiered" else 0.0

    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    import numba
    from functad import blas
    versions.append(f"Numba {numba.__version__}, functad's BLAS: {blas.bind()}")
    if HAVE_JAX:
        jax, _ = _jax()
        versions.append(f"JAX {jax.__version__} (x64 on)")
    if HAVE_TORCH:
        versions.append(f"PyTorch {_torch().__version__} (eager)")
    print(f"functad jit backend: {backend}" + (f", settle {settle:g} s" if settle else ""))
    where = f"pinned to CPU {cpu}" if cpu is not None else "NOT pinned to one CPU"
    print(", ".join(versions) + f"; {platform.machine()}, 1 thread, {where}; median of "
          f"{args.repeats} interleaved samples of ~{args.sample_ms:g} ms")
    missing = [name for name, have in (("jax", HAVE_JAX), ("torch", HAVE_TORCH)) if not have]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}", flush=True)

    done, failed = [], []
    wanted = {k.strip() for k in args.cases.split(",")}
    for label, make in CASES:
        if label.split()[0] not in wanted:
            continue
        # a case that fails (an unsupported primitive, a wrong result) is
        # reported at the end and does not stop the others
        try:
            case = make()
            first, samples = run_case(case, args.repeats, args.sample_ms, settle)
        except Exception as e:  # noqa: BLE001
            failed.append(f"case {label}: {type(e).__name__}: {e}")
            continue
        done.append((case, first, samples))
    if not done:
        raise SystemExit("every case failed:\n" + "\n".join(failed))

    # -- times per call ---------------------------------------------------------
    cols = [k for k in KINDS if any(k in s for _, _, s in done)]
    head = {"functad": "functad", "jax": "JAX", "ref": "ref", "torch": "torch"}
    header = (f"{'case':<38}{'unit':>5}" + "".join(f"{head[k]:>10}" for k in cols)
              + f"{'fd/JAX':>8}{'fd/ref':>8}")
    print("\n" + header + "\n" + "-" * len(header))
    ratios = {}
    for case, _, s in done:
        scale = 1e6 if case.unit == "us" else 1e3
        times = {k: statistics.median(s[k]) * scale if k in s else None for k in cols}
        r_jax = median_ratio(s["functad"], s["jax"]) if "jax" in s else None
        r_ref = median_ratio(s["functad"], s["ref"])
        ratios[case.key] = (times["functad"], r_jax, r_ref, s)
        print(f"{case.key + ' ' + case.name:<38}{case.unit:>5}"
              + "".join(fmt(times[k], 10, ".2f") for k in cols)
              + fmt(r_jax, 8, ".2f") + fmt(r_ref, 8, ".2f"))
    refs = {c.key[0]: c.ref_name for c, _, _ in done}
    print("ref: " + "; ".join(f"{k} {name}" for k, name in refs.items()))

    # -- first calls --------------------------------------------------------------
    header = f"{'first call, s':<38}" + "".join(f"{head[k]:>10}" for k in cols)
    print("\n" + header + "\n" + "-" * len(header))
    for case, first, _ in done:
        print(f"{case.key + ' ' + case.name:<38}"
              + "".join(fmt(first.get(k), 10, ".3f") for k in cols))

    # -- the MLP against the machine's matmul throughput ------------------------------
    mlp = [(c, s) for c, _, s in done if c.key.startswith("4")]
    fractions = {}
    if mlp:
        print("\nMLP step against float32 matmul throughput (np.dot at the step's 8 shapes, "
              "1 thread)")
        header = (f"{'batch':>6}{'matmul GF/s':>13}{'functad GF/s':>14}{'of matmul':>11}"
                  + (f"{'JAX GF/s':>10}{'of matmul':>11}" if HAVE_JAX else ""))
        print(header + "\n" + "-" * len(header))
        for case, s in mlp:
            batch = int(case.key.split("=")[1])
            fwd, flops = mlp_flops(batch)
            peak = flops / statistics.median(s["ref"]) / 1e9
            line = f"{batch:>6}{peak:>13.1f}"
            for k in ("functad", "jax"):
                if k in s:
                    got = flops / statistics.median(s[k]) / 1e9
                    fractions[batch, k] = got / peak
                    line += f"{got:>14.1f}{got / peak:>10.0%}" if k == "functad" else \
                        f"{got:>10.1f}{got / peak:>11.0%}"
            print(line)
        print(f"step FLOPs counted exactly: the 8 products = {flops / fwd:.2f}x the forward "
              "pass (no gradient for the data); counting the backward pass as 2x the forward "
              "would multiply the GF/s and percentages by 1.25")

    if failed:
        print("\nFAILED, not measured:\n  " + "\n  ".join(failed))

    # -- targets -------------------------------------------------------------------
    print("\nissue 4 targets (functad, this backend):")

    def verdict(ok):
        return "meets" if ok else "MISSES"
    for key, (t, r_jax, r_ref, s) in ratios.items():
        if key == "1":
            ok = t <= 3.0 and (r_jax is None or r_jax <= 0.5)
            print(f"  1 dispatch {t:.2f} us (<= 3 us), {fmt(r_jax, 0, '.2f')}x JAX (<= 0.5x): "
                  f"{verdict(ok)}")
        elif key == "2" and r_jax is not None:
            print(f"  2 seed jit(grad) {r_jax:.2f}x JAX (<= 0.25x): {verdict(r_jax <= 0.25)}")
        elif key == "3":
            ok = r_ref <= 1.0 and (r_jax is None or r_jax < 1.0)
            print(f"  3 chain {r_ref:.2f}x njit (<= 1.0x), {fmt(r_jax, 0, '.2f')}x JAX (< 1x): "
                  f"{verdict(ok)}")
        elif key.startswith("4") and r_jax is not None:
            batch = int(key.split("=")[1])
            line = f"  4 MLP batch {batch}: {r_jax:.2f}x JAX (<= 0.9x)"
            ok = r_jax <= 0.9
            if batch == 1024 and (batch, "functad") in fractions:
                frac = fractions[batch, "functad"]
                line += f", {frac:.0%} of matmul throughput (>= 85%)"
                ok = ok and frac >= 0.85
            print(f"{line}: {verdict(ok)}")
        elif key == "5" and r_jax is not None:
            print(f"  5 vmap per-example grads {r_jax:.2f}x JAX (<= 1.0x): "
                  f"{verdict(r_jax <= 1.0)}")


if __name__ == "__main__":
    main()
