"""Automatic differentiation: forward mode, linearize, transpose, and the API.

Reverse mode is *linearize + transpose*, the two phases of backpropagation:

* **forward** — :class:`JVPInterpreter` runs above a partial evaluator
  (``StagingInterpreter(forward_known=True)``).  Every primal operation runs
  now, on concrete values (so Python ``if``/``while`` work under ``grad``);
  the tangent operations are staged into a *linear jaxpr* whose constants are
  the residuals, the local partial derivatives stored on each node;
* **backward** — :func:`backward_pass` walks that jaxpr in reverse, applying
  each linear primitive's ``transpose`` rule and *summing* cotangents where a
  value fans out.

Symbolic zeros are ``None`` throughout: a tangent or cotangent that is
``None`` is known to be zero and costs nothing.

At the top level, where nothing transforms the result further, ``grad`` and
``vjp`` run the same two phases on a tape instead (:mod:`functad.backprop`,
chosen by :func:`~functad.backprop.reverse_flat`): each primitive's local
partials are stored as it runs, with no jaxpr staged.
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.core import (Interpreter, Tracer, aval_of, new_interpreter, shape_of,
                          StagingInterpreter, Literal, to_numpy)

__all__ = ["jvp", "linearize", "vjp", "grad", "value_and_grad", "jacfwd", "jacrev",
           "hessian", "custom_jvp", "custom_vjp", "stop_gradient", "UndefinedPrimal",
           "defjvp", "deflinear", "backward_pass"]


# --------------------------------------------------------------------------
# Forward mode
# --------------------------------------------------------------------------

class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self):
        return aval_of(self.primal)

    def to_concrete(self, what):
        self._check_alive()
        p = self.primal
        if isinstance(p, Tracer):
            return p.to_concrete(what)
        return to_numpy(p)


class JVPInterpreter(Interpreter):
    """Pushes (primal, tangent) pairs through each primitive's ``jvp`` rule."""

    kind = "jvp"

    def process_primitive(self, prim, args, params):
        primals = []
        tangents = []
        mine = False
        for a in args:
            if type(a) is JVPTracer and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
                mine = True
            else:
                primals.append(a)
                tangents.append(None)
        if not mine and prim.inline is not None:
            return prim.inline(args, params)
        parent = self.parent
        if mine and prim.partial is not None and type(parent) is StagingInterpreter \
                and parent.forward_known:
            return self._linearize_elementwise(prim, primals, tangents, params, parent)
        tls = core._tls
        tls.interp = parent
        try:
            if not mine:
                return prim.bind(*primals, **params)
            out_p, out_t = prim.jvp(primals, tangents, **params)
        finally:
            tls.interp = self
        if prim.multiple_results:
            return [p if t is None else JVPTracer(self, p, t) for p, t in zip(out_p, out_t)]
        return out_p if out_t is None else JVPTracer(self, out_p, out_t)

    def _linearize_elementwise(self, prim, primals, tangents, params, pe):
        """Reverse mode's fast path for elementwise primitives with table-given
        local partials: the primal and its partials are computed directly on
        the known interpreter (no forwarding through the partial evaluator),
        and ``tangent * partial`` is staged into the linear jaxpr — the
        lecture note's forward pass, one node at a time."""
        tls = core._tls
        tls.interp = pe.parent
        try:
            ans = prim.bind(*primals, **params)
            partial = prim.partial
            partials = [None if t is None else partial(i, ans, *primals)
                        for i, t in enumerate(tangents)]
            ew = _ew
            tls.interp = pe
            out = None
            for t, d in zip(tangents, partials):
                if t is None:
                    continue
                c = t if d is ONE else ew.neg_p.bind(t) if d is MINUS_ONE else ew.mul_p.bind(t, d)
                out = c if out is None else ew.add_p.bind(out, c)
            if out.aval is not aval_of(ans):       # avals are interned: usually identical
                out = _fit_tangent(out, ans)
        finally:
            tls.interp = self
        return JVPTracer(self, ans, out)

    def unpack(self, x):
        if type(x) is JVPTracer and x._trace is self:
            return x.primal, x.tangent
        return x, None


_ew = None            # functad.lax.elementwise, bound once it is imported (it imports this module)


ONE = object()        # a local partial derivative equal to 1 (no multiplication needed)
MINUS_ONE = object()  # a local partial derivative equal to -1 (a negation)


def _fit_tangent(out, ans):
    """Give a summed tangent the shape and dtype of the primal answer."""
    ans_shape = shape_of(ans)
    if shape_of(out) != ans_shape:
        from functad.lax.shapes import broadcast_to
        out = broadcast_to(out, ans_shape)
    ans_dtype = aval_of(ans).dtype
    if getattr(out, "dtype", None) != ans_dtype:
        from functad.lax.elementwise import convert_element_type
        out = convert_element_type(out, ans_dtype)
    return out


def fit_to_aval(x, aval):
    """``x`` broadcast and cast to the shape and dtype of ``aval`` (for tangents
    and cotangents coming out of a sub-jaxpr)."""
    if shape_of(x) != aval.shape:
        from functad.lax.shapes import broadcast_to
        x = broadcast_to(x, aval.shape)
    if aval_of(x).dtype != aval.dtype:
        from functad.lax.elementwise import convert_element_type
        x = convert_element_type(x, aval.dtype)
    return x


def zeros_like_aval(aval):
    return core._wrap(np.zeros(aval.shape, aval.dtype))


def instantiate_zeros(t, primal):
    return zeros_like_aval(aval_of(primal)) if t is None else t


def add_tangents(a, b):
    if a is None:
        return b
    if b is None:
        return a
    from functad.lax.elementwise import add
    return add(a, b)


