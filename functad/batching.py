"""vmap: the batching transform.

:class:`BatchInterpreter` pushes ``(value, batch_dim)`` pairs through each
primitive's ``batch`` rule: ``prim.batch(vals, dims, **params) -> (out,
out_dim)`` where ``dims[i]`` is the position of the batch axis in ``vals[i]``
or ``None`` when that operand is not batched (it is then the same for every
example, and stays unbatched: rules do not broadcast it needlessly).

Example
-------
>>> import functad as fd, functad.numpy as fnp
>>> fd.vmap(lambda x, y: x * y, in_axes=(0, None))(fnp.ones((3, 2)), fnp.arange(2.0))
Array([[0., 1.],
       [0., 1.],
       [0., 1.]])
"""

from __future__ import annotations

import numpy as np

from functad import core
from functad import tree_util as tu
from functad.core import Interpreter, Tracer, aval_of, ConcretizationTypeError

__all__ = ["vmap", "BatchTracer", "BatchInterpreter", "moveaxis", "bdim_to_front",
           "broadcast_batched", "elementwise_batch_rule"]


class BatchTracer(Tracer):
    __slots__ = ("val", "bdim")

    def __init__(self, trace, val, bdim):
        self._trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def aval(self):
        a = aval_of(self.val)
        shape = a.shape[:self.bdim] + a.shape[self.bdim + 1:]
        return core._cached_aval(shape, a.dtype, a.weak_type)

    @property
    def shape(self):
        s = self.val.shape
        return s[:self.bdim] + s[self.bdim + 1:]

    def to_concrete(self, what):
        self._check_alive()
        f = core.user_frame(3)
        where = f" at {f.f_code.co_filename}:{f.f_lineno} (in {f.f_code.co_name})" if f else ""
        raise ConcretizationTypeError(
            f"{what} was called on a batched value of type {self.aval.str_short()}{where}, "
            f"under {self._trace.describe()}. Each example of the batch may take a different "
            "branch, so Python control flow cannot depend on it. Use functad.numpy.where to "
            "select elementwise, or functad.lax.cond / functad.lax.while_loop.")


class BatchInterpreter(Interpreter):
    """Pushes (value, batch dimension) pairs through each primitive's ``batch`` rule."""

    kind = "vmap"
    adopted = None      # another level whose values count as this one's (backprop's swap)

    def __init__(self, parent, axis_size, name="vmap", fun=None):
        super().__init__(parent, name, fun)
        self.axis_size = axis_size

    def process_primitive(self, prim, args, params):
        vals, dims = [], []
        mine = False
        adopted = self.adopted
        for a in args:
            if type(a) is BatchTracer and (a._trace is self or a._trace is adopted):
                vals.append(a.val)
                dims.append(a.bdim)
                mine = True
            else:
                vals.append(a)
                dims.append(None)
        if not mine and prim.inline is not None:
            return prim.inline(args, params)
        tls = core._tls
        tls.interp = self.parent
        try:
            if not mine:
                return prim.bind(*vals, **params)
            if prim.batch is None:
                raise NotImplementedError(
                    f"functad.vmap: primitive '{prim.name}' has no batching rule yet")
            rule = prim.batch
            if getattr(rule, _ELEMENTWISE, False) and \
                    (out_dim := aligned_batch_dim(vals, dims)) is not None:
                # an elementwise primitive whose operands line up: its rule's first
                # case, without the rule and bind in between
                out = self.parent.process_primitive(prim, vals, params)
            else:
                out, out_dim = rule(vals, dims, **params)
        finally:
            tls.interp = self
        if prim.multiple_results:
            return [o if d is None else BatchTracer(self, o, d) for o, d in zip(out, out_dim)]
        return out if out_dim is None else BatchTracer(self, out, out_dim)


# --------------------------------------------------------------------------
# Helpers for batching rules
# --------------------------------------------------------------------------

def moveaxis(x, src, dst):
    """Move axis ``src`` of ``x`` to position ``dst`` (a ``transpose`` primitive)."""
    from functad.lax.shapes import transpose
    nd = len(core.shape_of(x))
    src, dst = src % nd, dst % nd
    if src == dst:
        return x
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return transpose(x, tuple(perm))


def bdim_to_front(x, d, size=None):
    """``x`` with its batch axis first; an unbatched ``x`` is broadcast to ``size``."""
    if d is None:
        from functad.lax.shapes import broadcast_to
        shape = core.shape_of(x)
        return broadcast_to(x, (size,) + tuple(shape))
    return moveaxis(x, d, 0)


