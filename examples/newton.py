"""Newton's method on the Rosenbrock function, as one staged while_loop.

    f(x, y) = (1 - x)^2 + 100 (y - x^2)^2        minimum f = 0 at (1, 1)

Each Newton step solves  H(p) s = g(p)  and sets  p <- p - s, with the
gradient g = grad(f) and the Hessian H = hessian(f) (forward-over-reverse).
The iteration runs until |g(p)| < tol or max_iter steps, which is a loop
whose trip count depends on values, so it is written with
``functad.lax.while_loop``: the condition and the body are traced once and
the whole solver compiles with ``functad.jit``.  ``vmap`` then solves from
several starting points at once; each lane stops after its own number of
steps (the batched loop runs until every lane is done and freezes the
finished ones).

Run:  python examples/newton.py    (exits 1 if Newton does not converge)
"""

import sys

import numpy as np

import functad as fd
import functad.numpy as fnp
from functad import lax


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1.0 - x) ** 2 + 100.0 * (y - x ** 2) ** 2


grad_f = fd.grad(rosenbrock)
hess_f = fd.hessian(rosenbrock)

TOL = 1e-10
MAX_ITER = 50


def newton(p0):
    """Minimise rosenbrock from p0; returns (iterations, p, |grad|)."""
    def cond_fun(state):
        i, p, gnorm = state
        return (i < MAX_ITER) & (gnorm >= TOL)

    def body_fun(state):
        i, p, _ = state
        p = p - fnp.linalg.solve(hess_f(p), grad_f(p))
        return i + 1, p, fnp.linalg.norm(grad_f(p))
    return lax.while_loop(cond_fun, body_fun, (0, p0, fnp.linalg.norm(grad_f(p0))))


def newton_python(p0):
    """The same iteration with a Python while loop (the reference)."""
    p, i = np.asarray(p0, dtype=np.float64), 0
    while i < MAX_ITER and np.linalg.norm(grad_f(p)) >= TOL:
        p = p - np.linalg.solve(hess_f(p), grad_f(p))
        i += 1
    return i, p


def main():
    solve = fd.jit(newton)
    p0 = np.array([-1.2, 1.0])                    # the classic starting point
    iters, p, gnorm = solve(p0)
    ref_iters, ref_p = newton_python(p0)
    print(f"start {p0}: {int(iters)} Newton steps -> p = {np.asarray(p)}, "
          f"f(p) = {float(rosenbrock(p)):.3e}, |grad f(p)| = {float(gnorm):.2e}")
    print(f"Python-loop reference: {ref_iters} steps -> p = {ref_p}")
    loop = fd.make_jaxpr(newton)(p0).jaxpr.eqns[-1]
    print(f"staged as one '{loop.primitive.name}' primitive whose body has "
          f"{len(loop.params['body_jaxpr'].eqns)} equations (gradient, Hessian, solve, norm)")

    starts = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 2.5], [1.0, 1.0]])
    b_iters, b_p, b_gnorm = fd.jit(fd.vmap(newton))(starts)
    print("\nvmap over starting points (each lane stops on its own):")
    for s, k, q, gn in zip(starts, np.asarray(b_iters), np.asarray(b_p), np.asarray(b_gnorm)):
        print(f"  start {s} -> {int(k):2d} steps, p = {q}, |grad| = {gn:.1e}")

    failures = []
    if not np.allclose(p, [1.0, 1.0], atol=1e-8) or float(gnorm) >= TOL:
        failures.append(f"Newton did not converge to (1, 1) from {p0}: p = {p}")
    if int(iters) != ref_iters or not np.allclose(p, ref_p, atol=1e-12):
        failures.append("while_loop and the Python loop disagree")
    if not np.allclose(b_p, 1.0, atol=1e-8) or np.any(np.asarray(b_iters) >= MAX_ITER):
        failures.append("a batched start did not converge")
    if len(set(np.asarray(b_iters).tolist())) < 2:
        failures.append("the lanes should take different numbers of steps")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
