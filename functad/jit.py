"""jit, tier 0: stage a function once per input signature, cache, run the jaxpr.

``jit(f)`` traces ``f`` on the abstract values of its arguments into a
:class:`~functad.core.ClosedJaxpr`, caches it under a key made of the input
pytree structure, each leaf's ``(shape, dtype, weak_type)`` and the values of
the static arguments, and executes it with a straight-line NumPy executor
(Python source generated once per jaxpr that calls each primitive's NumPy
``impl`` directly).  Numba lowering is a later tier.

Under another transform (``grad``, ``vmap``, an outer ``jit``) the call binds
the ``jit_call`` primitive, whose ``jaxpr`` parameter carries the staged
program, so jit composes with every transform.

>>> import functad as fd, functad.numpy as fnp
>>> f = fd.jit(lambda x: fnp.sin(x) * 2.0)
>>> f(0.5)
np.float64(0.958851077208406)
>>> print(fd.make_jaxpr(f)(0.5))
{ lambda ; a:f64[]. let
    e:f64[] = jit_call[jaxpr=
          { lambda ; b:f64[]. let
              c:f64[] = sin b
              d:f64[] = mul c 2.0
            in (d,) } name='<lambda>'] a
  in (e,) }
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.config import config
from functad.core import (ClosedJaxpr, EvalInterpreter, Jaxpr, Literal, Tracer, aval_of,
                          eval_jaxpr)

__all__ = ["jit", "jit_call_p", "Lowered"]


# --------------------------------------------------------------------------
# The NumPy executor: straight-line Python calling each primitive's impl
# --------------------------------------------------------------------------

def _codegen(closed: ClosedJaxpr, name="jitted"):
    """Python source of a function running ``closed`` with NumPy, and its namespace."""
    jaxpr = closed.jaxpr
    ns = {"_wrap": core._wrap}
    names = {}
    for i, (v, c) in enumerate(zip(jaxpr.constvars, closed.consts)):
        names[v] = f"c{i}"
        ns[f"c{i}"] = c
    args = []
    for i, v in enumerate(jaxpr.invars):
        names[v] = f"a{i}"
        args.append(f"a{i}")
    counter = [0]

    def atom(a):
        if type(a) is Literal:
            k = f"l{counter[0]}"
            counter[0] += 1
            ns[k] = a.val
            return k
        return names[a]

    lines = [f"def run({', '.join(args)}):"]
    for j, eqn in enumerate(_live_eqns(jaxpr)):
        p = f"p{j}_{eqn.primitive.name}"
        ns[p] = eqn.primitive.impl
        ins = [atom(a) for a in eqn.inputs]
        if eqn.params:
            ns[f"k{j}"] = eqn.params
            ins.append(f"**k{j}")
        call = f"{p}({', '.join(ins)})"
        outs = []
        for v in eqn.outvars:
            names[v] = f"t{len(names)}"
            outs.append(names[v])
        if eqn.primitive.multiple_results:
            lhs = (", ".join(outs) + ",") if outs else "_"
        else:
            lhs = outs[0]
        lines.append(f"    {lhs} = {call}")
    rets = [atom(v) for v in jaxpr.outvars]
    lines.append(f"    return [{', '.join(f'_wrap({r})' for r in rets)}]")
    return "\n".join(lines) + "\n", ns


def _live_eqns(jaxpr):
    """The equations that contribute to an output, and effectful ones
    (``prim.effectful``, e.g. printing), which are kept even without outputs."""
    live = {v for v in jaxpr.outvars if type(v) is not Literal}
    keep = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.outvars) or getattr(eqn.primitive, "effectful", False):
            keep.append(eqn)
            live.update(a for a in eqn.inputs if type(a) is not Literal)
    keep.reverse()
    return keep


def _compile_executor(closed: ClosedJaxpr, name="jitted"):
    src, ns = _codegen(closed, name)
    code = compile(src, f"<functad.jit executor of {name}>", "exec")
    exec(code, ns)      # noqa: S102 - our own generated source
    run = ns["run"]
    run.__qualname__ = run.__name__ = f"jit_executor_{name}"
    return run, src


# --------------------------------------------------------------------------
# Tiers: the NumPy executor at once, the Numba program when it is compiled
# --------------------------------------------------------------------------

class Program:
    """A staged program and its fastest executor so far (``run``).

    ``run(*flat_inputs) -> list of outputs`` starts as the NumPy executor.
    Under ``config.jit_backend == "numba"`` the Numba program is compiled
    before the first call; under ``"tiered"`` it is compiled in the background
    (another process, see :mod:`functad.compiler`) from the second call on (a
    function called once never compiles) and replaces ``run`` when it is ready.
    """

    __slots__ = ("closed", "name", "run", "numpy_run", "numpy_src", "lowered", "state",
                 "error", "job", "__weakref__")

    def __init__(self, closed, name):
        self.closed = closed
        self.name = name
        self.numpy_run, self.numpy_src = _compile_executor(closed, name)
        self.lowered = None
        self.error = None
        self.job = None
        backend = config.jit_backend
        if backend == "numba":
            self.state = "compiled"
            self.run = self._compile_now()
        elif backend == "tiered":
            self.state = "numpy"
            self.run = self._first_call
        else:
            self.state = "numpy"
            self.run = self.numpy_run

    def lower(self):
        """The :class:`~functad.lowering.LoweredProgram` (lowered once)."""
        if self.lowered is None:
            from functad.lowering import lower_jaxpr
            self.lowered = lower_jaxpr(self.closed)
        return self.lowered

    def _compile_now(self):
        from functad.compiler import compile_program
        return compile_program(self.lower(), self.name)

    def compile(self):
        """Compile now (blocking) and switch to the compiled program."""
        if self.state != "compiled":
            self.run = self._compile_now()
            self.state = "compiled"
        return self.run

    def _first_call(self, *args):
        self.run = self._second_call
        return self.numpy_run(*args)

    def _second_call(self, *args):
        self.run = self._while_compiling
        self.state = "compiling"
        try:
            lowered = self.lower()
            from functad.compiler import compile_in_background
            # a program found in the disk cache is done at once: _compiled has
            # then already switched self.run, which must not be set after this
            job = compile_in_background(lowered, self.name, self._compiled)
        except Exception as e:      # noqa: BLE001 - reported once, NumPy tier kept
            self._failed(e)
            return self.numpy_run(*args)
        if not job.finished:
            self.job = job
        return self.numpy_run(*args)

    def _while_compiling(self, *args):
        self.job.poll()             # may switch self.run to the compiled program
        return self.numpy_run(*args)

    def _compiled(self, result):
        self.job = None
        if isinstance(result, Exception):
            self._failed(result)
        else:
            self.run = result
            self.state = "compiled"

    def _failed(self, e):
        import warnings
        self.run = self.numpy_run
        self.state, self.error = "failed", e
        warnings.warn(f"functad.jit: {self.name} could not be compiled with Numba and keeps "
                      f"running on the NumPy executor: {type(e).__name__}: {str(e)[:500]}",
                      RuntimeWarning, stacklevel=3)


# Programs and derived (batched) jaxprs are cached by the identity of the
# ClosedJaxpr; the value keeps the jaxpr alive so that its id is not reused.
# Both are bounded: jaxprs staged for closures over outer tracers are new on
# every call, so an unbounded cache would grow without limit.
_programs: dict = {}
_batched: dict = {}
_vjps: dict = {}
_MAX_DERIVED = 2048


def _remember(cache, key, value):
    if len(cache) >= _MAX_DERIVED:
        cache.clear()
    cache[key] = value
    return value


def program_of(closed, name="jitted"):
    """The (cached) :class:`Program` of a ClosedJaxpr."""
    hit = _programs.get(id(closed))
    if hit is None or hit.closed is not closed:
        hit = _remember(_programs, id(closed), Program(closed, name))
    return hit


# --------------------------------------------------------------------------
# The jit_call primitive
# --------------------------------------------------------------------------

jit_call_p = core.Primitive("jit_call", multiple_results=True)


def _jit_call_impl(*args, jaxpr, name):
    return program_of(jaxpr, name).run(*args)


def _jit_call_abstract_eval(*avals, jaxpr, name):
    core.check_call_args(avals, jaxpr, f"jit_call of {name}")
    return list(jaxpr.out_avals)


def _jit_call_jvp(primals, tangents, jaxpr, name):
    # Evaluate the body inline under a fresh JVP interpreter.  Under reverse mode
    # (whose parent is the partial evaluator) the primal operations then run
    # now and only ordinary linear primitives reach the linear jaxpr, so
    # jit_call itself never needs a transpose rule.
    from functad.ad import jvp_flat
    return jvp_flat(lambda *xs: eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *xs), primals, tangents,
                    core._tls.interp, f"jvp of jit({name})")


def _jit_call_batch(vals, dims, jaxpr, name):
    # Stage the vmapped body once per (jaxpr, batch dims, input types) and bind
    # a new jit_call, so that vmap(jit(f)) stays a single staged program.
    from functad.batching import vmap
    dims = tuple(dims)
    in_avals = tuple(aval_of(v) for v in vals)
    key = (id(jaxpr), dims, in_avals)
    hit = _batched.get(key)
    if hit is None:
        def body(*xs):
            return eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *xs)

        def flat(*xs):
            return list(vmap(body, in_axes=dims, out_axes=0)(*xs))
        batched = core.trace_to_jaxpr(flat, in_avals, "jit", body)
        hit = _remember(_batched, key, (jaxpr, batched))
    outs = jit_call_p.bind(*vals, jaxpr=hit[1], name=f"vmap({name})")
    return outs, [0] * len(outs)


def _jit_call_tape_vjp(primals, diff, jaxpr, name):
    """For an eager tape (``grad(jit(f))``): the compiled forward now, and a
    backward function that calls one more jitted program, the VJP of the body,
    staged once per (jaxpr, differentiated inputs).  That program recomputes
    the forward pass, which costs less than keeping residuals between two
    programs and much less than differentiating the body op by op.

    None for a body with effects (``debug.print``), which must run once: the
    tape then linearizes the call as any other primitive.
    """
    key = (id(jaxpr), diff)
    hit = _vjps.get(key)
    if hit is None and _has_effects(jaxpr.jaxpr):
        hit = _remember(_vjps, key, (jaxpr, None))
    if hit is None:
        n = len(jaxpr.in_avals)

        def vjp_of_body(*xs):
            from functad.ad import vjp
            full = list(xs[:n])

            def body(*ds):
                for i, d in zip(diff, ds):
                    full[i] = d
                return eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *full)
            return list(vjp(body, *[xs[i] for i in diff])[1](list(xs[n:])))
        staged = core.trace_to_jaxpr(vjp_of_body, list(jaxpr.in_avals) + list(jaxpr.out_avals),
                                     "jit", None)
        hit = _remember(_vjps, key, (jaxpr, staged))
    staged = hit[1]
    if staged is None:
        return None
    outs = jit_call_p.bind(*primals, jaxpr=jaxpr, name=name)

    def backward(cts):
        from functad.ad import zeros_like_aval
        cts = [zeros_like_aval(a) if c is None else c for c, a in zip(cts, jaxpr.out_avals)]
        return jit_call_p.bind(*primals, *cts, jaxpr=staged, name=f"vjp({name})")
    return outs, backward


def _has_effects(jaxpr):
    """Whether ``jaxpr`` (or one nested in its equations' parameters) has an
    effectful equation (``prim.effectful``, e.g. printing)."""
    for eqn in jaxpr.eqns:
        if getattr(eqn.primitive, "effectful", False):
            return True
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                inner = sub.jaxpr if isinstance(sub, ClosedJaxpr) else sub
                if isinstance(inner, Jaxpr) and _has_effects(inner):
                    return True
    return False


jit_call_p.impl = _jit_call_impl
jit_call_p.abstract_eval = _jit_call_abstract_eval
jit_call_p.jvp = _jit_call_jvp
jit_call_p.batch = _jit_call_batch
jit_call_p.tape_vjp = _jit_call_tape_vjp


# --------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------

class Lowered:
    """What ``jit(f).lower(*args)`` returns: the staged program for those arguments.

    ``jaxpr`` is the :class:`~functad.core.ClosedJaxpr`; ``as_text()`` shows it
    followed by the generated Numba source (``numba_source``);
    ``executor_source`` is the NumPy executor's source; ``compile()`` compiles
    with Numba now and returns the compiled ``run(*flat_inputs) -> list``.
    """

    def __init__(self, program, in_tree, out_tree):
        self.program = program
        self.jaxpr = program.closed
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.executor_source = program.numpy_src

    @property
    def numba_source(self):
        return self.program.lower().source

    def as_text(self):
        return f"{self.jaxpr}\n\n# Numba source\n{self.numba_source}"

    def compile(self):
        return self.program.compile()

    def __repr__(self):
        return f"Lowered(\n{self.as_text()}\n)"


class _Entry:
    __slots__ = ("closed", "prog", "out_tree", "out_is_leaf", "in_tree", "lifted")

    def __init__(self, closed, out_tree, in_tree, name):
        consts = closed.consts
        if any(isinstance(c, Tracer) for c in consts):
            # The function closes over tracers of an outer transform: make them
            # explicit leading arguments of the jaxpr (closure conversion), so the
            # outer transform sees them as inputs of jit_call.
            j = closed.jaxpr
            keep = [i for i, c in enumerate(consts) if not isinstance(c, Tracer)]
            lift = [i for i, c in enumerate(consts) if isinstance(c, Tracer)]
            jaxpr = Jaxpr([j.constvars[i] for i in keep],
                          [j.constvars[i] for i in lift] + j.invars, j.outvars, j.eqns)
            closed = ClosedJaxpr(jaxpr, [consts[i] for i in keep])
            self.lifted = [consts[i] for i in lift]
        else:
            self.lifted = None
        self.closed = closed
        self.out_tree = out_tree
        self.in_tree = in_tree
        self.out_is_leaf = out_tree == tu._LEAF_TREEDEF
        # closures over outer tracers are bound as jit_call, never run here
        self.prog = program_of(closed, name) if self.lifted is None else None


# Argument types of __call__'s fast path (positional arrays and scalars, no
# keyword or static arguments), which skips pytree flattening.
_Array = core.Array
_ndarray = np.ndarray
_tls = core._tls
_SCALAR_TYPES = frozenset([float, int, complex, bool, np.float64, np.float32, np.float16,
                           np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16,
                           np.uint32, np.uint64, np.bool_, np.complex128, np.complex64])


_WEAK_SCALAR_TYPES = {np.dtype(np.float64): float, np.dtype(np.int64): int,
                      np.dtype(np.complex128): complex}


def _tracer_key(a):
    """The fast path's key parts for a tracer: those of a concrete argument
    with its aval ((shape, dtype), or the Python type of a weak scalar), so
    that ``jit(f)`` called on traced values (under ``grad``, ``vmap``) finds
    the entry its concrete calls made.  None for a weakly typed array."""
    av = a.aval
    if not av.weak_type:
        return (av.shape, av.dtype)
    t = _WEAK_SCALAR_TYPES.get(av.dtype) if not av.shape else None
    return None if t is None else (t,)


def _fast_key(args):
    """The fast path's cache key (as computed inline in ``__call__``), or None."""
    parts = []
    for a in args:
        t = type(a)
        if t is np.ndarray or t is _Array:
            parts += [a.shape, a.dtype]
        elif t in _SCALAR_TYPES:
            parts.append(t)
        else:
            return None
    return tuple(parts)


class JittedFunction:
    """The result of :func:`jit`: call it like the original function."""

    def __init__(self, fun, static_argnums, static_argnames):
        self.fun = fun
        self.__wrapped__ = fun
        functools.update_wrapper(self, fun, updated=())
        self._name = getattr(fun, "__name__", type(fun).__name__)
        nums = _as_tuple(static_argnums, "static_argnums", int)
        names = _as_tuple(static_argnames, "static_argnames", str)
        # Like JAX, a static parameter may be passed by position or by name.
        try:
            params = list(inspect.signature(fun).parameters.values())
        except (TypeError, ValueError):
            params = []
        pos = [p.name for p in params
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        extra_names = [pos[i] for i in nums if -len(pos) <= i < len(pos)
                       and params[i % len(pos)].kind is not inspect.Parameter.POSITIONAL_ONLY]
        extra_nums = [pos.index(n) for n in names if n in pos]
        self.static_argnums = tuple(sorted(set(nums) | set(extra_nums)))
        self.static_argnames = tuple(dict.fromkeys(names + tuple(extra_names)))
        self._has_static = bool(self.static_argnums or self.static_argnames)
        self._cache = {}
        self.trace_count = 0          # how many times fun was traced (for tests and debugging)

    # -- the per-call path ---------------------------------------------------
    def __call__(self, *args, **kwargs):
        if not kwargs and not self._has_static:
            # Fast path: positional arrays and scalars only.  The key is, per
            # argument, (shape, dtype) for an array or the type for a scalar
            # (a scalar's type determines its aval, weak type included).
            if len(args) == 1:          # the commonest case, without a loop
                a = args[0]
                t = type(a)
                if t is _ndarray or t is _Array:
                    key = (a.shape, a.dtype)
                elif t in _SCALAR_TYPES:
                    key = (t,)
                elif isinstance(a, Tracer):
                    key = _tracer_key(a)
                else:
                    key = None
            else:
                parts = []
                add = parts.append
                for a in args:
                    t = type(a)
                    if t is _ndarray or t is _Array:
                        add(a.shape)
                        add(a.dtype)
                    elif t in _SCALAR_TYPES:
                        add(t)
                    else:
                        k = _tracer_key(a) if isinstance(a, Tracer) else None
                        if k is None:
                            key = None
                            break
                        parts += k
                else:
                    key = tuple(parts)
            if key is not None:
                entry = self._cache.get(key)
                if entry is None:
                    entry = self._trace(key, args, {})
                prog = entry.prog
                if prog is not None and type(_tls.interp) is EvalInterpreter:
                    outs = prog.run(*args)
                    return outs[0] if entry.out_is_leaf else entry.out_tree.unflatten(outs)
                return self._execute(entry, args)
        key, leaves = self._key(args, kwargs)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace(key, args, kwargs)
        return self._execute(entry, leaves)

    def _execute(self, entry, leaves):
        if entry.prog is not None and type(_tls.interp) is EvalInterpreter:
            outs = entry.prog.run(*leaves)
        else:
            ins = list(leaves) if entry.lifted is None else entry.lifted + list(leaves)
            outs = jit_call_p.bind(*ins, jaxpr=entry.closed, name=self._name)
        if entry.out_is_leaf:
            return outs[0]
        return entry.out_tree.unflatten(outs)

    # -- keys and tracing ----------------------------------------------------
    def _split(self, args, kwargs):
        n = len(args)
        snums = {i % n for i in self.static_argnums if -n <= i < n}
        dyn = tuple(a for i, a in enumerate(args) if i not in snums)
        static_pos = tuple((i, args[i]) for i in sorted(snums))
        snames = self.static_argnames
        dyn_kw = {k: v for k, v in kwargs.items() if k not in snames}
        static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in snames))
        return dyn, dyn_kw, static_pos, static_kw

    def _key(self, args, kwargs):
        """The cache key and the dynamic leaves (the same key as __call__'s fast path)."""
        if not kwargs and not self._has_static:
            key = _fast_key(args)
            if key is not None:
                return key, args
        if self._has_static:
            dyn, dyn_kw, static_pos, static_kw = self._split(args, kwargs)
        else:
            dyn, dyn_kw, static_pos, static_kw = args, kwargs, (), ()
        leaves, treedef = tu.tree_flatten((dyn, dyn_kw))
        key = (treedef, tuple(map(aval_of, leaves)), static_pos, static_kw)
        if static_pos or static_kw:
            for where, v in [(f"argument {i} (static_argnums)", v) for i, v in static_pos] + \
                            [(f"argument {k!r} (static_argnames)", v) for k, v in static_kw]:
                try:
                    hash(v)
                except TypeError:
                    raise TypeError(
                        f"jit of {self._name}: static {where} has unhashable type "
                        f"{type(v).__name__} ({v!r:.60}). Static arguments are part of the "
                        "cache key, so they must be hashable: pass a tuple instead of a "
                        "list, or make the argument non-static.") from None
        return key, leaves

    def _trace(self, key, args, kwargs):
        if self._has_static:
            dyn, dyn_kw, static_pos, static_kw = self._split(args, kwargs)
        else:
            dyn, dyn_kw, static_pos, static_kw = args, kwargs, (), ()
        leaves, in_tree = tu.tree_flatten((dyn, dyn_kw))
        in_avals = [aval_of(x) for x in leaves]
        n = len(args)
        store = {}
        fun = self.fun

        def flat(*xs):
            d_args, d_kw = in_tree.unflatten(list(xs))
            it = iter(d_args)
            sp = dict(static_pos)
            full = [sp[i] if i in sp else next(it) for i in range(n)]
            out = fun(*full, **d_kw, **dict(static_kw))
            out_leaves, store["tree"] = tu.tree_flatten(out)
            return out_leaves

        self.trace_count += 1
        closed = core.trace_to_jaxpr(flat, in_avals, "jit", fun)
        entry = _Entry(closed, store["tree"], in_tree, self._name)
        if entry.lifted is None:
            self._cache[key] = entry     # closures over outer tracers are retraced each call
        return entry

    # -- introspection -------------------------------------------------------
    def lower(self, *args, **kwargs):
        """Stage for these arguments (using the cache) and return a :class:`Lowered`.

        >>> import functad as fd, functad.numpy as fnp
        >>> print(fd.jit(lambda x: fnp.exp(x) + 1.0).lower(fnp.ones(3)).as_text())
        { lambda ; a:f64[3]. let
            b:f64[3] = exp a
            c:f64[3] = add b 1.0
          in (c,) }
        <BLANKLINE>
        # Numba source
        def program(a0):
            _rt.prefer_wide_vectors()
            v0 = np.empty((3,), np.float64)
            for i0 in range(3):
                v1 = _vm.exp_f64(a0[i0])
                v2 = np.float64((v1) + (np.float64(1.0)))
                v0[i0] = v2
            return (v0, )
        <BLANKLINE>
        """
        key, _ = self._key(args, kwargs)
        entry = self._cache.get(key) or self._trace(key, args, kwargs)
        prog = entry.prog or Program(entry.closed, self._name)
        return Lowered(prog, entry.in_tree, entry.out_tree)

    def clear_cache(self):
        self._cache.clear()

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __repr__(self):
        return f"<functad.jit of {self._name}>"


