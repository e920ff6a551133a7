"""Rematerialisation: ``checkpoint`` (alias ``remat``) trades compute for memory.

Reverse mode normally stores, during the forward pass, every residual the
backward pass needs (the local partial derivatives of each operation).
``checkpoint(f)`` stores only the *inputs* of ``f`` instead and recomputes
``f``'s forward pass, with its residuals, inside the backward pass.

How it works
------------
``checkpoint(f)(*args)`` stages ``f`` into a :class:`~functad.core.ClosedJaxpr`
and binds one ``remat_call`` primitive carrying it (outside every transform
it just calls ``f``).  Its rules:

* **impl**: evaluate the jaxpr.
* **jvp**: forward mode binds a ``remat_call`` of the JVP jaxpr (so an outer
  reverse mode still rematerialises it).  Under reverse mode (the partial
  evaluator of :func:`functad.linearize` / :func:`functad.grad`), the primal
  ``remat_call`` runs now, and one linear ``remat_lin`` equation is staged
  into the linear jaxpr, with the primal *inputs* as its only residuals.
* **transpose** of ``remat_lin``: run :func:`functad.vjp` of the body on the
  saved inputs (the recomputation) and apply it to the output cotangents.
  Nested checkpoints recompute recursively.
* **batch**: vmap the body and bind a new ``remat_call`` (resp.
  ``remat_lin``), so ``grad(vmap(checkpoint(f)))`` still rematerialises.
* **lower** (Numba): the body is emitted inline.

>>> import functad as fd, functad.numpy as fnp
>>> def chain(x):
...     for _ in range(10):
...         x = fnp.tanh(x)
...     return fnp.sum(x)
>>> x = fnp.linspace(-1.0, 1.0, 4)
>>> len(fd.linearize(chain, x)[1].linear_jaxpr.consts)       # one residual per tanh
10
>>> len(fd.linearize(fd.checkpoint(chain), x)[1].linear_jaxpr.consts)   # only x
1
>>> bool(fnp.allclose(fd.grad(fd.checkpoint(chain))(x), fd.grad(chain)(x)))
True
"""

from __future__ import annotations

import functools

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.ad import (is_linearizing, jaxpr_evaluator, jvp_flat, jvp_jaxpr, linearize_flat,
                        zeros_like_aval)
from functad.core import (ClosedJaxpr, Jaxpr, Tracer, Var, aval_of,
                          eval_jaxpr)

__all__ = ["checkpoint", "remat", "remat_call_p", "remat_lin_p"]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _fit(x, aval):
    from functad.ad import fit_to_aval     # tangents get the shape and dtype of their aval
    return fit_to_aval(x, aval)


def _closure_convert(closed):
    """Constants of ``closed`` that are tracers of an outer transform become
    leading inputs: returns ``(closed, lifted values)``."""
    consts = closed.consts
    if not any(isinstance(c, Tracer) for c in consts):
        return closed, []
    j = closed.jaxpr
    keep = [i for i, c in enumerate(consts) if not isinstance(c, Tracer)]
    lift = [i for i, c in enumerate(consts) if isinstance(c, Tracer)]
    jaxpr = Jaxpr([j.constvars[i] for i in keep], [j.constvars[i] for i in lift] + j.invars,
                  j.outvars, j.eqns)
    return ClosedJaxpr(jaxpr, [consts[i] for i in keep]), [consts[i] for i in lift]


def _dependent_outputs(closed, nz):
    """Which outputs may have a nonzero tangent when the inputs flagged in ``nz``
    do: a float output reachable from one of them (a cheap over-approximation;
    the rules instantiate zeros where the real tangent is a symbolic zero)."""
    j = closed.jaxpr
    dep = {v for v, z in zip(j.invars, nz) if z}
    for eqn in j.eqns:
        if any(type(a) is Var and a in dep for a in eqn.inputs):
            dep.update(eqn.outvars)
    return [type(v) is Var and v in dep and v.aval.is_float for v in j.outvars]


_check_args = core.check_call_args


