"""The heart of functad: abstract values, the IR, primitives and interpreters.

Every transform is an *interpreter of primitives*.  Each ``functad.numpy``
call bottoms out in :func:`bind`, which hands the primitive to the current
interpreter (a thread-local, in the "stackless" style):

* :class:`EvalInterpreter` runs the primitive's NumPy ``impl``;
* :class:`StagingInterpreter` records an equation into a :class:`Jaxpr`
  (``make_jaxpr``; with ``forward_known=True`` it is the partial evaluator that
  reverse mode uses);
* ``functad.ad.JVPInterpreter`` pushes (primal, tangent) pairs.

Each interpreter holds its parent.  While a rule runs, the parent is current,
so a rule's own ``bind`` calls go one level out.  A tracer belongs to exactly
one interpreter instance; any other value is a constant to that interpreter.
That is what makes nested derivatives correct (no perturbation confusion).

Example
-------
>>> import functad as fd, functad.numpy as fnp
>>> print(fd.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(fnp.ones(3)))
{ lambda ; a:f64[3]. let
    b:f64[3] = sin a
    c:f64[3] = mul b 2.0
  in (c,) }
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

import numpy as np

__all__ = [
    "ShapedArray", "Primitive", "Var", "Literal", "Eqn", "Jaxpr", "ClosedJaxpr",
    "Tracer", "Array", "bind", "aval_of", "eval_jaxpr", "check_jaxpr",
    "make_jaxpr", "ConcretizationTypeError", "UnexpectedTracerError",
    "TracerArrayConversionError", "JaxprTypeError",
]

# --------------------------------------------------------------------------
# Abstract values
# --------------------------------------------------------------------------

_SHORT_DTYPE = {
    "float64": "f64", "float32": "f32", "float16": "f16", "int64": "i64",
    "int32": "i32", "int16": "i16", "int8": "i8", "uint64": "u64",
    "uint32": "u32", "uint16": "u16", "uint8": "u8", "bool": "bool",
    "complex128": "c128", "complex64": "c64",
}


class ShapedArray:
    """The abstract value of an array: its shape, dtype and weak type.

    A *weak* type comes from a Python scalar: it gives way to the other
    operand's dtype under NumPy 2 promotion (NEP 50), e.g. ``f32 * 2.0 -> f32``.

    >>> ShapedArray((2, 3), np.float32)
    ShapedArray(f32[2,3])
    """

    __slots__ = ("shape", "dtype", "weak_type", "_hash")

    def __init__(self, shape, dtype, weak_type=False):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.weak_type = bool(weak_type)
        self._hash = hash((self.shape, self.dtype, self.weak_type))

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def __eq__(self, other):
        return (isinstance(other, ShapedArray) and self.shape == other.shape
                and self.dtype == other.dtype and self.weak_type == other.weak_type)

    def __hash__(self):
        return self._hash

    def update(self, shape=None, dtype=None, weak_type=None):
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype,
                           self.weak_type if weak_type is None else weak_type)

    def strip_weak_type(self):
        return self.update(weak_type=False) if self.weak_type else self

    def str_short(self):
        dt = _SHORT_DTYPE.get(self.dtype.name, self.dtype.name)
        return f"{dt}[{','.join(map(str, self.shape))}]"

    def __repr__(self):
        weak = ", weak_type=True" if self.weak_type else ""
        return f"ShapedArray({self.str_short()}{weak})"

    @property
    def is_float(self):
        return self.dtype.kind in "fc"


_aval_cache: dict = {}


def _cached_aval(shape, dtype, weak=False):
    key = (shape, dtype, weak)
    a = _aval_cache.get(key)
    if a is None:
        a = _aval_cache[key] = ShapedArray(shape, dtype, weak)
    return a


_WEAK_SCALARS = {float: np.dtype("float64"), int: np.dtype("int64"),
                 complex: np.dtype("complex128")}


_SCALAR_AVALS = {t: ShapedArray((), t) for t in (
    np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8,
    np.uint16, np.uint32, np.uint64, np.bool_, np.complex128, np.complex64)}
_SCALAR_AVALS.update({float: ShapedArray((), np.float64, True),
                      int: ShapedArray((), np.int64, True),
                      complex: ShapedArray((), np.complex128, True),
                      bool: ShapedArray((), np.bool_)})
for _a in _SCALAR_AVALS.values():
    _aval_cache[(_a.shape, _a.dtype, _a.weak_type)] = _a
del _a


def aval_of(x) -> ShapedArray:
    """The abstract value of a concrete value or tracer.

    Python scalars are weakly typed; NumPy scalars and arrays are not.
    """
    t = type(x)
    if t is np.ndarray or t is Array:       # the commonest case, inline
        a = _aval_cache.get((x.shape, x.dtype, False))
        return a if a is not None else _cached_aval(x.shape, x.dtype)
    a = _SCALAR_AVALS.get(t)
    if a is not None:
        return a
    if isinstance(x, Tracer):
        return x.aval
    if t is bool:
        return _cached_aval((), np.dtype(bool))
    dt = _WEAK_SCALARS.get(t)
    if dt is not None:
        return _cached_aval((), dt, True)
    if isinstance(x, (np.ndarray, np.generic)):
        return _cached_aval(x.shape, x.dtype)
    if isinstance(x, (bool, int, float, complex)):   # subclasses, e.g. np.float64
        return aval_of(np.asarray(x))
    raise TypeError(
        f"functad cannot use a value of type {type(x).__name__} as an array: {x!r:.80}. "
        "Pass NumPy arrays, Python scalars, or pytrees (tuples, lists, dicts) of them.")


def shape_of(x):
    """The shape of an array, tracer or Python scalar (faster than ``np.shape``)."""
    s = getattr(x, "shape", None)
    return () if s is None else s


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class ConcretizationTypeError(TypeError):
    """A traced value was used where a concrete Python value is needed."""


class TracerArrayConversionError(TypeError):
    """A traced value was handed to NumPy (``np.asarray``, a NumPy function)."""


class UnexpectedTracerError(RuntimeError):
    """A tracer escaped the transform that created it."""


class JaxprTypeError(TypeError):
    """The type checker found an ill-typed equation in a jaxpr."""


_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def user_frame(skip=1):
    """The innermost stack frame outside functad (and outside the stdlib's contextlib)."""
    f = sys._getframe(skip)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG_DIR) and not fn.endswith("contextlib.py"):
            return f
        f = f.f_back
    return None


