"""Structured control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop``,
``scan`` and ``map``, as higher-order primitives that carry sub-jaxprs.

Python ``if``/``while`` on traced values cannot be staged, so loops and
branches that depend on values are written with these functions, as in JAX.
Each stages its functions into :class:`~functad.core.ClosedJaxpr` parameters
of one primitive:

* ``cond`` (``cond``, ``switch``): an integer index and ``branches``;
* ``while`` (``while_loop``, ``fori_loop`` with traced bounds): ``cond_jaxpr``
  and ``body_jaxpr``;
* ``scan`` (``scan``, ``map``, ``fori_loop`` with Python-int bounds).

Constants the functions close over (arrays, tracers of outer transforms) are
made explicit leading operands, so every rule sees them as ordinary inputs.

Transforms
----------
* **jvp**: a primitive over (primal, tangent) pairs.  Loop carries reach a
  fixed point of which tangents are nonzero.
* **reverse mode** (linearize, then transpose): ``scan`` splits into a *known*
  scan, which runs now and stacks the residuals of each iteration, and a
  *linear* scan over the tangents that consumes them; the linear scan's
  transpose is a scan running the other way.  ``cond`` with a concrete index
  (any ``grad`` outside ``jit``) differentiates the chosen branch only; with a
  traced index it splits like ``scan`` (a known cond returning each branch's
  residuals, a linear cond consuming them).  ``while_loop`` has no transpose:
  its linearization recomputes the loop (so ``linearize`` and ``jacfwd`` work)
  and transposing it raises, as in JAX.
* **vmap**: a batched predicate turns ``cond`` into both branches and a
  select, and makes ``while_loop`` run until every lane is done, freezing the
  finished ones.

>>> import functad as fd, functad.numpy as fnp
>>> from functad import lax
>>> lax.cond(fnp.float64(2.0) > 1.0, lambda x: x * 10.0, lambda x: -x, 3.0)
np.float64(30.0)
>>> lax.scan(lambda c, x: (c + x, c * x), 0.0, fnp.arange(4.0))
(np.float64(6.0), Array([0., 0., 2., 9.]))
>>> fd.grad(lambda x: lax.fori_loop(0, 3, lambda i, c: c * x, 1.0))(2.0)
np.float64(12.0)
"""

from __future__ import annotations

import builtins
import contextlib

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.config import config
from functad.ad import (UndefinedPrimal, backward_pass, fit_to_aval, is_linearizing,
                        jaxpr_evaluator, jvp_flat, jvp_jaxpr, zeros_like_aval)
from functad.batching import BatchInterpreter, BatchTracer, moveaxis
from functad.core import (ClosedJaxpr, Jaxpr, Literal, Primitive, StagingInterpreter, Tracer,
                          Var, aval_of, eval_jaxpr)
from functad.lax.elementwise import convert_element_type, select

__all__ = ["cond", "switch", "select", "while_loop", "fori_loop", "scan", "map",
           "cond_p", "while_p", "scan_p"]


# --------------------------------------------------------------------------
# Jaxpr utilities
# --------------------------------------------------------------------------

def _trace(fn, avals, name):
    """Stage ``fn`` (flat in, flat out) on ``avals``.  Internal traces evaluate
    jaxprs whose constants are concrete, so the result closes over no tracer."""
    return _check_no_tracers(core.trace_to_jaxpr(fn, list(avals), name), name)


def _check_no_tracers(closed, name):
    if any(isinstance(c, Tracer) for c in closed.consts):
        raise NotImplementedError(f"functad internal error: {name} closed over a traced value "
                                  "(a rule inside a loop body captured an outer tracer)")
    return closed


def _lift(closed):
    """Make the constants of ``closed`` leading inputs: ``(jaxpr, consts)``."""
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr([], j.constvars + j.invars, j.outvars, j.eqns), []), closed.consts


def _reorder(closed, in_perm=None, out_perm=None):
    j = closed.jaxpr
    invars = j.invars if in_perm is None else [j.invars[i] for i in in_perm]
    outvars = j.outvars if out_perm is None else [j.outvars[i] for i in out_perm]
    return ClosedJaxpr(Jaxpr(j.constvars, invars, outvars, j.eqns), closed.consts)


def _dce(jaxpr):
    """Drop the equations that no output depends on, except effectful ones
    (``prim.effectful``, e.g. printing)."""
    live = {v for v in jaxpr.outvars if type(v) is Var}
    keep = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outvars) or getattr(eqn.primitive, "effectful", False):
            keep.append(eqn)
            live.update(a for a in eqn.inputs if type(a) is Var)
    keep.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars, keep)


_RUNNERS: dict = {}
_MAX_RUNNERS = 2048
_COMPILE_AFTER = 16     # iterations: below this, generating code costs more than it saves


def _direct(closed):
    """A function running ``closed`` by calling each primitive's NumPy
    ``impl`` directly (no interpreter dispatch, no code generation)."""
    j = closed.jaxpr
    eqns = [(e.primitive.impl, e.inputs, e.outvars, e.params, e.primitive.multiple_results)
            for e in _dce(j).eqns]
    start = dict(zip(j.constvars, closed.consts))

    def run(*args):
        env = dict(start)
        env.update(zip(j.invars, args))
        for impl, inputs, outvars, params, multiple in eqns:
            out = impl(*[a.val if type(a) is Literal else env[a] for a in inputs], **params)
            if multiple:
                env.update(zip(outvars, out))
            else:
                env[outvars[0]] = out
        return [a.val if type(a) is Literal else env[a] for a in j.outvars]
    return run


def _runner(closed, calls=_COMPILE_AFTER):
    """A function running ``closed`` with NumPy, for a loop body about to run
    ``calls`` times.  For many calls it is generated Python source calling
    each primitive's ``impl`` in turn (like ``jit``'s NumPy executor), cached
    by the jaxpr's identity (the value keeps the jaxpr alive so that its id is
    not reused); for a few, :func:`_direct`.  Under ``config.debug_nans`` the
    body runs through the eval interpreter, so that each primitive is checked."""
    if getattr(config, "debug_nans", False):
        return jaxpr_evaluator(closed)
    hit = _RUNNERS.get(id(closed))
    if hit is not None and hit[0] is closed:
        return hit[1]
    if calls < _COMPILE_AFTER:
        return _direct(closed)
    jaxpr = _dce(closed.jaxpr)
    ns, names = {}, {}
    for i, (v, c) in enumerate(zip(jaxpr.constvars, closed.consts)):
        ns[f"c{i}"] = c
        names[v] = f"c{i}"
    args = []
    for i, v in enumerate(jaxpr.invars):
        names[v] = f"a{i}"
        args.append(f"a{i}")

    def atom(a):
        if type(a) is Literal:
            k = f"l{len(ns)}"
            ns[k] = a.val
            return k
        return names[a]
    lines = [f"def run({', '.join(args)}):"]
    for j, eqn in enumerate(jaxpr.eqns):
        ns[f"p{j}"] = eqn.primitive.impl
        ins = [atom(a) for a in eqn.inputs]
        if eqn.params:
            ns[f"k{j}"] = eqn.params
            ins.append(f"**k{j}")
        outs = []
        for v in eqn.outvars:
            names[v] = f"t{len(names)}"
            outs.append(names[v])
        lhs = (", ".join(outs) + ",") if eqn.primitive.multiple_results else outs[0]
        lines.append(f"    {lhs if outs else '_'} = p{j}({', '.join(ins)})")
    lines.append(f"    return [{', '.join(atom(v) for v in jaxpr.outvars)}]")
    exec(compile("\n".join(lines) + "\n", "<functad control-flow body>", "exec"), ns)  # noqa: S102
    if len(_RUNNERS) >= _MAX_RUNNERS:
        _RUNNERS.clear()
    _RUNNERS[id(closed)] = (closed, ns["run"])
    return ns["run"]


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype


_fit = fit_to_aval      # tangents and cotangents get the shape and dtype of their aval


def _fix_tangent(t, aval, instantiate):
    if not aval.is_float:
        return None
    if t is None:
        return zeros_like_aval(aval) if instantiate else None
    return _fit(t, aval)


def _jvp_closed(closed, nz_in, instantiate):
    """:func:`functad.ad.jvp_jaxpr`, for a body that must close over no tracer."""
    jj, out_nz = jvp_jaxpr(closed, nz_in, instantiate)
    _check_no_tracers(jj, "jvp")
    return jj, out_nz


class _Linearized:
    """The JVP of a jaxpr split at symbolic primal inputs (see :func:`_linearize_closed`)."""

    __slots__ = ("known", "lin", "lin_consts", "res_avals", "out_nz")


