"""The MLP step's eight matrix products with each BLAS at hand, one thread.

    python benchmarks/bench_blas.py [--repeats 15] [--no-pin]

Issue 4 asks for the jitted MLP step (784-512-512-10, float32) at 0.9x JAX's
time.  The step's eight products bound what any implementation can reach, so
this script times just them, interleaved round by round:

* NumPy's ``np.dot`` (NumPy's bundled OpenBLAS), into preallocated outputs;
* SciPy's ``sgemm`` (SciPy's bundled OpenBLAS: the one Numba's ``np.dot``
  calls inside compiled code);
* Intel MKL's ``cblas_sgemm``, sequential, when ``pip install mkl`` has put
  ``libmkl_rt`` under ``sys.prefix/lib`` (or ``--mkl PATH`` names it).  MKL is
  not a dependency of functad; this row measures what it would buy.

Compare the totals with JAX's whole step in ``bench_jit.py`` (case 4).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"            # before NumPy is imported

import argparse  # noqa: E402
import ctypes  # noqa: E402
import glob  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench_jit_startup import pin_to_one_cpu  # noqa: E402

SHAPES = [  # (lhs shape, rhs shape, transpose lhs, transpose rhs): the step's products
    ("x", "W1", False, False), ("h1", "W2", False, False), ("h2", "W3", False, False),
    ("h2", "g3", True, False), ("g3", "W3", False, True), ("h1", "g2", True, False),
    ("g2", "W2", False, True), ("x", "g1", True, False),
]


def operands(batch, rng):
    dims = {"x": (batch, 784), "W1": (784, 512), "W2": (512, 512), "W3": (512, 10),
            "h1": (batch, 512), "h2": (batch, 512), "g1": (batch, 512), "g2": (batch, 512),
            "g3": (batch, 10)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in dims.items()}


def out_shape(ops, a, b, ta, tb):
    return (ops[a].shape[1] if ta else ops[a].shape[0], ops[b].shape[0] if tb else ops[b].shape[1])


def numpy_products(ops, outs):
    def run():
        for (a, b, ta, tb), out in zip(SHAPES, outs):
            np.dot(ops[a].T if ta else ops[a], ops[b].T if tb else ops[b], out=out)
    return run


def scipy_products(ops, outs):
    from scipy.linalg import blas
    # column-major BLAS on row-major arrays: C = op(A) op(B) is C.T = op(B).T op(A).T,
    # and the .T views are Fortran-ordered, so nothing is copied
    calls = [(ops[b].T, ops[a].T, out.T, tb, ta) for (a, b, ta, tb), out in zip(SHAPES, outs)]

    def run():
        for x, y, c, tx, ty in calls:
            blas.sgemm(1.0, x, y, 0.0, c, tx, ty, True)
    return run


def find_mkl(path):
    if path:
        return path
    hits = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    return hits[0] if hits else None


def mkl_products(ops, outs, path):
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    lib.MKL_Set_Threading_Layer(1)            # MKL_THREADING_SEQUENTIAL
    sgemm = lib.cblas_sgemm
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    calls = []
    for (a, b, ta, tb), out in zip(SHAPES, outs):
        x, y = ops[a], ops[b]
        m, n = out.shape
        k = x.shape[0] if ta else x.shape[1]
        calls.append((101, 112 if ta else 111, 112 if tb else 111, m, n, k, 1.0, x.ctypes.data,
                      x.shape[1], y.ctypes.data, y.shape[1], 0.0, out.ctypes.data, n))

    def run():
        for c in calls:
            sgemm(*c)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--mkl", default=None, help="path of libmkl_rt.so (default: sys.prefix/lib)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = ap.parse_args()
    cpu = None if args.no_pin else pin_to_one_cpu()
    mkl = find_mkl(args.mkl)
    rng = np.random.default_rng(0)
    where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    print(f"the MLP step's 8 float32 products, 1 thread, {where}; median of {args.repeats} "
          "interleaved rounds, ms")
    print(f"{'batch':>6} {'np.dot':>9} {'scipy sgemm':>12} {'MKL':>9} {'MKL/np.dot':>11}")
    for batch in (128, 1024):
        ops = operands(batch, rng)
        outs = [np.empty(out_shape(ops, *s), np.float32) for s in SHAPES]
        rows = {"np": numpy_products(ops, outs), "scipy": scipy_products(ops, outs)}
        if mkl:
            rows["mkl"] = mkl_products(ops, outs, mkl)
        rows["np"]()
        want = [o.copy() for o in outs]
        for k in rows:          # every row computes the same products, in place
            for o in outs:
                o.fill(np.nan)
            rows[k]()
            assert all(np.allclose(w, o, rtol=1e-3, atol=1e-2) for w, o in zip(want, outs)), k
        n = 20 if batch == 128 else 4
        times = {k: [] for k in rows}
        for _ in range(args.repeats):
            for k, fn in rows.items():
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times[k].append((time.perf_counter() - t0) / n * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        mk = f"{med['mkl']:9.3f} {med['mkl'] / med['np']:10.2f}x" if mkl else f"{'-':>9} {'-':>11}"
        print(f"{batch:>6} {med['np']:9.3f} {med['scipy']:12.3f} {mk}")
    if not mkl:
        print("(no MKL row: pip install mkl, or pass --mkl /path/to/libmkl_rt.so)")


if __name__ == "__main__":
    main()