def user_source_line(skip=1) -> str:
    f = user_frame(skip + 1)
    if f is None:
        return "<unknown>"
    return f"{f.f_code.co_filename}:{f.f_lineno} (in {f.f_code.co_name})"


def _add_note(exc, note):
    if hasattr(exc, "add_note"):
        exc.add_note(note)


_IMPL_ERRORS = (ValueError, TypeError, IndexError, np.linalg.LinAlgError)


def _impl_error(exc, prim, args, params):
    """The error to raise when ``prim.impl`` failed with ``exc``: the clearer one
    of the primitive's abstract evaluation where it has one (``prim.explains``,
    checked only on this failure path), with a note naming the primitive and
    the user's line."""
    if prim.explains and not isinstance(exc, np.linalg.LinAlgError):
        try:
            prim.abstract_eval(*map(aval_of, args), **params)
        except (ValueError, TypeError) as clear:
            exc = clear
    _add_note(exc, f"functad: raised by primitive '{prim.name}', called from "
                   f"{user_source_line(2)}")
    return exc


# --------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------

primitives: dict = {}


class _AllOperands:
    """``Primitive.linear_in`` of a primitive linear in all its operands."""

    def __contains__(self, i):
        return True

    def __repr__(self):
        return "ALL"


ALL = _AllOperands()