def _linearize_closed(closed, nz_in, instantiate):
    """Partially evaluate the JVP of ``closed``: primals known, tangents unknown.

    Returns a :class:`_Linearized` with

    * ``known``: a ClosedJaxpr ``primals -> primal outs + residuals``;
    * ``lin``: a Jaxpr ``residuals + nonzero tangents -> nonzero tangent outs``
      (linear in the tangents), whose constvars hold ``lin_consts``;
    * ``res_avals`` and ``out_nz``.

    It is reverse mode's forward pass run symbolically: a staging interpreter
    records the primal computation, a partial evaluator above it the tangent
    computation; the residuals are the primal values the tangent side uses.
    """
    avals = closed.in_avals
    out_avals = closed.out_avals
    r = _Linearized()

    def fn(*primals):
        known = core.current_interpreter()
        pe = StagingInterpreter(known, "linearize", None, forward_known=True)
        t_in = [pe.new_arg(a) if nz else None for a, nz in zip(avals, nz_in)]
        try:
            outs_p, outs_t = jvp_flat(jaxpr_evaluator(closed), list(primals), t_in, pe, "linearize")
            outs_t = [_fix_tangent(t, a, inst) for t, a, inst in zip(outs_t, out_avals, instantiate)]
            lin, consts = pe.build([t for t in t_in if t is not None],
                                   [t for t in outs_t if t is not None])
        finally:
            pe.alive = False
        res = [i for i, c in enumerate(consts) if isinstance(c, Tracer)]
        if any(consts[i]._trace is not known for i in res):
            raise NotImplementedError("functad internal error: a loop body's derivative uses "
                                      "a traced value from outside the body")
        other = [i for i in range(len(consts)) if i not in set(res)]
        r.lin = Jaxpr([lin.constvars[i] for i in other],
                      [lin.constvars[i] for i in res] + lin.invars, lin.outvars, lin.eqns)
        r.lin_consts = [consts[i] for i in other]
        r.res_avals = [lin.constvars[i].aval for i in res]
        r.out_nz = [t is not None for t in outs_t]
        return list(outs_p) + [consts[i] for i in res]
    r.known = _trace(fn, avals, "linearize")
    return r


def _batch_closed(closed, size, in_batched, force_out):
    """``closed`` vmapped over a leading axis of size ``size`` of the inputs
    with ``in_batched``; outputs batched at axis 0 where they vary (or where
    ``force_out`` asks).  Returns the jaxpr and which outputs are batched."""
    out_avals = closed.out_avals
    out_batched = []

    def fn(*xs):
        from functad.lax.shapes import broadcast_to
        parent = core.current_interpreter()
        bi = BatchInterpreter(parent, size, "vmap")
        ins = [BatchTracer(bi, x, 0) if b else x for x, b in zip(xs, in_batched)]
        with core.set_interpreter(bi):
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *ins)
        bi.alive = False
        res = []
        out_batched.clear()
        for o, force, a in zip(outs, force_out, out_avals):
            if type(o) is BatchTracer and o._trace is bi:
                res.append(moveaxis(o.val, o.bdim, 0))
                out_batched.append(True)
            elif force:
                res.append(broadcast_to(o, (size,) + a.shape))
                out_batched.append(True)
            else:
                res.append(o)
                out_batched.append(False)
        return res
    avals = [a.update(shape=(size,) + a.shape) if b else a
             for a, b in zip(closed.in_avals, in_batched)]
    return _trace(fn, avals, "vmap"), list(out_batched)


def _batch_size(vals, dims):
    return next(core.shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)


def _to_front(x, d):
    return x if d is None or d == 0 else moveaxis(x, d, 0)


def _broadcast_front(x, size):
    from functad.lax.shapes import broadcast_to
    return broadcast_to(x, (size,) + tuple(core.shape_of(x)))


# --------------------------------------------------------------------------
# Tracing user functions, and the type errors
# --------------------------------------------------------------------------

def _trace_user(fun, in_tree, in_avals, name, out_check=None):
    """Stage the pytree function ``fun`` (called with ``in_tree``'s structure)
    on ``in_avals``; constants become leading inputs.  Returns ``(closed,
    consts, out_tree, out_paths)``."""
    store = {}

    def flat(*xs):
        out = fun(*tu.tree_unflatten(in_tree, list(xs)))
        if out_check is not None:
            out = out_check(out)
        pairs, store["tree"] = tu.tree_flatten_with_path(out)
        store["paths"] = [p for p, _ in pairs]
        leaves = [x for _, x in pairs]
        for p, x in zip(store["paths"], leaves):
            try:
                aval_of(x)
            except TypeError:
                raise TypeError(f"{name} returned a value of type {type(x).__name__} at "
                                f"{tu.keystr(p) or 'the top level'}, which is not an array; "
                                "return arrays, scalars or pytrees of them") from None
        return leaves
    closed = core.trace_to_jaxpr(flat, list(in_avals), name, fun)
    closed, consts = _lift(closed)
    return closed, consts, store["tree"], store["paths"]


def _describe(a):
    return f"shape {a.shape} and dtype {a.dtype.name} ({a.str_short()})"


def _type_mismatch(what, prefix, path, expected, actual, exp_name, act_name):
    return TypeError(
        f"{what}: the leaf {prefix}{tu.keystr(path)} has {_describe(expected)} in {exp_name} but "
        f"{_describe(actual)} in {act_name}; they must have the same shape and dtype.")


_WEAK_PROTO = {"f": 0.0, "i": 0, "u": 0, "c": 0j, "b": False}


def _promote_weak(leaves, in_avals, out_avals):
    """JAX's rule for loop carries: a weakly typed initial value (a Python
    scalar) takes the dtype the body gives it.  Returns the new leaves and
    avals and whether anything changed."""
    changed = False
    leaves, in_avals = list(leaves), list(in_avals)
    for i, (a, b) in enumerate(zip(in_avals, out_avals)):
        if a.weak_type and a.shape == b.shape and a.dtype != b.dtype:
            dt = np.result_type(b.dtype, _WEAK_PROTO.get(a.dtype.kind, 0))
            if dt != a.dtype:
                leaves[i] = convert_element_type(leaves[i], dt)
                in_avals[i] = aval_of(leaves[i])
                changed = True
    return leaves, in_avals, changed


def _check_carry(what, in_tree, out_tree, paths, in_avals, out_avals, prefix, in_name, out_name):
    if in_tree != out_tree:
        raise TypeError(f"{what}: {out_name} must have the pytree structure of {in_name}: "
                        f"{in_name} is {in_tree} but {out_name} is {out_tree}")
    for p, a, b in zip(paths, in_avals, out_avals):
        if not _same(a, b):
            raise _type_mismatch(what, prefix, p, a, b, in_name, out_name)


def _paths(tree):
    return [p for p, _ in tu.tree_flatten_with_path(tree)[0]]


# --------------------------------------------------------------------------
# cond / switch
# --------------------------------------------------------------------------

class _Branches(tuple):
    """The ``branches`` parameter of ``cond``: a tuple of ClosedJaxprs that
    prints as indented jaxprs."""

    def __repr__(self):
        parts = []
        for b in self:
            parts.append("\n".join("        " + line for line in str(b).splitlines()))
        return "(\n" + ",\n".join(parts) + ")"


cond_p = Primitive("cond", multiple_results=True)


def _clamp_index(i, n):
    return builtins.min(builtins.max(int(i), 0), n - 1)


def _cond_impl(index, *ops, branches, linear):
    b = branches[_clamp_index(index, len(branches))]
    return [np.asarray(o, a.dtype) for o, a in zip(_runner(b, 1)(*ops), b.out_avals)]


def _cond_abstract_eval(index, *ops, branches, linear):
    if index.shape != () or index.dtype.kind not in "iu":
        raise TypeError(f"cond: the branch index must be an integer scalar, got {index.str_short()}")
    for k, b in enumerate(branches):
        if len(b.in_avals) != len(ops):
            raise TypeError(f"cond: branch {k} takes {len(b.in_avals)} operands, got {len(ops)}")
        for i, (a, e) in enumerate(zip(ops, b.in_avals)):
            if not _same(a, e):
                raise TypeError(f"cond: operand {i} has type {a.str_short()}, branch {k} "
                                f"expects {e.str_short()}")
    return list(branches[0].out_avals)


