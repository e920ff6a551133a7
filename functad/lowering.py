"""Lowering a jaxpr to the source of one Numba function (jit's compiled tier).

:func:`lower_jaxpr` turns a :class:`~functad.core.ClosedJaxpr` into the
Python source of a function ``program(inputs..., consts...)`` written in the
subset of Python and NumPy that Numba compiles in nopython mode.  It does
not import Numba; :mod:`functad.compiler` compiles the source.

How a program is built:

1. **Inlining.**  Call-like primitives (``jit_call``, ``custom_jvp_call``,
   ``custom_vjp_call``) are replaced by the equations of their bodies, and
   dead equations are dropped, so fusion sees across function boundaries.
2. **Fusion.**  Elementwise equations of the same output shape join one
   *group*, emitted as a single loop nest with one scalar local per value;
   reductions (``reduce_sum``/``max``/``min``/``prod``/``and``/``or``) of a
   group's values accumulate inside the same loop.  Broadcasts, unit-dimension
   reshapes and transposes are *views*: a fused loop reads through them with
   an index map, so ``x * broadcast_to(y)`` allocates nothing for ``y``.  A
   value leaves a loop as an array only if something outside the loop needs
   it.  A group is closed (emitted) when a non-fusible equation, a view with a
   different index map, or a consumer of one of its reductions needs its
   results.
3. **Everything else** calls the primitive's ``lower`` rule, which returns a
   Numba expression for its result (``np.dot`` for matrix products, slicing
   for ``slice``, helpers from :mod:`functad.numba_runtime` for the rest).

Rank-0 values are Numba scalars, never 0-d arrays.  Every constant is written
with its dtype (``np.float32(0.5)``) and every elementwise result is cast to
the dtype of the jaxpr, so float32 stays float32.

Lowering rules
--------------
``prim.lower(ctx, *ins, **params) -> str`` where ``ins`` are Numba
expressions of the operands (scalars for rank-0 operands) and ``ctx`` is a
:class:`RuleContext` (``ctx.in_avals``, ``ctx.out_avals``, ``ctx.emit(line)``
for statements that must precede the result, ``ctx.fresh()`` for temporaries,
``ctx.cast``, ``ctx.dtype``, ``ctx.literal``, ``ctx.rt(name)`` for a runtime
helper).  For an elementwise primitive (``prim.elementwise``) the operands and
the result are scalars.  A rule of a primitive with multiple results returns a
tuple expression.

>>> import functad as fd, functad.numpy as fnp
>>> from functad.lowering import lower_jaxpr
>>> closed = fd.make_jaxpr(lambda x: fnp.sum(fnp.abs(x) * 2.0))(fnp.ones(3, "float32"))
>>> print(lower_jaxpr(closed).source)
def program(a0):
    _rt.prefer_wide_vectors()
    acc0 = np.float64(0.0)
    for i0 in range(3):
        v1 = np.float32(np.abs(a0[i0]))
        v2 = np.float32((v1) * (np.float32(2.0)))
        acc0 += np.float64(v2)
    v3 = np.float32(acc0)
    return (v3, )
<BLANKLINE>

(float32 sums accumulate in float64; a sum over an innermost axis of 32 or
more stores its summands in a buffer added by ``_rt.fsum``, so that the loop
vectorizes.)
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re

import numpy as np

from functad import core
from functad.core import ClosedJaxpr, Literal, Var

__all__ = ["lower_jaxpr", "emit_jaxpr", "LoweredProgram", "RuleContext", "LoweringError", "dtype_expr",
           "literal_expr", "cast_expr", "REDUCTIONS", "VIEWS"]


class LoweringError(NotImplementedError):
    """A primitive (or a use of it) that the Numba tier cannot compile."""


# --------------------------------------------------------------------------
# Typed constants and casts
# --------------------------------------------------------------------------

def dtype_expr(dt) -> str:
    """The Numba spelling of a NumPy dtype: ``np.float32``, ``np.bool_``."""
    dt = np.dtype(dt)
    return "np.bool_" if dt.kind == "b" else f"np.{dt.name}"


def _float_text(v) -> str:
    v = float(v)
    if np.isnan(v):
        return "np.nan"
    if np.isinf(v):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(v)


def literal_expr(val, dtype) -> str:
    """A Numba expression for the constant ``val`` with exactly ``dtype``."""
    dt = np.dtype(dtype)
    v = np.asarray(val).astype(dt).item()
    if dt.kind == "b":
        return "True" if v else "False"
    if dt.kind == "f":
        return f"{dtype_expr(dt)}({_float_text(v)})"
    if dt.kind == "c":
        return f"{dtype_expr(dt)}(complex({_float_text(v.real)}, {_float_text(v.imag)}))"
    return f"{dtype_expr(dt)}({int(v)})"


class _LiteralText(str):
    """The text of a constant, remembering its value so that a cast retypes it."""

    __slots__ = ("val",)


def _literal(val, dtype) -> str:
    text = _LiteralText(literal_expr(val, dtype))
    text.val = val
    return text


def cast_expr(expr: str, from_dtype, to_dtype) -> str:
    """``expr`` (a scalar of ``from_dtype``) converted to ``to_dtype``."""
    src, dst = np.dtype(from_dtype), np.dtype(to_dtype)
    if src == dst:
        return expr
    if type(expr) is _LiteralText:
        return _literal(expr.val, dst)
    if dst.kind == "b":
        return f"(({expr}) != 0)"
    return f"{dtype_expr(dst)}({expr})"


# --------------------------------------------------------------------------
# The context given to lowering rules
# --------------------------------------------------------------------------

_ASSIGN = re.compile(r"^\s*([\w, ]+?) = (.*)$")     # one name, or several (a, b, = ...)
_ALLOC = re.compile(r"^(\s*)(\w+) = np\.empty\(")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _reaching(lines, live):
    """The names among ``lines`` whose values can reach the names ``live``
    through assignments (``c = t``, views, calls returning an argument...):
    every name on the right of an assignment to a reaching name reaches."""
    assigns = [(_NAME.findall(m.group(1)), set(_NAME.findall(m.group(2))))
               for m in map(_ASSIGN.match, lines) if m]
    reaching, changed = set(live), True
    while changed:
        changed = False
        for lhs, rhs in assigns:
            if not rhs <= reaching and any(n in reaching for n in lhs):
                reaching |= rhs
                changed = True
    return reaching


class RuleContext:
    """What a lowering rule may use; see the module docstring."""

    def __init__(self, builder, in_avals, out_avals):
        self._b = builder
        self.in_avals = in_avals
        self.out_avals = out_avals

    def emit(self, line: str):
        """Emit a statement before the rule's result expression."""
        self._b.emit(line)

    def fresh(self, prefix="t") -> str:
        return self._b.fresh(prefix)

    def emit_jaxpr(self, closed, in_exprs):
        """Emit a sub-jaxpr inline (control flow); returns its output expressions."""
        return emit_jaxpr(self._b, closed, in_exprs)

    @contextlib.contextmanager
    def block(self):
        """Indent what is emitted inside (the body of an ``if``/``for``/``while``)."""
        self._b.indent += 1
        try:
            yield
        finally:
            self._b.indent -= 1

    def mark(self) -> int:
        """A position in the emitted code, for :meth:`hoist_allocations`."""
        return len(self._b.lines)

    def hoist_allocations(self, header: int, live: list):
        """Move the ``np.empty`` allocations of a loop body before its header.

        ``header`` is the :meth:`mark` of the loop's first line and ``live``
        the names that carry values into the next iteration.  An allocation
        made at the body's own level is hoisted unless its array can reach
        ``live`` through plain assignments (``c = t``, ``t = v``, views...):
        every other array is dead when the iteration ends and can be written
        again by the next one, since an ``np.empty`` output is always written
        whole before it is read.  An RNN cell's scan allocated ten small
        arrays per step.
        """
        lines = self._b.lines
        head = lines[header]
        body_indent = head[:len(head) - len(head.lstrip())] + "    "
        escaping = _reaching(lines[header + 1:], live)
        hoisted, kept = [], []
        for line in lines[header + 1:]:
            m = _ALLOC.match(line)
            if m and m.group(1) == body_indent and m.group(2) not in escaping:
                hoisted.append(head[:len(head) - len(head.lstrip())] + line.lstrip())
            else:
                kept.append(line)
        lines[header:] = hoisted + [head] + kept

    def guard(self, condition: str) -> bool:
        """Inside a fused loop: if ``condition`` (a scalar expression) is ever
        true, the loop is run again with ``ctx.safe_math`` set, so that a fast
        function valid on a limited range (``sin`` below 1e5...) can be used
        without ever giving a wrong result.  Returns False where no guard is
        possible (the rule must then emit its safe version)."""
        b = self._b
        if not b.in_group or b.safe_math:
            return False
        flag = b.fresh("unsafe")       # one count per guard: prange reduces each sum
        b.guard_flags.append(flag)
        b.emit(f"{flag} += ({condition})")
        return True

    def is_fresh_array(self, expr: str) -> bool:
        """Is ``expr`` an array a fused loop just allocated (C-contiguous, writable,
        aliasing nothing)?  Control flow can then rebind it without a copy."""
        return expr in self._b.fresh_arrays

    def rt(self, name: str) -> str:
        """A helper of :mod:`functad.numba_runtime`, by name."""
        self._b.uses_runtime = True
        return f"_rt.{name}"

    def vm(self, name: str) -> str:
        """A vectorizable function of :mod:`functad.numba_math`, by name."""
        self._b.uses_vmath = True
        return f"_vm.{name}"

    dtype = staticmethod(dtype_expr)
    literal = staticmethod(literal_expr)
    cast = staticmethod(cast_expr)


