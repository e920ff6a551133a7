"""Per-example gradients of logistic regression with vmap, against hand-vectorised NumPy.

    per_example = vmap(grad(loss), in_axes=(None, 0, 0))      # B = 1000, D = 100, float32

Run from the repository root::

    python benchmarks/bench_vmap.py [--batch 1000] [--dim 100] [--repeats 15]

The functad row is eager (no jit): tracing the per-example function, batching
each primitive and evaluating with NumPy happen on every call. The NumPy row
is the gradient written out by hand, vectorised: ``(sigmoid(X w) - y)[:, None] * X``.
JAX (``jit(vmap(grad))``) and PyTorch (``torch.func.vmap(grad)``) rows appear when
those packages are installed. The issue's target: eager functad within 3x of
hand-vectorised NumPy.

One thread, pinned to one CPU like ``bench_jit.py`` (``--no-pin`` to skip):
the BLAS thread counts are set before NumPy is imported.  On this 2-core
machine, two BLAS threads on one pinned CPU made every small product slower
(the eager row went from about 200 to 420 us), and unpinned runs moved by 2x
with the machine's load.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"            # before NumPy or Numba is imported

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402

import numpy as np  # noqa: E402

from _timing import measure, median_ratio, median_us  # noqa: E402  (also sets sys.path)
from bench_jit_startup import pin_to_one_cpu  # noqa: E402
import functad as fd  # noqa: E402
import functad.numpy as fnp  # noqa: E402

TARGET = 3.0


def loss(w, x, y):
    z = fnp.dot(x, w)
    return fd.nn.softplus(z) - y * z


def make_rows(w, X, Y):
    per_example = fd.vmap(fd.grad(loss), in_axes=(None, 0, 0))

    def by_hand():
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        return (p - Y)[:, None] * X
    rows = [("functad vmap(grad) eager", lambda: per_example(w, X, Y)),
            ("NumPy, by hand", by_hand)]
    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        def jloss(w, x, y):
            z = jnp.dot(x, w)
            return jax.nn.softplus(z) - y * z
        jf = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
        jw, jX, jY = map(jnp.asarray, (w, X, Y))
        rows.append(("jax jit(vmap(grad))", lambda: jf(jw, jX, jY).block_until_ready()))
    if importlib.util.find_spec("torch"):
        import torch
        from torch.func import grad as tgrad, vmap as tvmap

        def tloss(w, x, y):
            z = torch.dot(x, w)
            return torch.nn.functional.softplus(z) - y * z
        tf = tvmap(tgrad(tloss), in_dims=(None, 0, 0))
        tw, tX, tY = map(torch.from_numpy, (w, X, Y))
        rows.append(("torch.func vmap(grad)", lambda: tf(tw, tX, tY)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sample-ms", type=float, default=50.0)
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = ap.parse_args()
    cpu = None if args.no_pin else pin_to_one_cpu()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
    Y = (rng.random(args.batch) < 0.5).astype(np.float32)
    w = (0.1 * rng.standard_normal(args.dim)).astype(np.float32)

    rows = make_rows(w, X, Y)
    ref = np.asarray(rows[1][1]())
    for name, fn in rows:
        got = np.asarray(fn())
        if got.dtype != np.float32 or not np.allclose(got, ref, rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{name}: wrong result (dtype {got.dtype})")
    samples = measure([fn for _, fn in rows], args.repeats, args.sample_ms)
    where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    print(f"per-example gradients, B={args.batch}, D={args.dim}, float32, 1 thread, {where}; "
          f"Python {platform.python_version()}, NumPy {np.__version__}; median of "
          f"{args.repeats} interleaved samples")
    header = f"{'implementation':<28}{'us/call':>10}{'vs NumPy':>10}"
    print(header + "\n" + "-" * len(header))
    for (name, _), s in zip(rows, samples):
        print(f"{name:<28}{median_us(s):>10.1f}{median_ratio(s, samples[1]):>9.2f}x")
    r = median_ratio(samples[0], samples[1])
    print(f"\nfunctad / NumPy = {r:.2f} -> {'meets' if r <= TARGET else 'MISSES'} the target "
          f"(<= {TARGET}x)")


if __name__ == "__main__":
    main()