def _batch_jaxpr(closed, size, batched):
    """``closed`` vmapped over a leading axis of the inputs flagged in
    ``batched``; every output batched at axis 0."""
    from functad.batching import vmap
    body = jaxpr_evaluator(closed)
    in_axes = tuple(0 if b else None for b in batched)

    def fn(*xs):
        return list(vmap(lambda *a: list(body(*a)), in_axes=in_axes, out_axes=0)(*xs))
    avals = [a.update(shape=(size,) + a.shape) if b else a
             for a, b in zip(closed.in_avals, batched)]
    return core.trace_to_jaxpr(fn, avals, "vmap of checkpoint", body)


def _to_front(x, d, size, want):
    """``x`` with its batch axis first (broadcast if unbatched and ``want``)."""
    from functad.batching import bdim_to_front
    if d is None:
        return bdim_to_front(x, None, size) if want else x
    return bdim_to_front(x, d)


def _tuple_expr(outs):
    return "(" + "".join(o + ", " for o in outs) + ")"


# --------------------------------------------------------------------------
# remat_call: a call whose reverse mode recomputes the body
# --------------------------------------------------------------------------

remat_call_p = core.Primitive("remat_call", multiple_results=True)


def _remat_impl(*args, jaxpr, prevent_cse, policy, name):
    return eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)


def _remat_abstract_eval(*avals, jaxpr, prevent_cse, policy, name):
    _check_args(avals, jaxpr, f"checkpoint of {name}")
    return list(jaxpr.out_avals)


def _remat_jvp(primals, tangents, jaxpr, prevent_cse, policy, name):
    avals = jaxpr.in_avals
    nz = [t is not None and a.is_float for t, a in zip(tangents, avals)]
    n_out = len(jaxpr.out_avals)
    params = dict(prevent_cse=prevent_cse, policy=policy, name=name)
    if not any(nz):
        return remat_call_p.bind(*primals, jaxpr=jaxpr, **params), [None] * n_out
    ts = [_fit(t, a.strip_weak_type()) for t, a, z in zip(tangents, avals, nz) if z]
    if is_linearizing(core.current_interpreter()):
        # Reverse mode.  The primal inputs are known, so this runs now (on the
        # parent of the partial evaluator) and stages nothing linear ...
        outs = remat_call_p.bind(*primals, jaxpr=jaxpr, **params)
        out_nz = _dependent_outputs(jaxpr, nz)
        if not any(out_nz):
            return outs, [None] * n_out
        # ... and the linear jaxpr gets one equation whose residuals are the
        # primal inputs alone; its transpose recomputes the body.
        t_outs = remat_lin_p.bind(*primals, *ts, jaxpr=jaxpr, nz=tuple(nz),
                                  out_nz=tuple(out_nz), name=name)
        it = iter(t_outs)
        return outs, [next(it) if z else None for z in out_nz]
    # Forward mode: a checkpoint of the JVP, so that an outer reverse mode
    # (e.g. grad of a jvp) rematerialises it too.
    jj, out_nz = jvp_jaxpr(jaxpr, nz, name="jvp of checkpoint")
    outs = remat_call_p.bind(*primals, *ts, jaxpr=jj, **params)
    it = iter(outs[n_out:])
    return outs[:n_out], [next(it) if z else None for z in out_nz]


def _remat_batch(vals, dims, jaxpr, prevent_cse, policy, name):
    size = next(core.shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)
    batched = [d is not None for d in dims]
    vals = [_to_front(v, d, size, False) for v, d in zip(vals, dims)]
    bj = _batch_jaxpr(jaxpr, size, batched)
    outs = remat_call_p.bind(*vals, jaxpr=bj, prevent_cse=prevent_cse, policy=policy,
                             name=f"vmap({name})")
    return outs, [0] * len(outs)


def _remat_lower(ctx, *ins, jaxpr, prevent_cse, policy, name):
    return _tuple_expr(ctx.emit_jaxpr(jaxpr, list(ins)))


remat_call_p.impl = _remat_impl
remat_call_p.abstract_eval = _remat_abstract_eval
remat_call_p.jvp = _remat_jvp
remat_call_p.batch = _remat_batch
remat_call_p.lower = _remat_lower


# --------------------------------------------------------------------------
# remat_lin: the linearization of a remat_call, residuals = its inputs
# --------------------------------------------------------------------------
#
# remat_lin(*res, *tangents)  =  J_body(res) . tangents
#
# ``res`` are the primal inputs of the body, ``tangents`` the tangents of the
# inputs flagged in ``nz``; the outputs are the tangents of the outputs
# flagged in ``out_nz``.  Linear in ``tangents``.