def defjvp(prim, *rules):
    """Give ``prim`` a JVP rule from one rule per argument.

    Each rule is ``rule(g, ans, *primals, **params)`` and returns the
    contribution of that argument's tangent ``g`` to the output tangent;
    ``None`` in place of a rule means the output does not depend on that
    argument differentiably.  Contributions are summed and broadcast to the
    output's shape.
    """
    if len(rules) == 1 and getattr(prim, "elementwise", False):
        (rule,) = rules

        def jvp_unary(primals, tangents, **params):
            # elementwise and unary: the rule's output has the answer's shape and dtype
            ans = prim.bind(*primals, **params)
            return ans, rule(tangents[0], ans, *primals, **params)
        prim.jvp = jvp_unary
        return jvp_unary

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        out = None
        for rule, t in zip(rules, tangents):
            if t is not None and rule is not None:
                out = add_tangents(out, rule(t, ans, *primals, **params))
        if out is not None:
            out = _fit_tangent(out, ans)
        return ans, out
    prim.jvp = jvp
    return jvp


def defjvp_zero(prim):
    """The output of ``prim`` has zero derivative (integer, boolean, or piecewise constant)."""
    def jvp(primals, tangents, **params):
        return prim.bind(*primals, **params), ([None] * len(prim.abstract_eval(
            *map(aval_of, primals), **params)) if prim.multiple_results else None)
    prim.jvp = jvp
    prim.zero_jvp = True
    return jvp


def deflinear(prim, transpose_rule):
    """``prim`` is linear in all its arguments: its JVP is itself applied to the
    tangents (zeros instantiated), and ``transpose_rule`` gives its transpose."""
    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        ts = [instantiate_zeros(t, p) for t, p in zip(tangents, primals)]
        return ans, prim.bind(*ts, **params)
    prim.jvp = jvp
    prim.transpose = transpose_rule
    prim.linear_in = core.ALL
    return jvp


# --------------------------------------------------------------------------
# Linearize and transpose
# --------------------------------------------------------------------------

class UndefinedPrimal:
    """Stands for a linear input of an equation being transposed."""

    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))

    def __repr__(self):
        return f"UndefinedPrimal({self.aval.str_short()})"


def is_undefined(x):
    return type(x) is UndefinedPrimal


class LinearFunction:
    """The linear map staged by :func:`linearize`: a linear jaxpr whose
    constants are the residuals, callable forward and transposable."""

    def __init__(self, jaxpr, consts, in_avals, out_avals, out_mask):
        self.jaxpr = jaxpr
        self.consts = consts
        self.in_avals = in_avals
        self.out_avals = out_avals
        self.out_mask = out_mask      # False where the output tangent is a symbolic zero

    def __call__(self, *tangents):
        outs = iter(core.eval_jaxpr(self.jaxpr, self.consts, *tangents))
        return [next(outs) if m else zeros_like_aval(a)
                for m, a in zip(self.out_mask, self.out_avals)]

    def transpose(self, cts):
        cts = [c for c, m in zip(cts, self.out_mask) if m]
        cts_in = backward_pass(self.jaxpr, self.consts, cts)
        return [zeros_like_aval(a) if c is None else _cast_ct(c, a)
                for c, a in zip(cts_in, self.in_avals)]

    def __str__(self):
        return str(self.jaxpr)


def _cast_ct(c, aval):
    dt = getattr(c, "dtype", None)
    if dt is not None and dt == aval.dtype and shape_of(c) == aval.shape:
        return c
    from functad.lax.elementwise import convert_element_type
    from functad.lax.shapes import broadcast_to
    if shape_of(c) != aval.shape:
        c = broadcast_to(c, aval.shape)
    if getattr(c, "dtype", None) != aval.dtype:
        c = convert_element_type(c, aval.dtype)
    return c


def jvp_flat(fun_flat, primals, tangents, parent, name="jvp", fun=None):
    """Run ``fun_flat`` on (primal, tangent) pairs under a new JVP interpreter
    whose parent is ``parent``; returns ``(primals_out, tangents_out)`` with
    ``None`` for symbolic-zero tangents.  A ``None`` tangent leaves its
    primal undifferentiated."""
    jv = JVPInterpreter(parent, name, fun)
    ins = [p if t is None else JVPTracer(jv, p, t) for p, t in zip(primals, tangents)]
    outs = core.call_under(jv, fun_flat, ins)
    outs_p, outs_t = [], []
    for o in outs:
        if type(o) is JVPTracer and o._trace is jv:
            outs_p.append(o.primal)
            outs_t.append(o.tangent)
        else:
            outs_p.append(o)
            outs_t.append(None)
    return outs_p, outs_t


def jaxpr_evaluator(closed):
    """``closed`` as a flat function (evaluated through ``bind``)."""
    return lambda *xs: core.eval_jaxpr(closed.jaxpr, closed.consts, *xs)


def is_linearizing(interp):
    """Is ``interp`` reverse mode's partial evaluator (primals known, tangents
    staged into a linear jaxpr)?  Rules of call-like primitives differ there."""
    return type(interp) is StagingInterpreter and interp.forward_known


def jvp_jaxpr(closed, nz_in, instantiate=None, name="jvp"):
    """The JVP of ``closed`` staged as a jaxpr ``(primals..., nonzero
    tangents...) -> (primal outs..., nonzero tangent outs...)``.

    ``nz_in[i]`` says whether input ``i`` has a tangent; returns the jaxpr and
    which output tangents are nonzero.  ``instantiate[i]`` forces output
    ``i``'s tangent to be present (zeros) when it is float.  For the rules of
    primitives with a body (control flow, ``checkpoint``).
    """
    avals = closed.in_avals
    n = len(avals)
    out_avals = closed.out_avals
    inst = instantiate or [False] * len(out_avals)
    out_nz = []

    def fn(*args):
        it = iter(args[n:])
        tangents = [next(it) if nz else None for nz in nz_in]
        outs_p, outs_t = jvp_flat(jaxpr_evaluator(closed), list(args[:n]), tangents,
                                  core._tls.interp, name)
        outs_t = [None if not a.is_float else fit_to_aval(t, a) if t is not None
                  else zeros_like_aval(a) if i else None
                  for t, a, i in zip(outs_t, out_avals, inst)]
        out_nz[:] = [t is not None for t in outs_t]
        return list(outs_p) + [t for t in outs_t if t is not None]
    t_avals = [a.strip_weak_type() for a, nz in zip(avals, nz_in) if nz]
    return core.trace_to_jaxpr(fn, list(avals) + t_avals, name), list(out_nz)


