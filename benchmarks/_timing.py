"""Timing helpers shared by the benchmark scripts.

Samples of all the compared callables are interleaved round by round, so a
slow phase of a noisy machine hits each alike; ratios are medians of
per-round ratios, steadier than ratios of medians.
"""

import os
import statistics
import sys
import time

# let the scripts run from a checkout without installing the package
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def calibrate(fn, sample_ms, max_loops=1 << 22):
    """Number of loops for one sample of ``fn`` to last about ``sample_ms``."""
    for _ in range(3):
        fn()                     # warm up caches (and compile, for jit rows)
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        t = time.perf_counter() - t0
        if t >= sample_ms / 1e3 or loops >= max_loops:
            return loops
        loops = max(loops * 2, int(loops * sample_ms / 1e3 / max(t, 1e-9)))


def measure(fns, repeats, sample_ms):
    """Seconds per call of each function, ``repeats`` interleaved samples each."""
    loops = [calibrate(fn, sample_ms) for fn in fns]
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, n, s in zip(fns, loops, samples):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            s.append((time.perf_counter() - t0) / n)
    return samples


def median_ratio(samples, reference):
    """Median of the per-round ratios of two interleaved sample lists."""
    return statistics.median(a / b for a, b in zip(samples, reference))


def median_us(samples):
    return statistics.median(samples) * 1e6