def broadcast_batched(vals, dims):
    """Prepare operands of a NumPy-broadcasting primitive: batched operands get
    their batch axis first and enough size-1 axes to line up with the others;
    unbatched operands are left alone (they broadcast from the right)."""
    from functad.lax.shapes import reshape
    nd = max(len(core.shape_of(v)) - (d is not None) for v, d in zip(vals, dims))
    out = []
    for v, d in zip(vals, dims):
        if d is None:
            out.append(v)
            continue
        v = moveaxis(v, d, 0)
        shape = core.shape_of(v)
        missing = nd - (len(shape) - 1)
        if missing:
            v = reshape(v, (shape[0],) + (1,) * missing + tuple(shape[1:]))
        out.append(v)
    return out


def aligned_batch_dim(vals, dims):
    """The common batch axis of an elementwise primitive's operands when they
    line up as they are (nothing to move): batched operands share their batch
    axis and rank, and unbatched ones (scalars...) broadcast from the right
    within an example's dimensions, as NumPy would do for one example.  None
    when they do not."""
    d0 = None
    nd = -1
    unbatched = 0
    for v, d in zip(vals, dims):
        n = len(getattr(v, "shape", ()))       # (core.shape_of, inline: a hot path)
        if d is not None:
            if d0 is None:
                d0, nd = d, n
            elif d != d0 or n != nd:
                return None
        elif n >= unbatched:
            unbatched = n + 1
    if unbatched and (d0 != 0 or unbatched > nd):
        return None
    return d0


def elementwise_batch_rule(prim):
    """Batching rule shared by every NumPy-broadcasting elementwise primitive
    (whose first case ``BatchInterpreter`` applies directly: it knows the
    rule by its ``_ELEMENTWISE`` attribute)."""
    def rule(vals, dims, **params):
        d0 = aligned_batch_dim(vals, dims)
        if d0 is not None:
            return prim.bind(*vals, **params), d0
        return prim.bind(*broadcast_batched(vals, dims), **params), 0
    setattr(rule, _ELEMENTWISE, True)
    return rule


_ELEMENTWISE = "elementwise"


# --------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------

def _is_none(x):
    return x is None


def _broadcast_prefix(prefix, tree, what):
    """One entry of ``prefix`` (a pytree prefix of ``tree``, ``None`` as a leaf)
    for each leaf of ``tree``."""
    p_leaves, p_tree = tu.tree_flatten(prefix, is_leaf=_is_none)
    try:
        subtrees = p_tree.flatten_up_to(tree)
    except ValueError as e:
        raise ValueError(f"vmap {what} specification must be a tree prefix of the "
                         f"corresponding value, got specification {prefix!r} for value tree "
                         f"{tu.tree_structure(tree)}. {e}") from None
    out = []
    for ax, sub in zip(p_leaves, subtrees):
        out.extend([ax] * len(tu.tree_leaves(sub)))
    return out


_LEAVES = (np.ndarray, np.generic, Tracer, float, int, complex)


def _leaf_axes(in_axes, args):
    """The axes of ``args`` when each argument is one array and each axis an
    int or None (the common case, which needs no pytree flattening), else None."""
    axes = in_axes if type(in_axes) is tuple else (in_axes,) * len(args)
    for a, ax in zip(args, axes):
        if not (ax is None or type(ax) is int) or not isinstance(a, _LEAVES):
            return None
    return list(axes)


def _check_axis(ax, what):
    if ax is not None and (not isinstance(ax, (int, np.integer)) or isinstance(ax, bool)):
        raise TypeError(f"vmap {what} must be an int, None, or a (nested) tuple/list/dict of "
                        f"them, got {ax!r}")