def linearize_flat(fun_flat, primals, name="linearize", fun=None):
    """Run ``fun_flat`` forward on ``primals`` and stage its linearization.

    Only inexact (float/complex) primals are differentiated.  Returns
    ``(primals_out, LinearFunction)``.  This is on the path of every eager
    ``grad`` call, so it avoids context managers and repeated work.
    """
    pe = StagingInterpreter(core._tls.interp, name, fun, forward_known=True)
    in_avals = [aval_of(p) for p in primals]
    tan_in = [pe.new_arg(a) for a in in_avals]
    outs_p, outs_t = jvp_flat(fun_flat, primals,
                              [t if a.is_float else None for t, a in zip(tan_in, in_avals)],
                              pe, name, fun)
    mask = [t is not None for t in outs_t]
    jaxpr, consts = pe.build(tan_in, [t for t in outs_t if t is not None])
    pe.alive = False
    lin = LinearFunction(jaxpr, consts, in_avals, [aval_of(p) for p in outs_p], mask)
    return outs_p, lin


def backward_pass(jaxpr, consts, cts_out):
    """Transpose a linear jaxpr: cotangents of outputs -> cotangents of inputs.

    Each equation's cotangent is the sum of the cotangents of its uses (the
    fan-out rule of backpropagation); ``None`` is a symbolic zero.
    """
    const_env = dict(zip(jaxpr.constvars, consts))
    ct_env = {}

    def add_ct(v, ct):
        prev = ct_env.get(v)
        ct_env[v] = ct if prev is None else add_tangents(prev, ct)

    for v, ct in zip(jaxpr.outvars, cts_out):
        if ct is not None and type(v) is core.Var and v not in const_env:
            add_ct(v, ct)
    for eqn in reversed(jaxpr.eqns):
        prim = eqn.primitive
        if prim.multiple_results:
            ct = [ct_env.pop(v, None) for v in eqn.outvars]
            if all(c is None for c in ct):
                continue
        else:
            ct = ct_env.pop(eqn.outvars[0], None)
            if ct is None:
                continue
        args = []
        for a in eqn.inputs:
            if type(a) is Literal:
                args.append(a.val)
            elif a in const_env:
                args.append(const_env[a])
            else:
                args.append(UndefinedPrimal(a.aval))
        if prim.transpose is None:
            raise NotImplementedError(
                f"functad: cannot transpose primitive '{prim.name}': it has no transpose rule "
                "(it is not linear in its tangent inputs). This is a bug in its JVP rule.")
        cts_in = prim.transpose(ct, *args, **eqn.params)
        for a, x, c in zip(eqn.inputs, args, cts_in):
            if c is not None and type(x) is UndefinedPrimal:
                add_ct(a, c)
    return [ct_env.get(v) for v in jaxpr.invars]


# --------------------------------------------------------------------------
# Argument handling shared by the API functions
# --------------------------------------------------------------------------

def _check_argnums(argnums, nargs, fname):
    if isinstance(argnums, (int, np.integer)):
        nums = (int(argnums),)
    elif isinstance(argnums, (tuple, list)):
        nums = tuple(argnums)
    else:
        raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")
    for a in nums:
        if not isinstance(a, int):
            raise TypeError(f"{fname}: argnums must be ints or a tuple of ints, got {argnums!r}")
        if not -nargs <= a < nargs:
            raise ValueError(f"{fname}: argnums={argnums!r} but the function was called with "
                             f"{nargs} positional argument(s)")
    return tuple(a % nargs for a in nums)


def _prepare_leaf(x, fname, argname):
    try:
        aval_of(x)
    except TypeError as e:
        raise TypeError(f"{fname}: {argname} contains a value of type {type(x).__name__}, "
                        "which is not an array; pass arrays, scalars or pytrees of them.") from e
    return x


def _flatten_args(args, fname):
    leaves, tree = tu.tree_flatten(args)
    return [_prepare_leaf(x, fname, "the arguments") for x in leaves], tree


def _split_aux(out, has_aux, fname):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{fname}(..., has_aux=True) requires the function to return a pair "
                        f"(output, auxiliary data), got {type(out).__name__}")
    return out[0], out[1]


def _strip(interp, aux):
    """Auxiliary outputs leave a transform as their primal (concrete) values."""
    unpack = getattr(interp, "unpack", None)
    return aux if unpack is None else tu.tree_map(lambda x: unpack(x)[0], aux)


# --------------------------------------------------------------------------
# Public transforms
# --------------------------------------------------------------------------

