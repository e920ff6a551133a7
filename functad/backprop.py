"""Eager reverse mode: the lecture note's two phases, one node at a time.

Under another transform, :func:`functad.grad` and :func:`functad.vjp` are
*linearize + transpose* (:mod:`functad.ad`): the tangent operations are staged
into a linear jaxpr, which is then transposed.  At the top level, where every
primal value is concrete anyway, staging a jaxpr only to interpret it once
costs more than the arithmetic.  There a :class:`TapeInterpreter` runs the
function instead, exactly as the seed note's backpropagation does:

* **forward** — each primitive is evaluated at once, and its node stores its
  local partial derivatives.  Elementwise primitives take them from their
  tables (``Primitive.partial``); any other primitive stores the linearization
  of that one application (its JVP rule under the partial evaluator: a small
  linear jaxpr), so every primitive is covered by the rules it already has;
* **backward** — :meth:`Tape.transpose` walks the nodes in reverse,
  multiplying each incoming cotangent by the stored partials (or transposing
  the small jaxpr) and *summing* the contributions where a value fans out.

The backward phase runs through ``bind``, so it can itself be transformed
(``vmap`` of a VJP function, as in :func:`functad.jacrev`), and a ``grad``
nested inside stages onto the tape like any other computation, which gives
higher derivatives.

>>> import functad as fd, functad.numpy as fnp
>>> fd.grad(lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x))))(0.0)   # the note's -3/2
np.float64(-1.5)
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.ad import (ONE, MINUS_ONE, backward_pass, linearize_flat, zeros_like_aval,
                        _cast_ct)
from functad.core import Tracer, aval_of, to_numpy, shape_of

__all__ = ["TapeInterpreter", "TapeTracer", "Tape", "reverse_flat", "record_tape",
           "show_backprop", "BackpropReport"]

_ew = None      # functad.lax.elementwise (imported on first use: it imports functad.ad)


class TapeTracer(Tracer):
    """A concrete value recorded on a tape: its primal and its number there."""

    __slots__ = ("primal", "vid")

    def __init__(self, trace, primal, vid):
        self._trace = trace
        self.primal = primal
        self.vid = vid

    @property
    def aval(self):
        return aval_of(self.primal)

    def to_concrete(self, what):
        self._check_alive()
        return to_numpy(self.primal)


class TapeInterpreter(core.Interpreter):
    """Evaluates primitives on concrete values and records the forward phase.

    Values are numbered in creation order, so the nodes' list is already a
    topological order.  A node is ``(out_vid, in_vids, partials, in_avals,
    prim)`` for an elementwise primitive (one local partial derivative per
    recorded input) and ``(out_vids, in_vids, lin, None, prim)`` for any other,
    ``lin`` the :class:`~functad.ad.LinearFunction` of that application.
    """

    kind = "grad"

    def __init__(self, parent, name="grad", fun=None):
        super().__init__(parent, name, fun)
        self.nodes = []
        self.count = 0
        self._eval = parent.process_primitive

    def new_value(self, primal):
        self.count = n = self.count + 1
        return TapeTracer(self, primal, n)

    def unpack(self, x):
        if type(x) is TapeTracer and x._trace is self:
            return x.primal, x.vid
        return x, None

    def process_primitive(self, prim, args, params):
        partial = prim.partial
        primals = []
        vids = []
        mine = False
        for a in args:
            if type(a) is TapeTracer and a._trace is self:
                primals.append(a.primal)
                vids.append(a.vid)
                mine = True
            else:
                primals.append(a)
                vids.append(None)
        if partial is not None and mine:
            # an elementwise primitive: NumPy code only, no interpreter needed
            ans = self._eval(prim, primals, params)
            partials = []
            avals = []
            tls = core._tls
            tls.interp = self.parent
            try:
                for i, v in enumerate(vids):
                    if v is None:
                        partials.append(None)
                        avals.append(None)
                    else:
                        partials.append(partial(i, ans, *primals))
                        avals.append(aval_of(primals[i]))
            finally:
                tls.interp = self
            self.count = n = self.count + 1
            self.nodes.append((n, vids, partials, avals, prim))
            return TapeTracer(self, ans, n)
        if not mine and prim.inline is not None:
            return prim.inline(args, params)     # a call whose body may close over my values
        tls = core._tls
        tls.interp = self.parent
        try:
            if not mine or prim.zero_jvp:
                return prim.bind(*primals, **params)
            return self._linearize_one(prim, primals, vids, params)
        finally:
            tls.interp = self

    def _linearize_one(self, prim, primals, vids, params):
        """Any other primitive: its linearization at these primals, as a node."""
        diff = [i for i, v in enumerate(vids) if v is not None]

        def one(*xs):
            full = list(primals)
            for i, x in zip(diff, xs):
                full[i] = x
            out = prim.bind(*full, **params)
            return out if prim.multiple_results else [out]
        outs, lin = linearize_flat(one, [primals[i] for i in diff], prim.name)
        out_vids = []
        for k, m in enumerate(lin.out_mask):
            if m:
                outs[k] = self.new_value(outs[k])
                out_vids.append(outs[k].vid)
        if out_vids:
            self.nodes.append((out_vids, [vids[i] for i in diff], lin, None, prim))
        return outs if prim.multiple_results else outs[0]


class Tape:
    """The recorded forward phase of one function: a linear map from output
    cotangents to input cotangents, with the interface of
    :class:`~functad.ad.LinearFunction` (``in_avals``, ``out_avals``,
    ``transpose``)."""

    def __init__(self, nodes, in_vids, in_avals, out_vids, out_avals):
        self.nodes = nodes
        self.in_vids = in_vids
        self.in_avals = in_avals
        self.out_vids = out_vids
        self.out_avals = out_avals

    def describe(self):
        """One ``(equation, out_vids, partials)`` triple of text per node, in
        order: ``"%4 = add(_, %3)"``, the value numbers it defines, and the
        local partial stored for each recorded input (or the size of the
        linearization of a non-elementwise primitive)."""
        for out, in_vids, data, avals, prim in self.nodes:
            if avals is None:
                yield (f"{', '.join(f'%{v}' for v in out)} = {prim.name}"
                       f"({', '.join(f'%{v}' for v in in_vids)})", list(out),
                       f"linearized: {len(data.jaxpr.eqns)} linear equation(s)")
                continue
            ins = ", ".join("_" if v is None else f"%{v}" for v in in_vids)
            parts = "  ".join(f"d/d%{v} = {_show(d)}" for v, d in zip(in_vids, data)
                              if v is not None)
            yield f"%{out} = {prim.name}({ins})", [out], parts

    def __str__(self):
        """The forward phase as the note draws it: one line per node, with the
        local partial derivative stored for each recorded input."""
        lines = [f"inputs: {', '.join('%' + str(v) for v in self.in_vids if v is not None)}"]
        lines += [f"{eqn}    {parts}" for eqn, _, parts in self.describe()]
        lines.append(f"outputs: {', '.join('_' if v is None else '%' + str(v) for v in self.out_vids)}")
        return "\n".join(lines)

    def transpose(self, cts, adjoints=None):
        """Output cotangents -> input cotangents (zeros where none reached).

        If ``adjoints`` is a dict, it receives each recorded value's complete
        cotangent (its adjoint, in the note's words), by value number.
        """
        ew = _ew
        mul, neg, add, unbroadcast = ew.mul_p.bind, ew.neg_p.bind, ew.add_p.bind, ew.unbroadcast
        env = {}
        pop, get = env.pop, env.get
        for v, c in zip(self.out_vids, cts):
            if v is not None and c is not None:
                prev = get(v)
                env[v] = c if prev is None else add(prev, c)
        for out, in_vids, data, avals, prim in reversed(self.nodes):
            if avals is not None:        # elementwise: cotangent times each local partial
                ct = pop(out, None)
                if ct is None:
                    continue
                if adjoints is not None:
                    adjoints[out] = ct
                for v, d, aval in zip(in_vids, data, avals):
                    if v is None:
                        continue
                    c = ct if d is ONE else neg(ct) if d is MINUS_ONE else mul(ct, d)
                    if shape_of(c) != aval.shape:
                        c = unbroadcast(c, aval)
                    if getattr(c, "dtype", None) != aval.dtype:
                        c = _cast_ct(c, aval)
                    prev = get(v)
                    env[v] = c if prev is None else add(prev, c)
                continue
            outs = [pop(v, None) for v in out]    # a linearized primitive: transpose its jaxpr
            if all(c is None for c in outs):
                continue
            if adjoints is not None:
                adjoints.update((v, c) for v, c in zip(out, outs) if c is not None)
            ins = backward_pass(data.jaxpr, data.consts, outs)
            for v, c, aval in zip(in_vids, ins, data.in_avals):
                if c is not None:
                    c = _cast_ct(c, aval)
                    prev = get(v)
                    env[v] = c if prev is None else add(prev, c)
        res = []
        for v, a in zip(self.in_vids, self.in_avals):
            c = None if v is None else get(v)
            if adjoints is not None and c is not None:
                adjoints[v] = c
            res.append(zeros_like_aval(a) if c is None else _cast_ct(c, a))
        return res


def _show(d):
    if d is ONE:
        return "1"
    if d is MINUS_ONE:
        return "-1"
    a = aval_of(d)
    if a.size > 4:
        return f"<{a.str_short()}>"
    d = np.asarray(d)
    if d.shape or d.dtype.kind not in "fiu":
        return np.array2string(d, precision=6, separator=", ")
    return format(float(d), ".6g")


def reverse_flat(fun_flat, primals, name="grad", fun=None):
    """Run ``fun_flat`` on ``primals`` for reverse mode: ``(primals_out, lin)``
    where ``lin.transpose(cts)`` maps output cotangents to input cotangents.

    At the top level (eager evaluation) this records a :class:`Tape`; under
    any other transform it is :func:`functad.ad.linearize_flat`.  Only inexact
    (float/complex) primals are differentiated.
    """
    if type(core._tls.interp) is not core.EvalInterpreter:
        return linearize_flat(fun_flat, primals, name, fun)
    return record_tape(fun_flat, primals, name, fun)


def record_tape(fun_flat, primals, name="grad", fun=None, interpreter=None):
    """Run ``fun_flat`` at the top level on a tape: ``(primals_out, Tape)``."""
    tls = core._tls
    parent = tls.interp
    global _ew
    if _ew is None:
        from functad.lax import elementwise as _ew_module
        _ew = _ew_module
    tape = (interpreter or TapeInterpreter)(parent, name, fun)
    in_avals = [aval_of(p) for p in primals]
    ins = [tape.new_value(p) if a.is_float else p for p, a in zip(primals, in_avals)]
    tls.interp = tape
    try:
        outs = fun_flat(*ins)
    finally:
        tls.interp = parent
        tape.alive = False
    outs_p, out_vids = [], []
    for o in outs:
        p, v = tape.unpack(o)
        outs_p.append(p)
        out_vids.append(v)
    in_vids = [x.vid if type(x) is TapeTracer else None for x in ins]
    result = Tape(tape.nodes, in_vids, in_avals, out_vids, [aval_of(p) for p in outs_p])
    result.values = getattr(tape, "values", None)
    return outs_p, result


# --------------------------------------------------------------------------
# The note's figures for any function: values, partials, adjoints
# --------------------------------------------------------------------------

class _ValueTape(TapeInterpreter):
    """A tape that also keeps every recorded value (for :func:`show_backprop`)."""

    def __init__(self, parent, name="grad", fun=None):
        super().__init__(parent, name, fun)
        self.values = {}

    def new_value(self, primal):
        t = super().new_value(primal)
        self.values[t.vid] = primal
        return t

    def process_primitive(self, prim, args, params):
        out = super().process_primitive(prim, args, params)
        for o in (out if prim.multiple_results else [out]):
            if type(o) is TapeTracer and o._trace is self:
                self.values[o.vid] = o.primal
        return out


class BackpropReport:
    """What :func:`show_backprop` returns; printing it shows both phases.

    Attributes: ``value`` (the function's output), ``grad`` (the gradient,
    with the structure of the differentiated argument), ``tape``
    (the :class:`Tape`), ``values`` and ``adjoints`` (dicts from value
    numbers ``%n`` to arrays).
    """

    def __init__(self, value, grad, tape, adjoints):
        self.value, self.grad, self.tape = value, grad, tape
        self.values, self.adjoints = tape.values, adjoints

    def __str__(self):
        t, vals, adj = self.tape, self.values, self.adjoints
        rows = [("forward", "value", "local partials"), ("", "", "")]
        for v in t.in_vids:
            if v is not None:
                rows.append((f"%{v} = input", _show(vals[v]), ""))
        for eqn, outs, parts in t.describe():
            rows.append((eqn, ", ".join(_show(vals[v]) for v in outs), parts))
        rows += [("", "", ""), ("backward", "adjoint", ""), ("", "", "")]
        order = [v for v in t.out_vids if v is not None]
        for _, outs, _ in reversed(list(t.describe())):
            order += [v for v in outs if v not in order]
        order += [v for v in t.in_vids if v is not None and v not in order]
        for v in order:
            if v in adj:
                rows.append((f"%{v}", _show(adj[v]), "input" if v in t.in_vids else ""))
        w0 = max(len(r[0]) for r in rows) + 2
        w1 = max(len(r[1]) for r in rows) + 2
        return "\n".join(f"{a:<{w0}}{b:<{w1}}{c}".rstrip() for a, b, c in rows)

    __repr__ = __str__


def show_backprop(fun, *args, argnums=0):
    """Differentiate scalar ``fun`` at ``args`` and show what backpropagation did.

    The report lists, as the lecture note draws them, the forward phase (each
    operation's value and the local partial derivatives stored on it) and the
    backward phase (each value's adjoint, the derivative of the output with
    respect to it).  Works at the top level only (not under ``jit``/``vmap``).

    >>> import functad as fd, functad.numpy as fnp
    >>> r = fd.debug.show_backprop(lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x))), 0.0)
    >>> print(r)
    forward          value      local partials
    <BLANKLINE>
    %1 = input       0
    %2 = mul(_, %1)  -0         d/d%1 = -3
    %3 = exp(%2)     1          d/d%2 = 1
    %4 = add(_, %3)  2          d/d%3 = 1
    %5 = div(_, %4)  0.5        d/d%4 = -0.25
    %6 = log(%5)     -0.693147  d/d%5 = 2
    %7 = neg(%6)     0.693147   d/d%6 = -1
    <BLANKLINE>
    backward         adjoint
    <BLANKLINE>
    %7               1
    %6               -1
    %5               -2
    %4               0.5
    %3               0.5
    %2               0.5
    %1               -1.5       input
    >>> float(r.grad)
    -1.5
    """
    from functad import tree_util as tu
    from functad.ad import _check_grad_input, _one
    if type(core._tls.interp) is not core.EvalInterpreter:
        raise TypeError("show_backprop runs at the top level only, not inside jit, vmap or grad")
    leaves, tree = tu.tree_flatten(args[argnums])

    def flat(*xs):
        full = list(args)
        full[argnums] = tu.tree_unflatten(tree, xs)
        return [fun(*full)]
    for x in leaves:
        _check_grad_input(x, "show_backprop", False)
    (out,), tape = record_tape(flat, leaves, "show_backprop", fun, _ValueTape)
    oa = tape.out_avals[0]
    if oa.shape or not oa.is_float:
        raise TypeError(f"show_backprop needs a function with a real scalar output, got "
                        f"{oa.str_short()}")
    adjoints = {}
    grads = tape.transpose([_one(oa.dtype)], adjoints)
    return BackpropReport(out, tu.tree_unflatten(tree, grads), tape, adjoints)
