"""Time to first result of a jitted MLP training step in a fresh process, and 100 steps.

Issue 4, benchmark 5: the MLP 784-512-512-10 (tanh, softmax cross-entropy,
float32) SGD step of ``bench_jit.py``, batch 128, one BLAS/XLA/Numba thread.
Each measurement starts a new Python process, pinned to one CPU like
``bench_jit.py`` (``--no-pin`` to skip), that imports the library,
builds the data, runs ``jit(step)`` once (the *first result*) and then 99
more steps, feeding the parameters back (the *100 steps*).  Times are wall
clock from the parent's process start to the child's report, so interpreter
start-up and imports are included.

Run from the repository root::

    python benchmarks/bench_jit_startup.py            # 3 rounds, about 2 minutes
    python benchmarks/bench_jit_startup.py --quick    # 1 round

Rows:

* functad, empty cache: ``FUNCTAD_CACHE_DIR`` (and ``NUMBA_CACHE_DIR``, in case
  compiled kernels go through Numba's own cache) point at a fresh empty
  temporary directory;
* functad, warm cache: a second process on the same directory;
* JAX, the same two with JAX's persistent compilation cache
  (``JAX_COMPILATION_CACHE_DIR``, with the minimum compile time and entry size
  set to 0 so the step is written).  Without that variable JAX caches
  nothing on disk, so its empty-cache row is also JAX's default.

A round runs the processes in this order, one at a time; the table shows
medians over ``--rounds`` rounds (each with fresh directories).

functad runs once per entry of ``--backends`` (default ``numba,default``):

* ``numba``: the compiled tier, forced with ``FUNCTAD_JIT_BACKEND=numba`` in
  the child's environment and ``functad.config.update("jit_backend", "numba")``;
* ``default``: whatever ``functad.jit`` does without being asked (the
  variable removed from the child's environment), e.g. a tiered jit that
  answers with NumPy while it compiles.

Until the ``jit_backend`` option exists both are the NumPy executor (tier 0,
no disk cache), so only one set of functad rows is run, and its empty- and
warm-cache rows differ only by noise.  Each row names the backend that ran.

Targets of issue 4: first result at most 1.0 s with an empty cache and at
most 0.3 s with a warm one.

Before measuring, functad's package is byte-compiled (``compileall``; skip
with ``--no-compileall``), as ``pip install`` does for an installed package:
JAX's ``.pyc`` files exist from its installation, while an editable checkout
on a machine that sets ``PYTHONDONTWRITEBYTECODE=1`` (this one does) would
recompile functad's source in every child.

The MLP itself (``init_mlp``, ``make_mlp_step``) is defined here, once, and
``bench_jit.py`` imports it: this module imports nothing heavy at the top, so
a child process loads only the library it measures.
"""

import time

_T0 = time.perf_counter()    # the child's clock starts before any heavy import

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SIZES = (784, 512, 512, 10)
LR = 0.01
TARGET_COLD, TARGET_WARM = 1.0, 0.3

# One thread everywhere, as in bench_jit.py (they must be set before NumPy,
# JAX or Numba is imported, hence in the child's environment).
THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


# --------------------------------------------------------------------------
# The model, written once for any NumPy-like library
# --------------------------------------------------------------------------

def init_mlp(np, batch, seed=0):
    """float32 parameters [(W, b), ...] and one batch (x, one-hot y), as NumPy arrays."""
    rng = np.random.default_rng(seed)
    params = [((rng.standard_normal((m, n), dtype=np.float32) / np.float32(np.sqrt(m))),
               np.zeros(n, np.float32)) for m, n in zip(SIZES[:-1], SIZES[1:])]
    x = rng.standard_normal((batch, SIZES[0]), dtype=np.float32)
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], batch)]
    return params, x, y


def make_mlp_step(xp, tanh, log_softmax, value_and_grad, tree_map):
    """``step(params, x, y) -> (new_params, loss)``: one SGD step on the mean
    softmax cross-entropy of a tanh MLP, with ``xp`` the library's NumPy."""
    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = tanh(h @ w + b)
        w, b = params[-1]
        return -xp.mean(xp.sum(y * log_softmax(h @ w + b), axis=-1))

    def step(params, x, y):
        value, grads = value_and_grad(loss)(params, x, y)
        return tree_map(lambda p, g: p - LR * g, params, grads), value
    return step


def mlp_flops(batch):
    """(forward FLOPs, FLOPs of the step's 8 matrix products) of one step.

    Backward: a weight gradient per layer (as many FLOPs as the forward
    product) and the input gradients of layers 2 and 3 (none for the data).
    """
    fwd = 2 * batch * sum(m * n for m, n in zip(SIZES[:-1], SIZES[1:]))
    back_inputs = 2 * batch * sum(m * n for m, n in zip(SIZES[1:-1], SIZES[2:]))
    return fwd, 2 * fwd + back_inputs


