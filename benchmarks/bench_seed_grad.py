"""Per-call latency of the gradient of the seed function, eager, across libraries.

    f(x) = -log(1 / (1 + exp(-3 x))),    df/dx at a scalar x

Run from the repository root::

    python benchmarks/bench_seed_grad.py                # default: 25 repeats
    python benchmarks/bench_seed_grad.py --profile      # also cProfile functad's grad

Every row computes ``df/dx(0.5)`` from scratch on each call (trace, forward,
backward), the way a training loop without ``jit`` does.  A sample runs the
call in a loop for about ``--sample-ms`` milliseconds; the table shows the
median time per call over ``--repeats`` samples, in microseconds, and the
ratio to autograd's.  Samples of all rows are interleaved, round by round, so
a slow phase of a noisy machine hits every row alike; the ratio is the median
of the per-round ratios.

Rows for optional libraries appear only when they are installed (they are
looked up with importlib and imported only when measured):

* ``autograd`` (HIPS, ``pip install autograd``; the ``bench`` extra);
* JAX: ``jax.grad`` eager and ``jax.jit(jax.grad(f))``;
* PyTorch: ``torch.autograd.grad`` on a 0-d tensor.

The project's target: functad's eager ``grad`` at most 0.5x autograd's latency.
"""

import argparse
import importlib.util
import math
import platform
import sys

import numpy as np

from _timing import measure, median_ratio, median_us  # noqa: E402  (also sets sys.path)
import functad as fd  # noqa: E402
import functad.numpy as fnp  # noqa: E402

X0 = 0.5
EXPECTED = -3.0 / (1.0 + math.exp(3.0 * X0))      # d/dx log(1 + exp(-3x))
TARGET = 0.5


def have(module):
    return importlib.util.find_spec(module) is not None


# --- one callable per library; each returns df/dx(X0) as something float() accepts --

def make_functad():
    def f(x):
        return -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))
    g = fd.grad(f)
    return lambda: g(X0)


def make_by_hand():
    """The derivative written out with NumPy scalars: a floor for any AD."""
    def g(x):
        e = np.exp(-3.0 * x)
        return -3.0 * e / (1.0 + e)
    return lambda: g(np.float64(X0))


def make_autograd():
    import autograd
    import autograd.numpy as anp

    def f(x):
        return -anp.log(1.0 / (1.0 + anp.exp(-3.0 * x)))
    g = autograd.grad(f)
    return lambda: g(X0)


def _jax_f():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def f(x):
        return -jnp.log(1.0 / (1.0 + jnp.exp(-3.0 * x)))
    return jax, f


def make_jax_eager():
    jax, f = _jax_f()
    g = jax.grad(f)
    return lambda: g(X0)


def make_jax_jit():
    jax, f = _jax_f()
    g = jax.jit(jax.grad(f))

    def call():
        return g(X0).block_until_ready()
    return call


def make_torch():
    import torch

    def call():
        x = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
        y = -torch.log(1.0 / (1.0 + torch.exp(-3.0 * x)))
        (gx,) = torch.autograd.grad(y, x)
        return gx.item()
    return call


def rows():
    out = [("functad grad (eager)", make_functad), ("NumPy, by hand", make_by_hand)]
    missing = []
    if have("autograd"):
        out.append(("autograd.grad", make_autograd))
    else:
        missing.append("autograd")
    if have("jax"):
        out += [("jax.grad (eager)", make_jax_eager), ("jax.jit(jax.grad)", make_jax_jit)]
    else:
        missing.append("jax")
    if have("torch"):
        out.append(("torch.autograd.grad", make_torch))
    else:
        missing.append("torch")
    return out, missing


# --- timing -------------------------------------------------------------------

def profile_functad(n_calls=2000, top=25):
    import cProfile
    import pstats
    call = make_functad()
    call()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n_calls):
        call()
    prof.disable()
    print(f"\ncProfile of {n_calls} calls of functad.grad(f)({X0}), by own time (tottime):")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--sample-ms", type=float, default=20.0)
    ap.add_argument("--profile", action="store_true", help="cProfile functad's grad too")
    args = ap.parse_args()

    table, missing = rows()
    names = [name for name, _ in table]
    fns = [make() for _, make in table]
    for name, fn in zip(names, fns):
        got = float(fn())
        if not math.isclose(got, EXPECTED, rel_tol=1e-12):
            raise SystemExit(f"{name} gives {got}, expected {EXPECTED}")

    print(f"df/dx of f(x) = -log(1/(1+exp(-3x))) at x = {X0} (= {EXPECTED:.12f})")
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}; "
          f"median of {args.repeats} interleaved samples, microseconds per call")
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}")
    samples = measure(fns, args.repeats, args.sample_ms)
    ref = samples[names.index("autograd.grad")] if "autograd.grad" in names else None
    header = f"{'implementation':<24}{'us/call':>10}{'vs autograd':>13}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name, s in zip(names, samples):
        # the ratio is the median of per-round ratios (the rows of one round run
        # back to back), steadier on a noisy machine than a ratio of medians
        r = median_ratio(s, ref) if ref else None
        ratios.append(r)
        print(f"{name:<24}{median_us(s):>10.2f}"
              f"{(f'{r:.2f}x' if r is not None else '-'):>13}")
    if ref:
        r = ratios[0]
        verdict = "meets" if r <= TARGET else "MISSES"
        print(f"\nfunctad / autograd = {r:.2f} -> {verdict} the target (<= {TARGET}x)")
    if args.profile:
        profile_functad()


if __name__ == "__main__":
    main()