def _cond_jvp(primals, tangents, branches, linear):
    index, ops = primals[0], list(primals[1:])
    ops_t = list(tangents[1:])
    interp = core.current_interpreter()
    if not isinstance(index, Tracer):
        # A concrete index (always, under grad outside jit): differentiate the
        # chosen branch inline, like a function call.
        b = branches[_clamp_index(index, len(branches))]
        return jvp_flat(jaxpr_evaluator(b), ops, ops_t, interp, "jvp of cond")
    avals = branches[0].in_avals
    nz = [t is not None and a.is_float for t, a in zip(ops_t, avals)]
    if is_linearizing(interp):
        return _cond_linearize(index, ops, ops_t, nz, branches)
    n_out = len(branches[0].out_avals)
    jvps = [_jvp_closed(b, nz, [False] * n_out) for b in branches]
    out_nz = [builtins.any(j[1][i] for j in jvps) for i in range(n_out)]
    jvps = [j if j[1] == out_nz else _jvp_closed(b, nz, out_nz) for j, b in zip(jvps, branches)]
    t_in = [t if t is not None else zeros_like_aval(a)
            for t, a, z in zip(ops_t, avals, nz) if z]
    outs = cond_p.bind(index, *ops, *t_in, branches=_Branches(j[0] for j in jvps),
                       linear=(False,) * (len(ops) + len(t_in)))
    it = iter(outs[n_out:])
    return outs[:n_out], [next(it) if z else None for z in out_nz]


def _cond_linearize(index, ops, ops_t, nz, branches):
    """Reverse mode with a traced index: a known cond computes the primal
    outputs and every branch's residuals (zeros for the branches not taken),
    a linear cond picks the same branch's tangent computation."""
    n_out = len(branches[0].out_avals)
    lins = [_linearize_closed(b, nz, [False] * n_out) for b in branches]
    out_nz = [builtins.any(r.out_nz[i] for r in lins) for i in range(n_out)]
    lins = [r if r.out_nz == out_nz else _linearize_closed(b, nz, out_nz)
            for r, b in zip(lins, branches)]
    avals = branches[0].in_avals

    def known_branch(k):
        r = lins[k]

        def fn(*xs):
            outs = eval_jaxpr(r.known.jaxpr, r.known.consts, *xs)
            res = []
            for j, other in enumerate(lins):
                res += outs[n_out:] if j == k else [zeros_like_aval(a) for a in other.res_avals]
            return list(outs[:n_out]) + res
        return _trace(fn, avals, "cond")
    known = _Branches(known_branch(k) for k in range(len(branches)))
    outs = cond_p.bind(index, *ops, branches=known, linear=(False,) * len(ops))
    primal_out, res_vals = outs[:n_out], outs[n_out:]
    if not builtins.any(out_nz):
        return primal_out, [None] * n_out

    def lin_branch(k):
        r = lins[k]
        n_res = len(r.res_avals)
        invars = []
        for j, other in enumerate(lins):
            invars += r.lin.invars[:n_res] if j == k else [Var(a) for a in other.res_avals]
        invars += r.lin.invars[n_res:]
        return ClosedJaxpr(Jaxpr(r.lin.constvars, invars, r.lin.outvars, r.lin.eqns),
                           r.lin_consts)
    t_in = [t if t is not None else zeros_like_aval(a)
            for t, a, z in zip(ops_t, avals, nz) if z]
    lin_outs = cond_p.bind(index, *res_vals, *t_in,
                           branches=_Branches(lin_branch(k) for k in range(len(branches))),
                           linear=(False,) * len(res_vals) + (True,) * len(t_in))
    it = iter(lin_outs)
    return primal_out, [next(it) if z else None for z in out_nz]


def _cond_transpose(cts, index, *ops, branches, linear):
    if isinstance(index, UndefinedPrimal):
        raise NotImplementedError("cond is not linear in its branch index")
    res_pos = [i for i, lin in enumerate(linear) if not lin]
    lin_pos = [i for i, lin in enumerate(linear) if lin]
    for i in res_pos:
        if isinstance(ops[i], UndefinedPrimal):
            raise NotImplementedError("functad internal error: cond transpose with an "
                                      "undefined residual operand")
    out_avals = branches[0].out_avals
    ct_pos = [i for i, c in enumerate(cts) if c is not None]
    in_avals = branches[0].in_avals
    res_avals = [in_avals[i] for i in res_pos]
    ct_avals = [out_avals[i] for i in ct_pos]

    def transposed(b):
        j = b.jaxpr
        lin_jaxpr = Jaxpr(j.constvars + [j.invars[i] for i in res_pos],
                          [j.invars[i] for i in lin_pos], j.outvars, j.eqns)

        def fn(*xs):
            res, cs = xs[:len(res_pos)], xs[len(res_pos):]
            ct_out = [None] * len(out_avals)
            for i, c in zip(ct_pos, cs):
                ct_out[i] = c
            ct_in = backward_pass(lin_jaxpr, list(b.consts) + list(res), ct_out)
            return [zeros_like_aval(in_avals[i]) if c is None else _fit(c, in_avals[i])
                    for c, i in zip(ct_in, lin_pos)]
        return _trace(fn, res_avals + ct_avals, "transpose of cond")
    given = [_fit(cts[i], out_avals[i]) for i in ct_pos]
    outs = cond_p.bind(index, *[ops[i] for i in res_pos], *given,
                       branches=_Branches(transposed(b) for b in branches),
                       linear=(False,) * len(res_pos) + (True,) * len(ct_pos))
    result = [None] * (1 + len(ops))
    for i, c in zip(lin_pos, outs):
        result[1 + i] = c
    return result


def _cond_batch(vals, dims, branches, linear):
    size = _batch_size(vals, dims)
    index, idim = vals[0], dims[0]
    ops = [_to_front(v, d) for v, d in zip(vals[1:], dims[1:])]
    ops_b = [d is not None for d in dims[1:]]
    n_out = len(branches[0].out_avals)
    if idim is not None:
        # Each lane may take another branch: run them all, then select per lane.
        from functad.lax.elementwise import eq, max as lax_max, min as lax_min
        from functad.lax.shapes import reshape
        idx = lax_min(lax_max(_to_front(index, idim), 0), len(branches) - 1)
        results = []
        for b in branches:
            bj, _ = _batch_closed(b, size, ops_b, [True] * n_out)
            results.append(eval_jaxpr(bj.jaxpr, bj.consts, *ops))
        outs = list(results[-1])
        for k in range(len(branches) - 2, -1, -1):
            hit = eq(idx, np.asarray(k, aval_of(idx).dtype))
            for i, (x, y) in enumerate(zip(results[k], outs)):
                nd = len(core.shape_of(x)) - 1
                p = reshape(hit, (size,) + (1,) * nd) if nd else hit
                outs[i] = select(p, x, y)
        return outs, [0] * n_out
    batched = [_batch_closed(b, size, ops_b, [False] * n_out) for b in branches]
    out_b = [builtins.any(bb[1][i] for bb in batched) for i in range(n_out)]
    batched = [bb if bb[1] == out_b else _batch_closed(b, size, ops_b, out_b)
               for bb, b in zip(batched, branches)]
    outs = cond_p.bind(index, *ops, branches=_Branches(bb[0] for bb in batched), linear=linear)
    return outs, [0 if b else None for b in out_b]


cond_p.impl = _cond_impl
cond_p.abstract_eval = _cond_abstract_eval
cond_p.jvp = _cond_jvp
cond_p.transpose = _cond_transpose
cond_p.batch = _cond_batch


def _join_branch_outputs(closeds, trees, paths, what, names):
    """Check that the branches return the same pytree of types; weakly typed
    outputs (Python scalars) take the dtype of the others.  Returns the
    (possibly converted) branches."""
    for k in range(1, len(closeds)):
        if trees[k] != trees[0]:
            raise TypeError(f"{what}: {names[k]} returns a pytree with structure {trees[k]} "
                            f"but {names[0]} returns {trees[0]}; they must return the same "
                            "structure")
    n_out = len(closeds[0].out_avals)
    targets = []
    for i in range(n_out):
        avals = [c.out_avals[i] for c in closeds]
        first = avals[0]
        strong = [a for a in avals if not a.weak_type]
        ref = strong[0] if strong else first
        for k, a in enumerate(avals):
            if a.shape != ref.shape or (a.dtype != ref.dtype and not a.weak_type):
                k0 = avals.index(ref)
                raise _type_mismatch(what, "output", paths[0][i], ref, a,
                                     f"the output of {names[k0]}", f"the output of {names[k]}")
        dts = {a.dtype for a in avals}
        targets.append(ref.dtype if len(dts) == 1 or strong else
                       np.result_type(*[_WEAK_PROTO[d.kind] for d in dts]))
    out = []
    for c in closeds:
        if all(a.dtype == t for a, t in zip(c.out_avals, targets)):
            out.append(c)
            continue

        def fn(*xs, c=c):
            return [convert_element_type(o, t) if aval_of(o).dtype != t else o
                    for o, t in zip(eval_jaxpr(c.jaxpr, c.consts, *xs), targets)]
        out.append(_trace(fn, c.in_avals, "cond"))
    return out


