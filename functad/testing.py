"""Tools to test differentiable code: ``check_grads`` and Hypothesis strategies.

``check_grads`` compares functad's derivatives with central finite
differences along random directions, in forward mode (JVP) and reverse mode
(VJP, through the identity ``<vjp(c), t> == <c, jvp(t)>``), to any order.

>>> import functad.numpy as fnp
>>> from functad.testing import check_grads
>>> check_grads(fnp.sin, (fnp.array([0.5, 1.0]),), order=2)
"""

from __future__ import annotations

import numpy as np

from functad import tree_util as tu
from functad import core
from functad.ad import jvp, vjp

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_jvp", "default_tolerance"]


_TOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 2e-2, np.dtype(np.float16): 1e-1,
        np.dtype(np.complex128): 1e-5, np.dtype(np.complex64): 2e-2}
_EPS = {np.dtype(np.float64): 1e-4, np.dtype(np.float32): 1e-2, np.dtype(np.float16): 1e-1,
        np.dtype(np.complex128): 1e-4, np.dtype(np.complex64): 1e-2}


def default_tolerance(dtype):
    return _TOL.get(np.dtype(dtype), 1e-5)


def _leaves_dtype(tree):
    dts = [core.aval_of(x).dtype for x in tu.tree_leaves(tree)]
    floats = [d for d in dts if d.kind in "fc"]
    return min(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float64)


def _rand_like(rng, x):
    a = core.aval_of(x)
    if not a.is_float:
        return np.zeros(a.shape, a.dtype)
    return core._wrap(rng.standard_normal(a.shape).astype(a.dtype))


def _axpy(a, x, y):
    return tu.tree_map(lambda xi, yi: yi + a * xi if core.aval_of(yi).is_float else yi, x, y)


def _vdot(x, y):
    return sum(float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))
               for a, b in zip(tu.tree_leaves(x), tu.tree_leaves(y)))


def numerical_jvp(f, primals, tangents, eps):
    """Central finite difference ``(f(x + eps t) - f(x - eps t)) / (2 eps)``."""
    plus = f(*_axpy(eps, tangents, primals))
    minus = f(*_axpy(-eps, tangents, primals))
    return tu.tree_map(lambda p, m: (np.asarray(p, np.float64) - np.asarray(m, np.float64))
                       / (2 * eps), plus, minus)


def _check_close(x, y, atol, rtol, what):
    xs, ys = tu.tree_leaves(x), tu.tree_leaves(y)
    if len(xs) != len(ys):
        raise AssertionError(f"{what}: {len(xs)} leaves against {len(ys)}")
    for i, (a, b) in enumerate(zip(xs, ys)):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"{what}: leaf {i} has shape {a.shape}, expected {b.shape}")
        if not np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True):
            err = np.max(np.abs(a - b)) if a.size else 0.0
            raise AssertionError(f"{what}: leaf {i} differs (max abs error {err:.3g}, "
                                 f"atol={atol:g}, rtol={rtol:g})\n got:      {a}\n expected: {b}")


def check_jvp(f, args, atol=None, rtol=None, eps=None, rng=None):
    """Check ``jvp(f)`` against central finite differences along a random direction."""
    rng = np.random.default_rng(0) if rng is None else rng
    dt = _leaves_dtype(args)
    tol = default_tolerance(dt)
    atol = tol if atol is None else atol
    rtol = tol if rtol is None else rtol
    eps = _EPS.get(dt, 1e-4) if eps is None else eps
    tangents = tu.tree_map(lambda x: _rand_like(rng, x), tuple(args))
    _, t_out = jvp(f, tuple(args), tangents)
    t_num = numerical_jvp(f, tuple(args), tangents, eps)
    _check_close(t_out, t_num, atol, rtol, f"JVP of {getattr(f, '__name__', f)} "
                                           "against finite differences")


def check_vjp(f, args, atol=None, rtol=None, eps=None, rng=None):
    """Check ``vjp(f)`` through ``<vjp(c), t> == <c, jvp(t)>`` with the JVP
    measured by finite differences."""
    rng = np.random.default_rng(1) if rng is None else rng
    dt = _leaves_dtype(args)
    tol = default_tolerance(dt)
    atol = tol if atol is None else atol
    rtol = tol if rtol is None else rtol
    eps = _EPS.get(dt, 1e-4) if eps is None else eps
    out, f_vjp = vjp(f, *args)
    cts = tu.tree_map(lambda x: _rand_like(rng, x), out)
    tangents = tu.tree_map(lambda x: _rand_like(rng, x), tuple(args))
    cts_in = f_vjp(cts)
    t_num = numerical_jvp(f, tuple(args), tangents, eps)
    lhs = _vdot(cts_in, tangents)
    rhs = _vdot(cts, t_num)
    _check_close(lhs, rhs, atol, rtol, f"VJP of {getattr(f, '__name__', f)}: "
                                       "<vjp(c), t> against <c, finite-difference jvp(t)>")


def check_grads(f, args, order=2, modes=("fwd", "rev"), atol=None, rtol=None, eps=None):
    """Check derivatives of ``f`` at ``args`` up to ``order``, in forward and/or
    reverse mode, against finite differences along random directions.

    Parameters
    ----------
    f : function of the positional arguments ``args`` (pytrees of float arrays).
    args : tuple of arguments.
    order : highest derivative order to check (1 or more).
    modes : ``("fwd",)``, ``("rev",)`` or both.
    atol, rtol, eps : tolerances and finite-difference step; by default chosen
        from the dtype (float64: ``1e-5`` and ``eps=1e-4``).

    Raises
    ------
    AssertionError naming the mode, order and the largest error.

    Example
    -------
    >>> import functad.numpy as fnp
    >>> check_grads(lambda x, y: fnp.sum(x * fnp.exp(y)), (fnp.ones(3), fnp.zeros(3)), order=2)
    """
    args = tuple(args)
    rng = np.random.default_rng(0)

    def check(fun, order_left):
        if "fwd" in modes:
            check_jvp(fun, args, atol, rtol, eps, rng)
            if order_left > 1:
                t = tu.tree_map(lambda x: _rand_like(rng, x), args)

                def f_jvp(*primals):
                    return jvp(fun, primals, t)[1]
                f_jvp.__name__ = f"jvp({getattr(fun, '__name__', 'f')})"
                check(f_jvp, order_left - 1)
        if "rev" in modes:
            check_vjp(fun, args, atol, rtol, eps, rng)
            if order_left > 1:
                out = fun(*args)
                c = tu.tree_map(lambda x: _rand_like(rng, x), out)

                def f_vjp(*primals):
                    return vjp(fun, *primals)[1](c)
                f_vjp.__name__ = f"vjp({getattr(fun, '__name__', 'f')})"
                check(f_vjp, order_left - 1)
    check(f, order)