def _as_tuple(x, what, typ):
    if x is None:
        return ()
    if isinstance(x, typ) and not isinstance(x, bool):
        return (x,)
    if isinstance(x, (tuple, list)) and all(isinstance(i, typ) and not isinstance(i, bool)
                                            for i in x):
        return tuple(x)
    raise TypeError(f"jit: {what} must be a {typ.__name__} or a tuple of them, got {x!r}")


def jit(fun=None, static_argnums=(), static_argnames=()):
    """Stage ``fun`` once per input signature and run the staged program.

    Parameters
    ----------
    fun : the function to compile; pytrees of arrays in and out.
    static_argnums : int or tuple of ints; positional arguments that are not
        traced but passed as Python values (they must be hashable; a new value
        retraces).
    static_argnames : str or tuple of str; the same for keyword arguments.

    Tier 0 caches the staged jaxpr per (input pytree structure, each leaf's
    shape/dtype/weak type, static values) and runs it with NumPy.

    Example
    -------
    >>> import functad as fd, functad.numpy as fnp
    >>> f = lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))
    >>> fd.jit(fd.grad(f))(0.0)
    np.float64(-1.5)
    >>> @fd.jit
    ... def norm(x, p=2):
    ...     return fnp.sum(fnp.abs(x) ** p) ** (1.0 / p)
    >>> norm(fnp.array([3.0, 4.0]))
    np.float64(5.0)
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames)
    if not callable(fun):
        raise TypeError(f"jit expects a callable, got {type(fun).__name__} {fun!r:.60}")
    return JittedFunction(fun, static_argnums, static_argnames)