def jvp(fun, primals, tangents, has_aux=False):
    """Forward-mode derivative: evaluate ``fun`` and its directional derivative.

    Parameters
    ----------
    fun : callable of pytrees of arrays.
    primals, tangents : tuples (or lists) of pytrees with the same structure,
        shapes and dtypes.

    Returns
    -------
    ``(primals_out, tangents_out)`` (and ``aux`` if ``has_aux``).

    Example
    -------
    >>> import functad as fd, functad.numpy as fnp
    >>> fd.jvp(fnp.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples or lists, e.g. "
                        f"jvp(f, (x,), (v,)); got {type(primals).__name__} and {type(tangents).__name__}")
    p_leaves, p_tree = _flatten_args(tuple(primals), "jvp")
    t_leaves, t_tree = tu.tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise TypeError(f"jvp: primals and tangents must have the same tree structure, got "
                        f"{p_tree} and {t_tree}")
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        pa, ta = aval_of(p), aval_of(t)
        if pa.shape != ta.shape:
            raise ValueError(f"jvp: primal and tangent leaf {i} must have equal shapes, got "
                             f"primal {pa.shape} and tangent {ta.shape}")
        if pa.is_float and ta.dtype != pa.dtype and not ta.weak_type:
            raise TypeError(f"jvp: primal and tangent leaf {i} must have equal dtypes, got "
                            f"primal {pa.dtype} and tangent {ta.dtype}")
    with new_interpreter(JVPInterpreter, "jvp", fun) as jv:
        ins = [JVPTracer(jv, p, t) if aval_of(p).is_float else p for p, t in zip(p_leaves, t_leaves)]
        out = fun(*tu.tree_unflatten(p_tree, ins))
        out, aux = _split_aux(out, has_aux, "jvp")
        o_leaves, o_tree = tu.tree_flatten(out)
        ps, ts = [], []
        for o in o_leaves:
            p, t = jv.unpack(o)
            ps.append(p)
            ts.append(instantiate_zeros(t, p))
        aux = _strip(jv, aux)
    res = (tu.tree_unflatten(o_tree, ps), tu.tree_unflatten(o_tree, ts))
    return res + (aux,) if has_aux else res


def linearize(fun, *primals):
    """Evaluate ``fun`` and return its linearization as a function of tangents.

    >>> import functad as fd, functad.numpy as fnp
    >>> y, f_jvp = fd.linearize(fnp.sin, 0.0)
    >>> f_jvp(3.0)
    np.float64(3.0)
    """
    leaves, in_tree = _flatten_args(primals, "linearize")
    out_tree_box = []

    def flat(*xs):
        out = fun(*tu.tree_unflatten(in_tree, list(xs)))
        o, t = tu.tree_flatten(out)
        out_tree_box.append(t)
        return o
    outs, lin = linearize_flat(flat, leaves, "linearize", fun)
    out_tree = out_tree_box[0]

    def f_jvp(*tangents):
        t_leaves, t_tree = tu.tree_flatten(tangents)
        if t_tree != in_tree:
            raise TypeError(f"linearize: tangents must have the structure of the primals, "
                            f"{in_tree}, got {t_tree}")
        return tu.tree_unflatten(out_tree, lin(*t_leaves))
    f_jvp.linear_jaxpr = lin
    return tu.tree_unflatten(out_tree, outs), f_jvp


def _vjp(fun, primals, has_aux, fname):
    leaves, in_tree = _flatten_args(tuple(primals), fname)
    store = {}

    def flat(*xs):
        out = fun(*tu.tree_unflatten(in_tree, list(xs)))
        out, aux = _split_aux(out, has_aux, fname)
        o, t = tu.tree_flatten(out)
        store["tree"] = t
        store["aux"] = aux
        return o

    interp_box = []

    def flat_capture(*xs):
        interp_box.append(core.current_interpreter())
        return flat(*xs)
    outs, lin = reverse_flat(flat_capture, leaves, fname, fun)
    out_tree = store["tree"]
    aux = _strip(interp_box[0], store["aux"]) if has_aux else None

    def f_vjp(ct):
        ct_leaves, ct_tree = tu.tree_flatten(ct)
        if ct_tree != out_tree:
            raise TypeError(f"{fname}: the cotangent must have the structure of the output, "
                            f"{out_tree}, got {ct_tree}")
        for i, (c, a) in enumerate(zip(ct_leaves, lin.out_avals)):
            if shape_of(c) != a.shape:
                raise ValueError(f"{fname}: cotangent leaf {i} has shape {shape_of(c)}, expected "
                                 f"the output's shape {a.shape}")
        cts_in = lin.transpose(ct_leaves)
        return tu.tree_unflatten(in_tree, cts_in)
    f_vjp.linear_function = lin
    return tu.tree_unflatten(out_tree, outs), f_vjp, aux


def vjp(fun, *primals, has_aux=False):
    """Reverse-mode derivative: evaluate ``fun`` and return its VJP function.

    Returns ``(out, f_vjp)`` (and ``aux`` if ``has_aux``), where
    ``f_vjp(cotangent)`` returns a tuple with one cotangent per primal.

    >>> import functad as fd, functad.numpy as fnp
    >>> y, f_vjp = fd.vjp(lambda x: x * x, 3.0)
    >>> f_vjp(1.0)
    (np.float64(6.0),)
    """
    out, f_vjp, aux = _vjp(fun, primals, has_aux, "vjp")
    return (out, f_vjp, aux) if has_aux else (out, f_vjp)


def _check_grad_input(x, fname, allow_int):
    a = aval_of(x)
    if a.is_float:
        return
    if allow_int and a.dtype.kind in "iub":
        return
    raise TypeError(
        f"{fname} requires real- or complex-valued inputs (input dtype that is a sub-dtype of "
        f"np.inexact), but got {a.dtype.name}. If you want to use Boolean- or integer-valued "
        "inputs, use vjp or set allow_int to True.")


_ONES: dict = {}


def _one(dtype):
    one = _ONES.get(dtype)
    if one is None:
        one = _ONES[dtype] = core._wrap(np.ones((), dtype))
    return one


def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False, allow_int=False):
    """Return a function computing both ``fun`` and its gradient.

    ``fun`` must return a scalar (plus auxiliary data if ``has_aux``).

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.value_and_grad(lambda x: fnp.sum(x ** 2))(fnp.array([1.0, 2.0]))
    (np.float64(5.0), Array([2., 4.]))
    """
    single = isinstance(argnums, int)

    def vg(*args, **kwargs):
        nargs = len(args)
        if single and 0 <= argnums < nargs:
            nums = (argnums,)
        else:
            nums = _check_argnums(argnums, nargs, "grad")
        dyn = args[nums[0]] if single else tuple(args[i] for i in nums)
        leaves, in_tree = tu.tree_flatten(dyn)
        leaf = tu.treedef_is_strict_leaf(in_tree)
        for x in leaves:
            _check_grad_input(x, "grad", allow_int)
        aux_box = []

        def flat(*xs):
            d = xs[0] if leaf else tu.tree_unflatten(in_tree, xs)
            full = list(args)
            if single:
                full[nums[0]] = d
            else:
                for i, v in zip(nums, d):
                    full[i] = v
            out = fun(*full, **kwargs)
            if has_aux:
                out, aux = _split_aux(out, True, "grad")
                aux_box.append((core._tls.interp, aux))
            if not isinstance(out, (Tracer, np.ndarray, np.generic, float, int, complex)) \
                    or shape_of(out) != ():
                shape = shape_of(out) if isinstance(out, (Tracer, np.ndarray)) else \
                    type(out).__name__
                raise TypeError(f"Gradient only defined for scalar-output functions. Output had "
                                f"shape: {shape}. Use jacrev/jacfwd for non-scalar outputs, or sum "
                                "them.")
            return (out,)
        (out,), lin = reverse_flat(flat, leaves, "grad", fun, immediate=True)
        oa = lin.out_avals[0]
        if not oa.is_float:
            raise TypeError(f"grad requires real-valued outputs (output dtype that is a sub-dtype "
                            f"of np.floating), but got {oa.dtype.name}.")
        g = lin.transpose([_one(oa.dtype)])
        g = g[0] if leaf else tu.tree_unflatten(in_tree, g)
        if has_aux:
            interp, aux = aux_box[0]
            return (out, _strip(interp, aux)), g
        return out, g
    vg.__wrapped__ = fun
    vg.__name__ = f"value_and_grad({getattr(fun, '__name__', 'fun')})"
    return vg


def grad(fun, argnums=0, has_aux=False, holomorphic=False, allow_int=False):
    """Return a function computing the gradient of scalar-valued ``fun``.

    Parameters
    ----------
    fun : function returning a scalar (and auxiliary data if ``has_aux``).
    argnums : int or tuple of ints, which positional arguments to differentiate.
    has_aux : if true, ``fun`` returns ``(value, aux)`` and the result is ``(grad, aux)``.

    Example
    -------
    >>> import functad as fd, functad.numpy as fnp
    >>> fd.grad(fnp.sin)(0.0)
    np.float64(1.0)
    >>> fd.grad(lambda x: fd.grad(lambda y: x * y)(3.0))(2.0)   # no perturbation confusion
    np.float64(1.0)
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic, allow_int)

    def g(*args, **kwargs):
        out = vg(*args, **kwargs)
        if has_aux:
            (_, aux), gr = out
            return gr, aux
        return out[1]
    g.__wrapped__ = fun
    g.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    return g


