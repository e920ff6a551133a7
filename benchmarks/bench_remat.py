"""Rematerialisation: memory and time of ``grad`` with and without ``checkpoint``.

Run from the repository root::

    python benchmarks/bench_remat.py                  # default sizes
    python benchmarks/bench_remat.py --depth 20 --batch 256 --width 256

The model is a stack of ``--depth`` residual blocks
``x + sin(h) * exp(-h * h)`` with ``h = tanh(x @ w + b)`` on a ``(batch,
width)`` float64 activation, and the loss is ``sum(x ** 2)``; the gradient is
taken with respect to all the weights.  Three variants:

* ``plain``: no checkpoint;
* ``per block``: ``checkpoint(block)``, so each block keeps only its inputs
  (``w``, ``b``, ``x``) instead of its intermediate values and partials;
* ``whole``: ``checkpoint`` of the whole stack, which keeps only the
  parameters (the input is a constant of the loss).

For each it reports

* ``residuals``: number and megabytes of the arrays reverse mode stores
  between the forward and the backward pass (the constants of the linear
  jaxpr built by ``functad.linearize``, the forward pass of ``grad``;
  parameters count too, as the backward pass needs them);
* ``peak MB``: the peak of NumPy allocations during one eager ``grad`` call
  (``tracemalloc``, which NumPy reports its buffers to), above the inputs;
* ``grad ms``: median time of one eager ``grad`` call, and its ratio to
  ``plain`` (interleaved samples, see ``_timing``).

Measured 2026-11-30 on the development machine (2 virtual cores, loaded:
load average about 5), ``--depth 10 --batch 128 --width 256 --repeats 11
--sample-ms 300`` with ``OPENBLAS_NUM_THREADS=1`` (on a loaded machine a
multi-threaded BLAS oversubscribes the cores and every time is 10-20x
larger and erratic):

=========  =========  ===========  =======  =======  =====
variant    residuals  residual MB  peak MB  grad ms  ratio
=========  =========  ===========  =======  =======  =====
plain      80         22.2         23.4     33.2     1.00
per block  31         7.8          10.3     48.6     1.38
whole      20         5.0          28.2     51.2     1.53
=========  =========  ===========  =======  =======  =====

Checkpointing each block stores 2.8x fewer bytes between the passes (its
inputs instead of its partials) and the peak memory of the gradient falls
2.3x, for about 40 % more time (each block runs forward once more in the
backward pass).  Checkpointing the whole stack stores only the parameters
(5.0 MB; the input is a constant of the function) but its backward pass
rebuilds the residuals of the whole stack at once, so its peak is as high as
without checkpoint: checkpoint segments, not the whole model.
"""

import argparse
import platform
import statistics
import tracemalloc

import numpy as np

from _timing import measure, median_ratio  # noqa: E402  (also sets sys.path)
import functad as fd  # noqa: E402
import functad.numpy as fnp  # noqa: E402


def block(w, b, x):
    h = fnp.tanh(x @ w + b)
    return x + fnp.sin(h) * fnp.exp(-h * h)


def make_loss(variant, x):
    blk = fd.checkpoint(block) if variant == "per block" else block

    def stack(params):
        y = x
        for w, b in params:
            y = blk(w, b, y)
        return fnp.sum(y ** 2)
    return fd.checkpoint(stack) if variant == "whole" else stack


def residuals(loss, params):
    _, f_jvp = fd.linearize(loss, params)
    arrays = [c for c in f_jvp.linear_jaxpr.consts if np.ndim(c) > 0]
    return len(arrays), sum(np.asarray(c).nbytes for c in arrays) / 2 ** 20


def peak_mb(fn):
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2 ** 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--sample-ms", type=float, default=200.0)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.width))
    params = [(rng.standard_normal((args.width, args.width)) / args.width ** 0.5,
               rng.standard_normal(args.width) * 0.1) for _ in range(args.depth)]
    variants = ["plain", "per block", "whole"]
    losses = {v: make_loss(v, x) for v in variants}
    grads = {v: fd.grad(losses[v]) for v in variants}
    ref = grads["plain"](params)
    for v in variants[1:]:
        for (gw, gb), (rw, rb) in zip(grads[v](params), ref):
            np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-12)

    samples = measure([lambda v=v: grads[v](params) for v in variants], args.repeats,
                      args.sample_ms)
    print(f"functad checkpoint, Python {platform.python_version()}, NumPy {np.__version__}; "
          f"depth {args.depth}, activations {args.batch}x{args.width} float64; median of "
          f"{args.repeats} samples")
    header = (f"{'variant':<11}{'residuals':>10}{'residual MB':>13}{'peak MB':>9}"
              f"{'grad ms':>9}{'ratio':>7}")
    print(header)
    print("-" * len(header))
    for v, s in zip(variants, samples):
        n, mb = residuals(losses[v], params)
        peak = peak_mb(lambda: grads[v](params))
        print(f"{v:<11}{n:>10}{mb:>13.1f}{peak:>9.1f}{statistics.median(s) * 1e3:>9.1f}"
              f"{median_ratio(s, samples[0]):>7.2f}")


if __name__ == "__main__":
    main()