def _switch(index, branches, operands, what, names):
    leaves, in_tree = tu.tree_flatten(tuple(operands))
    avals = [aval_of(x) for x in leaves]
    traced = [_trace_user(b, in_tree, avals, n) for b, n in zip(branches, names)]
    closeds, consts = [], []
    # each branch's constants become operands; every branch takes all of them
    for k, (c, cs, _, _) in enumerate(traced):
        j = c.jaxpr
        pre = [Var(aval_of(x)) for t in traced[:k] for x in t[1]]
        post = [Var(aval_of(x)) for t in traced[k + 1:] for x in t[1]]
        invars = pre + j.invars[:len(cs)] + post + j.invars[len(cs):]
        closeds.append(ClosedJaxpr(Jaxpr(j.constvars, invars, j.outvars, j.eqns), c.consts))
        consts += cs
    closeds = _join_branch_outputs(closeds, [t[2] for t in traced], [t[3] for t in traced], what,
                                   names)
    outs = cond_p.bind(index, *consts, *leaves, branches=_Branches(closeds),
                       linear=(False,) * (len(consts) + len(leaves)))
    return tu.tree_unflatten(traced[0][2], outs)


def _scalar_aval(x, what):
    try:
        return aval_of(x)
    except TypeError:
        raise TypeError(f"{what} must be a scalar array, got {type(x).__name__} {x!r:.60}") from None


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, staged
    as one ``cond`` primitive (both functions are traced).

    ``pred`` is a boolean (or integer: nonzero is true) scalar, possibly
    traced.  Both functions must return the same pytree of shapes and dtypes.
    Under ``vmap`` with a batched ``pred`` both branches run and the results
    are selected per example.

    >>> import functad as fd, functad.numpy as fnp
    >>> from functad import lax
    >>> f = lambda x: lax.cond(x > 0, lambda v: v ** 2, lambda v: -v, x)
    >>> f(3.0), fd.grad(f)(3.0), fd.grad(f)(-3.0)
    (np.float64(9.0), np.float64(6.0), np.float64(-1.0))
    >>> fd.vmap(f)(fnp.array([-1.0, 2.0]))
    Array([1., 4.])
    """
    a = _scalar_aval(pred, "cond: pred")
    if a.shape != ():
        raise TypeError(f"Pred must be a scalar, got {pred!r:.60} of shape {a.shape}.")
    if a.dtype.kind != "b":
        if a.dtype.kind in "iu":
            from functad.lax.elementwise import ne
            pred = ne(pred, 0)
        else:
            raise TypeError(f"Pred type must be either boolean or number, got {a.dtype.name}.")
    if not callable(true_fun) or not callable(false_fun):
        raise TypeError("cond: true_fun and false_fun arguments should be callable.")
    index = convert_element_type(pred, np.int32)
    return _switch(index, (false_fun, true_fun), operands,
                   "cond: true_fun and false_fun output must have identical types",
                   ["false_fun", "true_fun"])


def switch(index, branches, *operands):
    """``branches[index](*operands)``, with ``index`` clamped into
    ``[0, len(branches) - 1]`` (as in JAX), staged as one ``cond`` primitive.

    >>> from functad import lax
    >>> fns = [lambda x: x + 1.0, lambda x: x * 2.0, lambda x: -x]
    >>> [float(lax.switch(i, fns, 5.0)) for i in (-3, 0, 1, 2, 9)]
    [6.0, 6.0, 10.0, -5.0, -5.0]
    """
    a = _scalar_aval(index, "switch: index")
    if a.shape != () or a.dtype.kind not in "iu":
        raise TypeError(f"Index must be scalar integers, got {a.str_short()}: switch needs an "
                        "integer scalar index.")
    branches = tuple(branches)
    if not branches:
        raise ValueError("Empty branch sequence")
    for b in branches:
        if not callable(b):
            raise TypeError(f"switch: every branch must be callable, got {b!r:.60}")
    if len(branches) == 1:
        return branches[0](*operands)
    from functad.lax.elementwise import max as lax_max, min as lax_min
    index = convert_element_type(index, np.int32)
    index = lax_min(lax_max(index, np.int32(0)), np.int32(len(branches) - 1))
    return _switch(index, branches, operands,
                   "switch: the branches' outputs must have identical types",
                   [f"branches[{k}]" for k in range(len(branches))])


# --------------------------------------------------------------------------
# while_loop
# --------------------------------------------------------------------------

while_p = Primitive("while", multiple_results=True)


def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc = args[:cond_nconsts]
    bc = args[cond_nconsts:cond_nconsts + body_nconsts]
    carry = list(args[cond_nconsts + body_nconsts:])
    cond_fun, body_fun = _runner(cond_jaxpr, 0), _runner(body_jaxpr, 0)
    n = 0
    while cond_fun(*cc, *carry)[0]:
        carry = body_fun(*bc, *carry)
        n += 1
        if n == _COMPILE_AFTER:         # a long loop: generate code for the rest
            cond_fun, body_fun = _runner(cond_jaxpr), _runner(body_jaxpr)
    avals = body_jaxpr.out_avals
    return [np.asarray(c, a.dtype) for c, a in zip(carry, avals)]


def _while_abstract_eval(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    nc, nb = cond_nconsts, body_nconsts
    carry = list(avals[nc + nb:])
    for what, got, want in (("cond_jaxpr", list(avals[:nc]) + carry, cond_jaxpr.in_avals),
                            ("body_jaxpr", list(avals[nc:]), body_jaxpr.in_avals)):
        if len(got) != len(want):
            raise TypeError(f"while: {what} takes {len(want)} operands, got {len(got)}")
        for i, (a, e) in enumerate(zip(got, want)):
            if not _same(a, e):
                raise TypeError(f"while: operand {i} of {what} has type {a.str_short()}, "
                                f"expected {e.str_short()}")
    for a, e in zip(body_jaxpr.out_avals, carry):
        if not _same(a, e):
            raise TypeError(f"while: the body's carry output {a.str_short()} differs from its "
                            f"carry input {e.str_short()}")
    return list(body_jaxpr.in_avals[nb:])


def _while_jvp(primals, tangents, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    nc, nb = cond_nconsts, body_nconsts
    n = len(primals) - nc - nb
    bavals = body_jaxpr.in_avals
    bc_nz = [t is not None and a.is_float for t, a in zip(tangents[nc:nc + nb], bavals[:nb])]
    carry_nz = [t is not None and a.is_float for t, a in zip(tangents[nc + nb:], bavals[nb:])]
    for _ in range(n + 1):
        jb, out_nz = _jvp_closed(body_jaxpr, bc_nz + carry_nz, carry_nz)
        new = [a or b for a, b in zip(carry_nz, out_nz)]
        if new == carry_nz:
            break
        carry_nz = new
    n_bt, n_ct = builtins.sum(bc_nz), builtins.sum(carry_nz)
    # jb takes (bc, carry, bc tangents, carry tangents); the loop wants
    # (body consts = bc + bc tangents, carry = carry + carry tangents)
    perm = (list(range(nb)) + list(range(nb + n, nb + n + n_bt)) + list(range(nb, nb + n))
            + list(range(nb + n + n_bt, nb + n + n_bt + n_ct)))
    jb = _reorder(jb, perm)
    cj = cond_jaxpr.jaxpr
    t_avals = [a for a, z in zip(bavals[nb:], carry_nz) if z]
    cond_jvp = ClosedJaxpr(Jaxpr(cj.constvars, cj.invars + [Var(a) for a in t_avals], cj.outvars,
                                 cj.eqns), cond_jaxpr.consts)
    bc_t = [t if t is not None else zeros_like_aval(a)
            for t, a, z in zip(tangents[nc:nc + nb], bavals[:nb], bc_nz) if z]
    init_t = [t if t is not None else zeros_like_aval(a)
              for t, a, z in zip(tangents[nc + nb:], bavals[nb:], carry_nz) if z]
    args = list(primals[:nc + nb]) + bc_t + list(primals[nc + nb:]) + init_t
    params = dict(cond_jaxpr=cond_jvp, body_jaxpr=jb, cond_nconsts=nc, body_nconsts=nb + n_bt)
    if is_linearizing(core.current_interpreter()):
        # Reverse mode: the primal loop runs now; the tangent loop reruns it
        # (the number of iterations is not known when staging), so the linear
        # jaxpr can be evaluated (linearize, jacfwd) but not transposed.
        primal_out = while_p.bind(*primals, cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                                  cond_nconsts=nc, body_nconsts=nb)
        outs = while_p.bind(*args, **params)
    else:
        outs = while_p.bind(*args, **params)
        primal_out = outs[:n]
    it = iter(outs[n:])
    return primal_out, [next(it) if z else None for z in carry_nz]


_WHILE_REVERSE_MSG = (
    "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop with "
    "dynamic start/stop values. Try using lax.scan, or using fori_loop with static "
    "start/stop (Python ints), which is implemented as a scan. (functad: the number of "
    "iterations of a while_loop is not known before it runs, so the residuals of its "
    "iterations cannot be stored; forward mode, jvp and jacfwd, works.)")


def _while_transpose(cts, *args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    raise ValueError(_WHILE_REVERSE_MSG)


def _while_batch(vals, dims, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    size = _batch_size(vals, dims)
    nc, nb = cond_nconsts, body_nconsts
    vals = [_to_front(v, d) for v, d in zip(vals, dims)]
    b = [d is not None for d in dims]
    cc_b, bc_b, carry_b = b[:nc], b[nc:nc + nb], b[nc + nb:]
    n = len(carry_b)
    for _ in range(n + 1):
        _, out_b = _batch_closed(body_jaxpr, size, bc_b + carry_b, carry_b)
        new = [x or y for x, y in zip(carry_b, out_b)]
        if new == carry_b:
            break
        carry_b = new
    _, (pred_b,) = _batch_closed(cond_jaxpr, size, cc_b + carry_b, [False])
    cc, bc, carry = vals[:nc], vals[nc:nc + nb], vals[nc + nb:]
    if not pred_b:
        bj, _ = _batch_closed(body_jaxpr, size, bc_b + carry_b, carry_b)
        cj, _ = _batch_closed(cond_jaxpr, size, cc_b + carry_b, [False])
        init = [_broadcast_front(x, size) if want and not have else x
                for x, want, have in zip(carry, carry_b, b[nc + nb:])]
        outs = while_p.bind(*cc, *bc, *init, cond_jaxpr=cj, body_jaxpr=bj,
                            cond_nconsts=nc, body_nconsts=nb)
        return outs, [0 if x else None for x in carry_b]
    # A batched predicate: iterate while any lane is active; a finished lane's
    # carry is frozen by selecting its old value.
    from functad.lax.reductions import reduce_or
    from functad.lax.shapes import reshape
    all_b = [True] * n
    cj, _ = _batch_closed(cond_jaxpr, size, cc_b + all_b, [True])
    bj, _ = _batch_closed(body_jaxpr, size, bc_b + all_b, all_b)

    def any_cond(*xs):
        (p,) = eval_jaxpr(cj.jaxpr, cj.consts, *xs)
        return [reduce_or(p, (0,))]

    def masked_body(*xs):
        c_consts, b_consts, c = xs[:nc], xs[nc:nc + nb], xs[nc + nb:]
        (p,) = eval_jaxpr(cj.jaxpr, cj.consts, *c_consts, *c)
        new = eval_jaxpr(bj.jaxpr, bj.consts, *b_consts, *c)
        out = []
        for x, y in zip(new, c):
            nd = len(core.shape_of(x)) - 1
            out.append(select(reshape(p, (size,) + (1,) * nd) if nd else p, x, y))
        return out
    carry_avals = [a.update(shape=(size,) + a.shape) for a in body_jaxpr.out_avals]
    cc_avals = [aval_of(x) for x in cc]
    bc_avals = [aval_of(x) for x in bc]
    cond_any = _trace(any_cond, cc_avals + carry_avals, "vmap of while")
    body_masked = _trace(masked_body, cc_avals + bc_avals + carry_avals, "vmap of while")
    init = [x if have else _broadcast_front(x, size) for x, have in zip(carry, b[nc + nb:])]
    outs = while_p.bind(*cc, *cc, *bc, *init, cond_jaxpr=cond_any, body_jaxpr=body_masked,
                        cond_nconsts=nc, body_nconsts=nc + nb)
    return outs, [0] * n


while_p.impl = _while_impl
while_p.abstract_eval = _while_abstract_eval
while_p.jvp = _while_jvp
while_p.transpose = _while_transpose
while_p.batch = _while_batch


def while_loop(cond_fun, body_fun, init_val):
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)``; return ``val``.

    The loop-carried value ``init_val`` is a pytree; ``body_fun`` must return
    the same pytree of shapes and dtypes (a Python scalar in ``init_val``
    takes the dtype the body gives it), and ``cond_fun`` a boolean scalar.
    Both functions are traced once.  Forward mode works through the loop;
    reverse mode raises (use :func:`scan` or :func:`fori_loop` with Python-int
    bounds).  Under ``vmap``, a batched condition keeps the loop running
    until every example is done, freezing the finished ones.

    >>> import functad as fd, functad.numpy as fnp
    >>> from functad import lax
    >>> lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 2.0), (0, 1.0))
    (np.int64(5), np.float64(32.0))
    >>> fd.vmap(lambda x: lax.while_loop(lambda v: v < 10.0, lambda v: v * 2.0, x))(
    ...     fnp.array([1.0, 3.0, 20.0]))
    Array([16., 12., 20.])
    """
    if not callable(cond_fun) or not callable(body_fun):
        raise TypeError("while_loop: cond_fun and body_fun must be callable")
    pairs, in_tree = tu.tree_flatten_with_path(init_val)
    paths = [p for p, _ in pairs]
    leaves = [x for _, x in pairs]
    try:
        avals = [aval_of(x) for x in leaves]
    except TypeError as e:
        raise TypeError(f"while_loop: init_val must be a pytree of arrays: {e}") from None
    args_tree = tu.tree_structure((init_val,))
    for attempt in range(2):
        body, bconsts, out_tree, _ = _trace_user(body_fun, args_tree, avals, "while_loop body_fun")
        if out_tree != in_tree:
            break
        leaves, avals, changed = _promote_weak(leaves, avals, body.out_avals)
        if not changed:
            break
    _check_carry("while_loop: body_fun output and input must have identical types", in_tree,
                 out_tree, paths, avals, body.out_avals, "init_val", "the input (init_val)",
                 "body_fun's output")
    cj, cconsts, _, _ = _trace_user(cond_fun, args_tree, avals, "while_loop cond_fun")
    c_avals = cj.out_avals
    if len(c_avals) != 1 or c_avals[0].shape != () or c_avals[0].dtype != np.bool_:
        raise TypeError("cond_fun must return a boolean scalar, but got output type(s) "
                        f"{[a.str_short() for a in c_avals]}.")
    # the staged bodies take (consts, carry): carry leaves follow the constants
    outs = while_p.bind(*cconsts, *bconsts, *leaves, cond_jaxpr=cj, body_jaxpr=body,
                        cond_nconsts=len(cconsts), body_nconsts=len(bconsts))
    return tu.tree_unflatten(in_tree, outs)