def _std_basis(avals):
    """The standard basis of the flattened inputs, one batched array per leaf:
    leaf ``i`` gets shape ``(N,) + shape_i`` where ``N`` is the total size."""
    n = sum(a.size for a in avals)
    basis, offset = [], 0
    for a in avals:
        b = np.zeros((n, a.size), a.dtype if a.is_float else np.float64)
        b[np.arange(offset, offset + a.size), np.arange(a.size)] = 1
        basis.append(core._wrap(b.reshape((n,) + a.shape)))
        offset += a.size
    return basis


def _split_jacobian(batched, row_avals, col_avals, rows_first):
    """Cut the batched results of a vmapped JVP/VJP into Jacobian blocks.

    ``batched[k]`` has shape ``(N,) + shape_k`` with ``N`` the total size of
    the ``row_avals`` (basis side).  Returns ``blocks[k][i]`` of shape
    ``col_k + row_i`` (``rows_first=False``, jacfwd) or ``row_i + col_k``
    (``rows_first=True``, jacrev).
    """
    from functad.lax.shapes import reshape, slice as lax_slice
    blocks = []
    for k, (x, ca) in enumerate(zip(batched, col_avals)):
        row, offset = [], 0
        for ra in row_avals:
            part = lax_slice(x, (offset,) + (0,) * len(ca.shape),
                             (offset + ra.size,) + tuple(ca.shape)) if len(row_avals) > 1 else x
            offset += ra.size
            if rows_first:
                row.append(reshape(part, ra.shape + ca.shape))
            else:
                from functad.batching import moveaxis
                part = moveaxis(part, 0, -1) if ca.shape else part
                row.append(reshape(part, ca.shape + ra.shape))
        blocks.append(row)
    return blocks


def _jacobian_inputs(fun, argnums, args, kwargs, fname, allow_int=False):
    nums = _check_argnums(argnums, len(args), fname)
    dyn = tuple(args[i] for i in nums)
    for x in tu.tree_leaves(dyn):
        _check_grad_input(x, fname, allow_int)

    def partial(*d):
        full = list(args)
        for i, v in zip(nums, d):
            full[i] = v
        return fun(*full, **kwargs)
    return dyn, partial