# --------------------------------------------------------------------------
# Fusion tables
# --------------------------------------------------------------------------

def _max_update(acc, v, dt):
    nan = f" or {v} != {v}" if np.dtype(dt).kind in "fc" else ""
    return f"if {v} > {acc}{nan}:\n    {acc} = {v}"


def _min_update(acc, v, dt):
    nan = f" or {v} != {v}" if np.dtype(dt).kind in "fc" else ""
    return f"if {v} < {acc}{nan}:\n    {acc} = {v}"


def _lowest(dt):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return -np.inf
    return np.iinfo(dt).min if dt.kind in "iu" else False


def _highest(dt):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return np.inf
    return np.iinfo(dt).max if dt.kind in "iu" else True


# reduction name -> (initial value as a function of the dtype, update statement).
# A NaN operand wins in max/min, as in NumPy.  The operand is cast to the
# output dtype first (reduce_and/or: to bool).
REDUCTIONS = {
    "reduce_sum": (lambda dt: 0, lambda acc, v, dt: f"{acc} += {v}"),
    "reduce_prod": (lambda dt: 1, lambda acc, v, dt: f"{acc} *= {v}"),
    "reduce_max": (_lowest, _max_update),
    "reduce_min": (_highest, _min_update),
    "reduce_and": (lambda dt: True, lambda acc, v, dt: f"{acc} = {acc} and {v}"),
    "reduce_or": (lambda dt: False, lambda acc, v, dt: f"{acc} = {acc} or {v}"),
}