# --------------------------------------------------------------------------
# One CPU, backend selection (shared with bench_jit.py)
# --------------------------------------------------------------------------

def pin_to_one_cpu(cpu=None):
    """Restrict this process to one CPU (the last one allowed, by default).

    XLA sizes its CPU thread pool by the CPUs the process may use and splits
    large fusions and products over it whatever ``XLA_FLAGS`` say, so only
    affinity keeps JAX to one thread.  Returns the CPU, or None where
    ``os.sched_setaffinity`` does not exist (not Linux).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0)) if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return cpu


def select_backend(fd, name):
    """Ask functad for jit backend ``name``; return a label of what will run.

    ``functad.config`` does not exist before the compiled tier lands; then
    ``functad.jit`` runs its NumPy executor (tier 0).
    """
    try:
        fd.config.update("jit_backend", name)
    except (AttributeError, KeyError, ValueError) as e:
        return f"numpy tier 0 (no jit_backend option: {type(e).__name__})"
    for read in (lambda: fd.config.read("jit_backend"),
                 lambda: getattr(fd.config, "jit_backend")):
        try:
            return str(read())
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
    return name


# --------------------------------------------------------------------------
# The child: one fresh process
# --------------------------------------------------------------------------

def child(lib, backend, batch, steps, cpu):
    def report(what, value):
        print(json.dumps([what, value]), flush=True)

    if cpu is not None:
        pin_to_one_cpu(cpu)

    sys.path.insert(0, ROOT)
    import numpy as np
    if lib == "functad":
        import functad as fd
        import functad.numpy as fnp
        from functad.tree_util import tree_map
        if backend == "default":
            current = getattr(getattr(fd, "config", None), "jit_backend", None)
            report("backend", f"default: {current or 'numpy tier 0'}")
        else:
            report("backend", select_backend(fd, backend))
        step = fd.jit(make_mlp_step(fnp, fd.nn.tanh, fd.nn.log_softmax,
                                    fd.value_and_grad, tree_map))
        put, block = (lambda a: a), (lambda out: out)
    else:
        import jax
        import jax.numpy as jnp
        report("backend", f"jax {jax.__version__}")
        step = jax.jit(make_mlp_step(jnp, jnp.tanh, jax.nn.log_softmax,
                                     jax.value_and_grad, jax.tree_util.tree_map))
        put, block = jnp.asarray, jax.block_until_ready
    report("import", time.perf_counter() - _T0)
    params, x, y = init_mlp(np, batch)
    params = [(put(w), put(b)) for w, b in params]
    x, y = put(x), put(y)
    report("data", time.perf_counter() - _T0)
    params, loss = block(step(params, x, y))
    report("first", time.perf_counter() - _T0)
    t1 = time.perf_counter()
    for _ in range(steps - 1):
        params, loss = step(params, x, y)
    block(loss)
    report("steady_ms", (time.perf_counter() - t1) / max(steps - 1, 1) * 1e3)
    report("done", time.perf_counter() - _T0)
    report("loss", float(loss))


# --------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------

def _group_alive(pgid):
    """Whether a process of process group ``pgid`` still runs (Linux /proc)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # fields after the parenthesised command: state, ppid, pgrp, ...
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def run_child(lib, backend, batch, steps, cache_dir, cpu, timeout=300.0):
    """Start a child; return its reports, plus wall times from Popen.

    The child runs in a process group of its own; processes it leaves behind
    (a tiered jit's background compiler finishing the disk cache) are waited
    for, so that they neither slow down the next row nor leave it a cache
    being written, and their extra time is returned as ``after_exit``.
    """
    env = dict(os.environ, **THREAD_ENV)
    if lib == "functad":
        env.update(FUNCTAD_CACHE_DIR=cache_dir, NUMBA_CACHE_DIR=os.path.join(cache_dir, "numba"))
        if backend == "default":
            env.pop("FUNCTAD_JIT_BACKEND", None)
        else:
            env["FUNCTAD_JIT_BACKEND"] = backend
    else:
        env.update(JAX_COMPILATION_CACHE_DIR=cache_dir,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, "--backend", backend,
           "--batch", str(batch), "--steps", str(steps)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    out = {}
    for line in proc.stdout:
        what, value = json.loads(line)
        out[what] = value
        if what in ("first", "done"):
            out["wall_" + what] = time.perf_counter() - t0
    err = proc.stderr.read()
    code = proc.wait()
    t_exit = time.perf_counter()
    if os.path.isdir("/proc"):
        while _group_alive(proc.pid) and time.perf_counter() - t_exit < timeout:
            time.sleep(0.05)
    out["after_exit"] = time.perf_counter() - t_exit
    if code != 0 or "done" not in out:
        last = err.strip().splitlines()[-1:] or ["no error output"]
        raise RuntimeError(f"exit code {code}: {last[0]}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--backends", default="numba,default",
                    help="functad jit backends to run, comma-separated ('default': "
                         "functad's own choice); default numba,default")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the children to one CPU (JAX may then use several)")
    ap.add_argument("--no-compileall", action="store_true",
                    help="do not byte-compile functad first (see the module doc)")
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=["functad", "jax"], help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="default", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.backend, args.batch, args.steps, args.cpu)

    import importlib.util
    import platform
    if not args.no_compileall:
        # pip byte-compiles an installed package (JAX's .pyc files exist); an
        # editable checkout under PYTHONDONTWRITEBYTECODE=1 never gets them, and
        # every child would compile functad's source again (~0.1 s)
        import compileall
        compileall.compile_dir(os.path.join(ROOT, "functad"), quiet=1)
    runs = [("functad", b.strip()) for b in args.backends.split(",")]
    if not args.no_jax and importlib.util.find_spec("jax"):
        runs.append(("jax", ""))
    rounds = 1 if args.quick else args.rounds
    cpu = None
    if not args.no_pin and hasattr(os, "sched_getaffinity"):
        cpu = max(os.sched_getaffinity(0))
    results, labels, skip, failed = {}, {}, set(), {}
    for _ in range(rounds):
        for run in runs:
            if run in skip:
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench_{run[0]}_cache_") as d:
                try:
                    for state in ("empty", "warm"):
                        r = run_child(*run, args.batch, args.steps, d, cpu)
                        results.setdefault((run, state), []).append(r)
                        labels[run] = r["backend"]
                except RuntimeError as e:      # e.g. a backend that cannot compile the step
                    failed[run] = str(e)
                    skip.add(run)
                    continue
            # without a jit_backend option every functad backend is the same
            # NumPy executor: measure it once
            if run[0] == "functad" and "numpy tier 0" in labels[run]:
                skip.update(other for other in runs if other[0] == "functad" and other != run)
    runs = [run for run in runs if run not in skip]

    def name(run):
        if run[0] == "jax":
            return "JAX jit"
        label = labels[run].removeprefix("default: ")
        return f"functad jit [{'tier 0' if 'numpy tier 0' in label else label}]"

    med = statistics.median
    where = f"pinned to CPU {cpu}" if cpu is not None else "NOT pinned to one CPU"
    print(f"MLP {'-'.join(map(str, SIZES))} SGD step, batch {args.batch}, float32, 1 thread, "
          f"{where}; fresh process per row; Python {platform.python_version()}, "
          f"{platform.machine()}; median of {rounds} round(s)")
    for run in runs:
        print(f"{name(run)}: {labels[run]}")
    for run, why in failed.items():
        print(f"FAILED, not measured: {run[0]} {run[1]}: {why}")
    if not any(run[0] == "jax" for run in runs):
        print("JAX: not measured (not installed or --no-jax)")
    header = (f"{'implementation':<24}{'cache':>7}{'first result s':>16}{'import s':>10}"
              f"{'1st step s':>12}{f'{args.steps} steps s':>14}{'ms/step after':>15}"
              f"{'bg after exit s':>17}")
    print(header + "\n" + "-" * len(header))
    for run in runs:
        for state in ("empty", "warm"):
            rs = results[run, state]
            first_step = med(r["first"] - r["data"] for r in rs)
            print(f"{name(run):<24}{state:>7}{med(r['wall_first'] for r in rs):>16.3f}"
                  f"{med(r['import'] for r in rs):>10.3f}{first_step:>12.3f}"
                  f"{med(r['wall_done'] for r in rs):>14.3f}"
                  f"{med(r['steady_ms'] for r in rs):>15.2f}"
                  f"{med(r['after_exit'] for r in rs):>17.2f}")
    print("first result, steps: wall clock from the start of the process (imports included); "
          "import: the child's own import time; 1st step: the first call (trace, compile, "
          "run); ms/step after: the other steps; bg after exit: how long processes the child "
          "left behind (a background compiler) ran after it exited (waited for before the "
          "next row)")

    print()
    jax_run = next((run for run in runs if run[0] == "jax"), None)
    for run in runs:
        if run[0] != "functad":
            continue
        cold = med(r["wall_first"] for r in results[run, "empty"])
        warm = med(r["wall_first"] for r in results[run, "warm"])
        print(f"{name(run)} first result: empty cache {cold:.3f} s -> "
              f"{'meets' if cold <= TARGET_COLD else 'MISSES'} the target (<= {TARGET_COLD} s); "
              f"warm cache {warm:.3f} s -> {'meets' if warm <= TARGET_WARM else 'MISSES'} "
              f"the target (<= {TARGET_WARM} s)")
        if jax_run:
            ratios = [med(r["wall_done"] for r in results[run, state])
                      / med(r["wall_done"] for r in results[jax_run, state])
                      for state in ("empty", "warm")]
            print(f"  {args.steps} steps in a fresh process, functad / JAX: empty cache "
                  f"{ratios[0]:.2f}, warm cache {ratios[1]:.2f}")


if __name__ == "__main__":
    main()