def jacfwd(fun, argnums=0, has_aux=False, holomorphic=False):
    """Jacobian of ``fun`` by forward mode: the linearization applied, under
    :func:`functad.vmap`, to every standard basis vector at once.

    The result for output leaf of shape ``O`` and input leaf of shape ``I`` has
    shape ``O + I``; its pytree is the output structure with the input
    structure at each leaf (as in JAX).

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.jacfwd(lambda x: x ** 2)(fnp.array([1.0, 2.0]))
    Array([[2., 0.],
           [0., 4.]])
    """
    def jac(*args, **kwargs):
        from functad.batching import vmap
        dyn, partial = _jacobian_inputs(fun, argnums, args, kwargs, "jacfwd")
        leaves, in_tree = tu.tree_flatten(dyn)
        store = {}

        def flat(*xs):
            out = partial(*tu.tree_unflatten(in_tree, list(xs)))
            out, aux = _split_aux(out, has_aux, "jacfwd")
            o, store["tree"] = tu.tree_flatten(out)
            store["aux"] = (core._tls.interp, aux)
            return o
        outs, lin = linearize_flat(flat, leaves, "jacfwd", fun)
        in_avals = [aval_of(x) for x in leaves]
        out_avals = lin.out_avals
        cols = vmap(lambda *ts: lin(*ts))(*_std_basis(in_avals))
        blocks = _split_jacobian(cols, in_avals, out_avals, rows_first=False)
        blocks = [tu.tree_unflatten(in_tree, b) for b in blocks]
        blocks = [b[0] if isinstance(argnums, int) else b for b in blocks]
        res = tu.tree_unflatten(store["tree"], blocks)
        if has_aux:
            interp, aux = store["aux"]
            return res, _strip(interp, aux)
        return res
    return jac


def jacrev(fun, argnums=0, has_aux=False, holomorphic=False, allow_int=False):
    """Jacobian of ``fun`` by reverse mode: the VJP applied, under
    :func:`functad.vmap`, to every standard basis cotangent at once.

    Same output convention as :func:`jacfwd`.

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.jacrev(lambda x: x ** 2)(fnp.array([1.0, 2.0]))
    Array([[2., 0.],
           [0., 4.]])
    """
    def jac(*args, **kwargs):
        from functad.batching import vmap
        dyn, partial = _jacobian_inputs(fun, argnums, args, kwargs, "jacrev", allow_int)
        out, f_vjp, aux = _vjp(partial, dyn, has_aux, "jacrev")
        o_leaves, o_tree = tu.tree_flatten(out)
        in_leaves, in_tree = tu.tree_flatten(dyn)
        in_avals = [aval_of(x) for x in in_leaves]
        out_avals = f_vjp.linear_function.out_avals
        lin = f_vjp.linear_function
        rows = vmap(lambda *cts: lin.transpose(list(cts)))(*_std_basis(out_avals))
        blocks = _split_jacobian(rows, out_avals, in_avals, rows_first=True)
        # blocks[i][k]: input i, output k -> regroup per output
        per_out = [tu.tree_unflatten(in_tree, [blocks[i][k] for i in range(len(in_avals))])
                   for k in range(len(out_avals))]
        per_out = [b[0] if isinstance(argnums, int) else b for b in per_out]
        res = tu.tree_unflatten(o_tree, per_out)
        return (res, aux) if has_aux else res
    return jac


