"""The MLP step's eight matrix products with each BLAS at hand, one thread.

    python benchmarks/bench_blas.py [--repeats 15] [--mkl PATH] [--no-pin]

Issue 4 asks for the jitted MLP step (784-512-512-10, float32) at 0.9x JAX's
time.  The step's eight products bound what any implementation can reach, so
this script times them, interleaved round by round:

* NumPy's ``np.dot`` (NumPy's bundled OpenBLAS), into preallocated outputs;
* SciPy's ``sgemm`` (SciPy's bundled OpenBLAS: the one Numba's ``np.dot``
  calls inside compiled code);
* Intel MKL's ``cblas_sgemm``, sequential, when the ``mkl`` package is
  installed (functad's optional ``[mkl]`` extra; ``--mkl PATH`` names another
  ``libmkl_rt``).

Beside them, in the same rounds:

* JAX's whole jitted step (``jax.jit`` of ``value_and_grad`` + SGD, as in
  ``bench_jit.py``'s case 4), when JAX is installed;
* the *rest floor*: what any step must do besides the products, each at
  NumPy's or a single fused Numba loop's speed: ``tanh`` of both hidden
  layers, the backward ``(1 - h**2) * g`` of both, and writing the updated
  parameters ``p - lr * g`` into new arrays.

The last columns are *floors*: the products with OpenBLAS (the faster of
NumPy's and SciPy's) and with MKL, each plus the rest floor, divided by
JAX's step.  A step built on that BLAS cannot be faster than its floor, so
a floor above 0.9 puts issue 4's "0.9x JAX" out of reach on the machine
that printed it.
"""

import os

from bench_jit_startup import LR, THREAD_ENV, init_mlp, make_mlp_step, pin_to_one_cpu

os.environ.update(THREAD_ENV)         # one thread everywhere, before NumPy is imported

import argparse  # noqa: E402
import ctypes  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

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
    from functad import blas         # the library functad[mkl] would use
    return blas.mkl_path()


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


def rest_floor(batch, rng):
    """The step's work besides the products, each piece in one pass."""
    import numba

    @numba.njit(cache=False)
    def tanh_backward(h, g, out):         # (1 - h**2) * g, one fused pass
        for i in range(h.size):
            out.flat[i] = (np.float32(1) - h.flat[i] * h.flat[i]) * g.flat[i]

    @numba.njit(cache=False)
    def sgd(p, g, lr):                    # p - lr * g into a new array, one pass
        out = np.empty_like(p)
        for i in range(p.size):
            out.flat[i] = p.flat[i] - lr * g.flat[i]
        return out

    params, _, _ = init_mlp(np, batch)
    flat = [a for wb in params for a in wb]
    grads = [rng.standard_normal(a.shape).astype(np.float32) for a in flat]
    hidden = [rng.standard_normal((batch, 512)).astype(np.float32) for _ in range(4)]
    out = np.empty((batch, 512), np.float32)
    lr = np.float32(LR)

    def run():
        for h in hidden[:2]:
            np.tanh(h, out=out)
            tanh_backward(h, hidden[2], out)
        return [sgd(p, g, lr) for p, g in zip(flat, grads)]
    return run


def jax_step(batch):
    """JAX's jitted MLP step, or None when JAX is not installed."""
    if importlib.util.find_spec("jax") is None:
        return None
    import jax
    import jax.numpy as jnp
    step = jax.jit(make_mlp_step(jnp, jnp.tanh, jax.nn.log_softmax, jax.value_and_grad,
                                 jax.tree_util.tree_map))
    args = jax.tree_util.tree_map(jnp.asarray, init_mlp(np, batch))
    return lambda: jax.block_until_ready(step(*args))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--mkl", default=None, help="path of libmkl_rt (default: the mkl package's)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = ap.parse_args()
    cpu = None if args.no_pin else pin_to_one_cpu()
    mkl = find_mkl(args.mkl)
    rng = np.random.default_rng(0)
    where = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    print(f"the MLP step's 8 float32 products, 1 thread, {where}; median of {args.repeats} "
          "interleaved rounds, ms")
    print(f"{'batch':>6} {'np.dot':>8} {'scipy':>8} {'MKL':>8} {'MKL/np':>7} {'rest':>6} "
          f"{'JAX step':>9} {'floor/JAX OpenBLAS':>19} {'MKL':>6}")
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
        rows["rest"] = rest_floor(batch, rng)
        jax = jax_step(batch)
        if jax is not None:
            rows["jax"] = jax
        for fn in rows.values():  # compile and warm up
            fn()
        n = 20 if batch == 128 else 4
        times = {k: [] for k in rows}
        for _ in range(args.repeats):
            for k, fn in rows.items():
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times[k].append((time.perf_counter() - t0) / n * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        mk = f"{med['mkl']:8.3f} {med['mkl'] / med['np']:6.2f}x" if mkl else f"{'-':>8} {'-':>7}"
        jx = f"{'-':>9} {'-':>19} {'-':>6}"
        if jax is not None:
            floor = [min(med["np"], med["scipy"])] + ([med["mkl"]] if mkl else [])
            floor = [f"{(t + med['rest']) / med['jax']:.2f}x" for t in floor] + ["-"]
            jx = f"{med['jax']:9.3f} {floor[0]:>19} {floor[1]:>6}"
        print(f"{batch:>6} {med['np']:8.3f} {med['scipy']:8.3f} {mk} {med['rest']:6.3f} {jx}")
    if not mkl:
        print("(no MKL column: pip install mkl, or pass --mkl /path/to/libmkl_rt.so)")
    if importlib.util.find_spec("jax") is None:
        print("(no JAX columns: JAX is not installed)")


if __name__ == "__main__":
    main()