def vmap(fun, in_axes=0, out_axes=0, axis_size=None):
    """Vectorise ``fun`` over a new leading (or ``in_axes``) axis of its arguments.

    Parameters
    ----------
    fun : function of pytrees of arrays.
    in_axes : int, None, or a pytree prefix of the positional arguments (a
        tuple with one entry per argument) giving the mapped axis of each
        input; ``None`` means not mapped.  Keyword arguments are mapped over
        axis 0.
    out_axes : int, None, or a pytree prefix of the outputs: where the mapped
        axis goes in each output.
    axis_size : the size of the mapped axis, needed only when no input is mapped.

    Returns
    -------
    The vectorised function.

    Example
    -------
    >>> import functad as fd, functad.numpy as fnp
    >>> fd.vmap(fnp.sum)(fnp.ones((4, 3)))
    Array([3., 3., 3., 3.])
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not (in_axes is None or isinstance(in_axes, tuple)
            or (isinstance(in_axes, (int, np.integer)) and not isinstance(in_axes, bool))):
        raise TypeError("vmap in_axes must be an int, None, or a tuple (or list) with one entry "
                        f"per positional argument, got {type(in_axes).__name__} {in_axes!r}; "
                        "to give axes for the leaves of a dict argument, wrap it: "
                        "in_axes=({'a': 0, 'b': None},)")

    def batched(*args, **kwargs):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(f"vmap in_axes must be an int, None, or a tuple of entries "
                             f"corresponding to the positional arguments passed to the "
                             f"function, but got len(in_axes)={len(in_axes)}, "
                             f"len(args)={len(args)}")
        axes = None if kwargs else _leaf_axes(in_axes, args)
        if axes is None:
            leaves, in_tree = tu.tree_flatten((args, kwargs))
            axes = _broadcast_prefix(in_axes if isinstance(in_axes, tuple)
                                     else (in_axes,) * len(args), args, "in_axes")
            axes += [0] * (len(leaves) - len(axes))     # keyword arguments: axis 0
            for ax in axes:
                _check_axis(ax, "in_axes")
        else:
            leaves, in_tree = args, None
        n = None
        consistent = True
        norm_axes = []
        for x, ax in zip(leaves, axes):
            if ax is None:
                norm_axes.append(None)
                continue
            shape = core.shape_of(x) if not isinstance(x, (list, tuple)) else np.shape(x)
            nd = len(shape)
            if not -nd <= ax < nd:
                raise ValueError(f"vmap was requested to map its argument along axis {ax}, "
                                 f"which implies that its rank should be at least {max(ax + 1, -ax)}, "
                                 f"but is only {nd} (its shape is {tuple(shape)})")
            ax = ax % nd
            norm_axes.append(ax)
            if n is None:
                n = shape[ax]
            elif shape[ax] != n:
                consistent = False
        if not consistent:
            sizes = {}
            for i, (x, ax) in enumerate(zip(leaves, norm_axes)):
                if ax is not None:
                    sizes.setdefault(np.shape(x)[ax], []).append(i)
            paths = ["args" + tu.keystr(p) for p, _ in tu.tree_flatten_with_path(args)[0]]
            paths += ["kwargs" + tu.keystr(p) for p, _ in tu.tree_flatten_with_path(kwargs)[0]]
            desc = "; ".join(
                f"size {n}: " + ", ".join(
                    f"argument {paths[i]} of shape {tuple(core.shape_of(leaves[i]))}"
                    for i in idx) for n, idx in sizes.items())
            raise ValueError(f"vmap got inconsistent sizes for the array axes to be mapped: {desc}")
        if n is not None:
            if axis_size is not None and axis_size != n:
                raise ValueError(f"vmap got axis_size={axis_size} but the mapped inputs have "
                                 f"size {n}")
        elif axis_size is None:
            raise ValueError("vmap must have at least one non-None value in in_axes, or be "
                             "given axis_size")
        else:
            n = axis_size
        bi = BatchInterpreter(core._tls.interp, n, "vmap", fun)
        ins = [x if ax is None else BatchTracer(bi, x, ax) for x, ax in zip(leaves, norm_axes)]
        a, k = (ins, {}) if in_tree is None else tu.tree_unflatten(in_tree, ins)
        out = core.call_under(bi, fun, a, k)
        if type(out) is BatchTracer and out._trace is bi and type(out_axes) is int:
            nd = len(out.val.shape)     # one mapped output: no pytree, nothing to check
            if -nd <= out_axes < nd:
                ax = out_axes % nd
                return out.val if out.bdim == ax else moveaxis(out.val, out.bdim, ax)
        o_leaves, o_tree = tu.tree_flatten(out)
        oaxes = _broadcast_prefix(out_axes, out, "out_axes")
        res = []
        for o, ax in zip(o_leaves, oaxes):
            _check_axis(ax, "out_axes")
            mine = type(o) is BatchTracer and o._trace is bi
            if not mine:
                try:
                    aval_of(o)
                except TypeError:
                    raise TypeError(f"vmap: the function {getattr(fun, '__name__', fun)!r} "
                                    f"returned a value of type {type(o).__name__} ({o!r:.60}), "
                                    "which is not an array; vmapped functions must return "
                                    "arrays, scalars or pytrees of them") from None
            if ax is None:
                if mine:
                    raise ValueError("vmap has mapped output but out_axes is None: the output "
                                     f"of shape {o.aval.shape} varies across the batch")
                res.append(o)
                continue
            nd = len(core.shape_of(o.val if mine else o)) + (not mine)
            if not -nd <= ax < nd:
                raise ValueError(f"vmap out_axes={ax} is out of bounds for an output of rank "
                                 f"{nd - 1} (rank {nd} with the mapped axis)")
            if mine:
                res.append(moveaxis(o.val, o.bdim, ax % nd))
            else:
                from functad.lax.shapes import broadcast_to
                b = broadcast_to(o, (n,) + tuple(core.shape_of(o)))
                res.append(moveaxis(b, 0, ax % nd))
        return tu.tree_unflatten(o_tree, res)
    batched.__wrapped__ = fun
    batched.__name__ = f"vmap({getattr(fun, '__name__', 'fun')})"
    return batched