class Primitive:
    """An elementary operation, with all of its rules in one place.

    Attributes set by the module defining the primitive:

    ``impl(*arrays, **params)``
        NumPy evaluation.
    ``abstract_eval(*avals, **params)``
        output ``ShapedArray`` (or a list of them if ``multiple_results``).
    ``jvp(primals, tangents, **params) -> (primal_out, tangent_out)``
        tangents may be ``None`` (symbolic zero); written with ``bind`` so that
        it can itself be differentiated.
    ``transpose(cts, *args, **params)``
        only for linear primitives; ``args`` holds :class:`UndefinedPrimal`
        for the linear inputs; returns one cotangent (or ``None``) per input.
    ``tape_vjp(primals, diff, **params) -> (outs, backward)``
        optional, for an eager tape: evaluate, and return a function from the
        outputs' cotangents (``None`` for zero) to those of the inputs
        numbered in ``diff`` (``jit_call``: one compiled VJP program); or None
        to be linearized as any other primitive.
    ``linear_in``
        the operands in which the primitive is linear when the others are held
        fixed (``(0, 1)`` for a product, :data:`ALL` for a primitive linear in
        all of them together, like ``reshape``): the cotangent of such an
        operand is ``transpose`` with that operand alone undefined.
    ``batch``, ``lower``
        vmap and Numba rules (later issues).
    """

    def __init__(self, name, multiple_results=False, linear_in=()):
        self.name = name
        self.multiple_results = multiple_results
        self.linear_in = linear_in
        self.impl = None
        self.abstract_eval = None
        self.jvp = None
        self.transpose = None
        self.batch = None
        self.lower = None
        self.inline = None      # for call-like primitives: run the body under a non-owning interpreter
        self.tape_vjp = None    # (primals, diff, **params) -> (outs, backward): see above
        self.explains = False   # abstract_eval's errors are clearer than impl's (see _impl_error)
        self.partial = None     # elementwise: partial(i, ans, *primals) -> d ans / d primals[i]
        self.zero_jvp = False   # the output's tangent is always zero (set by ad.defjvp_zero)
        primitives[name] = self

    def bind(self, *args, **params):
        return _tls.interp.process_primitive(self, args, params)

    def __repr__(self):
        return self.name


def bind(prim, *args, **params):
    """Apply ``prim`` under the current interpreter."""
    return _tls.interp.process_primitive(prim, args, params)


# --------------------------------------------------------------------------
# Interpreters and the thread-local current one
# --------------------------------------------------------------------------

class Interpreter:
    """Base class: an interpreter of primitives with a parent and a liveness flag."""

    kind = "transform"

    def __init__(self, parent, name=None, fun=None):
        self.parent = parent
        self.alive = True
        self.name = name or self.kind
        self.fun = fun          # the user function being transformed, for messages

    def process_primitive(self, prim, args, params):
        raise NotImplementedError

    def describe(self):
        desc = self.name
        fun = self.fun
        if fun is not None:
            code = getattr(fun, "__code__", None)
            fname = getattr(fun, "__qualname__", getattr(fun, "__name__", repr(fun)))
            where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
            desc += f" of {fname}{where}"
        return desc


class EvalInterpreter(Interpreter):
    """The root interpreter: runs each primitive's NumPy implementation.

    While ``config.debug_nans`` is on, :mod:`functad.debug` replaces
    ``process_primitive`` with a version that checks results for NaNs (so
    that no flag is tested per primitive when it is off).
    """

    kind = "eval"

    def __init__(self):
        super().__init__(None, "eval")

    def process_primitive(self, prim, args, params):
        try:
            out = prim.impl(*args, **params)
        except _IMPL_ERRORS as e:
            err = _impl_error(e, prim, args, params)
            if err is e:
                raise
            raise err from None
        if prim.multiple_results:
            return [_wrap(o) for o in out] if self.wrapping else list(out)
        return _wrap(out) if self.wrapping else out

    wrapping = True         # results become immutable Arrays (see UnwrappedEvalInterpreter)


class UnwrappedEvalInterpreter(EvalInterpreter):
    """Evaluation inside functad's own code (a tape's local partials and its
    backward pass), whose values reach users only through a wrapping step:
    NumPy's arrays come out as they are.  Not used under ``debug_nans``."""

    wrapping = False


UNWRAPPED = UnwrappedEvalInterpreter()

_PY_SCALARS = (float, int, complex, bool)