remat_lin_p = core.Primitive("remat_lin", multiple_results=True)


def _lin_apply(args, jaxpr, nz, out_nz):
    """``J_body(res) . tangents``, written with primitives (so it is itself
    differentiable and batchable)."""
    n = len(nz)
    res, ts = list(args[:n]), iter(args[n:])
    tangents = [next(ts) if z else None for z in nz]
    _, outs_t = jvp_flat(jaxpr_evaluator(jaxpr), res, tangents, core.current_interpreter(),
                         "jvp of checkpoint")
    return [zeros_like_aval(a) if t is None else _fit(t, a.strip_weak_type())
            for t, a, z in zip(outs_t, jaxpr.out_avals, out_nz) if z]


def _lin_impl(*args, jaxpr, nz, out_nz, name):
    return _lin_apply(args, jaxpr, nz, out_nz)


def _lin_abstract_eval(*avals, jaxpr, nz, out_nz, name):
    n = len(nz)
    _check_args(avals[:n], jaxpr, f"linearized checkpoint of {name}")
    t_avals = [a for a, z in zip(jaxpr.in_avals, nz) if z]
    if len(avals) - n != len(t_avals):
        raise TypeError(f"linearized checkpoint of {name}: {len(t_avals)} tangents expected, "
                        f"got {len(avals) - n}")
    for a, e in zip(avals[n:], t_avals):
        if a.shape != e.shape or a.dtype != e.dtype:
            raise TypeError(f"linearized checkpoint of {name}: tangent of type "
                            f"{a.str_short()}, expected {e.str_short()}")
    return [a.strip_weak_type() for a, z in zip(jaxpr.out_avals, out_nz) if z]


def _lin_transpose(cts, *args, jaxpr, nz, out_nz, name):
    """Recompute the body's forward pass from the saved inputs (the
    rematerialisation) with its VJP, and pull the cotangents back."""
    from functad.ad import UndefinedPrimal
    n = len(nz)
    res = list(args[:n])
    if any(type(r) is UndefinedPrimal for r in res):
        raise NotImplementedError("functad internal error: remat_lin transposed with respect "
                                  "to a residual")
    diff = [i for i, z in enumerate(nz) if z]
    outs = [i for i, z in enumerate(out_nz) if z]
    body = jaxpr_evaluator(jaxpr)

    def f_diff(*xs):
        full = list(res)
        for i, x in zip(diff, xs):
            full[i] = x
        o = body(*full)
        return [o[i] for i in outs]
    _, lin = linearize_flat(f_diff, [res[i] for i in diff], "checkpoint", None)
    cts_in = lin.transpose(list(cts))
    return [None] * n + list(cts_in)


def _lin_jvp(primals, tangents, jaxpr, nz, out_nz, name):
    return jvp_flat(lambda *xs: _lin_apply(xs, jaxpr, nz, out_nz), list(primals),
                    list(tangents), core.current_interpreter(), "jvp of checkpoint")


def _lin_batch(vals, dims, jaxpr, nz, out_nz, name):
    size = next(core.shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)
    n = len(nz)
    t_dims = iter(dims[n:])
    t_of = [next(t_dims) if z else None for z in nz]
    batched = [dims[i] is not None or (nz[i] and t_of[i] is not None) for i in range(n)]
    res = [_to_front(v, d, size, b) for v, d, b in zip(vals[:n], dims[:n], batched)]
    t_idx = [i for i, z in enumerate(nz) if z]
    ts = [_to_front(v, d, size, batched[i]) for v, d, i in zip(vals[n:], dims[n:], t_idx)]
    bj = _batch_jaxpr(jaxpr, size, batched)
    outs = remat_lin_p.bind(*res, *ts, jaxpr=bj, nz=nz, out_nz=out_nz, name=f"vmap({name})")
    return outs, [0] * len(outs)


def _lin_lower(ctx, *ins, jaxpr, nz, out_nz, name):
    closed = core.trace_to_jaxpr(lambda *xs: _lin_apply(xs, jaxpr, nz, out_nz),
                                 list(ctx.in_avals), "lower remat_lin")
    return _tuple_expr(ctx.emit_jaxpr(closed, list(ins)))


