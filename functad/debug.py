"""Debugging: ``debug.print`` inside transformed code, and ``debug_nans``.

``functad.debug.print(fmt, *args, **kwargs)`` prints
``fmt.format(*args, **kwargs)`` with the *values* of its arguments, also
inside ``jit``, ``vmap`` and ``grad``, where a Python ``print`` would show
tracers (or, under ``jit``, print only while tracing):

* outside any transform it prints at once;
* under staging (``jit``, ``make_jaxpr``) it stages an effectful
  ``debug_print`` equation, which dead-code elimination keeps, so a jitted
  function prints on every call; the Numba tier calls back into Python with
  a ``with numba.objmode():`` block;
* under ``grad``/``jvp`` it prints the primal values, once per evaluation;
* under ``vmap`` it prints once per example, as JAX does (nested ``vmap``:
  the outer index varies slowest).

``debug_nans`` (``functad.config.update("debug_nans", True)``, or the
:func:`debug_nans` context manager) makes eager evaluation raise
``FloatingPointError`` at the first primitive whose result contains a NaN,
forward or backward, naming the primitive and the user's source line.  A
jitted function whose result contains a NaN is run again without jit, op by
op, to find the primitive (JAX's behaviour).  When the flag is off nothing is
checked and nothing costs: turning it on swaps the eval interpreter's
``process_primitive`` for a checking one.

>>> import functad as fd, functad.numpy as fnp
>>> fd.debug.print("x = {}", fnp.arange(3.0))
x = [0. 1. 2.]
>>> f = fd.jit(lambda x: (fd.debug.print("x = {x}", x=x), x * 2.0)[1])
>>> _ = f(1.5)
x = 1.5
>>> _ = fd.vmap(lambda x: fd.debug.print("row {}", x))(fnp.ones((2, 2)))
row [1. 1.]
row [1. 1.]
>>> with fd.debug.debug_nans():
...     fnp.log(-1.0)
Traceback (most recent call last):
  ...
FloatingPointError: invalid value (nan) encountered in log (functad debug_nans: primitive 'log' ...)
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import sys

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.backprop import show_backprop  # noqa: F401  (part of functad.debug)
from functad.config import config, _ON_CHANGE

__all__ = ["print", "debug_nans", "debug_print_p", "show_backprop"]


# --------------------------------------------------------------------------
# debug.print
# --------------------------------------------------------------------------

def _is_array_like(x):
    try:
        core.aval_of(x)
    except TypeError:
        return False
    return True


def _normalize(v, dtype=None):
    """A value as printed: a NumPy array, or a NumPy scalar for rank 0."""
    v = np.asarray(core.to_numpy(v), dtype)
    return v[()] if v.ndim == 0 else v


def _format(fmt, tree, static, vals):
    leaves, it, st = [], iter(vals), dict(static)
    for i in range(tree.num_leaves):
        leaves.append(st[i] if i in st else next(it))
    args, kwargs = tree.unflatten(leaves)
    return fmt.format(*args, **kwargs)


def _emit(fmt, tree, static, batch_sizes, batched, vals, dtypes=None):
    """Format and print, once per example of the batch axes (if any)."""
    if dtypes is None:
        dtypes = [None] * len(vals)
    vals = [_normalize(v, dt) for v, dt in zip(vals, dtypes)]
    if not batch_sizes:
        builtins.print(_format(fmt, tree, static, vals))
        return
    for idx in np.ndindex(*batch_sizes):
        row = []
        for v, levels in zip(vals, batched):
            pick = tuple(i for i, b in zip(idx, levels) if b)
            row.append(_normalize(v[pick]) if pick else v)
        builtins.print(_format(fmt, tree, static, row))


debug_print_p = core.Primitive("debug_print", multiple_results=True)
# Kept by dead-code elimination although nothing uses its result.
debug_print_p.effectful = True

# ``debug_print`` returns one unused boolean: the Numba lowering's partition of
# equations expects every equation to have an output.
_TOKEN = core.ShapedArray((), np.bool_)


def _print_impl(*vals, fmt, tree, static, batch_sizes, batched):
    _emit(fmt, tree, static, batch_sizes, batched, vals)
    return [np.True_]


def _print_abstract_eval(*avals, fmt, tree, static, batch_sizes, batched):
    return [_TOKEN]


def _print_jvp(primals, tangents, **params):
    # primal values only; the tangents are not printed
    return debug_print_p.bind(*primals, **params), [None]


def _print_batch(vals, dims, fmt, tree, static, batch_sizes, batched):
    from functad.batching import moveaxis
    size = next(core.shape_of(v)[d] for v, d in zip(vals, dims) if d is not None)
    vals = [v if d is None else moveaxis(v, d, 0) for v, d in zip(vals, dims)]
    # this vmap is outside the ones already recorded: its axis varies slowest
    batched = tuple((d is not None,) + tuple(lev) for d, lev in zip(dims, batched))
    out = debug_print_p.bind(*vals, fmt=fmt, tree=tree, static=static,
                             batch_sizes=(size,) + tuple(batch_sizes), batched=batched)
    return out, [None]


# Numba: the compiled program calls _objmode_print(key, *values) inside a
# ``with numba.objmode():`` block; key names the format in _REGISTRY.  The key
# is a hash of the format, so a program loaded from the disk cache in another
# process finds its entry (registered again when that process lowers it).
_REGISTRY: dict = {}
_warning_filtered = False


def _objmode_print(key, *vals):
    fmt, tree, static, batch_sizes, batched, dtypes = _REGISTRY[key]
    _emit(fmt, tree, static, batch_sizes, batched, vals, dtypes)


def _print_lower(ctx, *ins, fmt, tree, static, batch_sizes, batched):
    global _warning_filtered
    dtypes = tuple(a.dtype for a in ctx.in_avals)
    entry = (fmt, tree, static, batch_sizes, batched, dtypes)
    key = hashlib.sha256(repr((fmt, str(tree), static, batch_sizes, batched, dtypes))
                         .encode()).hexdigest()[:20]
    _REGISTRY[key] = entry
    if not _warning_filtered:
        # The callback holds the GIL, which is the point: Numba's warning that
        # object-mode code does not run in parallel despite nogil says nothing.
        import warnings
        warnings.filterwarnings("ignore", message=".*Code running in object mode won't allow "
                                "parallel execution")
        _warning_filtered = True
    args = "".join(", " + i for i in ins)
    ctx.emit(f"with {ctx.rt('numba')}.objmode():\n"
             f"    __import__('functad.debug', fromlist=['_'])._objmode_print({key!r}{args})")
    return "(True, )"


debug_print_p.impl = _print_impl
debug_print_p.abstract_eval = _print_abstract_eval
debug_print_p.jvp = _print_jvp
debug_print_p.batch = _print_batch
debug_print_p.lower = _print_lower


def print(fmt, *args, ordered=False, **kwargs):  # noqa: A001 - JAX's name
    """Print ``fmt.format(*args, **kwargs)`` with the runtime values of the arguments.

    Works inside ``jit`` (prints on every call, not only while tracing),
    ``grad``/``jvp`` (prints the primal values once per evaluation) and
    ``vmap`` (prints once per example).  Arguments are pytrees of arrays;
    other leaves (strings, ``None``) are passed to ``format`` unchanged.
    ``ordered`` is accepted for JAX compatibility: functad runs a program's
    effects in program order anyway.

    >>> import functad as fd, functad.numpy as fnp
    >>> fd.grad(lambda x: (fd.debug.print("x={:.2f}", x), x ** 2)[1])(3.0)
    x=3.00
    np.float64(6.0)
    """
    if not isinstance(fmt, str):
        raise TypeError(f"debug.print: fmt must be a str, got {type(fmt).__name__}")
    leaves, tree = tu.tree_flatten((args, kwargs))
    if type(core._tls.interp) is core.EvalInterpreter:
        builtins.print(fmt.format(*args, **kwargs) if not leaves else
                       _format(fmt, tree, (), [_normalize(x) if _is_array_like(x) else x
                                               for x in leaves]))
        return
    static = tuple((i, x) for i, x in enumerate(leaves) if not _is_array_like(x))
    dynamic = [x for x in leaves if _is_array_like(x)] if static else leaves
    debug_print_p.bind(*dynamic, fmt=fmt, tree=tree, static=static, batch_sizes=(),
                       batched=((),) * len(dynamic))


# --------------------------------------------------------------------------
# debug_nans
# --------------------------------------------------------------------------

_fast_process_primitive = core.EvalInterpreter.process_primitive


def _has_nan(outs):
    for o in outs:
        if type(o) is float:
            if o != o:
                return True
            continue
        dt = getattr(o, "dtype", None)
        if dt is not None and dt.kind in "fc":
            if o.ndim == 0:
                if o != o:
                    return True
            elif np.isnan(o).any():
                return True
    return False


def _checked_process_primitive(self, prim, args, params):
    out = _fast_process_primitive(self, prim, args, params)
    if _has_nan(out if prim.multiple_results else (out,)):
        _nan_found(prim, args, params)
    return out


def _body(prim, args, params):
    """For a call-like primitive, a thunk that runs its body op by op (under
    the checking interpreter it raises at the primitive that makes the NaN)."""
    p = params
    if prim.name in ("jit_call", "remat_call") and isinstance(p.get("jaxpr"), core.ClosedJaxpr):
        return lambda: core.eval_jaxpr(p["jaxpr"].jaxpr, p["jaxpr"].consts, *args)
    if prim.name in ("custom_jvp_call", "custom_vjp_call") and callable(p.get("fun")):
        return lambda: p["fun"](*args)
    if prim.name == "cond" and "branches" in p:
        branches = p["branches"]
        k = min(max(int(args[0]), 0), len(branches) - 1)
        return lambda: core.eval_jaxpr(branches[k].jaxpr, branches[k].consts, *args[1:])
    if prim.name == "scan" and "jaxpr" in p:
        return lambda: _rerun_scan(args, **p)
    if prim.name == "while" and "body_jaxpr" in p:
        return lambda: _rerun_while(args, **p)
    return None


def _run(closed, args):
    outs = core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
    return [core._wrap(np.asarray(o, a.dtype)) for o, a in zip(outs, closed.out_avals)]


def _rerun_scan(args, jaxpr, num_consts, num_carry, length, reverse, **_):
    consts = list(args[:num_consts])
    carry = list(args[num_consts:num_consts + num_carry])
    xs = args[num_consts + num_carry:]
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        carry = _run(jaxpr, consts + carry + [x[i] for x in xs])[:num_carry]


def _rerun_while(args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc = list(args[:cond_nconsts])
    bc = list(args[cond_nconsts:cond_nconsts + body_nconsts])
    carry = list(args[cond_nconsts + body_nconsts:])
    while _run(cond_jaxpr, cc + carry)[0]:
        carry = _run(body_jaxpr, bc + carry)


def _locate(prim):
    """Where the failing primitive comes from: the staged equation's source line
    (when a jaxpr is being evaluated), the equation being transposed (in the
    backward pass of grad/vjp), and the innermost user frame."""
    from functad import ad, backprop
    eval_code, back_code = core.eval_jaxpr.__code__, ad.backward_pass.__code__
    tape_code = backprop.Tape._transpose.__code__
    staged = transposing = through = None
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if code is eval_code and staged is None:
            eqn = f.f_locals.get("eqn")
            if eqn is not None and eqn.source:
                staged = eqn.source
        elif code is back_code and transposing is None:
            eqn = f.f_locals.get("eqn")
            transposing = eqn.primitive.name if eqn is not None else "?"
        elif code is tape_code and transposing is None and through is None:
            node = f.f_locals.get("prim")
            through = node.name if node is not None else "?"
        f = f.f_back
    parts = []
    if transposing is not None:
        parts.append(f"in the backward pass (transposing '{transposing}')")
    elif through is not None:
        parts.append(f"in the backward pass (through '{through}')")
    parts.append(f"called from {staged or core.user_source_line(2)}")
    return ", ".join(parts)


def _nan_found(prim, args, params):
    body = _body(prim, args, params)
    note = ""
    if body is not None:
        body()      # raises at the primitive inside that produces the NaN
        note = ("; running its body op by op did not produce one (the NaN came in through "
                "its inputs)")
    raise FloatingPointError(
        f"invalid value (nan) encountered in {prim.name} (functad debug_nans: primitive "
        f"'{prim.name}' produced a NaN, {_locate(prim)}{note})")


def _checked_jit_call(self, *args, **kwargs):
    out = _plain_jit_call(self, *args, **kwargs)
    if type(core._tls.interp) is core.EvalInterpreter and _has_nan(tu.tree_leaves(out)):
        # JAX's behaviour: run the function again without jit, op by op, so
        # that the checking interpreter raises at the primitive.
        self.fun(*args, **kwargs)
        raise FloatingPointError(
            f"invalid value (nan) encountered in jit({self._name}) (functad debug_nans): its "
            "result contains a NaN, but running it again without jit (op by op) produced "
            f"none; called from {core.user_source_line(1)}")
    return out


from functad.jit import JittedFunction  # noqa: E402 - functad.jit imports nothing from here

_plain_jit_call = JittedFunction.__call__


def _set_debug_nans(on):
    on = bool(on)
    core.EvalInterpreter.process_primitive = (_checked_process_primitive if on
                                              else _fast_process_primitive)
    JittedFunction.__call__ = _checked_jit_call if on else _plain_jit_call


_ON_CHANGE["debug_nans"] = _set_debug_nans
_set_debug_nans(config.debug_nans)


@contextlib.contextmanager
def debug_nans(enabled=True):
    """Turn ``config.debug_nans`` on (or off) inside a ``with`` block.

    >>> import functad as fd, functad.numpy as fnp
    >>> with fd.debug.debug_nans():
    ...     fd.grad(lambda x: fnp.sqrt(x) * 0.0)(0.0)
    Traceback (most recent call last):
      ...
    FloatingPointError: invalid value (nan) encountered in mul (... in the backward pass ...)
    """
    with config.override(debug_nans=enabled):
        yield
