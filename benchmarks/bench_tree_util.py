"""Benchmark functad.tree_util against optree (C++) on jit-cache-style workloads.

Run from the repository root::

    python benchmarks/bench_tree_util.py            # default: 15 repeats
    python benchmarks/bench_tree_util.py --repeats 31

Each row times one operation on one tree.  A sample runs the operation in a
loop for about ``--sample-ms`` milliseconds and records the time per call;
the table shows the median over ``--repeats`` samples, in microseconds, and
the ratio functad / optree (above 1 means functad is slower).  optree is
used only here; it is not a dependency of functad.  Without optree installed
only the functad column is printed.

Operations:

* ``flat+unflat``: ``leaves, td = tree_flatten(t); tree_unflatten(td, leaves)``
* ``flat+hash``: ``leaves, td = tree_flatten(t); hash(td)``; this is what a
  jit cache does with the arguments on every call (flatten, then look the
  treedef up in a dict), so it is the "jit-cache-key" case.
* ``jit path``: flatten the arguments, hash their treedef, and unflatten
  outputs with a treedef kept from an earlier call: the whole pytree cost of
  one cached jit call (functad compiles a builder for a treedef that is
  unflattened repeatedly; the warm-up triggers it).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from functad import tree_util as ft  # noqa: E402

try:
    import optree
except ImportError:  # pragma: no cover - optional
    optree = None


def make_trees():
    rng = np.random.default_rng(0)
    mlp = [{"w": rng.standard_normal((64, 64)), "b": rng.standard_normal(64)} for _ in range(3)]
    pair = (rng.standard_normal(8), rng.standard_normal(8))
    leaf = np.float64(1.0)
    # 1000 leaves: 10 x 10 x 10 nested dicts
    big = {
        f"l{i}": {f"m{j}": {f"n{k}": leaf for k in range(10)} for j in range(10)}
        for i in range(10)
    }
    return {
        "(a) MLP params [{'w','b'}]*3": mlp,
        "(b) tuple of 2 arrays": pair,
        "(c) 1000-leaf nested dict": big,
    }


def make_ops(lib):
    """Benchmarked operations for one library; each maps a tree to a thunk."""
    flatten, unflatten = lib.tree_flatten, lib.tree_unflatten

    def flat_unflat(t):
        def run():
            leaves, td = flatten(t)
            return unflatten(td, leaves)

        return run

    def flat_hash(t):
        def run():
            leaves, td = flatten(t)
            return hash(td)

        return run

    def jit_path(t):
        # A jit cache entry keeps the output treedef from tracing; each call
        # flattens the arguments, hashes their treedef for the lookup, and
        # unflattens the outputs with the kept treedef.
        leaves, out_td = flatten(t)
        for _ in range(200):  # warm up (functad compiles a builder for a reused treedef)
            unflatten(out_td, leaves)

        def run():
            leaves, td = flatten(t)
            hash(td)
            return unflatten(out_td, leaves)

        return run

    return {"flat+unflat": flat_unflat, "flat+hash": flat_hash, "jit path": jit_path}


def calibrate(fn, sample_s):
    """Number of calls of ``fn`` that take about ``sample_s`` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= sample_s / 4 or n >= 1 << 22:
            break
        n *= 2
    return max(1, int(n * sample_s / max(dt, 1e-9)))


def sample(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def time_pair(fns, repeats, sample_s):
    """Median time per call (us) of each thunk; samples are interleaved so
    that machine noise hits all of them alike."""
    ns = [calibrate(f, sample_s) for f in fns]
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for f, n, out in zip(fns, ns, samples):
            out.append(sample(f, n))
    return [statistics.median(s) * 1e6 for s in samples]


def check_agreement(trees):
    """Sanity check: both libraries see the same leaves in the same order."""
    if optree is None:
        return
    for name, t in trees.items():
        a = ft.tree_leaves(t)
        b = optree.tree_leaves(t)
        assert len(a) == len(b) and all(x is y for x, y in zip(a, b)), name


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--sample-ms", type=float, default=20.0)
    args = p.parse_args(argv)

    trees = make_trees()
    check_agreement(trees)
    ours = make_ops(ft)
    theirs = make_ops(optree) if optree is not None else None

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"optree {optree.__version__ if optree else 'not installed'}")
    print(f"median of {args.repeats} samples of ~{args.sample_ms:g} ms each; "
          "times in microseconds per call; ratio = functad / optree\n")
    header = f"| {'tree':<30} | {'operation':<11} | {'functad':>8} | {'optree':>8} | {'ratio':>6} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for tname, t in trees.items():
        for oname in ours:
            if theirs is not None:
                a, b = time_pair([ours[oname](t), theirs[oname](t)], args.repeats, args.sample_ms / 1e3)
                print(f"| {tname:<30} | {oname:<11} | {a:8.2f} | {b:8.2f} | {a / b:6.2f} |")
            else:
                (a,) = time_pair([ours[oname](t)], args.repeats, args.sample_ms / 1e3)
                print(f"| {tname:<30} | {oname:<11} | {a:8.2f} | {'-':>8} | {'-':>6} |")


if __name__ == "__main__":
    main()