def _broadcast_map(in_shape, out_shape, params):
    """Index map of broadcast_to: output index -> operand index."""
    lead = len(out_shape) - len(in_shape)
    return lambda idx: [("0" if n == 1 else i) for n, i in zip(in_shape, idx[lead:])]


def _unit_reshape_map(in_shape, out_shape, params):
    """Index map of a reshape that only inserts or removes dimensions of size 1."""
    src = [n for n in in_shape if n != 1]
    dst = [n for n in out_shape if n != 1]
    if src != dst:
        return None

    def imap(idx):
        kept = iter([i for n, i in zip(out_shape, idx) if n != 1])
        return ["0" if n == 1 else next(kept) for n in in_shape]
    return imap


def _transpose_map(in_shape, out_shape, params):
    perm = params["permutation"]

    def imap(idx):
        src = [None] * len(perm)
        for k, p in enumerate(perm):
            src[p] = idx[k]
        return src
    return imap


# view primitive -> function (in_shape, out_shape, params) -> index map or None
VIEWS = {
    "broadcast_to": _broadcast_map,
    "reshape": _unit_reshape_map,
    "transpose": _transpose_map,
}

_WIDENED = {"reduce_sum", "reduce_prod"}   # float32 sums accumulate in float64
_IDENTITY_PRIMS = {"stop_gradient"}          # lowered as the identity
_INLINE_PRIMS = {"jit_call", "custom_jvp_call", "custom_vjp_call", "remat_call"}
# primitives lowered by this module itself rather than by a ``lower`` rule
STRUCTURAL = frozenset(_INLINE_PRIMS | _IDENTITY_PRIMS)


def _inline_body(eqn, in_avals):
    """The ClosedJaxpr of a call-like equation's body."""
    p = eqn.params
    if eqn.primitive.name in ("jit_call", "remat_call"):
        return p["jaxpr"]
    return core.trace_to_jaxpr(p["fun"], in_avals, f"lower {p.get('name', '')}")


# --------------------------------------------------------------------------
# Pass 1: inline calls, drop dead code
# --------------------------------------------------------------------------

def _flatten(closed: ClosedJaxpr):
    """(invars, constvars, consts, eqns, outvars) with call bodies inlined."""
    constvars = list(closed.jaxpr.constvars)
    consts = list(closed.consts)
    eqns = []

    def walk(jaxpr, env):
        def read(a):
            return a if type(a) is Literal else env.get(a, a)
        for eqn in jaxpr.eqns:
            ins = [read(a) for a in eqn.inputs]
            name = eqn.primitive.name
            if name in _INLINE_PRIMS:
                body = _inline_body(eqn, [a.aval for a in ins])
                sub = dict(zip(body.jaxpr.invars, ins))
                for v, c in zip(body.jaxpr.constvars, body.consts):
                    cv = Var(v.aval)
                    constvars.append(cv)
                    consts.append(c)
                    sub[v] = cv
                outs = walk(body.jaxpr, sub)
                for v, o in zip(eqn.outvars, outs):
                    env[v] = o
            elif name in _IDENTITY_PRIMS:
                env[eqn.outvars[0]] = ins[0]
            else:
                # fresh variables: the same body may be inlined more than once
                outs = [Var(v.aval) for v in eqn.outvars]
                env.update(zip(eqn.outvars, outs))
                eqns.append(core.Eqn(eqn.primitive, ins, outs, eqn.params, eqn.source))
        return [read(v) for v in jaxpr.outvars]

    outvars = walk(closed.jaxpr, {})
    live = {v for v in outvars if type(v) is not Literal}
    keep = []
    for eqn in reversed(eqns):
        if any(v in live for v in eqn.outvars) or getattr(eqn.primitive, "effectful", False):
            keep.append(eqn)
            live.update(a for a in eqn.inputs if type(a) is not Literal)
    keep.reverse()
    used = [i for i, v in enumerate(constvars) if v in live]
    return (closed.jaxpr.invars, [constvars[i] for i in used], [consts[i] for i in used],
            keep, outvars)