def _all_python_scalars(args):
    for a in args:
        if type(a) not in _PY_SCALARS:
            return False
    return True


class _TLS(threading.local):
    def __init__(self):
        self.interp = EvalInterpreter()


_tls = _TLS()


def current_interpreter() -> Interpreter:
    return _tls.interp


def call_under(interp, fun, args, kwargs=None, also_dead=None):
    """``fun(*args, **kwargs)`` with ``interp`` the current interpreter.

    Afterwards the previous interpreter is current again and ``interp`` (and
    ``also_dead``, if given) is dead, so that tracers that escape raise.  The
    plain-function form of :func:`new_interpreter`, for the eager transforms'
    hot paths (a context manager costs about a microsecond more per call).
    """
    tls = _tls
    prev = tls.interp
    tls.interp = interp
    try:
        return fun(*args, **kwargs) if kwargs else fun(*args)
    finally:
        tls.interp = prev
        interp.alive = False
        if also_dead is not None:
            also_dead.alive = False


@contextmanager
def set_interpreter(interp):
    prev = _tls.interp
    _tls.interp = interp
    try:
        yield interp
    finally:
        _tls.interp = prev


@contextmanager
def new_interpreter(cls, *args, **kwargs):
    """Run a transform's body under a fresh child of the current interpreter.

    The interpreter is marked dead on exit, so tracers that escape raise.
    """
    interp = cls(_tls.interp, *args, **kwargs)
    try:
        with set_interpreter(interp):
            yield interp
    finally:
        interp.alive = False


# --------------------------------------------------------------------------
# Tracers and eager arrays
# --------------------------------------------------------------------------

# ufunc -> functad.numpy function, filled in by functad.numpy: lets
# ``ndarray + tracer`` (which calls ``np.add``) defer to functad.
_UFUNC_DISPATCH: dict = {}


class Tracer:
    """A value being traced by one interpreter instance (``self._trace``).

    Tracers support the array protocol of ``functad.numpy``: operators,
    ``.shape``, ``.dtype``, ``.T``, ``.at[...]``, and methods such as ``.sum()``
    (installed by ``functad.numpy``).
    """

    __slots__ = ("_trace",)
    __array_priority__ = 1000

    @property
    def aval(self) -> ShapedArray:
        raise NotImplementedError

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)
    weak_type = property(lambda self: self.aval.weak_type)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    # -- concreteness -----------------------------------------------------
    def to_concrete(self, what):
        """Return a concrete NumPy value for Python control flow, or raise."""
        raise ConcretizationTypeError(self._concretization_message(what))

    def _concretization_message(self, what):
        self._check_alive()
        f = user_frame(3)
        where = f" at {f.f_code.co_filename}:{f.f_lineno} (in {f.f_code.co_name})" if f else ""
        return (f"{what} was called on a traced value of type {self.aval.str_short()}{where}, "
                f"while tracing under {self._trace.describe()}. The value is not known until "
                "the function runs, so Python control flow cannot depend on it. Use "
                "functad.numpy.where or functad.lax.cond / functad.lax.while_loop for "
                "value-dependent branches, or mark the argument static "
                "(jit(..., static_argnums=...)) if it is a compile-time constant.")

    def _check_alive(self):
        if not self._trace.alive:
            raise UnexpectedTracerError(
                f"A traced value ({self.aval.str_short()}) was used after the transform that "
                f"created it had returned: it was created by {self._trace.describe()}. "
                "It probably escaped through a global, a closure or a container (e.g. appended "
                "to a list). Return values from transformed functions instead of storing them, "
                "or use has_aux=True to carry auxiliary results out.")

    def __bool__(self):
        return bool(self.to_concrete("bool()"))

    def __float__(self):
        return float(self.to_concrete("float()"))

    def __int__(self):
        return int(self.to_concrete("int()"))

    def __complex__(self):
        return complex(self.to_concrete("complex()"))

    def __index__(self):
        return int(self.to_concrete("an index conversion (__index__)"))

    def item(self):
        return self.to_concrete("item()").item()

    def tolist(self):
        return np.asarray(self.to_concrete("tolist()")).tolist()

    def __array__(self, dtype=None, copy=None):
        self._check_alive()
        raise TracerArrayConversionError(
            f"A traced value ({self.aval.str_short()}, under {self._trace.describe()}) was "
            "converted to a NumPy array. NumPy functions cannot be differentiated or staged: "
            "inside transformed functions use functad.numpy (import functad.numpy as fnp) "
            "instead of numpy.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        self._check_alive()
        if method == "__call__" and not kwargs and type(_tls.interp) is not EvalInterpreter:
            # ``ndarray <op> tracer`` inside a transform: defer to functad
            fn = _UFUNC_DISPATCH.get(ufunc)
            if fn is not None:
                return fn(*inputs)
        raise TracerArrayConversionError(
            f"numpy.{ufunc.__name__} was called on a traced value ({self.aval.str_short()}). "
            f"Use functad.numpy.{ufunc.__name__} inside transformed functions.")

    def __hash__(self):
        raise TypeError(f"unhashable type: traced array ({self.aval.str_short()})")

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}>with<{type(self._trace).__name__}>"


