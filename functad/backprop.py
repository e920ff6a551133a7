"""Eager reverse mode: the lecture note's two phases, one node at a time.

Under another transform, :func:`functad.grad` and :func:`functad.vjp` are
*linearize + transpose* (:mod:`functad.ad`): the tangent operations are staged
into a linear jaxpr, which is then transposed.  At the top level, where every
primal value is concrete anyway, staging a jaxpr only to interpret it once
costs more than the arithmetic.  There a :class:`TapeInterpreter` runs the
function instead, exactly as the seed note's backpropagation does:

* **forward** — each primitive is evaluated at once, and its node stores its
  local partial derivatives.  Elementwise primitives take them from their
  tables (``Primitive.partial``); a primitive linear in its recorded operands
  (``Primitive.linear_in``) keeps its primals for its transpose rule; one with
  its own VJP (``Primitive.tape_vjp``: ``jit_call``) keeps that; any other
  primitive stores the linearization of that one application (its JVP rule
  under the partial evaluator: a small linear jaxpr), so every primitive is
  covered by the rules it already has;
* **backward** — :meth:`Tape.transpose` walks the nodes in reverse,
  multiplying each incoming cotangent by the stored partials (or applying the
  transpose, the VJP, the small jaxpr's transpose) and *summing* the
  contributions where a value fans out.

The backward phase runs through the current interpreter, so it can itself be
transformed (``vmap`` of a VJP function, as in :func:`functad.jacrev`), and a
``grad`` nested inside stages onto the tape like any other computation, which
gives higher derivatives.

Directly under an eager ``vmap``, ``grad`` records one tape of the batched
computation (:func:`record_batched_tape`): per-example gradients without
batching a linearization.

>>> import functad as fd, functad.numpy as fnp
>>> fd.grad(lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x))))(0.0)   # the note's -3/2
np.float64(-1.5)
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad.config import config
from functad.ad import (ONE, MINUS_ONE, UndefinedPrimal, backward_pass, linearize_flat,
                        zeros_like_aval, _cast_ct)
from functad.batching import BatchInterpreter, BatchTracer, aligned_batch_dim
from functad.core import Tracer, aval_of, to_numpy

__all__ = ["TapeInterpreter", "TapeTracer", "Tape", "reverse_flat", "record_tape",
           "record_batched_tape", "show_backprop", "BackpropReport"]

_ew = None      # functad.lax.elementwise (imported on first use: it imports functad.ad)

_NO_PARAMS: dict = {}      # (never written to)
PARTIALS, LINEAR, VJP, LINEARIZED = "partials", "linear", "vjp", "linearized"  # kinds of nodes


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

    @property
    def shape(self):
        return getattr(self.primal, "shape", ())       # (shape_of, inline)

    def to_concrete(self, what):
        self._check_alive()
        return to_numpy(self.primal)


class TapeInterpreter(core.Interpreter):
    """Evaluates primitives on concrete values and records the forward phase.

    Values are numbered in creation order, so the nodes' list is already a
    topological order.  A node is ``(kind, out, in_vids, data, prim)``:

    * ``PARTIALS``, an elementwise primitive: ``data = (partials, primals)``,
      one local partial derivative per recorded input (the primals give the
      shapes and dtypes their cotangents must have);
    * ``LINEAR``, a primitive linear in each recorded operand (``reshape``,
      ``reduce_sum``, ``dot_general``: ``Primitive.linear_in``):
      ``data = (primals, params)``; the cotangent of one operand is the
      primitive's transpose rule with the other operands as they were;
    * ``VJP``, a primitive with its own ``tape_vjp`` (``jit_call``): ``out``
      is a list of value numbers (None for outputs not recorded) and ``data``
      the backward function it returned;
    * ``LINEARIZED``, any other: ``out`` is a list of value numbers and
      ``data`` the :class:`~functad.ad.LinearFunction` of that application.
    """

    kind = "grad"

    def __init__(self, parent, name="grad", fun=None):
        super().__init__(parent, name, fun)
        self.nodes = []
        self.count = 0
        # primals and partials stay inside the tape (they leave through unpack,
        # wrapped), so they need not be Array views; under debug_nans, the
        # checking evaluator
        self._local = core.UNWRAPPED if _unwrapped_ok(parent) else parent
        self._eval = self._local.process_primitive
        global _ew
        if _ew is None:
            from functad.lax import elementwise as _ew_module
            _ew = _ew_module

    def new_value(self, primal):
        self.count = n = self.count + 1
        return TapeTracer(self, primal, n)

    def unpack(self, x):
        if type(x) is TapeTracer and x._trace is self:
            return core._wrap(x.primal), x.vid
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
            return self.record_elementwise(prim, partial, primals, vids, params)
        if not mine and prim.inline is not None:
            return prim.inline(args, params)     # a call whose body may close over my values
        tls = core._tls
        tls.interp = self.parent
        try:
            if not mine or prim.zero_jvp:
                return prim.bind(*primals, **params)
            linear_in = prim.linear_in
            if linear_in and not prim.multiple_results:
                for i, v in enumerate(vids):
                    if v is not None and i not in linear_in:
                        break
                else:       # linear in every recorded operand
                    ans = self._eval(prim, primals, params)
                    self.count = n = self.count + 1
                    self.nodes.append((LINEAR, n, vids, (primals, params), prim))
                    return TapeTracer(self, ans, n)
            if prim.tape_vjp is not None:
                return self._record_vjp(prim, primals, vids, params)
            return self._linearize_one(prim, primals, vids, params)
        finally:
            tls.interp = self

    def record_elementwise(self, prim, partial, primals, vids, params, ufunc=None):
        """Evaluate an elementwise primitive on concrete ``primals`` (with
        ``ufunc`` when given: the primitive's NumPy ufunc, for array operands)
        and record its local partials for the inputs numbered in ``vids``."""
        ans = None
        if ufunc is not None and not params and self._local is core.UNWRAPPED:
            try:
                ans = ufunc(*primals)
            except Exception:       # the error again, with functad's note on it
                ans = None
        if ans is None:
            ans = self._eval(prim, primals, params)
        partials = []
        tls = core._tls
        prev, tls.interp = tls.interp, self._local
        try:
            for i, v in enumerate(vids):
                partials.append(None if v is None else partial(i, ans, *primals))
        finally:
            tls.interp = prev
        self.count = n = self.count + 1
        self.nodes.append((PARTIALS, n, vids, (partials, primals), prim))
        return TapeTracer(self, ans, n)

    def _record_vjp(self, prim, primals, vids, params):
        """A primitive that provides its own VJP at concrete primals."""
        diff = tuple(i for i, v in enumerate(vids) if v is not None)
        res = prim.tape_vjp(primals, diff, **params)
        if res is None:
            return self._linearize_one(prim, primals, vids, params)
        outs, backward = res
        outs = list(outs) if prim.multiple_results else [outs]
        out_vids = []
        for k, o in enumerate(outs):
            if aval_of(o).is_float:
                outs[k] = self.new_value(o)
                out_vids.append(outs[k].vid)
            else:
                out_vids.append(None)
        self.nodes.append((VJP, out_vids, [vids[i] for i in diff], backward, prim))
        return outs if prim.multiple_results else outs[0]

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
            self.nodes.append((LINEARIZED, out_vids, [vids[i] for i in diff], lin, prim))
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
        for kind, out, in_vids, data, prim in self.nodes:
            if kind is LINEARIZED or kind is VJP:
                yield (f"{', '.join('_' if v is None else f'%{v}' for v in out)} = {prim.name}"
                       f"({', '.join(f'%{v}' for v in in_vids)})",
                       [v for v in out if v is not None],
                       f"linearized: {len(data.jaxpr.eqns)} linear equation(s)"
                       if kind is LINEARIZED else "its own VJP (one compiled program)")
                continue
            ins = ", ".join("_" if v is None else f"%{v}" for v in in_vids)
            if kind is LINEAR:
                parts = "linear: transposed going backward"
            else:
                parts = "  ".join(f"d/d%{v} = {_show(d)}" for v, d in zip(in_vids, data[0])
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
        tls = core._tls
        caller = tls.interp
        local = core.UNWRAPPED if _unwrapped_ok(caller) else caller
        tls.interp = local
        try:
            res = self._transpose(cts, adjoints, caller, local)
        finally:
            tls.interp = caller
        return res if local is caller else [core._wrap(r) for r in res]

    def _transpose(self, cts, adjoints, caller, local):
        # ``local`` is the current interpreter here: apply mul/neg/add through
        # it directly (what ``bind`` would do, one call fewer per operation)
        tls = core._tls
        ew = _ew
        mul_p, neg_p, add_p, unbroadcast = ew.mul_p, ew.neg_p, ew.add_p, ew.unbroadcast
        apply = local.process_primitive

        def add(a, b):
            return apply(add_p, (a, b), _NO_PARAMS)
        env = {}
        pop, get = env.pop, env.get
        for v, c in zip(self.out_vids, cts):
            if v is not None and c is not None:
                prev = get(v)
                env[v] = c if prev is None else add(prev, c)
        for kind, out, in_vids, data, prim in reversed(self.nodes):
            if kind is PARTIALS or kind is LINEAR:      # one output
                ct = pop(out, None)
                if ct is None:
                    continue
                if adjoints is not None:
                    adjoints[out] = ct
                if kind is PARTIALS:        # elementwise: cotangent times each local partial
                    partials, primals = data
                    for v, d, p in zip(in_vids, partials, primals):
                        if v is None:
                            continue
                        c = ct if d is ONE else apply(neg_p, (ct,), _NO_PARAMS) \
                            if d is MINUS_ONE else apply(mul_p, (ct, d), _NO_PARAMS)
                        if getattr(c, "shape", ()) != getattr(p, "shape", ()):  # (shape_of)
                            c = unbroadcast(c, aval_of(p))
                        if getattr(c, "dtype", None) != getattr(p, "dtype", None):
                            c = _cast_ct(c, aval_of(p))
                        prev = get(v)       # (the fan-in sum below, inline: the hot path)
                        env[v] = c if prev is None else add(prev, c)
                    continue
                else:       # linear: its transpose in one operand, the others as they were
                    primals, params = data
                    ins = []
                    for i, v in enumerate(in_vids):
                        c = None
                        if v is not None:
                            args = list(primals)
                            args[i] = UndefinedPrimal(aval_of(primals[i]))
                            c = prim.transpose(ct, *args, **params)[i]
                        ins.append(c)
            else:   # a linearized primitive (transpose its jaxpr), or one with its own VJP
                outs = [None if v is None else pop(v, None) for v in out]
                if all(c is None for c in outs):
                    continue
                if adjoints is not None:
                    adjoints.update((v, c) for v, c in zip(out, outs) if c is not None)
                tls.interp = caller     # user code: a custom_vjp's backward, a jitted VJP
                try:
                    if kind is VJP:
                        ins = data(outs)
                    else:
                        ins = [None if c is None else _cast_ct(c, aval) for c, aval in
                               zip(backward_pass(data.jaxpr, data.consts, outs), data.in_avals)]
                finally:
                    tls.interp = local
            for v, c in zip(in_vids, ins):      # sum where a value fans out
                if c is not None:
                    prev = get(v)
                    env[v] = c if prev is None else add(prev, c)
        res = []
        for v, a in zip(self.in_vids, self.in_avals):
            c = None if v is None else get(v)
            if adjoints is not None and c is not None:
                adjoints[v] = c
            if c is None:
                c = zeros_like_aval(a)
            elif getattr(c, "dtype", None) != a.dtype or getattr(c, "shape", ()) != a.shape:
                c = _cast_ct(c, a)
            res.append(c)
        return res


def _unwrapped_ok(interp):
    """Whether work below ``interp`` may skip wrapping results as Arrays: at
    the top level, unless debug_nans is checking each result."""
    return type(interp) is core.EvalInterpreter and not config.debug_nans


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


def reverse_flat(fun_flat, primals, name="grad", fun=None, immediate=False):
    """Run ``fun_flat`` on ``primals`` for reverse mode: ``(primals_out, lin)``
    where ``lin.transpose(cts)`` maps output cotangents to input cotangents.

    At the top level (eager evaluation) this records a :class:`Tape`; under
    any other transform it is :func:`functad.ad.linearize_flat`.  Only inexact
    (float/complex) primals are differentiated.

    ``immediate=True`` promises that ``lin.transpose`` is called at once, in
    the same context, with concrete cotangents (as ``grad`` does).  Directly
    under an eager ``vmap`` the tape then records the *batched* computation
    (:func:`record_batched_tape`).
    """
    interp = core._tls.interp
    if type(interp) is not core.EvalInterpreter:
        if immediate and type(interp) is BatchInterpreter \
                and type(interp.parent) is core.EvalInterpreter \
                and not any(type(p) is float or type(p) is complex for p in primals):
            # (a Python scalar is weakly typed; repeated as an array it would not be)
            return record_batched_tape(fun_flat, primals, interp, name, fun)
        return linearize_flat(fun_flat, primals, name, fun)
    return record_tape(fun_flat, primals, name, fun)


def record_tape(fun_flat, primals, name="grad", fun=None, interpreter=None):
    """Run ``fun_flat`` at the top level on a tape: ``(primals_out, Tape)``."""
    tape = (interpreter or TapeInterpreter)(core._tls.interp, name, fun)
    in_avals = [aval_of(p) for p in primals]
    ins = [tape.new_value(p) if a.is_float else p for p, a in zip(primals, in_avals)]
    outs = core.call_under(tape, fun_flat, ins)
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
# Per-example gradients: vmap(grad(f)) as one tape over the whole batch
# --------------------------------------------------------------------------

def record_batched_tape(fun_flat, primals, outer, name="grad", fun=None):
    """Reverse mode of ``fun_flat`` for every example of the eager ``vmap``
    ``outer`` at once, on one tape of batched arrays.

    Under ``vmap``, ``grad`` would otherwise stage, batch and transpose a
    linear jaxpr.  Here the two transforms swap places: a tape is recorded at
    the top level and a fresh batching level runs above it, so the tape sees
    the batched primitives and their batched local partials.  Examples of a
    ``vmap`` never mix, so the batched computation is block diagonal across
    the batch, and transposing it with one cotangent per example gives each
    example's own gradient.  A differentiated input that is the same for every
    example (``in_axes=None``) is broadcast first (a view), so that each
    example gets a gradient of its own.

    Values of ``outer`` that ``fun_flat`` reaches (closed over, or passed to
    it undifferentiated) enter the new level as they are: ``outer`` runs
    directly on eager evaluation, so their arrays are the batched ones.
    """
    n = outer.axis_size
    tape = TapeInterpreter(outer.parent, name, fun)
    inner = _SwappedBatch(tape, outer, fun)
    in_dims, ins, in_vids, tape_avals = [], [], [], []
    for p in primals:
        a = aval_of(p)
        v, d = (p.val, p.bdim) if type(p) is BatchTracer and p._trace is outer else (p, None)
        if a.is_float:
            if d is None:
                v, d = _repeated(v, n), 0
            tape_avals.append(aval_of(v))
            v = tape.new_value(v)
            in_vids.append(v.vid)
        else:       # not differentiated: the tape gives zeros of an example's shape
            tape_avals.append(a)
            in_vids.append(None)
        in_dims.append(d)
        ins.append(v if d is None else BatchTracer(inner, v, d))
    outs = core.call_under(inner, fun_flat, ins, also_dead=tape)
    results, out_avals, out_vids, out_dims = [], [], [], []
    for o in outs:
        v, d = (o.val, o.bdim) if type(o) is BatchTracer and o._trace is inner else (o, None)
        p, vid = tape.unpack(v)
        out_avals.append(aval_of(p))
        out_vids.append(vid)
        out_dims.append(d)
        results.append(p if d is None else BatchTracer(outer, p, d))
    batched = Tape(tape.nodes, in_vids, tape_avals, out_vids, out_avals)
    return results, _BatchedTape(batched, outer, in_dims, out_dims)


class _SwappedBatch(BatchInterpreter):
    """The batching level above a batched tape: it stands in for ``outer``,
    whose tracers it adopts as its own when they reach it."""

    def __init__(self, tape, outer, fun):
        super().__init__(tape, outer.axis_size, outer.name, fun)
        self.outer = self.adopted = outer

    def process_primitive(self, prim, args, params):
        partial = prim.partial
        if partial is not None:
            out = self._elementwise(prim, partial, args, params)
            if out is not None:
                return out
        return BatchInterpreter.process_primitive(self, prim, args, params)

    def _elementwise(self, prim, partial, args, params):
        """An elementwise primitive whose operands line up as they are (batched
        ones on the same axis with the same rank, unbatched ones broadcasting
        from the right of a leading batch axis): recorded on the tape directly,
        as its batching rule would do in more steps.  None otherwise."""
        outer = self.outer
        tape = self.parent
        primals, vids, dims = [], [], []
        recorded = False
        for a in args:
            if type(a) is BatchTracer and (a._trace is self or a._trace is outer):
                v = a.val
                if type(v) is TapeTracer:
                    vids.append(v.vid)
                    v = v.primal
                    recorded = True
                else:
                    vids.append(None)
                primals.append(v)
                dims.append(a.bdim)
            elif isinstance(a, Tracer):
                return None
            else:
                primals.append(a)
                vids.append(None)
                dims.append(None)
        d0 = aligned_batch_dim(primals, dims)
        if d0 is None:
            return None
        if recorded:
            return BatchTracer(self, tape.record_elementwise(prim, partial, primals, vids, params,
                                                             prim.ufunc), d0)
        return BatchTracer(self, tape._eval(prim, primals, params), d0)

    def unpack(self, x):
        """A value of this level as ``outer`` sees it (for auxiliary outputs)."""
        tape = self.parent
        if type(x) is BatchTracer and x._trace is self:
            return BatchTracer(self.outer, tape.unpack(x.val)[0], x.bdim), None
        return tape.unpack(x)[0], None


class _BatchedTape:
    """The linear map of :func:`record_batched_tape`, seen from ``outer``:
    per-example avals, and a ``transpose`` taking one cotangent per output
    (concrete, or a value of ``outer``) to one per input."""

    def __init__(self, tape, outer, in_dims, out_dims):
        self.tape, self.outer = tape, outer
        self.in_dims, self.out_dims = in_dims, out_dims
        self.out_avals = [_unbatched(a, d) for a, d in zip(tape.out_avals, out_dims)]

    def transpose(self, cts):
        tls = core._tls
        outer = self.outer
        batched = []
        for c, a, d in zip(cts, self.tape.out_avals, self.out_dims):
            if type(c) is BatchTracer and c._trace is outer:
                c = np.moveaxis(to_numpy(c.val), c.bdim, d)
            elif d is not None:
                c = _repeated(c, a.shape[d])
                if d:
                    c = np.moveaxis(c, 0, d)
            batched.append(c)
        prev, tls.interp = tls.interp, outer.parent
        try:
            grads = self.tape.transpose(batched)
        finally:
            tls.interp = prev
        return [g if v is None else BatchTracer(outer, g, d)
                for g, v, d in zip(grads, self.tape.in_vids, self.in_dims)]


def _repeated(x, n):
    """``n`` copies of array or scalar ``x`` along a new first axis: a read-only
    view (stride 0) of a plain ndarray, built directly where ``x`` is contiguous
    (``np.broadcast_to`` takes several microseconds)."""
    x = np.asarray(x)       # (an Array becomes a plain ndarray view)
    if x.flags.c_contiguous:
        v = np.ndarray((n,) + x.shape, x.dtype, x, 0, (0,) + x.strides)
        v.setflags(write=False)
        return v
    return np.broadcast_to(x, (n,) + x.shape)


def _unbatched(aval, d):
    return aval if d is None else core._cached_aval(
        aval.shape[:d] + aval.shape[d + 1:], aval.dtype, aval.weak_type)


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