def _fold_transposed_products(eqns, outvars):
    """``transpose(dot_general(a, b), (1, 0))`` -> ``dot_general(b, a)``.

    Reverse mode writes a weight gradient as the product of the cotangent and
    the layer input, then transposes it to the weight's layout; BLAS can write
    that layout directly, so the update ``w - lr * g`` then reads ``g`` along
    rows instead of down columns (a 784x512 float32 matrix: the strided read
    cost about as much as the product's own output).  Only where the product
    feeds nothing but the transpose.
    """
    uses = {}
    for eqn in eqns:
        for a in eqn.inputs:
            if type(a) is Var:
                uses[a] = uses.get(a, 0) + 1
    for v in outvars:
        if type(v) is Var:
            uses[v] = uses.get(v, 0) + 2
    producer = {eqn.outvars[0]: i for i, eqn in enumerate(eqns)
                if eqn.primitive.name == "dot_general"}
    out, replaced = list(eqns), {}
    for i, eqn in enumerate(eqns):
        if eqn.primitive.name != "transpose" or tuple(eqn.params["permutation"]) != (1, 0):
            continue
        d = eqn.inputs[0]
        j = producer.get(d) if type(d) is Var else None
        if j is None or uses.get(d) != 1:
            continue
        dot = eqns[j]
        (lc, rc), (lb, rb) = dot.params["dimension_numbers"]
        x, y = dot.inputs
        if lb or rb or len(x.aval.shape) - len(lc) != 1 or len(y.aval.shape) - len(rc) != 1:
            continue
        params = dict(dot.params, dimension_numbers=((tuple(rc), tuple(lc)), ((), ())))
        out[j] = core.Eqn(dot.primitive, [y, x], [eqn.outvars[0]], params, dot.source)
        replaced[i] = True
    return [e for i, e in enumerate(out) if i not in replaced]


