"""A 1000-step ``scan`` of a small recurrence under ``jit(grad)``, against JAX.

Run from the repository root::

    python benchmarks/bench_scan.py            # --quick for fewer samples

The recurrence is a tanh RNN cell, ``h = tanh(W h + U x_t + b)`` with a
hidden state of ``--hidden`` (default 8) float64 values over ``--steps``
(default 1000) inputs of the same size, and the loss is the sum of the final
state; the gradient is taken with respect to ``W``, ``U`` and ``b``.  Columns:

* ``compile s``: first call (tracing, lowering and compiling; functad's
  compiled tier with ``jit_backend="numba"`` and an empty disk cache);
* ``per call us``: median of interleaved samples (see ``_timing``);
* the NumPy-tier row is what functad's tiered default runs before its
  compilation finishes (the NumPy executor running the body step by step).

One thread, pinned to one CPU like ``bench_jit.py`` (``--no-pin`` to skip):
the BLAS/Numba thread counts are set before NumPy is imported, and the
pinning keeps XLA to one thread.  JAX is used when installed (``pip install
jax``); its column is skipped otherwise.  Results are in benchmarks/README.md.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"            # before NumPy or Numba is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import _timing  # noqa: F401,E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402

from bench_jit_startup import pin_to_one_cpu  # noqa: E402
import functad as fd  # noqa: E402
import functad.numpy as fnp
from functad import lax


def functad_loss(params, xs):
    W, U, b = params

    def cell(h, x):
        return fnp.tanh(W @ h + U @ x + b), None
    h, _ = lax.scan(cell, fnp.zeros(W.shape[0]), xs)
    return fnp.sum(h)


def jax_loss_and_grad():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def loss(params, xs):
        W, U, b = params

        def cell(h, x):
            return jnp.tanh(W @ h + U @ x + b), None
        h, _ = jax.lax.scan(cell, jnp.zeros(W.shape[0]), xs)
        return jnp.sum(h)
    return jax.jit(jax.grad(loss)), jax.block_until_ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = ap.parse_args()
    cpu = None if args.no_pin else pin_to_one_cpu()
    repeats, sample_ms = (5, 20) if args.quick else (15, 100)
    rng = np.random.default_rng(0)
    n = args.hidden
    params = (rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=(n, n)) / np.sqrt(n),
              np.zeros(n))
    xs = rng.normal(size=(args.steps, n))

    rows = []

    def first_call(label, fn):
        """Time ``fn``'s first call (trace and compile), then keep it as a row."""
        t0 = time.perf_counter()
        fn()
        rows.append([label, time.perf_counter() - t0, fn])

    os.environ["FUNCTAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="functad-bench-scan-")
    programs = {}
    for backend, label in [("numba", "compiled"), ("numpy", "NumPy tier")]:
        with fd.config.override(jit_backend=backend):
            programs[backend] = fd.jit(fd.grad(functad_loss))
            first_call(f"functad jit(grad), {label}",
                       lambda g=programs[backend]: g(params, xs))
    try:
        jg, ready = jax_loss_and_grad()
        jparams = tuple(np.asarray(p) for p in params)
        first_call("JAX jit(grad)", lambda: ready(jg(jparams, xs)))
    except ImportError:
        print("(JAX not installed: no JAX row)")
    g = programs["numba"]
    ref = np.asarray(g(params, xs)[0])
    if len(rows) == 3:
        assert np.allclose(ref, np.asarray(jg(jparams, xs)[0]), rtol=1e-10, atol=1e-12)
    samples = _timing.measure([r[2] for r in rows], repeats, sample_ms)
    where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    print(f"scan of {args.steps} steps, hidden {n}, float64, jit(grad), 1 thread, {where}; one run")
    print(f"{'':34s} {'compile s':>10s} {'per call us':>12s} {'vs JAX':>8s}")
    jax_s = samples[2] if len(rows) == 3 else None
    for (name, compile_s, _), s in zip(rows, samples):
        ratio = f"{_timing.median_ratio(s, jax_s):8.2f}" if jax_s else ""
        print(f"{name:34s} {compile_s:10.2f} {_timing.median_us(s):12.1f} {ratio}")


if __name__ == "__main__":
    main()