class Array(np.ndarray):
    """The type of eager functad results: an immutable NumPy array.

    It is a NumPy ``ndarray`` (so NumPy accepts it as is) that refuses
    in-place updates; use the functional ``x.at[idx].set(v)`` instead.

    >>> import functad.numpy as fnp
    >>> x = fnp.zeros(3)
    >>> x.at[1].set(5.0)
    Array([0., 5., 0.])
    """

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # NumPy functions called on functad arrays return plain (mutable) NumPy
        # results, so NumPy and SciPy code may write into its own outputs.
        if return_scalar:
            return arr[()]
        return arr.view(np.ndarray) if type(arr) is not np.ndarray else arr

    def __setitem__(self, idx, value):
        raise TypeError(
            "functad arrays are immutable and do not support item assignment. "
            "Instead of x[idx] = y, use x = x.at[idx].set(y).")

    def _no_inplace(name):
        op = getattr(np.ndarray, name.replace("__i", "__", 1))

        def method(self, other):
            return op(self, other)      # returns a new array: x += 1 rebinds x
        method.__name__ = name
        return method

    for _name in ("__ilshift__", "__irshift__"):
        locals()[_name] = _no_inplace(_name)
    del _name, _no_inplace


def _wrap(x):
    """Make an eager result a functad Array (an immutable ndarray view).

    0-d results stay NumPy scalars (``np.float64`` ...): they are immutable
    already, and NumPy computes on them several times faster than on 0-d
    arrays, which matters for scalar code under ``grad``.
    """
    t = type(x)
    if t is np.ndarray:
        if not x.ndim:
            return x[()]
        x = x.view(Array)
        x.setflags(write=False)      # 3x cheaper than assigning flags.writeable
        return x
    if t is Array:
        return x if x.ndim else x.view(np.ndarray)[()]
    if isinstance(x, np.ndarray):
        x = x.view(Array)
        x.setflags(write=False)      # 3x cheaper than assigning flags.writeable
        return x
    return x


def to_numpy(x):
    """A plain NumPy value for a concrete value (Array views become ndarrays)."""
    if type(x) is Array:
        return x.view(np.ndarray)
    return x


# --------------------------------------------------------------------------
# The IR
# --------------------------------------------------------------------------

class Var:
    """A variable of the IR.  Identity semantics; carries an abstract value."""

    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval

    def __repr__(self):
        return f"Var({self.aval.str_short()})"


class Literal:
    """A scalar constant written inline in a jaxpr (e.g. ``2.0``)."""

    __slots__ = ("val", "aval")

    def __init__(self, val, aval):
        self.val = val
        self.aval = aval

    def __repr__(self):
        return f"Literal({self.val!r})"


class Eqn:
    """``outvars = primitive[params] inputs``, with the user's source line."""

    __slots__ = ("primitive", "inputs", "outvars", "params", "source")

    def __init__(self, primitive, inputs, outvars, params, source=None):
        self.primitive = primitive
        self.inputs = inputs
        self.outvars = outvars
        self.params = params
        self.source = source