# --------------------------------------------------------------------------
# scan
# --------------------------------------------------------------------------

scan_p = Primitive("scan", multiple_results=True)


def _scan_impl(*args, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    consts = args[:num_consts]
    carry = list(args[num_consts:num_consts + num_carry])
    xs = [core.to_numpy(x) for x in args[num_consts + num_carry:]]
    y_avals = jaxpr.out_avals[num_carry:]
    ys = [np.empty((length,) + a.shape, a.dtype) for a in y_avals]
    body = _runner(jaxpr, length)
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = body(*consts, *carry, *[x[i] for x in xs])
        carry = outs[:num_carry]
        for y, o in zip(ys, outs[num_carry:]):
            y[i] = o
    c_avals = jaxpr.out_avals[:num_carry]
    return [np.asarray(c, a.dtype) for c, a in zip(carry, c_avals)] + ys


def _scan_abstract_eval(*avals, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    in_avals = jaxpr.in_avals
    if len(avals) != len(in_avals):
        raise TypeError(f"scan: {len(in_avals)} operands expected, got {len(avals)}")
    n_pre = num_consts + num_carry
    for i, (a, e) in enumerate(zip(avals, in_avals)):
        if i < n_pre:
            ok = _same(a, e)
        else:
            ok = a.shape[:1] == (length,) and a.shape[1:] == e.shape and a.dtype == e.dtype
        if not ok:
            want = e.str_short() if i < n_pre else f"{e.str_short()} stacked {length} times"
            raise TypeError(f"scan: operand {i} has type {a.str_short()}, expected {want}")
    outs = jaxpr.out_avals
    for a, e in zip(outs[:num_carry], in_avals[num_consts:n_pre]):
        if not _same(a, e):
            raise TypeError(f"scan: the body's carry output {a.str_short()} differs from its "
                            f"carry input {e.str_short()}")
    return (list(in_avals[num_consts:n_pre])
            + [a.update(shape=(length,) + a.shape, weak_type=False) for a in outs[num_carry:]])


def _split3(xs, a, b):
    return list(xs[:a]), list(xs[a:a + b]), list(xs[a + b:])


def _scan_jvp(primals, tangents, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    avals = jaxpr.in_avals
    nz = [t is not None and a.is_float for t, a in zip(tangents, avals)]
    c_nz, carry_nz, x_nz = _split3(nz, num_consts, num_carry)
    ny = len(jaxpr.out_avals) - num_carry
    interp = core.current_interpreter()
    if is_linearizing(interp):
        return _scan_linearize(primals, tangents, c_nz, carry_nz, x_nz, jaxpr, num_consts,
                               num_carry, length, reverse, unroll)
    for _ in range(num_carry + 1):
        jj, out_nz = _jvp_closed(jaxpr, c_nz + carry_nz + x_nz, carry_nz + [False] * ny)
        new = [a or b for a, b in zip(carry_nz, out_nz[:num_carry])]
        if new == carry_nz:
            break
        carry_nz = new
    n_in = len(avals)
    nt_c, nt_carry, nt_x = builtins.sum(c_nz), builtins.sum(carry_nz), builtins.sum(x_nz)
    # jj takes (consts, carry, xs, their nonzero tangents) and gives
    # (carry, ys, their nonzero tangents); scan wants each group's tangents next to it
    nc, ncar = num_consts, num_carry
    t0 = n_in
    in_perm = (list(range(nc)) + list(range(t0, t0 + nt_c))
               + list(range(nc, nc + ncar)) + list(range(t0 + nt_c, t0 + nt_c + nt_carry))
               + list(range(nc + ncar, n_in)) + list(range(t0 + nt_c + nt_carry,
                                                           t0 + nt_c + nt_carry + nt_x)))
    n_out = ncar + ny
    ny_t = builtins.sum(out_nz[ncar:])
    out_perm = (list(range(ncar)) + list(range(n_out, n_out + nt_carry))
                + list(range(ncar, n_out)) + list(range(n_out + nt_carry, n_out + nt_carry + ny_t)))
    jj = _reorder(jj, in_perm, out_perm)

    def nonzero(group_p, group_t, group_nz, group_avals):
        return [t if t is not None else zeros_like_aval(a)
                for t, a, z in zip(group_t, group_avals, group_nz) if z]
    cp, carp, xp = _split3(primals, nc, ncar)
    ct, cart, xt = _split3(tangents, nc, ncar)
    ca, cara, xa = _split3(avals, nc, ncar)
    xa_stacked = [aval_of(x) for x in xp]
    args = (cp + nonzero(cp, ct, c_nz, ca) + carp + nonzero(carp, cart, carry_nz, cara)
            + xp + nonzero(xp, xt, x_nz, xa_stacked))
    outs = scan_p.bind(*args, jaxpr=jj, num_consts=nc + nt_c, num_carry=ncar + nt_carry,
                       length=length, reverse=reverse, unroll=unroll,
                       linear=(False,) * len(args))
    carry_p, carry_t = outs[:ncar], outs[ncar:ncar + nt_carry]
    ys_p, ys_t = outs[ncar + nt_carry:ncar + nt_carry + ny], outs[ncar + nt_carry + ny:]
    it_c, it_y = iter(carry_t), iter(ys_t)
    return (list(carry_p) + list(ys_p),
            [next(it_c) if z else None for z in carry_nz]
            + [next(it_y) if z else None for z in out_nz[ncar:]])


def _scan_linearize(primals, tangents, c_nz, carry_nz, x_nz, jaxpr, num_consts, num_carry,
                    length, reverse, unroll):
    """Reverse mode's split of a scan: a *known* scan computes the primal
    outputs and stacks the residuals of each iteration; a *linear* scan over
    the tangents consumes them.  Residuals that do not change between
    iterations (the constants, values computed from them alone) are passed to
    the linear scan once instead of being stacked, and residuals that are
    slices of ``xs`` are read from ``xs`` itself."""
    nc, ncar = num_consts, num_carry
    ny = len(jaxpr.out_avals) - ncar
    n_out = ncar + ny
    for _ in range(ncar + 1):
        r = _linearize_closed(jaxpr, c_nz + carry_nz + x_nz, carry_nz + [False] * ny)
        new = [a or b for a, b in zip(carry_nz, r.out_nz[:ncar])]
        if new == carry_nz:
            break
        carry_nz = new
    y_nz = r.out_nz[ncar:]
    kj = r.known.jaxpr
    res_atoms = kj.outvars[n_out:]
    const_in = {v: i for i, v in enumerate(kj.invars[:nc])}
    xs_in = {v: i for i, v in enumerate(kj.invars[nc + ncar:])}
    invariant = set(kj.constvars) | set(const_in)
    inv_eqns = []
    for eqn in kj.eqns:
        if all(type(a) is Literal or a in invariant for a in eqn.inputs):
            invariant.update(eqn.outvars)
            inv_eqns.append(eqn)
    kinds = []
    for v in res_atoms:
        if type(v) is not Var:
            kinds.append("lit")
        elif v in const_in:
            kinds.append("const")
        elif v in xs_in:
            kinds.append("xs")
        elif v in invariant:
            kinds.append("inv")
        else:
            kinds.append("stack")
    cp = list(primals[:nc])
    xp = list(primals[nc + ncar:])
    inv_vars = [v for v, k in zip(res_atoms, kinds) if k == "inv"]
    inv_vals = []
    if inv_vars:
        inv = _dce(Jaxpr(kj.constvars, kj.invars[:nc], inv_vars, inv_eqns))
        inv_vals = eval_jaxpr(inv, r.known.consts, *cp)
    stack_vars = [v for v, k in zip(res_atoms, kinds) if k == "stack"]
    known_body = ClosedJaxpr(_dce(Jaxpr(kj.constvars, kj.invars, kj.outvars[:n_out] + stack_vars,
                                        kj.eqns)), r.known.consts)
    outs = scan_p.bind(*primals, jaxpr=known_body, num_consts=nc, num_carry=ncar, length=length,
                       reverse=reverse, unroll=unroll, linear=(False,) * len(primals))
    primal_out, stacked = outs[:n_out], outs[n_out:]
    if not builtins.any(r.out_nz):
        return primal_out, [None] * n_out
    lin = r.lin
    n_res = len(res_atoms)
    res_vars, t_vars = lin.invars[:n_res], lin.invars[n_res:]
    rc_vars, rc_vals, rx_vars, rx_vals = [], [], [], []
    it_inv, it_st = iter(inv_vals), iter(stacked)
    for v, k, lv in zip(res_atoms, kinds, res_vars):
        if k == "const":
            rc_vars.append(lv)
            rc_vals.append(cp[const_in[v]])
        elif k == "inv":
            rc_vars.append(lv)
            rc_vals.append(next(it_inv))
        elif k == "lit":
            rc_vars.append(lv)
            rc_vals.append(v.val)
        elif k == "xs":
            rx_vars.append(lv)
            rx_vals.append(xp[xs_in[v]])
        else:
            rx_vars.append(lv)
            rx_vals.append(next(it_st))
    nt_c, nt_carry = builtins.sum(c_nz), builtins.sum(carry_nz)
    tc_vars = t_vars[:nt_c]
    tcar_vars = t_vars[nt_c:nt_c + nt_carry]
    tx_vars = t_vars[nt_c + nt_carry:]
    lin_body = ClosedJaxpr(Jaxpr(lin.constvars, rc_vars + tc_vars + tcar_vars + tx_vars + rx_vars,
                                 lin.outvars, lin.eqns), r.lin_consts)
    avals = jaxpr.in_avals
    ct, cart, xt = _split3(tangents, nc, ncar)
    ca, cara = avals[:nc], avals[nc:nc + ncar]
    t_consts = [t if t is not None else zeros_like_aval(a) for t, a, z in zip(ct, ca, c_nz) if z]
    t_init = [t if t is not None else zeros_like_aval(a)
              for t, a, z in zip(cart, cara, carry_nz) if z]
    t_xs = [t if t is not None else zeros_like_aval(aval_of(p))
            for t, p, z in zip(xt, xp, x_nz) if z]
    ops = rc_vals + t_consts + t_init + t_xs + rx_vals
    linear = ((False,) * len(rc_vals) + (True,) * (len(t_consts) + len(t_init) + len(t_xs))
              + (False,) * len(rx_vals))
    lin_outs = scan_p.bind(*ops, jaxpr=lin_body, num_consts=len(rc_vals) + nt_c,
                           num_carry=nt_carry, length=length, reverse=reverse, unroll=unroll,
                           linear=linear)
    it_c, it_y = iter(lin_outs[:nt_carry]), iter(lin_outs[nt_carry:])
    return primal_out, ([next(it_c) if z else None for z in carry_nz]
                        + [next(it_y) if z else None for z in y_nz])


def _scan_transpose(cts, *args, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    """The transpose of a linear scan is a scan running the other way: its
    carry holds the cotangents of the linear carry and the running sums of the
    cotangents of the linear constants; each step transposes the body."""
    nc, ncar = num_consts, num_carry
    n_in = len(args)
    lin_c = [i for i in range(nc) if linear[i]]
    res_c = [i for i in range(nc) if not linear[i]]
    lin_x = [i for i in range(nc + ncar, n_in) if linear[i]]
    res_x = [i for i in range(nc + ncar, n_in) if not linear[i]]
    if not all(linear[nc:nc + ncar]):
        raise NotImplementedError("functad internal error: transpose of a scan with a "
                                  "non-linear carry")
    for i in res_c + res_x:
        if isinstance(args[i], UndefinedPrimal):
            raise NotImplementedError("functad internal error: transpose of a scan with an "
                                      "undefined residual operand")
    in_avals = jaxpr.in_avals
    out_avals = jaxpr.out_avals
    ct_carry = [zeros_like_aval(a) if c is None else _fit(c, a)
                for c, a in zip(cts[:ncar], out_avals[:ncar])]
    y_pos = [k for k, c in enumerate(cts[ncar:]) if c is not None]
    ct_ys = [_fit(cts[ncar + k], out_avals[ncar + k].update(
        shape=(length,) + out_avals[ncar + k].shape)) for k in y_pos]
    j = jaxpr.jaxpr
    res_pos = res_c + res_x
    lin_pos = lin_c + list(range(nc, nc + ncar)) + lin_x
    lin_jaxpr = Jaxpr(j.constvars + [j.invars[i] for i in res_pos],
                      [j.invars[i] for i in lin_pos], j.outvars, j.eqns)
    n_rc, n_lc, n_rx = len(res_c), len(lin_c), len(res_x)

    def body(*xs):
        rc = xs[:n_rc]
        acc = xs[n_rc:n_rc + n_lc]
        ctc = xs[n_rc + n_lc:n_rc + n_lc + ncar]
        rx = xs[n_rc + n_lc + ncar:n_rc + n_lc + ncar + n_rx]
        cty = xs[n_rc + n_lc + ncar + n_rx:]
        ct_out = list(ctc) + [None] * (len(out_avals) - ncar)
        for k, c in zip(y_pos, cty):
            ct_out[ncar + k] = c
        ct_in = backward_pass(lin_jaxpr, list(jaxpr.consts) + list(rc) + list(rx), ct_out)
        ct_in = [None if c is None else _fit(c, in_avals[i]) for c, i in zip(ct_in, lin_pos)]
        ct_lc, ct_carry_in, ct_lx = ct_in[:n_lc], ct_in[n_lc:n_lc + ncar], ct_in[n_lc + ncar:]
        from functad.lax.elementwise import add
        new_acc = [a if c is None else add(a, c) for a, c in zip(acc, ct_lc)]
        new_ctc = [zeros_like_aval(in_avals[i]) if c is None else c
                   for c, i in zip(ct_carry_in, range(nc, nc + ncar))]
        ys = [zeros_like_aval(in_avals[i]) if c is None else c for c, i in zip(ct_lx, lin_x)]
        return new_acc + new_ctc + ys
    b_avals = ([in_avals[i] for i in res_c] + [in_avals[i] for i in lin_c]
               + list(out_avals[:ncar]) + [in_avals[i] for i in res_x]
               + [out_avals[ncar + k] for k in y_pos])
    bj = _trace(body, b_avals, "transpose of scan")
    acc0 = [zeros_like_aval(in_avals[i]) for i in lin_c]
    ops = ([args[i] for i in res_c] + acc0 + ct_carry + [args[i] for i in res_x] + ct_ys)
    t_linear = ((False,) * n_rc + (True,) * (n_lc + ncar) + (False,) * n_rx
                + (True,) * len(y_pos))
    outs = scan_p.bind(*ops, jaxpr=bj, num_consts=n_rc, num_carry=n_lc + ncar, length=length,
                       reverse=not reverse, unroll=unroll, linear=t_linear)
    result = [None] * n_in
    for i, c in zip(lin_c + list(range(nc, nc + ncar)) + lin_x, outs):
        result[i] = c
    return result


def _scan_batch(vals, dims, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    size = _batch_size(vals, dims)
    nc, ncar = num_consts, num_carry
    ny = len(jaxpr.out_avals) - ncar
    b = [d is not None for d in dims]
    c_b, carry_b, x_b = _split3(b, nc, ncar)
    for _ in range(ncar + 1):
        bj, out_b = _batch_closed(jaxpr, size, c_b + carry_b + x_b, carry_b + [False] * ny)
        new = [x or y for x, y in zip(carry_b, out_b[:ncar])]
        if new == carry_b:
            break
        carry_b = new
    consts = [_to_front(v, d) for v, d in zip(vals[:nc], dims[:nc])]
    init = []
    for v, d, want in zip(vals[nc:nc + ncar], dims[nc:nc + ncar], carry_b):
        init.append(_to_front(v, d) if d is not None else
                    (_broadcast_front(v, size) if want else v))
    # xs: the scanned axis stays first, the batch axis goes second
    xs = [v if d is None else (v if d == 1 else moveaxis(v, d, 1))
          for v, d in zip(vals[nc + ncar:], dims[nc + ncar:])]
    outs = scan_p.bind(*consts, *init, *xs, jaxpr=bj, num_consts=nc, num_carry=ncar,
                       length=length, reverse=reverse, unroll=unroll, linear=linear)
    return outs, [0 if x else None for x in carry_b] + [1 if x else None for x in out_b[ncar:]]


scan_p.impl = _scan_impl
scan_p.abstract_eval = _scan_abstract_eval
scan_p.jvp = _scan_jvp
scan_p.transpose = _scan_transpose
scan_p.batch = _scan_batch


def scan(f, init, xs, length=None, reverse=False, unroll=1):
    """Scan ``f`` over the leading axis of ``xs`` while carrying state:

    .. code-block:: python

        def scan(f, init, xs, length=None):
            if xs is None:
                xs = [None] * length
            carry, ys = init, []
            for x in xs:
                carry, y = f(carry, x)
                ys.append(y)
            return carry, np.stack(ys)

    ``init``, ``xs`` and the outputs are pytrees; ``f(carry, x)`` returns
    ``(new_carry, y)`` where ``new_carry`` has the pytree, shapes and dtypes
    of ``carry`` and ``y`` is any pytree (stacked into ``ys``).  ``xs`` may be
    ``None`` (then ``length`` says how many steps).  ``reverse=True`` scans
    from the end (``ys[i]`` still belongs to ``xs[i]``).  ``unroll`` is
    accepted for JAX compatibility (a hint for compiled code).

    Reverse mode stores the residuals of every iteration (``length`` copies
    of the per-step values ``f``'s derivative needs) and runs the transposed
    scan backwards.

    >>> import functad as fd, functad.numpy as fnp
    >>> from functad import lax
    >>> def cumprod(xs):
    ...     return lax.scan(lambda c, x: (c * x, c * x), 1.0, xs)[1]
    >>> cumprod(fnp.array([1.0, 2.0, 3.0]))
    Array([1., 2., 6.])
    >>> fd.jacrev(cumprod)(fnp.array([1.0, 2.0, 3.0]))
    Array([[1., 0., 0.],
           [2., 1., 0.],
           [6., 3., 2.]])
    """
    if not callable(f):
        raise TypeError(f"scan: f must be callable, got {f!r:.60}")
    x_leaves, x_tree = tu.tree_flatten(xs)
    try:
        x_avals_full = [aval_of(x) for x in x_leaves]
    except TypeError as e:
        raise TypeError(f"scan: xs must be a pytree of arrays: {e}") from None
    for x, a in zip(x_leaves, x_avals_full):
        if a.ndim == 0:
            raise ValueError(f"scan got value with no leading axis to scan over: {x!r:.60} "
                             f"(of type {a.str_short()})")
    lengths = {a.shape[0] for a in x_avals_full}
    if length is not None:
        try:
            length = int(length)
        except (TypeError, core.ConcretizationTypeError):
            raise TypeError(f"scan: length must be a Python int, got {length!r:.60}") from None
        if lengths and lengths != {length}:
            raise ValueError(f"scan got `length` argument of {length} which disagrees with "
                             f"leading axis sizes {sorted(lengths)}.")
    elif not lengths:
        raise ValueError("scan got no values to scan over and `length` not provided.")
    elif len(lengths) > 1:
        paths = [tu.keystr(p) for p in _paths(xs)]
        desc = ", ".join(f"xs{p} of shape {a.shape}" for p, a in zip(paths, x_avals_full))
        raise ValueError(f"scan got values with different leading axis sizes: {desc}")
    else:
        length = lengths.pop()
    if isinstance(unroll, bool):
        unroll = length if unroll else 1
    if not isinstance(unroll, (int, np.integer)) or unroll < 0:
        raise TypeError(f"scan: unroll must be a positive int or a bool, got {unroll!r}")
    unroll = builtins.max(int(unroll), 1)
    pairs, in_tree = tu.tree_flatten_with_path(init)
    paths = [p for p, _ in pairs]
    leaves = [x for _, x in pairs]
    try:
        avals = [aval_of(x) for x in leaves]
    except TypeError as e:
        raise TypeError(f"scan: init must be a pytree of arrays: {e}") from None
    x_avals = [a.update(shape=a.shape[1:]) for a in x_avals_full]
    n = len(avals)

    def pair(out):
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError("scan body output must be a pair (new_carry, y), got "
                            f"{type(out).__name__} {out!r:.80}")
        return tuple(out)
    arg_tree = tu.tree_structure((init, xs))
    for attempt in range(2):
        body, consts, out_tree, _ = _trace_user(
            lambda c, x: f(c, x), arg_tree, avals + x_avals, "scan body f", out_check=pair)
        carry_tree, y_tree = out_tree.children()
        carry_out = body.out_avals[:carry_tree.num_leaves]
        if carry_tree != in_tree:
            break
        leaves, avals, changed = _promote_weak(leaves, avals, carry_out)
        if not changed:
            break
    _check_carry("scan body function carry input and carry output must have equal types",
                 in_tree, carry_tree, paths, avals, carry_out, "carry",
                 "the carry input (init)", "the carry output of f")
    outs = scan_p.bind(*consts, *leaves, *x_leaves, jaxpr=body, num_consts=len(consts),
                       num_carry=n, length=length, reverse=bool(reverse), unroll=unroll,
                       linear=(False,) * (len(consts) + n + len(x_leaves)))
    return tu.tree_unflatten(in_tree, outs[:n]), tu.tree_unflatten(y_tree, outs[n:])


def _is_concrete_int(x):
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (int, np.integer)):
        return True
    return (isinstance(x, np.ndarray) and x.shape == () and x.dtype.kind in "iu")


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None):
    """``for i in range(lower, upper): val = body_fun(i, val)``; returns ``val``.

    With concrete (Python or NumPy int) bounds it is a :func:`scan` of
    ``upper - lower`` steps, so reverse mode works; with traced bounds it is a
    :func:`while_loop` (forward mode only), as in JAX.

    >>> import functad as fd
    >>> from functad import lax
    >>> lax.fori_loop(0, 5, lambda i, s: s + i, 0)
    np.int64(10)
    >>> fd.grad(lambda x: lax.fori_loop(0, 4, lambda i, v: fd.numpy.sin(v), x))(0.5) > 0
    np.True_
    """
    if not callable(body_fun):
        raise TypeError("fori_loop: body_fun must be callable")
    for name, v in (("lower", lower), ("upper", upper)):
        a = _scalar_aval(v, f"fori_loop: {name}")
        if a.shape != () or a.dtype.kind not in "iu":
            raise TypeError(f"fori_loop: {name} must be an integer scalar, got {a.str_short()}")
    if _is_concrete_int(lower) and _is_concrete_int(upper):
        lo, hi = int(lower), int(upper)
        if type(lower) is int and type(upper) is int:
            i0 = lower          # a weakly typed Python int, like JAX's
        else:
            dt = np.result_type(*[np.asarray(v).dtype for v in (lower, upper)
                                  if type(v) is not int])
            i0 = dt.type(lo)

        def step(carry, _):
            i, x = carry
            return (i + 1, body_fun(i, x)), None
        (_, out), _ = scan(step, (i0, init_val), None, length=builtins.max(hi - lo, 0),
                           unroll=1 if unroll is None else unroll)
        return out
    from functad.lax.elementwise import lt
    la, ua = aval_of(lower), aval_of(upper)
    if la.dtype != ua.dtype:
        dt = ua.dtype if la.weak_type else la.dtype if ua.weak_type else \
            np.result_type(la.dtype, ua.dtype)
        lower, upper = convert_element_type(lower, dt), convert_element_type(upper, dt)

    def loop_cond(c):
        return lt(c[0], c[1])

    def loop_body(c):
        i, u, x = c
        return (i + 1, u, body_fun(i, x))
    return while_loop(loop_cond, loop_body, (lower, upper, init_val))[2]


def map(f, xs):  # noqa: A001 - lax's name
    """``f`` applied to each slice of ``xs`` along the leading axis, stacked:
    a :func:`scan` with no carry (the slices run one after another, unlike
    :func:`functad.vmap`).

    >>> import functad.numpy as fnp
    >>> from functad import lax
    >>> lax.map(lambda row: fnp.sum(row ** 2), fnp.arange(6.0).reshape(3, 2))
    Array([ 1., 13., 41.])
    """
    _, ys = scan(lambda c, x: (c, f(x)), (), xs)
    return ys


# --------------------------------------------------------------------------
# Numba lowering: native if / while / for in the generated code
# --------------------------------------------------------------------------
# Loop carries and branch results are rebound every iteration/branch, and
# Numba needs one type per variable: arrays are copied into fresh writable
# C-contiguous arrays, scalars cast to their dtype.

def _fresh_value(ctx, expr, aval):
    if aval.shape:
        return expr if ctx.is_fresh_array(expr) else f"np.copy({expr})"
    return f"bool({expr})" if aval.dtype.kind == "b" else f"{ctx.dtype(aval.dtype)}({expr})"


def _bind_all(ctx, names, exprs, avals):
    """names = exprs, simultaneously (an expr may read one of the names)."""
    tmps = [ctx.fresh("t") for _ in names]
    for t, e, a in zip(tmps, exprs, avals):
        ctx.emit(f"{t} = {_fresh_value(ctx, e, a)}")
    for n, t in zip(names, tmps):
        ctx.emit(f"{n} = {t}")


def _new_vars(ctx, exprs, avals, prefix="c"):
    names = [ctx.fresh(prefix) for _ in avals]
    for n, e, a in zip(names, exprs, avals):
        ctx.emit(f"{n} = {_fresh_value(ctx, e, a)}")
    return names


def _tuple(names):
    return "(" + "".join(n + ", " for n in names) + ")"


def _cond_lower(ctx, index, *ops, branches, linear):
    outs = [ctx.fresh("r") for _ in ctx.out_avals]
    k = ctx.fresh("k")
    ctx.emit(f"{k} = min(max(np.int64({index}), 0), {len(branches) - 1})")
    for j, br in enumerate(branches):
        if len(branches) > 1:
            ctx.emit("else:" if j == len(branches) - 1 else
                     f"{'if' if j == 0 else 'elif'} {k} == {j}:")
        with ctx.block() if len(branches) > 1 else _nothing():
            res = ctx.emit_jaxpr(br, list(ops))
            for n, e, a in zip(outs, res, ctx.out_avals):
                ctx.emit(f"{n} = {_fresh_value(ctx, e, a)}")
    return _tuple(outs)


@contextlib.contextmanager
def _nothing():
    yield


def _while_lower(ctx, *args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc = list(args[:cond_nconsts])
    bc = list(args[cond_nconsts:cond_nconsts + body_nconsts])
    n0 = cond_nconsts + body_nconsts
    avals = ctx.in_avals[n0:]
    carries = _new_vars(ctx, args[n0:], avals)
    header = ctx.mark()
    ctx.emit("while True:")
    with ctx.block():
        (pred,) = ctx.emit_jaxpr(cond_jaxpr, cc + carries)
        ctx.emit(f"if not ({pred}):\n    break")
        new = ctx.emit_jaxpr(body_jaxpr, bc + carries)
        _bind_all(ctx, carries, new, avals)
    ctx.hoist_allocations(header, carries)
    return _tuple(carries)


def _scan_lower(ctx, *args, jaxpr, num_consts, num_carry, length, reverse, unroll, linear):
    consts = list(args[:num_consts])
    c_avals = ctx.in_avals[num_consts:num_consts + num_carry]
    carries = _new_vars(ctx, args[num_consts:num_consts + num_carry], c_avals)
    xs = args[num_consts + num_carry:]
    y_avals = ctx.out_avals[num_carry:]
    ys = [ctx.fresh("ys") for _ in y_avals]
    for n, a in zip(ys, y_avals):
        ctx.emit(f"{n} = np.empty({a.shape}, {ctx.dtype(a.dtype)})")
    i, k = ctx.fresh("i"), ctx.fresh("k")
    header = ctx.mark()
    ctx.emit(f"for {i} in range({length}):")
    with ctx.block():
        ctx.emit(f"{k} = {length - 1} - {i}" if reverse else f"{k} = {i}")
        x_names = []
        for x in xs:
            n = ctx.fresh("x")
            ctx.emit(f"{n} = {x}[{k}]")
            x_names.append(n)
        res = ctx.emit_jaxpr(jaxpr, consts + carries + x_names)
        for n, e in zip(ys, res[num_carry:]):     # before the carries are rebound
            ctx.emit(f"{n}[{k}] = {e}")
        _bind_all(ctx, carries, res[:num_carry], c_avals)
    ctx.hoist_allocations(header, carries)
    return _tuple(carries + ys)


cond_p.lower = _cond_lower
while_p.lower = _while_lower
scan_p.lower = _scan_lower