remat_lin_p.impl = _lin_impl
remat_lin_p.abstract_eval = _lin_abstract_eval
remat_lin_p.transpose = _lin_transpose
remat_lin_p.jvp = _lin_jvp
remat_lin_p.batch = _lin_batch
remat_lin_p.lower = _lin_lower


# --------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------

def _static_nums(static_argnums):
    if isinstance(static_argnums, (int, np.integer)) and not isinstance(static_argnums, bool):
        return (int(static_argnums),)
    if isinstance(static_argnums, (tuple, list)) and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in static_argnums):
        return tuple(int(i) for i in static_argnums)
    raise TypeError(f"checkpoint: static_argnums must be an int or a tuple of ints, got "
                    f"{static_argnums!r}")


def checkpoint(fun, *, prevent_cse=True, policy=None, static_argnums=()):
    """Make ``fun`` recompute its internal values in reverse mode instead of storing them.

    Under :func:`functad.grad`, :func:`functad.vjp` or :func:`functad.linearize`
    the forward pass of ``checkpoint(fun)`` keeps only the *inputs* of
    ``fun``; the backward pass runs ``fun`` forward again (with its VJP) to
    get the residuals it needs.  Values and derivatives are unchanged; memory
    goes down and compute goes up (one more forward pass of ``fun``).
    Composes with ``jit``, ``vmap``, forward mode and itself (nested
    checkpoints recompute recursively).  ``remat`` is the same function.

    Parameters
    ----------
    fun : function of pytrees of arrays.
    prevent_cse : accepted for JAX compatibility; functad never eliminates
        common subexpressions, so the recomputation is never merged with the
        forward pass whatever its value.
    policy : accepted for JAX compatibility and ignored: functad saves nothing
        but the inputs, which is what JAX does with ``policy=None``.  A policy
        that would save more (e.g. ``dots_saveable``) only means less
        recomputation in JAX; here everything is recomputed.
    static_argnums : positional arguments passed to ``fun`` as Python values
        (not traced), e.g. flags steering Python control flow.

    Example
    -------
    >>> import functad as fd, functad.numpy as fnp
    >>> layer = fd.checkpoint(lambda w, x: fnp.tanh(w * x))
    >>> fd.grad(lambda w: layer(w, layer(w, 1.0)))(0.5)
    np.float64(0.81125349...)
    """
    if not callable(fun):
        raise TypeError(f"checkpoint expects a callable, got {type(fun).__name__} {fun!r:.60}")
    if policy is not None and not callable(policy):
        raise TypeError(f"checkpoint: policy must be None or a callable, got {policy!r:.60}")
    static = _static_nums(static_argnums)
    name = getattr(fun, "__name__", type(fun).__name__)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        if type(core._tls.interp) is core.EvalInterpreter:
            return fun(*args, **kwargs)          # nothing to differentiate: no call overhead
        n = len(args)
        snums = {i % n for i in static if -n <= i < n}
        dyn = tuple(a for i, a in enumerate(args) if i not in snums)
        leaves, in_tree = tu.tree_flatten((dyn, kwargs))
        for x in leaves:
            try:
                aval_of(x)
            except TypeError:
                raise TypeError(f"checkpoint of {name}: argument leaf of type "
                                f"{type(x).__name__} ({x!r:.60}) is not an array; pass it "
                                "through static_argnums or close over it") from None
        store = {}

        def flat(*xs):
            d_args, d_kw = in_tree.unflatten(list(xs))
            it = iter(d_args)
            full = [args[i] if i in snums else next(it) for i in range(n)]
            out_leaves, store["tree"] = tu.tree_flatten(fun(*full, **d_kw))
            return out_leaves
        flat.__name__ = name
        closed = core.trace_to_jaxpr(flat, [aval_of(x) for x in leaves], "checkpoint", fun)
        closed, lifted = _closure_convert(closed)
        outs = remat_call_p.bind(*lifted, *leaves, jaxpr=closed, prevent_cse=prevent_cse,
                                 policy=policy, name=name)
        return store["tree"].unflatten(outs)
    wrapped.__wrapped__ = fun
    return wrapped


remat = checkpoint