def _outer_products_as_multiplies(eqns):
    """A product with nothing to contract and leading batch dimensions is a
    broadcasting multiply: ``x[b.., i.., None..] * y[b.., None.., j..]``.

    As a multiply it joins the fused loops around it and writes its output
    contiguously (a vmapped per-example gradient, ``err[b] * x[b, j]``, is one
    SIMD loop), where the runtime's general outer-product loop reads strided
    operands.
    """
    from functad.lax.elementwise import mul_p
    from functad.lax.shapes import reshape_p
    out = []
    for eqn in eqns:
        if eqn.primitive.name == "dot_general":
            (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
            x, y = eqn.inputs
            nb = len(lb)
            if not lc and not rc and tuple(lb) == tuple(rb) == tuple(range(nb)) \
                    and type(x) is Var and type(y) is Var:
                xs, ys = x.aval.shape, y.aval.shape
                nx, ny = len(xs) - nb, len(ys) - nb
                x2 = Var(reshape_p.abstract_eval(x.aval, new_sizes=xs + (1,) * ny))
                y2 = Var(reshape_p.abstract_eval(
                    y.aval, new_sizes=ys[:nb] + (1,) * nx + ys[nb:]))
                if mul_p.abstract_eval(x2.aval, y2.aval) == eqn.outvars[0].aval:
                    out.append(core.Eqn(reshape_p, [x], [x2], {"new_sizes": x2.aval.shape},
                                        eqn.source))
                    out.append(core.Eqn(reshape_p, [y], [y2], {"new_sizes": y2.aval.shape},
                                        eqn.source))
                    out.append(core.Eqn(mul_p, [x2, y2], list(eqn.outvars), {}, eqn.source))
                    continue
        out.append(eqn)
    return out


# --------------------------------------------------------------------------
# Pass 2: partition into fused groups and single equations
# --------------------------------------------------------------------------

class _Group:
    """Elementwise members over one shape, plus reductions of their values."""

    def __init__(self, shape):
        self.shape = shape
        self.members = []          # eqns, in order
        self.pointwise = set()     # vars computed per element in this loop
        self.reduced = set()       # vars accumulated by reductions in this loop


def _is_elementwise(eqn):
    return getattr(eqn.primitive, "elementwise", False)


def _partition(eqns, outvars):
    """Emission items: ("group", _Group) | ("eqn", eqn) | ("view", eqn)."""
    producer = {}               # var -> ("group", g) | ("view", eqn) | ("eqn", eqn)
    open_groups = {}            # shape -> _Group
    items = []
    materialized_views = set()

    def close(g):
        if open_groups.get(g.shape) is g:
            del open_groups[g.shape]
            items.append(("group", g))

    def view_map(eqn):
        p = eqn.primitive.name
        make = VIEWS.get(p)
        if make is None:
            return None
        return make(eqn.inputs[0].aval.shape, eqn.outvars[0].aval.shape, eqn.params)

    def resolve(a):
        """Follow views back to a base atom; (base, chain of view eqns)."""
        chain = []
        while type(a) is not Literal:
            src = producer.get(a)
            if src is None or src[0] != "view":
                break
            chain.append(src[1])
            a = src[1].inputs[0]
        return a, chain

    def need_array(a):
        """Make ``a`` available as a whole value before the next item."""
        if type(a) is Literal:
            return
        src = producer.get(a)
        if src is None:
            return
        kind, what = src
        if kind == "group":
            close(what)
        elif kind == "view" and a not in materialized_views:
            need_array(what.inputs[0])
            materialized_views.add(a)
            items.append(("view", what))

    for eqn in eqns:
        out = eqn.outvars[0] if eqn.outvars else None     # effects may have no outputs
        pname = eqn.primitive.name
        if out is None:
            pass
        elif pname in VIEWS and view_map(eqn) is not None:
            producer[out] = ("view", eqn)
            continue
        reduction = pname in REDUCTIONS and eqn.inputs[0].aval.shape != ()
        if _is_elementwise(eqn) or reduction:
            shape = eqn.inputs[0].aval.shape if reduction else out.aval.shape
            g = open_groups.get(shape)
            for a in eqn.inputs:
                base, chain = resolve(a)
                src = producer.get(base) if type(base) is not Literal else None
                if src is None or src[0] != "group":
                    continue
                owner = src[1]
                if not (owner is g and base in g.pointwise and not chain):
                    close(owner)        # its results are needed as arrays
                    if owner is g:
                        g = None
            if g is None:
                g = open_groups[shape] = _Group(shape)
            g.members.append(eqn)
            (g.reduced if reduction else g.pointwise).add(out)
            producer[out] = ("group", g)
            continue
        for a in eqn.inputs:
            need_array(a)
        items.append(("eqn", eqn))
        for v in eqn.outvars:
            producer[v] = ("eqn", eqn)
    for a in outvars:
        need_array(a)
    for g in list(open_groups.values()):
        close(g)
    return items, producer


# --------------------------------------------------------------------------
# Pass 3: emit source
# --------------------------------------------------------------------------

class _Builder:
    def __init__(self):
        self.lines = []
        self.indent = 1
        self.names = {}
        self._counter = itertools.count()
        self.uses_runtime = False
        self.uses_vmath = False
        self.parallel = False
        self.consts = []            # (argument name, value, aval) after the inputs
        self.fresh_arrays = set()   # names of arrays a fused loop allocated (C, writable)
        self.in_group = False       # emitting a fused loop (ctx.guard works there)
        self.safe_math = False      # the guarded loop's second, safe pass
        self.guard_flags = []

    def add_const(self, value, aval):
        name = f"c{len(self.consts)}"
        self.consts.append((name, value, aval))
        return name

    def fresh(self, prefix="t"):
        if prefix in ("a", "c"):        # a0, c0... name the program's arguments
            prefix += "_"
        return f"{prefix}{next(self._counter)}"

    def emit(self, line):
        pad = "    " * self.indent
        for part in line.split("\n"):
            self.lines.append(pad + part)

    def name(self, v):
        n = self.names.get(v)
        if n is None:
            n = self.names[v] = self.fresh("v")
        return n

    def atom(self, a):
        """A whole value: a scalar expression or an array name."""
        if type(a) is Literal:
            return _literal(a.val, a.aval.dtype)
        return self.name(a)


class LoweredProgram:
    """The result of :func:`lower_jaxpr`.

    ``source`` defines ``program(inputs..., consts...)`` returning a tuple of
    the outputs (scalars for rank-0 outputs); ``consts`` are the values to
    pass after the inputs; ``uses_vmath`` whether it calls
    :mod:`functad.numba_math` as ``_vm``; ``parallel`` whether it uses ``prange`` (compile
    with ``parallel=True``); ``uses_runtime`` says whether it refers to
    :mod:`functad.numba_runtime` as ``_rt``; ``scratch`` lists the
    ``(shape, dtype)`` of the writable arrays to pass after the constants,
    which the program uses as workspace (any contents; see
    :func:`_scratch_arrays`).
    """

    def __init__(self, source, consts, in_avals, const_avals, out_avals, uses_runtime,
                 parallel=False, uses_vmath=False, scratch=()):
        self.parallel = parallel
        self.scratch = list(scratch)
        self.uses_vmath = uses_vmath
        self.source = source
        self.consts = consts
        self.in_avals = in_avals
        self.const_avals = const_avals
        self.out_avals = out_avals
        self.uses_runtime = uses_runtime

    def __repr__(self):
        return f"LoweredProgram(\n{self.source})"


def lower_jaxpr(closed: ClosedJaxpr) -> LoweredProgram:
    """Lower ``closed`` to the source of one Numba function; see the module doc."""
    b = _Builder()
    args = [f"a{i}" for i in range(len(closed.jaxpr.invars))]
    rets = emit_jaxpr(b, closed, args)
    b.emit(f"return ({''.join(r + ', ' for r in rets)})")
    args += [name for name, _, _ in b.consts]
    lines, scratch = _scratch_arrays(b.lines, rets)
    args += [name for name, _, _ in scratch]
    if any(line.lstrip().startswith("for ") for line in lines):
        # loops: let LLVM use 512-bit vectors where the CPU has them (the
        # bodies of prange loops call it too)
        lines = ["    _rt.prefer_wide_vectors()"] + lines
        b.uses_runtime = True
    src = f"def program({', '.join(args)}):\n" + "\n".join(lines) + "\n"
    return LoweredProgram(src, [c for _, c, _ in b.consts], list(closed.in_avals),
                          [a for _, _, a in b.consts], list(closed.out_avals),
                          b.uses_runtime, b.parallel, b.uses_vmath,
                          [(shape, dtype) for _, shape, dtype in scratch])


_SCRATCH_MIN_BYTES = 1 << 16
_TOP_ALLOC = re.compile(r"^    (\w+) = np\.empty\((\([\d, ]*\)), np\.(\w+)\)$")


def _scratch_arrays(lines, rets):
    """Split off the program's scratch arrays: ``(lines, [(name, shape, dtype)])``.

    A large array the program allocates at its top level (``np.empty``, 64 KiB
    or more) that no output can reach (see :func:`_reaching`) is dead when the
    program returns.  It becomes a parameter instead, and the caller passes
    the same arrays again at the next call: the C library's ``malloc`` maps
    large blocks afresh from the system (glibc: from 128 KiB, unless a freed
    block raised that threshold) and each call then paid a page fault per
    4 KiB it wrote: 1.3 ms of the 5.3 an MLP step took at batch 128.

    Arrays whose lives do not overlap share one parameter, the most recently
    freed of their shape and dtype (as ``malloc`` would hand out the block
    just freed): a buffer written again soon after its last read is still in
    the cache.  With one parameter per array, an MLP step at batch 1024 was
    2 ms slower than with ``malloc``'s reuse.  Every ``np.empty`` array is
    written whole before it is read, so what the last user left in a buffer
    does not matter.
    """
    reaching = _reaching(lines, [r for r in rets if _NAME.fullmatch(r)])
    found = []                              # (line, name, shape, dtype)
    for i, line in enumerate(lines):
        m = _TOP_ALLOC.match(line)
        if m and m.group(1) not in reaching:
            shape, dtype = ast.literal_eval(m.group(2)), np.dtype(m.group(3))
            if int(np.prod(shape)) * dtype.itemsize >= _SCRATCH_MIN_BYTES:
                found.append((i, m.group(1), shape, dtype))
    if not found:
        return lines, []
    ends = _live_ends(lines, [name for _, name, _, _ in found])
    lines = list(lines)
    scratch, free, busy = [], [], []        # busy/free: (end, parameter, shape, dtype)
    for i, name, shape, dtype in found:
        for b in [b for b in busy if b[0] < i]:
            busy.remove(b)
            free.append(b)
        same = [b for b in free if b[2:] == (shape, dtype)]
        if same:
            b = max(same, key=lambda b: b[0])   # the most recently freed
            free.remove(b)
            param = b[1]
            lines[i] = f"    {name} = {param}"
        else:
            param = name
            scratch.append((name, shape, dtype))
            lines[i] = None
        busy.append((ends[name], param, shape, dtype))
    return [line for line in lines if line is not None], scratch


def _live_ends(lines, names):
    """For each of ``names``, the last line of the last top-level statement
    (a whole loop or ``if``, with its body) that uses it or a name assigned
    from it (views, aliases)."""
    block, top = [], 0
    for i, line in enumerate(lines):
        if not line.startswith("     "):     # four spaces and a statement: top level
            top = i
        block.append(top)
    block_end = {}
    for i, t in enumerate(block):
        block_end[t] = i
    last, users = {}, {}
    for i, line in enumerate(lines):
        for n in _NAME.findall(line):
            last[n] = i
        m = _ASSIGN.match(line)
        if m:
            for n in _NAME.findall(m.group(2)):
                users.setdefault(n, set()).update(_NAME.findall(m.group(1)))
    ends = {}
    for name in names:
        seen, todo = {name}, [name]
        while todo:
            for u in users.get(todo.pop(), ()):
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        ends[name] = max(block_end[block[last[n]]] for n in seen if n in last)
    return ends


def emit_jaxpr(b, closed: ClosedJaxpr, in_exprs):
    """Emit the code of ``closed`` at the builder's current indentation, with
    its inputs bound to ``in_exprs`` (array names, or scalar expressions for
    rank-0 inputs); returns the expressions of its outputs.  Its constants
    become arguments of the program."""
    invars, constvars, consts, eqns, outvars = _flatten(closed)
    eqns = _outer_products_as_multiplies(_fold_transposed_products(eqns, outvars))
    for v, e in zip(invars, in_exprs):
        b.names[v] = e
    for v, c in zip(constvars, consts):
        b.names[v] = b.add_const(c, v.aval)
    items, producer = _partition(eqns, outvars)
    escapes = _escapes(items, producer, outvars)
    for kind, what in items:
        if kind == "group":
            _emit_group(b, what, escapes, producer)
        else:
            _emit_eqn(b, what)
    return [b.atom(v) for v in outvars]


def _escapes(items, producer, outvars):
    """The values computed in a fused loop that are needed outside it."""
    owner = {}
    for kind, what in items:
        if kind == "group":
            for e in what.members:
                for v in e.outvars:
                    owner[v] = what
    escapes = set(v for v in outvars if type(v) is not Literal and v in owner)
    for kind, what in items:
        members = what.members if kind == "group" else [what]
        for e in members:
            for a in e.inputs:
                if type(a) is Literal:
                    continue
                if a in owner and owner[a] is not what:
                    escapes.add(a)
                if kind == "group":         # a loop reads through views
                    base = a
                    while type(base) is not Literal and producer.get(base, ("",))[0] == "view":
                        base = producer[base][1].inputs[0]
                    if type(base) is not Literal and base in owner and owner[base] is not what:
                        escapes.add(base)
    return escapes


def _emit_eqn(b, eqn):
    prim = eqn.primitive
    rule = prim.lower
    if rule is None:
        raise LoweringError(f"primitive {prim.name} has no Numba lowering rule")
    ctx = RuleContext(b, [a.aval for a in eqn.inputs], [v.aval for v in eqn.outvars])
    start = len(b.lines)
    expr = rule(ctx, *[b.atom(a) for a in eqn.inputs], **eqn.params)
    outs = [b.name(v) for v in eqn.outvars]
    if prim.multiple_results:
        b.emit(f"{''.join(o + ', ' for o in outs) if outs else '_'} = {expr}")
    else:
        b.emit(f"{outs[0]} = {expr}")
        # an array the rule allocated itself (np.empty) aliases nothing: control
        # flow may rebind it without a copy
        if any(m.group(2) == expr for m in map(_ALLOC.match, b.lines[start:]) if m):
            b.fresh_arrays.add(outs[0])


def _threads():
    """Threads Numba would use (its NUMBA_NUM_THREADS, else the CPU count)."""
    import os
    try:
        return int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1)
    except ValueError:
        return 1