class Jaxpr:
    """A typed, first-order program: ``{ lambda constvars ; invars. let eqns in outvars }``."""

    __slots__ = ("constvars", "invars", "outvars", "eqns")

    def __init__(self, constvars, invars, outvars, eqns):
        self.constvars = list(constvars)
        self.invars = list(invars)
        self.outvars = list(outvars)
        self.eqns = list(eqns)

    in_avals = property(lambda self: [v.aval for v in self.invars])
    out_avals = property(lambda self: [v.aval for v in self.outvars])

    def __str__(self):
        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A :class:`Jaxpr` together with the values of its constvars."""

    __slots__ = ("jaxpr", "consts")

    def __init__(self, jaxpr, consts):
        self.jaxpr = jaxpr
        self.consts = list(consts)

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __call__(self, *args):
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self):
        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__


def eval_jaxpr(jaxpr: Jaxpr, consts, *args):
    """Evaluate ``jaxpr`` by binding each equation under the current interpreter.

    Evaluating under another transform therefore *rewrites* the jaxpr.
    Returns the list of outputs.
    """
    env = {}
    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    if len(args) != len(jaxpr.invars):
        raise TypeError(f"jaxpr takes {len(jaxpr.invars)} arguments, got {len(args)}")
    for v, x in zip(jaxpr.invars, args):
        env[v] = x

    def read(a):
        return a.val if type(a) is Literal else env[a]

    for eqn in jaxpr.eqns:
        outs = eqn.primitive.bind(*map(read, eqn.inputs), **eqn.params)
        if eqn.primitive.multiple_results:
            for v, o in zip(eqn.outvars, outs):
                env[v] = o
        else:
            env[eqn.outvars[0]] = outs
    return [read(v) for v in jaxpr.outvars]


def check_call_args(avals, closed, what):
    """Argument types of a call-like primitive against its jaxpr's inputs."""
    expected = closed.in_avals
    if len(avals) != len(expected):
        raise TypeError(f"{what}: {len(expected)} arguments expected, got {len(avals)}")
    for i, (a, e) in enumerate(zip(avals, expected)):
        if a.shape != e.shape or a.dtype != e.dtype:
            raise TypeError(f"{what}: argument {i} has type {a.str_short()}, the jaxpr "
                            f"expects {e.str_short()}")


def abstract_eval(prim, avals, params):
    """Output avals of ``prim`` as a list."""
    out = prim.abstract_eval(*avals, **params)
    return list(out) if prim.multiple_results else [out]


def _same_type(a: ShapedArray, b: ShapedArray):
    return a.shape == b.shape and a.dtype == b.dtype


def check_jaxpr(jaxpr: Jaxpr):
    """Type-check ``jaxpr``: every variable defined once before use, and every
    equation's output types equal to what abstract evaluation gives.

    Raises :class:`JaxprTypeError` naming the offending equation.
    """
    defined = set()

    def define(v):
        if not isinstance(v, Var):
            raise JaxprTypeError(f"binder {v!r} is not a Var")
        if v in defined:
            raise JaxprTypeError(f"variable {v!r} defined twice")
        defined.add(v)

    def use(a, where):
        if isinstance(a, Literal):
            if not _same_type(aval_of(a.val), a.aval):
                raise JaxprTypeError(f"literal {a.val!r} has type {aval_of(a.val)}, annotated {a.aval} in {where}")
            return a.aval
        if a not in defined:
            raise JaxprTypeError(f"variable {a!r} used before it is defined, in {where}")
        return a.aval

    for v in jaxpr.constvars + jaxpr.invars:
        define(v)
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.outvars:
            if not isinstance(v, Var):
                raise JaxprTypeError(f"equation {i} ({eqn.primitive.name}): binder {v!r} is not a Var")
        where = f"equation {i} ({pp_eqn_line(eqn)})"
        in_avals = [use(a, where) for a in eqn.inputs]
        try:
            expected = abstract_eval(eqn.primitive, in_avals, eqn.params)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise JaxprTypeError(f"abstract evaluation failed for {where}: {e}") from e
        if len(expected) != len(eqn.outvars):
            raise JaxprTypeError(f"{where}: {len(expected)} outputs expected, {len(eqn.outvars)} bound")
        for v, a in zip(eqn.outvars, expected):
            if not _same_type(v.aval, a):
                raise JaxprTypeError(f"{where}: output annotated {v.aval.str_short()} "
                                     f"but abstract evaluation gives {a.str_short()}")
            define(v)
        for p in eqn.params.values():
            sub = p.jaxpr if isinstance(p, ClosedJaxpr) else p
            if isinstance(sub, Jaxpr):
                check_jaxpr(sub)
    for a in jaxpr.outvars:
        use(a, "the outputs")
    return True


