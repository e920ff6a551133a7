"""Eager overhead of functad.numpy against NumPy, per operation.

Run from the repository root::

    python benchmarks/bench_eager.py                 # default: 25 repeats
    python benchmarks/bench_eager.py --repeats 51 --sample-ms 5

Outside any transform, ``functad.numpy`` binds each primitive to the eval
interpreter, which runs NumPy and wraps the result as an immutable
``functad.Array``.  This measures what that costs on a small (10) and a
medium (10_000) float64 array: for every operation, a sample runs it in a loop
for about ``--sample-ms`` milliseconds; the table reports the median time per
call over ``--repeats`` samples, in microseconds, and the ratio
functad / NumPy (1.0 = no overhead): the median of the ratios of adjacent
functad and NumPy samples, which a noisy machine disturbs less than the
times themselves.

``matmul`` is measured only when ``functad.numpy.matmul`` exists (its owner
may not have landed it yet); ``x[1:5]`` on an eager functad Array is NumPy's
own indexing of an ndarray subclass.
"""

import argparse
import platform

import numpy as np

from _timing import measure, median_ratio, median_us  # noqa: E402  (also sets sys.path)
import functad.numpy as fnp  # noqa: E402


def time_pair(f_a, f_b, repeats, sample_ms):
    """Median time per call (microseconds) of two functions, and the median of
    their per-round ratios (samples alternate: see ``_timing``)."""
    sa, sb = measure([f_a, f_b], repeats, sample_ms)
    return median_us(sa), median_us(sb), median_ratio(sa, sb)


def cases(n):
    """(name, functad callable, NumPy callable) for arrays of size n."""
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal(n), rng.standard_normal(n)
    cond_np = a_np > 0
    a, b, cond = fnp.asarray(a_np), fnp.asarray(b_np), fnp.asarray(cond_np)
    out = [
        ("sin", lambda: fnp.sin(a), lambda: np.sin(a_np)),
        ("add", lambda: fnp.add(a, b), lambda: np.add(a_np, b_np)),
        ("multiply", lambda: fnp.multiply(a, b), lambda: np.multiply(a_np, b_np)),
        ("sum", lambda: fnp.sum(a), lambda: np.sum(a_np)),
        ("mean", lambda: fnp.mean(a), lambda: np.mean(a_np)),
        ("exp", lambda: fnp.exp(a), lambda: np.exp(a_np)),
    ]
    if hasattr(fnp, "matmul"):
        # a (k, k) @ (k,) product with about n elements in the matrix
        k = max(2, int(round(n ** 0.5)))
        m_np, v_np = rng.standard_normal((k, k)), rng.standard_normal(k)
        m, v = fnp.asarray(m_np), fnp.asarray(v_np)
        out.append((f"matmul {k}x{k}@{k}", lambda: fnp.matmul(m, v), lambda: np.matmul(m_np, v_np)))
    out += [
        ("x[1:5]", lambda: a[1:5], lambda: a_np[1:5]),
        ("where", lambda: fnp.where(cond, a, b), lambda: np.where(cond_np, a_np, b_np)),
    ]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--sample-ms", type=float, default=2.0)
    args = ap.parse_args()

    print(f"functad eager vs NumPy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}; median of {args.repeats} samples, microseconds per call")
    if not hasattr(fnp, "matmul"):
        print("(functad.numpy.matmul is not available yet: matmul skipped)")
    header = f"{'op':<20}{'n':>7}{'functad us':>12}{'NumPy us':>11}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for n in (10, 10_000):
        for name, f_fd, f_np in cases(n):
            t_fd, t_np, ratio = time_pair(f_fd, f_np, args.repeats, args.sample_ms)
            print(f"{name:<20}{n:>7}{t_fd:>12.2f}{t_np:>11.2f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