def _parallel_ok(g):
    """Run the outer loop on several threads?  Only for big loops, and only if
    no two iterations of it update the same accumulator other than by a
    scalar sum or product (which Numba's ``prange`` turns into a reduction)."""
    from functad.config import config
    threshold = config.jit_parallel_threshold
    if not threshold or not g.shape or int(np.prod(g.shape)) < threshold or _threads() < 2:
        return False
    for e in g.members:
        out = e.outvars[0]
        if out in g.reduced:
            axes = e.params["axes"]
            scalar_ok = not out.aval.shape and e.primitive.name in ("reduce_sum", "reduce_prod")
            if not scalar_ok and 0 in axes:
                return False
    return True


_SUM_BLOCK = 2048     # summands buffered per block: 16 KiB in float64, in L1
_SUM_MIN = 32         # shorter rows gain little from SIMD, and pay a call per row


def _sum_buffers(b, g, acc_dtype, outer):
    """Buffers for the float sums over a loop nest's innermost axis.

    LLVM does not vectorize a loop that adds into one float accumulator
    (that would reorder the additions), so ``acc += v`` keeps the whole fused
    loop scalar, ``exp`` and ``tanh`` included.  Instead the loop stores each
    block of summands in a small buffer and ``numba_runtime.fsum`` adds it
    with eight partial sums.  Not under ``prange`` (the buffer would be
    shared), nor for rows shorter than 32, nor when a max/min over that axis
    would keep the loop scalar anyway.
    """
    if outer != "range" or not g.shape or g.shape[-1] < _SUM_MIN:
        return {}
    inner = len(g.shape) - 1
    over_inner = [e for e in g.members if e.outvars[0] in g.reduced and inner in e.params["axes"]]
    if not over_inner or any(e.primitive.name != "reduce_sum" or
                             acc_dtype[e.outvars[0]].kind != "f" for e in over_inner):
        return {}
    b.uses_runtime = True
    size = min(g.shape[-1], _SUM_BLOCK)
    buffers = {}
    for e in over_inner:
        out = e.outvars[0]
        buffers[out] = b.fresh("sbuf")
        b.emit(f"{buffers[out]} = np.empty({size}, {dtype_expr(acc_dtype[out])})")
    return buffers