# --------------------------------------------------------------------------
# Pretty-printing
# --------------------------------------------------------------------------

def _var_names():
    import string
    letters = string.ascii_lowercase
    n = 0
    while True:
        s, k = "", n
        while True:
            s = letters[k % 26] + s
            k = k // 26
            if k == 0:
                break
            k -= 1
        yield s
        n += 1


class _Names:
    def __init__(self):
        self.gen = _var_names()
        self.names = {}

    def __call__(self, v):
        if isinstance(v, Literal):
            return _pp_literal(v.val)
        n = self.names.get(v)
        if n is None:
            n = self.names[v] = next(self.gen)
        return n


def _pp_literal(x):
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, np.generic):
        return repr(x.item())
    return repr(x)


def _pp_param(v, names, indent):
    if isinstance(v, (Jaxpr, ClosedJaxpr)):
        inner = v.jaxpr if isinstance(v, ClosedJaxpr) else v
        return "\n" + pp_jaxpr(inner, indent + 6, names)
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)


def pp_eqn_line(eqn, names=None, indent=0):
    names = names or _Names()
    params = ""
    if eqn.params:
        params = "[" + " ".join(f"{k}={_pp_param(v, names, indent)}" for k, v in eqn.params.items()) + "]"
    lhs = " ".join(f"{names(v)}:{v.aval.str_short()}" for v in eqn.outvars)
    rhs = " ".join(names(a) for a in eqn.inputs)
    return f"{lhs} = {eqn.primitive.name}{params} {rhs}".rstrip()