def hessian(fun, argnums=0, has_aux=False, holomorphic=False):
    """Hessian of scalar ``fun``: forward-over-reverse, ``jacfwd(jacrev(fun))``.

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.hessian(lambda x: fnp.sum(x ** 3))(fnp.array([1.0, 2.0]))
    Array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux)


# --------------------------------------------------------------------------
# stop_gradient
# --------------------------------------------------------------------------

stop_gradient_p = core.Primitive("stop_gradient")
stop_gradient_p.impl = lambda x: x
stop_gradient_p.abstract_eval = lambda a: a
stop_gradient_p.jvp = lambda primals, tangents: (stop_gradient_p.bind(primals[0]), None)
stop_gradient_p.zero_jvp = True


def stop_gradient(x):
    """Identity whose derivative is zero, on every leaf of a pytree.

    >>> import functad as fd
    >>> fd.grad(lambda x: x * fd.stop_gradient(x))(3.0)
    np.float64(3.0)
    """
    def one(v):
        a = aval_of(v)
        return stop_gradient_p.bind(v) if a.is_float else v
    return tu.tree_map(one, x)


# --------------------------------------------------------------------------
# Custom derivative rules
# --------------------------------------------------------------------------

def _abstract_outs(fun, avals, name):
    closed = core.trace_to_jaxpr(fun, avals, name)
    return closed.out_avals


custom_jvp_call_p = core.Primitive("custom_jvp_call", multiple_results=True)
custom_jvp_call_p.impl = lambda *args, fun, jvp, name: fun(*args)
custom_jvp_call_p.abstract_eval = lambda *avals, fun, jvp, name: _abstract_outs(fun, avals, name)


def _custom_jvp_call_jvp(primals, tangents, fun, jvp, name):
    ts = [instantiate_zeros(t, p) if aval_of(p).is_float else t for t, p in zip(tangents, primals)]
    outs_p, outs_t = jvp(primals, ts)
    outs_p, outs_t = list(outs_p), list(outs_t)
    if len(outs_p) != len(outs_t):
        raise TypeError(f"custom_jvp rule of {name} returned {len(outs_t)} tangent leaves for "
                        f"{len(outs_p)} primal output leaves; they must have the same structure")
    for i, (p, t) in enumerate(zip(outs_p, outs_t)):
        if t is None:
            continue
        pa, ta = aval_of(p), aval_of(t)
        if pa.shape != ta.shape:
            raise TypeError(f"custom_jvp rule of {name} returned a tangent of shape {ta.shape} "
                            f"for output leaf {i} of shape {pa.shape}; tangents must have the "
                            "primal output's shape")
        if pa.is_float and ta.dtype != pa.dtype:
            if not ta.weak_type:
                raise TypeError(f"custom_jvp rule of {name} returned a tangent of dtype "
                                f"{ta.dtype.name} for output leaf {i} of dtype {pa.dtype.name}; "
                                "tangents must have the primal output's dtype")
            from functad.lax.elementwise import convert_element_type
            outs_t[i] = convert_element_type(t, pa.dtype)
    return outs_p, outs_t


custom_jvp_call_p.jvp = _custom_jvp_call_jvp
# Interpreters that own none of the arguments run ``fun`` inline rather than
# forwarding the call: ``fun`` may close over their tracers.
custom_jvp_call_p.inline = lambda args, params: params["fun"](*args)


class _Store:
    __slots__ = ("tree",)

    def __init__(self):
        self.tree = None


def _split_nondiff(args, nondiff):
    diff = [a for i, a in enumerate(args) if i not in nondiff]
    static = [(i, a) for i, a in enumerate(args) if i in nondiff]
    return diff, static


def _merge_nondiff(diff, static, n):
    out, it, st = [], iter(diff), dict(static)
    for i in range(n):
        out.append(st[i] if i in st else next(it))
    return out


class custom_jvp:
    """A function with a user-defined JVP rule (which reverse mode transposes).

    >>> import functad as fd, functad.numpy as fnp
    >>> @fd.custom_jvp
    ... def f(x):
    ...     return fnp.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return f(x), 2.0 * t
    >>> fd.grad(f)(0.0)
    np.float64(2.0)
    """

    def __init__(self, fun, nondiff_argnums=()):
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp = None
        self.__name__ = getattr(fun, "__name__", "custom_jvp")
        self.__doc__ = getattr(fun, "__doc__", None)
        self.__wrapped__ = fun

    def defjvp(self, jvp):
        """Set the rule ``jvp(primals, tangents) -> (primal_out, tangent_out)``."""
        self.jvp = jvp
        return jvp

    def defjvps(self, *rules):
        """One rule per argument, ``rule(g, ans, *primals) -> tangent contribution``."""
        def jvp(primals, tangents):
            ans = self(*primals)
            out = None
            for rule, t in zip(rules, tangents):
                if rule is not None:
                    out = add_tangents(out, tu.tree_map(lambda g: rule(g, ans, *primals), t))
            return ans, out
        self.jvp = jvp
        return jvp

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"custom_jvp function {self.__name__} takes positional arguments only")
        if self.jvp is None:
            raise AttributeError(f"No JVP defined for custom_jvp function {self.__name__} "
                                 "using defjvp.")
        if type(core._tls.interp) is core.EvalInterpreter:
            return self.fun(*args)        # nothing to differentiate: no call overhead
        n = len(args)
        diff, static = _split_nondiff(args, self.nondiff_argnums)
        leaves, in_tree = tu.tree_flatten(tuple(diff))
        store = _Store()
        fun, rule = self.fun, self.jvp
        nondiff_vals = [a for _, a in static]

        def flat_fun(*xs):
            out = fun(*_merge_nondiff(tu.tree_unflatten(in_tree, list(xs)), static, n))
            o, store.tree = tu.tree_flatten(out)
            return o

        def flat_jvp(primals, tangents):
            ps = tu.tree_unflatten(in_tree, list(primals))
            ts = tu.tree_unflatten(in_tree, list(tangents))
            po, to = rule(*nondiff_vals, tuple(ps), tuple(ts))
            o, store.tree = tu.tree_flatten(po)
            return o, tu.tree_leaves(to) if to is not None else [None] * len(o)
        flat_fun.__name__ = self.__name__
        outs = custom_jvp_call_p.bind(*leaves, fun=flat_fun, jvp=flat_jvp, name=self.__name__)
        return tu.tree_unflatten(store.tree, outs)


custom_vjp_call_p = core.Primitive("custom_vjp_call", multiple_results=True)
custom_vjp_call_p.impl = lambda *args, fun, fwd, bwd, name: fun(*args)
custom_vjp_call_p.abstract_eval = lambda *avals, fun, fwd, bwd, name: _abstract_outs(fun, avals, name)

custom_lin_p = core.Primitive("custom_lin", multiple_results=True)


def _custom_lin_impl(*args, num_res, bwd, out_avals, name):
    raise TypeError(f"can't apply forward-mode autodiff (jvp) to a custom_vjp function "
                    f"({name}). Use vjp/grad, or define the function with custom_jvp instead.")


custom_lin_p.impl = _custom_lin_impl


def _custom_lin_lower(ctx, *args, num_res, bwd, out_avals, name):
    _custom_lin_impl(name=name, num_res=num_res, bwd=bwd, out_avals=out_avals)  # raises


custom_lin_p.lower = _custom_lin_lower      # compiled, it fails as it does eagerly
custom_lin_p.abstract_eval = lambda *avals, num_res, bwd, out_avals, name: list(out_avals)


def _custom_lin_transpose(cts, *args, num_res, bwd, out_avals, name):
    res = args[:num_res]
    cts = [zeros_like_aval(a) if c is None else c for c, a in zip(cts, out_avals)]
    cts_in = bwd(list(res), cts)
    return [None] * num_res + list(cts_in)


custom_lin_p.transpose = _custom_lin_transpose
custom_lin_p.jvp = None   # set below: custom_lin is linear in its tangent arguments


def _custom_lin_jvp(primals, tangents, num_res, bwd, out_avals, name):
    raise TypeError(f"can't apply forward-mode autodiff (jvp) to a custom_vjp function ({name}).")


custom_lin_p.jvp = _custom_lin_jvp


def _custom_vjp_call_jvp(primals, tangents, fun, fwd, bwd, name):
    outs, res = fwd(*primals)
    ts = [instantiate_zeros(t, p) for t, p in zip(tangents, primals) if aval_of(p).is_float]
    float_pos = [i for i, p in enumerate(primals) if aval_of(p).is_float]
    out_avals = [aval_of(o) for o in outs]
    n_in = len(primals)

    def bwd_float(res_, cts):
        full = bwd(res_, cts)
        return [full[i] for i in float_pos] if len(full) == n_in else full
    tangents_out = custom_lin_p.bind(*res, *ts, num_res=len(res), bwd=bwd_float,
                                     out_avals=tuple(out_avals), name=name)
    tangents_out = [t if a.is_float else None for t, a in zip(tangents_out, out_avals)]
    return list(outs), tangents_out


custom_vjp_call_p.jvp = _custom_vjp_call_jvp
custom_vjp_call_p.inline = lambda args, params: params["fun"](*args)


class custom_vjp:
    """A function with a user-defined VJP: ``fwd`` saves residuals, ``bwd``
    maps ``(residuals, output cotangent)`` to a tuple of input cotangents.

    >>> import functad as fd, functad.numpy as fnp
    >>> @fd.custom_vjp
    ... def clip_grad(x):
    ...     return x
    >>> clip_grad.defvjp(lambda x: (x, None), lambda res, g: (fnp.clip(g, -1.0, 1.0),))
    >>> fd.grad(lambda x: 5.0 * clip_grad(x))(2.0)
    np.float64(1.0)
    """

    def __init__(self, fun, nondiff_argnums=()):
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd = self.bwd = None
        self.__name__ = getattr(fun, "__name__", "custom_vjp")
        self.__doc__ = getattr(fun, "__doc__", None)
        self.__wrapped__ = fun

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"custom_vjp function {self.__name__} takes positional arguments only")
        if self.fwd is None:
            raise AttributeError(f"No VJP defined for custom_vjp function {self.__name__} "
                                 "using defvjp.")
        if type(core._tls.interp) is core.EvalInterpreter:
            return self.fun(*args)
        n = len(args)
        diff, static = _split_nondiff(args, self.nondiff_argnums)
        leaves, in_tree = tu.tree_flatten(tuple(diff))
        store = _Store()
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        nondiff_vals = [a for _, a in static]
        res_tree = _Store()

        def flat_fun(*xs):
            out = fun(*_merge_nondiff(tu.tree_unflatten(in_tree, list(xs)), static, n))
            o, store.tree = tu.tree_flatten(out)
            return o

        def flat_fwd(*xs):
            out, res = fwd(*_merge_nondiff(tu.tree_unflatten(in_tree, list(xs)), static, n))
            o, store.tree = tu.tree_flatten(out)
            r, res_tree.tree = tu.tree_flatten(res)
            return o, r

        def flat_bwd(res, cts):
            ct = tu.tree_unflatten(store.tree, list(cts))
            cts_in = bwd(*nondiff_vals, tu.tree_unflatten(res_tree.tree, list(res)), ct)
            if not isinstance(cts_in, tuple):
                raise TypeError(f"custom_vjp bwd rule of {self.__name__} must return a tuple "
                                f"with one cotangent per argument, got {type(cts_in).__name__}")
            if len(cts_in) != len(diff):
                raise TypeError(f"custom_vjp bwd rule of {self.__name__} returned {len(cts_in)} "
                                f"cotangents for {len(diff)} differentiable argument(s)")
            flat = []
            for c, d in zip(cts_in, diff):
                if c is None:
                    flat.extend(zeros_like_aval(aval_of(x)) for x in tu.tree_leaves(d))
                else:
                    flat.extend(tu.tree_leaves(c))
            return flat
        flat_fun.__name__ = self.__name__
        outs = custom_vjp_call_p.bind(*leaves, fun=flat_fun, fwd=flat_fwd, bwd=flat_bwd,
                                      name=self.__name__)
        return tu.tree_unflatten(store.tree, outs)


# --------------------------------------------------------------------------
# Batching rules of the primitives defined in this module
# --------------------------------------------------------------------------

def _batch_size(vals, dims):
    return next(core.shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)


def _all_batched_at_front(vals, dims):
    from functad.batching import bdim_to_front
    size = _batch_size(vals, dims)
    return [bdim_to_front(v, d, size) for v, d in zip(vals, dims)], size


def _custom_jvp_call_batch(vals, dims, fun, jvp, name):
    from functad.batching import vmap
    vals, _ = _all_batched_at_front(vals, dims)

    def bfun(*xs):
        return vmap(lambda *a: list(fun(*a)))(*xs)

    def bjvp(primals, tangents):
        return vmap(lambda p, t: tuple(jvp(list(p), list(t))))(tuple(primals), tuple(tangents))
    bfun.__name__ = f"vmap({name})"
    outs = custom_jvp_call_p.bind(*vals, fun=bfun, jvp=bjvp, name=name)
    return outs, [0] * len(outs)


def _custom_vjp_call_batch(vals, dims, fun, fwd, bwd, name):
    from functad.batching import vmap
    vals, _ = _all_batched_at_front(vals, dims)

    def bfun(*xs):
        return vmap(lambda *a: list(fun(*a)))(*xs)

    def bfwd(*xs):
        return vmap(lambda *a: tuple(map(list, fwd(*a))))(*xs)

    def bbwd(res, cts):
        return vmap(lambda r, c: list(bwd(list(r), list(c))))(tuple(res), tuple(cts))
    bfun.__name__ = f"vmap({name})"
    outs = custom_vjp_call_p.bind(*vals, fun=bfun, fwd=bfwd, bwd=bbwd, name=name)
    return outs, [0] * len(outs)


def _custom_lin_batch(vals, dims, num_res, bwd, out_avals, name):
    from functad.batching import vmap
    vals, size = _all_batched_at_front(vals, dims)

    def bbwd(res, cts):
        return vmap(lambda r, c: list(bwd(list(r), list(c))))(tuple(res), tuple(cts))
    avals = tuple(a.update(shape=(size,) + a.shape) for a in out_avals)
    outs = custom_lin_p.bind(*vals, num_res=num_res, bwd=bbwd, out_avals=avals, name=name)
    return outs, [0] * len(outs)


stop_gradient_p.batch = lambda vals, dims: (stop_gradient_p.bind(vals[0]), dims[0])
custom_jvp_call_p.batch = _custom_jvp_call_batch
custom_vjp_call_p.batch = _custom_vjp_call_batch
custom_lin_p.batch = _custom_lin_batch


from functad.backprop import reverse_flat  # noqa: E402  (it builds on the definitions above)