def _emit_group(b, g, escapes, producer):
    """Emit a fused loop; if a rule guarded a fast function (``ctx.guard``),
    run the whole loop again with the safe functions when the guard fired."""
    start, indent = len(b.lines), b.indent
    b.in_group, b.guard_flags = True, []
    try:
        _emit_group_once(b, g, escapes, producer)
        flags = b.guard_flags
        if flags:
            b.lines[start:start] = ["    " * indent + f"{f} = 0" for f in flags]
            b.emit(f"if {' or '.join(flags)}:")
            b.indent += 1
            b.safe_math = True
            _emit_group_once(b, g, escapes, producer)
    finally:
        b.indent = indent
        b.in_group, b.safe_math, b.guard_flags = False, False, []


def _emit_group_once(b, g, escapes, producer):
    shape = g.shape
    rank = len(shape)
    idx = [f"i{k}" for k in range(rank)]
    index_of = {}           # pointwise var -> local scalar name

    def read(a):
        """Scalar expression of operand ``a`` at the loop index."""
        if type(a) is Literal:
            return _literal(a.val, a.aval.dtype)
        if a in index_of:
            return index_of[a]
        # implicit (NumPy) broadcasting: align to the right, size-1 dims read at 0
        ashape = a.aval.shape
        cur = [("0" if n == 1 else i) for n, i in zip(ashape, idx[rank - len(ashape):])]
        # follow views back to an array value
        while True:
            src = producer.get(a)
            if src is None or src[0] != "view" or a in b.names:
                break
            eqn = src[1]
            imap = VIEWS[eqn.primitive.name](eqn.inputs[0].aval.shape, a.aval.shape, eqn.params)
            cur = imap(cur)
            a = eqn.inputs[0]
            if type(a) is Literal:
                return _literal(a.val, a.aval.dtype)
        if a in index_of:
            return index_of[a]
        name = b.atom(a)
        if not a.aval.shape:
            return name
        return f"{name}[{', '.join(cur)}]"

    # allocations before the loop; low-precision float sums accumulate in float64
    acc_dtype, acc_name = {}, {}
    for e in g.members:
        out = e.outvars[0]
        dt = out.aval.dtype
        if out in g.reduced:
            adt = np.dtype(np.float64) if (dt.kind == "f" and dt.itemsize < 8 and
                                           e.primitive.name in _WIDENED) else dt
            acc_dtype[out] = adt
            if adt != dt:
                acc_name[out] = b.fresh("acc")
            init = literal_expr(REDUCTIONS[e.primitive.name][0](dt), adt)
            acc = acc_name.get(out) or b.name(out)
            if out.aval.shape:
                b.emit(f"{acc} = np.full({out.aval.shape}, {init}, {dtype_expr(adt)})")
            else:
                b.emit(f"{acc} = {init}")
        elif out in escapes and rank:
            b.emit(f"{b.name(out)} = np.empty({shape}, {dtype_expr(dt)})")
            b.fresh_arrays.add(b.name(out))
    outer = "prange" if _parallel_ok(g) else "range"
    b.parallel = b.parallel or outer == "prange"
    buffers = _sum_buffers(b, g, acc_dtype, outer)
    chunk = b.fresh("j") if buffers and shape[-1] > _SUM_BLOCK else None
    for k, n in enumerate(shape):
        if k == rank - 1 and chunk:
            b.emit(f"for {chunk} in range(0, {n}, {_SUM_BLOCK}):")
            b.indent += 1
            b.emit(f"for {idx[k]} in range({chunk}, min({chunk} + {_SUM_BLOCK}, {n})):")
        else:
            b.emit(f"for {idx[k]} in {outer if k == 0 else 'range'}({n}):")
        b.indent += 1
        if k == 0 and outer == "prange":    # Numba moves this loop's body to a function of its own
            b.emit("_rt.prefer_wide_vectors()")
            b.uses_runtime = True

    def accumulator(out, axes):
        kept = [i for k, i in enumerate(idx) if k not in axes]
        return (acc_name.get(out) or b.name(out)) + (f"[{', '.join(kept)}]" if kept else "")
    for e in g.members:
        out = e.outvars[0]
        prim = e.primitive
        if out in g.reduced:
            x = e.inputs[0]
            v = cast_expr(read(x), x.aval.dtype, acc_dtype[out])
            if out in buffers:
                b.emit(f"{buffers[out]}[{idx[-1]}{' - ' + chunk if chunk else ''}] = {v}")
            else:
                b.emit(REDUCTIONS[prim.name][1](accumulator(out, e.params["axes"]), v,
                                                acc_dtype[out]))
            continue
        ctx = RuleContext(b, [a.aval for a in e.inputs], [out.aval])
        expr = prim.lower(ctx, *[read(a) for a in e.inputs], **e.params)
        local = b.name(out) if not rank else b.fresh("v")
        if rank:
            index_of[out] = local
        b.emit(f"{local} = {expr}")
        if rank and out in escapes:
            b.emit(f"{b.name(out)}[{', '.join(idx)}] = {local}")
    if buffers:
        b.indent -= 1                   # after the innermost loop: add up its block
        count = f"min({_SUM_BLOCK}, {shape[-1]} - {chunk})" if chunk else f"{shape[-1]}"
        for e in g.members:
            out = e.outvars[0]
            if out in buffers:
                b.emit(f"{accumulator(out, e.params['axes'])} += "
                       f"_rt.fsum({buffers[out]}, {count})")
        b.indent -= rank - 1 + (1 if chunk else 0)
    else:
        b.indent -= rank
    for out, acc in acc_name.items():
        dt = out.aval.dtype
        b.emit(f"{b.name(out)} = {acc}.astype({dtype_expr(dt)})" if out.aval.shape
               else f"{b.name(out)} = {cast_expr(acc, acc_dtype[out], dt)}")