def pp_jaxpr(jaxpr: Jaxpr, indent=0, names=None) -> str:
    names = names or _Names()
    pad = " " * indent

    def binders(vs):
        return " ".join(f"{names(v)}:{v.aval.str_short()}" for v in vs)

    lines = [f"{pad}{{ lambda {binders(jaxpr.constvars)}; {binders(jaxpr.invars)}. let"]
    for eqn in jaxpr.eqns:
        lines.append(f"{pad}    {pp_eqn_line(eqn, names, indent + 4)}")
    outs = ", ".join(names(v) for v in jaxpr.outvars)
    lines.append(f"{pad}  in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Staging (make_jaxpr) and partial evaluation (the known/unknown split)
# --------------------------------------------------------------------------

class StagingTracer(Tracer):
    __slots__ = ("ir_var",)

    def __init__(self, trace, var):
        self._trace = trace
        self.ir_var = var

    @property
    def aval(self):
        return self.ir_var.aval


_SCALAR_LITERAL_TYPES = (bool, int, float, complex, np.bool_, np.number)


class StagingInterpreter(Interpreter):
    """Records equations into a jaxpr being built.

    With ``forward_known=True`` it is a *partial evaluator*: operations on
    values it does not own (known values) run now, on the parent interpreter;
    only operations touching its own tracers are staged.  Reverse mode uses
    it to build the linear (tangent) jaxpr, whose constants are the residuals.
    """

    kind = "staging"

    def __init__(self, parent, name="make_jaxpr", fun=None, forward_known=False):
        super().__init__(parent, name, fun)
        self.forward_known = forward_known
        self.eqns = []
        self.constvar_of = {}       # id(value) -> Var
        self.const_values = []      # (Var, value), in creation order
        self.record_source = not forward_known

    def new_arg(self, aval):
        return StagingTracer(self, Var(aval))

    def to_atom(self, x):
        if type(x) is StagingTracer and x._trace is self:
            return x.ir_var
        if isinstance(x, Tracer):
            x._check_alive()
        elif isinstance(x, _SCALAR_LITERAL_TYPES):
            return Literal(x, aval_of(x))
        v = self.constvar_of.get(id(x))
        if v is None:
            aval = aval_of(x)
            v = self.constvar_of[id(x)] = Var(aval.strip_weak_type() if not isinstance(x, Tracer) else aval)
            self.const_values.append((v, x))
        return v

    def process_primitive(self, prim, args, params):
        if self.forward_known:
            for a in args:
                if type(a) is StagingTracer and a._trace is self:
                    break
            else:
                tls = _tls
                tls.interp = self.parent
                try:
                    return prim.bind(*args, **params)
                finally:
                    tls.interp = self
        elif not prim.multiple_results and _all_python_scalars(args):
            # Constant-fold operations on Python scalars into a Python scalar: the
            # result stays weakly typed, exactly as its abstract value says (NumPy
            # would make it a strong float64 if the jaxpr evaluated it later).
            out = prim.impl(*args, **params)
            return out.item() if isinstance(out, np.generic) else out
        atoms = [self.to_atom(a) for a in args]
        try:
            out_aval = prim.abstract_eval(*[a.aval for a in atoms], **params)
        except (ValueError, TypeError, IndexError) as e:
            _add_note(e, f"functad: raised by primitive '{prim.name}' while tracing, called from "
                         f"{user_source_line(2)}")
            raise
        source = user_source_line(2) if self.record_source else None
        if prim.multiple_results:
            outvars = [Var(a) for a in out_aval]
            self.eqns.append(Eqn(prim, atoms, outvars, params, source))
            return [StagingTracer(self, v) for v in outvars]
        v = Var(out_aval)
        self.eqns.append(Eqn(prim, atoms, [v], params, source))
        return StagingTracer(self, v)

    def build(self, in_tracers, outs):
        """Close over the recorded equations: returns ``(Jaxpr, consts)``.

        ``outs`` may contain own tracers, constants, or ``None`` (which the
        caller handles); constants become constvars.
        """
        invars = [t.ir_var for t in in_tracers]
        outvars = [self.to_atom(o) for o in outs]
        constvars = [v for v, _ in self.const_values]
        consts = [x for _, x in self.const_values]
        jaxpr = Jaxpr(constvars, invars, outvars, self.eqns)
        return jaxpr, consts


def trace_to_jaxpr(fun_flat, in_avals, name="make_jaxpr", fun=None):
    """Stage ``fun_flat`` (a function of flat arrays returning a flat list)
    on abstract inputs.  Returns a :class:`ClosedJaxpr`."""
    with new_interpreter(StagingInterpreter, name, fun) as st:
        args = [st.new_arg(a) for a in in_avals]
        outs = fun_flat(*args)
        jaxpr, consts = st.build(args, outs)
    return ClosedJaxpr(jaxpr, consts)


def make_jaxpr(fun, static_argnums=()):
    """Return a function that gives the jaxpr of ``fun`` for given example arguments.

    >>> import functad as fd, functad.numpy as fnp
    >>> print(fd.make_jaxpr(lambda x, y: x * y + 1.0)(1.0, 2.0))
    { lambda ; a:f64[] b:f64[]. let
        c:f64[] = mul a b
        d:f64[] = add c 1.0
      in (d,) }
    """
    from functad import tree_util as tu
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)

    def make(*args, **kwargs):
        dyn = [a for i, a in enumerate(args) if i not in static_argnums]
        leaves, treedef = tu.tree_flatten((dyn, kwargs))
        in_avals = [aval_of(x) for x in leaves]

        def flat(*xs):
            dyn_args, kw = tu.tree_unflatten(treedef, list(xs))
            it = iter(dyn_args)
            full = [a if i in static_argnums else next(it) for i, a in enumerate(args)]
            return tu.tree_leaves(fun(*full, **kw))
        return trace_to_jaxpr(flat, in_avals, "make_jaxpr", fun)
    return make
