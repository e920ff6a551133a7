"""Pytrees: nested containers of arrays, flattened to a list of leaves.

A *pytree* is a nested structure of containers whose non-container
contents are *leaves*.  The built-in containers are ``tuple``, ``list``,
``dict`` (children in sorted-key order), ``collections.OrderedDict``
(insertion order), ``collections.defaultdict``, namedtuples (any ``tuple``
subclass with a ``_fields`` attribute) and ``None`` (a container with no
children).  More container types can be added with
:func:`register_pytree_node`, :func:`register_pytree_node_class` and
:func:`register_dataclass`.  Everything else, NumPy arrays included, is a
leaf.

The names and semantics follow ``jax.tree_util``.  The implementation is
pure Python and written for the per-call path of a jit cache: node types
are dispatched through one ``dict`` lookup on the exact type, leaves are
handled inline in the parent's loop (no call per leaf), and a treedef is a
plain nested tuple whose hash and equality run in C.

Examples
--------
>>> from functad.tree_util import tree_flatten, tree_unflatten, tree_map
>>> leaves, treedef = tree_flatten({'b': (1, 2), 'a': None})
>>> leaves
[1, 2]
>>> treedef
PyTreeDef({'a': None, 'b': (*, *)})
>>> tree_unflatten(treedef, [10, 20])
{'a': None, 'b': (10, 20)}
>>> tree_map(lambda x, y: x + y, (1, [2]), (10, [20]))
(11, [22])
"""

from collections import OrderedDict, defaultdict
import dataclasses as _dataclasses
import functools as _functools

__all__ = [
    "PyTreeDef",
    "tree_flatten",
    "tree_unflatten",
    "tree_leaves",
    "tree_structure",
    "tree_map",
    "tree_reduce",
    "tree_all",
    "tree_transpose",
    "tree_flatten_with_path",
    "tree_leaves_with_path",
    "tree_map_with_path",
    "keystr",
    "SequenceKey",
    "DictKey",
    "GetAttrKey",
    "FlattenedIndexKey",
    "register_pytree_node",
    "register_pytree_with_keys",
    "register_pytree_node_class",
    "register_dataclass",
    "all_leaves",
    "treedef_is_leaf",
    "treedef_is_strict_leaf",
    "treedef_children",
    "treedef_tuple",
]

_NoneType = type(None)

# ---------------------------------------------------------------------------
# Internal representation
#
# A tree structure ("struct") is a nested tuple:
#
#   * ``None``                          a leaf
#   * ``(node_type, aux, children)``    an internal node, where ``children``
#                                       is a tuple of structs and ``aux`` is
#                                       the node's hashable metadata (sorted
#                                       keys for a dict, ``None`` for tuple,
#                                       list and namedtuple, user data for a
#                                       registered type).
#
# Using ``None`` as the leaf marker is unambiguous (a node is always a
# 3-tuple) and makes the leaf test an identity check.  Equality and hashing
# of structs are tuple equality and tuple hashing, done in C.
# ---------------------------------------------------------------------------


class _Node:
    """How to take apart and rebuild one container type (internal)."""

    __slots__ = ("type", "flatten", "unflatten", "flatten_with_keys", "describe", "is_namedtuple")

    def __init__(self, type_, flatten, unflatten, flatten_with_keys, describe, is_namedtuple=False):
        self.type = type_
        self.is_namedtuple = is_namedtuple
        # flatten(x) -> (iterable of children, hashable aux)
        self.flatten = flatten
        # unflatten(aux, tuple of children) -> x
        self.unflatten = unflatten
        # flatten_with_keys(x) -> (iterable of (key, child), aux)
        self.flatten_with_keys = flatten_with_keys
        # describe(aux, list of child reprs) -> str, for PyTreeDef.__repr__
        self.describe = describe

    def __repr__(self):
        return f"<pytree node handler for {self.type!r}>"


def _sorted_keys(d):
    """Return the keys of ``d`` in a deterministic order, as a tuple.

    Keys are sorted.  Mixed key types that cannot be compared with each
    other are sorted by (type name, key); if that fails too, insertion order
    is kept.
    """
    try:
        return tuple(sorted(d))
    except TypeError:
        pass
    try:
        return tuple(sorted(d, key=lambda k: (type(k).__qualname__, k)))
    except TypeError:
        return tuple(d)


# Registry of explicitly registered container types (type -> _Node), and a
# dispatch table (type -> _Node, or None for "leaf") that also remembers
# namedtuple classes and leaf types seen so far.  The table is a plain dict
# so that lookups take the fast path of ``dict.__getitem__``; misses go
# through ``_classify``.
_REGISTRY = {}
_TABLE = {}
_TABLE_MAX = 20000  # guards against unbounded growth with dynamic classes


def _classify(t):
    """Find the handler for type ``t`` (None for a leaf) and cache it."""
    h = _REGISTRY.get(t)
    if h is None and issubclass(t, tuple) and hasattr(t, "_fields"):
        h = _namedtuple_node(t)
    if len(_TABLE) >= _TABLE_MAX:
        _TABLE.clear()
        _TABLE.update(_REGISTRY)
    _TABLE[t] = h
    return h


def _register(node):
    t = node.type
    if not isinstance(t, type):
        raise TypeError(f"pytree node type must be a class, got {t!r}")
    if t in _REGISTRY:
        raise ValueError(f"Duplicate pytree node registration: {t!r} is already registered.")
    _REGISTRY[t] = node
    # Overwrite any cached classification: the type may have been seen as a
    # leaf (or as a namedtuple) before it was registered.
    _TABLE[t] = node


# -- built-in node handlers --------------------------------------------------


def _seq_describe(open_, close):
    def describe(aux, kids):
        if open_ == "(" and len(kids) == 1:
            return f"({kids[0]},)"
        return open_ + ", ".join(kids) + close

    return describe


def _seq_with_keys(x):
    return [(SequenceKey(i), c) for i, c in enumerate(x)], None


def _dict_flatten(x):
    keys = _sorted_keys(x)
    return [x[k] for k in keys], keys


def _dict_with_keys(x):
    keys = _sorted_keys(x)
    return [(DictKey(k), x[k]) for k in keys], keys


def _dict_describe(aux, kids):
    return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(aux, kids)) + "}"


def _odict_flatten(x):
    return list(x.values()), tuple(x)


def _odict_with_keys(x):
    return [(DictKey(k), c) for k, c in x.items()], tuple(x)


def _ddict_flatten(x):
    keys = _sorted_keys(x)
    return [x[k] for k in keys], (x.default_factory, keys)


def _ddict_with_keys(x):
    keys = _sorted_keys(x)
    return [(DictKey(k), x[k]) for k in keys], (x.default_factory, keys)


def _ddict_describe(aux, kids):
    factory, keys = aux
    fname = getattr(factory, "__name__", None) or repr(factory)
    return f"defaultdict({fname}, {_dict_describe(keys, kids)})"


_NONE_NODE = _Node(
    _NoneType,
    lambda x: ((), None),
    lambda aux, kids: None,
    lambda x: ((), None),
    lambda aux, kids: "None",
)
_TUPLE_NODE = _Node(
    tuple,
    lambda x: (x, None),
    lambda aux, kids: tuple(kids),
    _seq_with_keys,
    _seq_describe("(", ")"),
)
_LIST_NODE = _Node(
    list,
    lambda x: (x, None),
    lambda aux, kids: list(kids),
    _seq_with_keys,
    _seq_describe("[", "]"),
)
_DICT_NODE = _Node(
    dict,
    _dict_flatten,
    lambda keys, kids: dict(zip(keys, kids)),
    _dict_with_keys,
    _dict_describe,
)
_ODICT_NODE = _Node(
    OrderedDict,
    _odict_flatten,
    lambda keys, kids: OrderedDict(zip(keys, kids)),
    _odict_with_keys,
    lambda aux, kids: f"OrderedDict({_dict_describe(aux, kids)})",
)
_DDICT_NODE = _Node(
    defaultdict,
    _ddict_flatten,
    lambda aux, kids: defaultdict(aux[0], zip(aux[1], kids)),
    _ddict_with_keys,
    _ddict_describe,
)
# The struct of ``None`` never changes: share one tuple.
_NONE_STRUCT = (_NoneType, None, ())

for _n in (_NONE_NODE, _TUPLE_NODE, _LIST_NODE, _DICT_NODE, _ODICT_NODE, _DDICT_NODE):
    _register(_n)
del _n


def _namedtuple_node(cls):
    fields = tuple(cls._fields)
    keys = tuple(GetAttrKey(f) for f in fields)

    def with_keys(x):
        return list(zip(keys, x)), None

    def describe(aux, kids):
        return f"{cls.__name__}(" + ", ".join(f"{f}={c}" for f, c in zip(fields, kids)) + ")"

    return _Node(cls, lambda x: (x, None), lambda aux, kids: cls(*kids), with_keys, describe, True)


def _custom_describe(cls):
    def describe(aux, kids):
        return f"CustomNode({cls.__name__}[{aux!r}], [{', '.join(kids)}])"

    return describe


# ---------------------------------------------------------------------------
# Key paths
# ---------------------------------------------------------------------------


class _KeyEntry:
    """What the key path entries below share: one immutable field (the
    subclass's only slot, set by its ``__init__``), equality and hashing by
    exact type and value, a repr naming the field, and pickling."""

    __slots__ = ()

    @property
    def _value(self):
        return getattr(self, self.__slots__[0])

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self):
        return f"{type(self).__name__}({self.__slots__[0]}={self._value!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other._value == self._value

    def __hash__(self):
        return hash((type(self), self._value))

    def __reduce__(self):
        return (type(self), (self._value,))


class SequenceKey(_KeyEntry):
    """Key path entry for an element of a tuple or list.

    Parameters
    ----------
    idx : int
        Position of the child in the sequence.

    Examples
    --------
    >>> str(SequenceKey(0))
    '[0]'
    """

    __slots__ = ("idx",)
    __match_args__ = ("idx",)

    def __init__(self, idx):
        object.__setattr__(self, "idx", idx)

    def __str__(self):
        return f"[{self.idx!r}]"


class DictKey(_KeyEntry):
    """Key path entry for a value of a dict (or OrderedDict/defaultdict).

    Parameters
    ----------
    key : hashable
        The dictionary key.

    Examples
    --------
    >>> str(DictKey('w'))
    "['w']"
    """

    __slots__ = ("key",)
    __match_args__ = ("key",)

    def __init__(self, key):
        object.__setattr__(self, "key", key)

    def __str__(self):
        return f"[{self.key!r}]"


class GetAttrKey(_KeyEntry):
    """Key path entry for an attribute (namedtuple field, dataclass field).

    Parameters
    ----------
    name : str
        The attribute name.

    Examples
    --------
    >>> str(GetAttrKey('weight'))
    '.weight'
    """

    __slots__ = ("name",)
    __match_args__ = ("name",)

    def __init__(self, name):
        object.__setattr__(self, "name", name)

    def __str__(self):
        return f".{self.name}"


class FlattenedIndexKey(_KeyEntry):
    """Key path entry for the i-th child of a registered node without keys.

    Used for types registered without a ``flatten_with_keys`` function.

    Parameters
    ----------
    key : int
        Index of the child in the node's flattened children.

    Examples
    --------
    >>> str(FlattenedIndexKey(1))
    '[1]'
    """

    __slots__ = ("key",)
    __match_args__ = ("key",)

    def __init__(self, key):
        object.__setattr__(self, "key", key)

    def __str__(self):
        return f"[{self.key!r}]"


def _simple_key(k):
    if type(k) in (SequenceKey, DictKey, GetAttrKey, FlattenedIndexKey):
        return str(k._value)
    return str(k)


def keystr(keys, *, simple=False, separator=""):
    """Format a key path as a string.

    Parameters
    ----------
    keys : tuple of key entries
        A key path, as produced by :func:`tree_flatten_with_path`.
    simple : bool, optional
        If True, print bare keys (``0``, ``w``, ``name``) instead of the
        accessor forms (``[0]``, ``['w']``, ``.name``).
    separator : str, optional
        String placed between entries.

    Returns
    -------
    str

    Examples
    --------
    >>> keystr((DictKey('layers'), SequenceKey(0), GetAttrKey('w')))
    "['layers'][0].w"
    >>> keystr((DictKey('layers'), SequenceKey(0)), simple=True, separator='/')
    'layers/0'
    """
    if simple:
        return separator.join(_simple_key(k) for k in keys)
    return separator.join(str(k) for k in keys)


# ---------------------------------------------------------------------------
# Flattening: the hot path
# ---------------------------------------------------------------------------


def _flatten_node(x, h, append, table=_TABLE, classify=_classify):
    """Flatten node ``x`` (handler ``h``): ``append`` its leaves, return its struct.

    This is the hot path.  Leaves are recognised inline in the parent's
    loop, so a leaf costs one dict lookup and no function call.
    """
    subs = []
    push = subs.append
    if h is _DICT_NODE:
        try:
            keys = sorted(x)
        except TypeError:
            keys = _sorted_keys(x)
        for k in keys:
            c = x[k]
            try:
                hc = table[type(c)]
            except KeyError:
                hc = classify(type(c))
            if hc is None:
                append(c)
                push(None)
            elif hc is _NONE_NODE:
                push(_NONE_STRUCT)
            else:
                push(_flatten_node(c, hc, append))
        return (dict, tuple(keys), tuple(subs))
    if h is _TUPLE_NODE or h is _LIST_NODE:
        children = x
        aux = None
    elif h is _NONE_NODE:
        return _NONE_STRUCT
    else:
        children, aux = h.flatten(x)
    for c in children:
        try:
            hc = table[type(c)]
        except KeyError:
            hc = classify(type(c))
        if hc is None:
            append(c)
            push(None)
        elif hc is _NONE_NODE:
            push(_NONE_STRUCT)
        else:
            push(_flatten_node(c, hc, append))
    return (h.type, aux, tuple(subs))


def _flatten_node_is_leaf(x, h, append, is_leaf, table=_TABLE, classify=_classify):
    """As ``_flatten_node``, but ``is_leaf(child)`` may stop the descent."""
    if h is _NONE_NODE:
        return _NONE_STRUCT
    children, aux = h.flatten(x)
    subs = []
    push = subs.append
    for c in children:
        if is_leaf(c):
            hc = None
        else:
            try:
                hc = table[type(c)]
            except KeyError:
                hc = classify(type(c))
        if hc is None:
            append(c)
            push(None)
        else:
            push(_flatten_node_is_leaf(c, hc, append, is_leaf))
    return (h.type, aux, tuple(subs))


def _collect_leaves(x, h, append, table=_TABLE, classify=_classify):
    """Append the leaves of node ``x`` (handler ``h``) without building a struct."""
    if h is _DICT_NODE:
        try:
            keys = sorted(x)
        except TypeError:
            keys = _sorted_keys(x)
        for k in keys:
            c = x[k]
            try:
                hc = table[type(c)]
            except KeyError:
                hc = classify(type(c))
            if hc is None:
                append(c)
            else:
                _collect_leaves(c, hc, append)
        return
    if h is _TUPLE_NODE or h is _LIST_NODE:
        children = x
    elif h is _NONE_NODE:
        return
    else:
        children = h.flatten(x)[0]
    for c in children:
        try:
            hc = table[type(c)]
        except KeyError:
            hc = classify(type(c))
        if hc is None:
            append(c)
        else:
            _collect_leaves(c, hc, append)


def _handler_of(x, is_leaf):
    """Handler for the root ``x`` (None when ``x`` is a leaf)."""
    if is_leaf is not None and is_leaf(x):
        return None
    try:
        return _TABLE[type(x)]
    except KeyError:
        return _classify(type(x))


def _new_treedef(struct, num_leaves, _new=object.__new__):
    td = _new(PyTreeDef)
    td._struct = struct
    td._num_leaves = num_leaves
    td._hash = None
    td._uses = 0
    td._builder = None
    return td


def tree_flatten(tree, is_leaf=None):
    """Flatten a pytree into a list of leaves and a treedef.

    Parameters
    ----------
    tree : pytree
        The tree to flatten.
    is_leaf : callable, optional
        Called on every node and leaf, root included, before it is taken
        apart; if it returns True the value is treated as a leaf.  For
        example ``is_leaf=lambda x: x is None`` makes ``None`` a leaf.

    Returns
    -------
    leaves : list
        The leaves, left to right (dict children in sorted-key order).
    treedef : PyTreeDef
        The structure, to rebuild the tree with :func:`tree_unflatten`.

    Examples
    --------
    >>> leaves, treedef = tree_flatten([1, {'b': 3, 'a': 2}, None])
    >>> leaves
    [1, 2, 3]
    >>> treedef
    PyTreeDef([*, {'a': *, 'b': *}, None])
    """
    leaves = []
    if is_leaf is None:
        try:
            h = _TABLE[type(tree)]
        except KeyError:
            h = _classify(type(tree))
        if h is None:
            return [tree], _LEAF_TREEDEF
        struct = _flatten_node(tree, h, leaves.append)
    else:
        h = _handler_of(tree, is_leaf)
        if h is None:
            return [tree], _LEAF_TREEDEF
        struct = _flatten_node_is_leaf(tree, h, leaves.append, is_leaf)
    return leaves, _new_treedef(struct, len(leaves))


def tree_leaves(tree, is_leaf=None):
    """Return the leaves of a pytree as a list.

    Parameters
    ----------
    tree : pytree
    is_leaf : callable, optional
        See :func:`tree_flatten`.

    Returns
    -------
    list

    Examples
    --------
    >>> tree_leaves({'b': [2, 3], 'a': 1, 'c': None})
    [1, 2, 3]
    """
    if is_leaf is not None:
        return tree_flatten(tree, is_leaf)[0]
    try:
        h = _TABLE[type(tree)]
    except KeyError:
        h = _classify(type(tree))
    if h is None:
        return [tree]
    leaves = []
    _collect_leaves(tree, h, leaves.append)
    return leaves


def tree_structure(tree, is_leaf=None):
    """Return the treedef of a pytree.

    Parameters
    ----------
    tree : pytree
    is_leaf : callable, optional
        See :func:`tree_flatten`.

    Returns
    -------
    PyTreeDef

    Examples
    --------
    >>> tree_structure((1, {'x': 2}))
    PyTreeDef((*, {'x': *}))
    >>> tree_structure((1, {'x': 2})).num_leaves
    2
    """
    return tree_flatten(tree, is_leaf)[1]


# ---------------------------------------------------------------------------
# Unflattening
# ---------------------------------------------------------------------------


def _unflatten(struct, nxt, table=_TABLE):
    """Rebuild the node ``struct``, taking leaves from the callable ``nxt``."""
    t, aux, subs = struct
    kids = []
    push = kids.append
    for s in subs:
        if s is None:
            push(nxt())
        elif s is _NONE_STRUCT:
            push(None)
        else:
            push(_unflatten(s, nxt))
    if t is tuple:
        return tuple(kids)
    if t is list:
        return kids
    if t is dict:
        return dict(zip(aux, kids))
    if t is _NoneType:
        return None
    try:
        h = table[t]
    except KeyError:
        h = _classify(t)
    return h.unflatten(aux, tuple(kids))


def _unflatten_unchecked(struct, leaves):
    if struct is None:
        return leaves[0]
    return _unflatten(struct, iter(leaves).__next__)


# A treedef that is unflattened many times (the output treedef held by a jit
# cache entry) gets a compiled builder: one generated Python expression that
# builds the whole tree from the leaf list, e.g. for ``[{'b': *, 'w': *}]``
#
#     lambda l: [{'b': l[0], 'w': l[1]}]
#
# It runs 3-6x faster than the interpreter above but costs 0.1-20 ms to
# compile, so it is built only after a treedef object has been unflattened
# _COMPILE_AFTER times.  Constants (dict keys that are not plain literals,
# node classes, aux data) are passed in through the eval namespace, never
# through source text.
_COMPILE_AFTER = 64
_COMPILE_MAX_NODES = 20000
_LITERAL_KEY_TYPES = (str, int, bool, _NoneType)


def _compile_builder(struct):
    """Return a function ``leaves -> tree`` for ``struct``, or None if too big."""
    if _count_nodes(struct) > _COMPILE_MAX_NODES:
        return None
    ns = {}
    counter = [0]

    def const(value):
        name = f"_c{len(ns)}"
        ns[name] = value
        return name

    def emit(s):
        if s is None:
            i = counter[0]
            counter[0] = i + 1
            return f"l[{i}]"
        t, aux, subs = s
        kids = [emit(c) for c in subs]
        if t is tuple:
            return "(" + "".join(k + ", " for k in kids) + ")"
        if t is list:
            return "[" + ", ".join(kids) + "]"
        if t is dict:
            items = []
            for k, v in zip(aux, kids):
                key = repr(k) if type(k) in _LITERAL_KEY_TYPES else const(k)
                items.append(f"{key}: {v}")
            return "{" + ", ".join(items) + "}"
        if t is _NoneType:
            return "None"
        h = _TABLE[t] if t in _TABLE else _classify(t)
        if h.is_namedtuple:
            return f"{const(t)}({', '.join(kids)})"
        args = "(" + "".join(k + ", " for k in kids) + ")"
        return f"{const(h.unflatten)}({const(aux)}, {args})"

    try:
        src = "lambda l: " + emit(struct)
        return eval(compile(src, "<functad.tree_util unflatten>", "eval"), ns)
    except (SyntaxError, RecursionError, MemoryError, ValueError):  # e.g. too deeply nested
        return None


def tree_unflatten(treedef, leaves):
    """Rebuild a pytree from a treedef and leaves.

    Parameters
    ----------
    treedef : PyTreeDef
        The structure, from :func:`tree_flatten` or :func:`tree_structure`.
    leaves : iterable
        Exactly ``treedef.num_leaves`` values.

    Returns
    -------
    pytree

    Raises
    ------
    ValueError
        If the number of leaves does not match the treedef.

    Examples
    --------
    >>> treedef = tree_structure({'a': 0, 'b': (0, 0)})
    >>> tree_unflatten(treedef, [1, 2, 3])
    {'a': 1, 'b': (2, 3)}
    """
    if type(treedef) is not PyTreeDef:
        raise TypeError(f"tree_unflatten expects a PyTreeDef as first argument, got {type(treedef).__name__}")
    return treedef.unflatten(leaves)


# ---------------------------------------------------------------------------
# Structure matching (tree prefixes)
# ---------------------------------------------------------------------------


class _Mismatch(ValueError):
    """Internal: a tree does not have a given structure as a prefix."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail
        self.path = []  # keys, innermost first

    def keypath(self):
        return tuple(reversed(self.path))


def _short_repr(x, limit=80):
    try:
        r = repr(x)
    except Exception:  # pragma: no cover - a broken __repr__
        r = f"<{type(x).__name__} object>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _node_kind(t):
    if t is _NoneType:
        return "None"
    return t.__name__


def _child_keys(struct, x):
    """Key entries for the children of node ``x`` that matches ``struct``."""
    t, aux, subs = struct
    if t is dict or t is defaultdict:
        keys = aux if t is dict else aux[1]
        return [DictKey(k) for k in keys]
    try:
        h = _TABLE[t]
    except KeyError:
        h = _classify(t)
    if h.flatten_with_keys is not None:
        try:
            return [k for k, _ in h.flatten_with_keys(x)[0]]
        except Exception:  # pragma: no cover - fall back to indices
            pass
    return [FlattenedIndexKey(i) for i in range(len(subs))]


def _up_to(struct, x, out, table=_TABLE):
    """Append to ``out`` the subtrees of ``x`` at the leaves of ``struct``."""
    t, aux, subs = struct
    tx = type(x)
    if t is tuple or t is list:
        if tx is not t:
            raise _Mismatch(f"expected a {t.__name__}, got {tx.__name__}: {_short_repr(x)}")
        if len(x) != len(subs):
            raise _Mismatch(
                f"expected a {t.__name__} of length {len(subs)}, got length {len(x)}: {_short_repr(x)}"
            )
        children = x
    elif t is dict:
        if tx is not dict:
            raise _Mismatch(f"expected a dict, got {tx.__name__}: {_short_repr(x)}")
        if len(x) != len(aux) or not all(k in x for k in aux):
            got = _sorted_keys(x)
            missing = [k for k in aux if k not in x]
            extra = [k for k in got if k not in aux]
            raise _Mismatch(
                f"expected a dict with keys {list(aux)!r}, got keys {list(got)!r}"
                f" (missing {missing!r}, unexpected {extra!r})"
            )
        children = [x[k] for k in aux]
    elif t is _NoneType:
        if x is not None:
            raise _Mismatch(f"expected None, got {tx.__name__}: {_short_repr(x)}")
        return
    else:
        if tx is not t:
            raise _Mismatch(f"expected a {t.__name__}, got {tx.__name__}: {_short_repr(x)}")
        try:
            h = table[t]
        except KeyError:
            h = _classify(t)
        children, xaux = h.flatten(x)
        children = list(children)
        try:
            same = xaux == aux
            same = bool(same)
        except Exception:
            same = xaux is aux
        if not same:
            raise _Mismatch(
                f"node data of {t.__name__} differs: expected {_short_repr(aux)}, got {_short_repr(xaux)}"
            )
        if len(children) != len(subs):
            raise _Mismatch(
                f"expected {t.__name__} with {len(subs)} children, got {len(children)}"
            )
    i = 0
    try:
        for s in subs:
            if s is None:
                out.append(children[i])
            else:
                _up_to(s, children[i], out)
            i += 1
    except _Mismatch as e:
        e.path.append(_child_keys(struct, x)[i])
        raise


# ---------------------------------------------------------------------------
# PyTreeDef
# ---------------------------------------------------------------------------


def _count_leaves(struct):
    if struct is None:
        return 1
    return sum(_count_leaves(s) for s in struct[2])


def _count_nodes(struct):
    if struct is None:
        return 1
    return 1 + sum(_count_nodes(s) for s in struct[2])


def _describe(struct):
    if struct is None:
        return "*"
    t, aux, subs = struct
    kids = [_describe(s) for s in subs]
    try:
        h = _TABLE[t]
    except KeyError:
        h = _classify(t)
    if h is None:  # pragma: no cover - cannot happen for a valid struct
        return f"<unregistered {t.__name__}>"
    return h.describe(aux, kids)


class PyTreeDef:
    """The structure of a pytree: its containers, without the leaves.

    Treedefs are immutable, hashable and compare equal exactly when the two
    trees have the same structure (same container types, same dict keys,
    same node metadata, leaves in the same places).  The hash is computed
    once per treedef and cached, so a treedef is cheap to use as (part of) a
    cache key.  Create treedefs with :func:`tree_flatten` or
    :func:`tree_structure`, not with the constructor.

    Attributes
    ----------
    num_leaves : int
        Number of leaves.
    num_nodes : int
        Number of nodes, leaves and ``None`` included.

    Examples
    --------
    >>> td = tree_structure({'a': 1, 'b': (2, 3)})
    >>> td
    PyTreeDef({'a': *, 'b': (*, *)})
    >>> td.num_leaves, td.num_nodes
    (3, 5)
    >>> td == tree_structure({'b': (0, 0), 'a': 0})
    True
    >>> td.unflatten(['x', 'y', 'z'])
    {'a': 'x', 'b': ('y', 'z')}
    """

    __slots__ = ("_struct", "_num_leaves", "_hash", "_uses", "_builder", "__weakref__")

    def __init__(self, *args, **kwargs):
        raise TypeError("PyTreeDef cannot be constructed directly; use tree_structure() or tree_flatten()")

    @property
    def num_leaves(self):
        return self._num_leaves

    @property
    def num_nodes(self):
        return _count_nodes(self._struct)

    def children(self):
        """Return the treedefs of the root's children.

        Returns
        -------
        list of PyTreeDef
            Empty for a leaf or ``None``.

        Examples
        --------
        >>> tree_structure((1, [2, 3])).children()
        [PyTreeDef(*), PyTreeDef([*, *])]
        """
        if self._struct is None:
            return []
        return [_new_treedef(s, _count_leaves(s)) for s in self._struct[2]]

    def node_data(self):
        """Return ``(node_type, aux_data)`` for the root, or None for a leaf.

        Examples
        --------
        >>> tree_structure({'b': 1, 'a': 2}).node_data()
        (<class 'dict'>, ('a', 'b'))
        """
        if self._struct is None:
            return None
        return self._struct[0], self._struct[1]

    def unflatten(self, leaves):
        """Build a pytree with this structure from ``leaves``.

        Same as ``tree_unflatten(self, leaves)``.

        Examples
        --------
        >>> tree_structure([0, (0, 0)]).unflatten([1, 2, 3])
        [1, (2, 3)]
        """
        if type(leaves) is not list and type(leaves) is not tuple:
            leaves = list(leaves)
        if len(leaves) != self._num_leaves:
            raise ValueError(
                f"tree_unflatten: the treedef expects {self._num_leaves} leaves, "
                f"but {len(leaves)} were given (treedef: {_truncate(repr(self))})"
            )
        builder = self._builder
        if builder is not None:
            return builder(leaves)
        struct = self._struct
        if struct is None:
            return leaves[0]
        uses = self._uses = self._uses + 1
        if uses == _COMPILE_AFTER:
            builder = _compile_builder(struct)
            if builder is not None:
                self._builder = builder
                return builder(leaves)
        return _unflatten(struct, iter(leaves).__next__)

    def flatten_up_to(self, tree):
        """Flatten ``tree`` only as deep as this treedef goes.

        This treedef must be a prefix of the structure of ``tree``: where it
        has a leaf, ``tree`` may have a whole subtree, which is returned as
        one item.

        Parameters
        ----------
        tree : pytree

        Returns
        -------
        list
            ``self.num_leaves`` subtrees of ``tree``.

        Raises
        ------
        ValueError
            If ``tree`` does not have this structure as a prefix; the message
            gives the key path of the first difference.

        Examples
        --------
        >>> tree_structure((0, 0)).flatten_up_to(([1, 2], {'a': 3}))
        [[1, 2], {'a': 3}]
        """
        if self._struct is None:
            return [tree]
        out = []
        try:
            _up_to(self._struct, tree, out)
        except _Mismatch as e:
            raise ValueError(
                f"Tree structure mismatch at key path {keystr(e.keypath()) or '<root>'}: "
                f"{e.detail}. Expected a tree with prefix {_truncate(repr(self))}."
            ) from None
        return out

    def __eq__(self, other):
        if self is other:
            return True
        if type(other) is not PyTreeDef:
            return NotImplemented
        h1 = self._hash
        if h1 is not None:
            h2 = other._hash
            if h2 is not None and h1 != h2:
                return False
        return self._num_leaves == other._num_leaves and self._struct == other._struct

    def __hash__(self):
        h = self._hash
        if h is None:
            h = self._hash = hash(self._struct)
        return h

    def __repr__(self):
        return f"PyTreeDef({_describe(self._struct)})"

    def __reduce__(self):
        return (_new_treedef, (self._struct, self._num_leaves))


_LEAF_TREEDEF = _new_treedef(None, 1)


def _truncate(s, limit=300):
    return s if len(s) <= limit else s[: limit - 3] + "..."


# ---------------------------------------------------------------------------
# tree_map and friends
# ---------------------------------------------------------------------------


def _flatten_rest(treedef, rest, fname):
    """Flatten each tree in ``rest`` up to ``treedef``, with a helpful error."""
    struct = treedef._struct
    out = []
    for i, r in enumerate(rest, start=1):
        if struct is None:
            out.append([r])
            continue
        flat = []
        try:
            _up_to(struct, r, flat)
        except _Mismatch as e:
            try:
                other = repr(tree_structure(r))
            except Exception:  # pragma: no cover - unflattenable other tree
                other = f"<could not flatten {type(r).__name__}>"
            raise ValueError(
                f"{fname}: tree argument {i} does not match the structure of the first tree "
                f"at key path {keystr(e.keypath()) or '<root>'}: {e.detail}.\n"
                f"  first tree:   {_truncate(repr(treedef))}\n"
                f"  argument {i}:   {_truncate(other)}\n"
                f"(every other tree must have the first tree's structure as a prefix)"
            ) from None
        out.append(flat)
    return out


def tree_map(f, tree, *rest, is_leaf=None):
    """Apply ``f`` to the leaves of one or more pytrees.

    Parameters
    ----------
    f : callable
        Called as ``f(x, *xs)``, where ``x`` is a leaf of ``tree`` and
        ``xs`` are the corresponding values in ``rest``.
    tree : pytree
        Gives the structure of the result.
    *rest : pytrees
        Each must have the structure of ``tree`` as a prefix: where ``tree``
        has a leaf, a tree in ``rest`` may have a whole subtree, passed to
        ``f`` as one value.
    is_leaf : callable, optional
        See :func:`tree_flatten`; applies to ``tree``.

    Returns
    -------
    pytree
        Same structure as ``tree``, leaves replaced by the results of ``f``.

    Raises
    ------
    ValueError
        If a tree in ``rest`` does not match; the message shows both
        structures and the key path of the first difference.

    Examples
    --------
    >>> tree_map(lambda x: x * 2, {'a': 1, 'b': (2, None)})
    {'a': 2, 'b': (4, None)}
    >>> tree_map(lambda x, y: (x, y), [1, 2], [[3, 4], 5])
    [(1, [3, 4]), (2, 5)]
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    if not rest:
        return _unflatten_unchecked(treedef._struct, list(map(f, leaves)))
    others = _flatten_rest(treedef, rest, "tree_map")
    return _unflatten_unchecked(treedef._struct, list(map(f, leaves, *others)))


_NO_INITIALIZER = object()


def tree_reduce(function, tree, initializer=_NO_INITIALIZER, is_leaf=None):
    """Reduce the leaves of a pytree with a binary function.

    Parameters
    ----------
    function : callable
        ``function(accumulated, leaf) -> accumulated``.
    tree : pytree
    initializer : optional
        Starting value; if omitted the first leaf is used (and an empty tree
        raises TypeError, like :func:`functools.reduce`).
    is_leaf : callable, optional
        See :func:`tree_flatten`.

    Examples
    --------
    >>> import operator
    >>> tree_reduce(operator.add, {'a': 1, 'b': [2, 3]})
    6
    >>> tree_reduce(operator.add, [], 0)
    0
    """
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _NO_INITIALIZER:
        return _functools.reduce(function, leaves)
    return _functools.reduce(function, leaves, initializer)


def tree_all(tree, *, is_leaf=None):
    """Return True if every leaf of ``tree`` is truthy (True for no leaves).

    Examples
    --------
    >>> tree_all([True, {'a': 1}])
    True
    >>> tree_all((True, 0))
    False
    """
    return all(tree_leaves(tree, is_leaf))


def tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose):
    """Swap the outer and inner structure of a tree of trees.

    Parameters
    ----------
    outer_treedef : PyTreeDef
        Structure of the outer level.
    inner_treedef : PyTreeDef or None
        Structure of every inner tree; if None, taken from the first one.
    pytree_to_transpose : pytree
        A tree with structure ``outer_treedef`` whose leaves are trees with
        structure ``inner_treedef``.

    Returns
    -------
    pytree
        A tree with structure ``inner_treedef`` whose leaves are trees with
        structure ``outer_treedef``.

    Examples
    --------
    >>> tree_transpose(tree_structure([0, 0]), tree_structure((0, 0)),
    ...                [(1, 2), (3, 4)])
    ([1, 3], [2, 4])
    """
    inners = outer_treedef.flatten_up_to(pytree_to_transpose)
    if inner_treedef is None:
        if not inners:
            raise ValueError("tree_transpose: cannot infer inner_treedef from a tree with no leaves")
        inner_treedef = tree_structure(inners[0])
    columns = [inner_treedef.flatten_up_to(x) for x in inners]
    for x, col in zip(inners, columns):
        if tree_structure(x) != inner_treedef:
            raise ValueError(
                f"tree_transpose: inner tree has structure {tree_structure(x)}, expected {inner_treedef}"
            )
    n_inner = inner_treedef.num_leaves
    rows = [[col[j] for col in columns] for j in range(n_inner)]
    return inner_treedef.unflatten([outer_treedef.unflatten(r) for r in rows])


# ---------------------------------------------------------------------------
# Key paths
# ---------------------------------------------------------------------------


def _flatten_with_path(x, h, path, out, is_leaf, table=_TABLE):
    if h is _NONE_NODE:
        return _NONE_STRUCT
    if h.flatten_with_keys is not None:
        keyed, aux = h.flatten_with_keys(x)
    else:
        children, aux = h.flatten(x)
        keyed = [(FlattenedIndexKey(i), c) for i, c in enumerate(children)]
    subs = []
    for k, c in keyed:
        if is_leaf is not None and is_leaf(c):
            hc = None
        else:
            try:
                hc = table[type(c)]
            except KeyError:
                hc = _classify(type(c))
        if hc is None:
            out.append((path + (k,), c))
            subs.append(None)
        else:
            subs.append(_flatten_with_path(c, hc, path + (k,), out, is_leaf))
    return (h.type, aux, tuple(subs))


def tree_flatten_with_path(tree, is_leaf=None):
    """Flatten a pytree, pairing each leaf with its key path.

    Parameters
    ----------
    tree : pytree
    is_leaf : callable, optional
        See :func:`tree_flatten`.

    Returns
    -------
    leaves_with_path : list of (tuple, leaf)
        Each key path is a tuple of :class:`SequenceKey`, :class:`DictKey`,
        :class:`GetAttrKey` or :class:`FlattenedIndexKey` entries (or custom
        keys from a registered ``flatten_with_keys``).
    treedef : PyTreeDef
        Equal to ``tree_structure(tree, is_leaf)``.

    Examples
    --------
    >>> pairs, _ = tree_flatten_with_path({'a': [10, 20]})
    >>> [(keystr(p), x) for p, x in pairs]
    [("['a'][0]", 10), ("['a'][1]", 20)]
    """
    out = []
    h = _handler_of(tree, is_leaf)
    if h is None:
        return [((), tree)], _LEAF_TREEDEF
    struct = _flatten_with_path(tree, h, (), out, is_leaf)
    return out, _new_treedef(struct, len(out))


def tree_leaves_with_path(tree, is_leaf=None):
    """Return ``[(key_path, leaf), ...]`` for a pytree.

    Examples
    --------
    >>> [keystr(p) for p, _ in tree_leaves_with_path((1, {'b': 2}))]
    ['[0]', "[1]['b']"]
    """
    return tree_flatten_with_path(tree, is_leaf)[0]


def tree_map_with_path(f, tree, *rest, is_leaf=None):
    """Like :func:`tree_map`, but ``f`` also receives each leaf's key path.

    Parameters
    ----------
    f : callable
        Called as ``f(key_path, x, *xs)``.
    tree, *rest, is_leaf
        As in :func:`tree_map`.

    Examples
    --------
    >>> tree_map_with_path(lambda p, x: keystr(p) + '=' + str(x), {'a': 1, 'b': [2]})
    {'a': "['a']=1", 'b': ["['b'][0]=2"]}
    """
    pairs, treedef = tree_flatten_with_path(tree, is_leaf)
    paths = [p for p, _ in pairs]
    leaves = [x for _, x in pairs]
    others = _flatten_rest(treedef, rest, "tree_map_with_path") if rest else ()
    return _unflatten_unchecked(treedef._struct, list(map(f, paths, leaves, *others)))


# ---------------------------------------------------------------------------
# Predicates and treedef helpers
# ---------------------------------------------------------------------------


def all_leaves(iterable, is_leaf=None):
    """Return True if every element of ``iterable`` is a pytree leaf.

    Parameters
    ----------
    iterable : iterable
    is_leaf : callable, optional
        Values for which it returns True count as leaves.

    Examples
    --------
    >>> all_leaves([1, 'a', 2.0])
    True
    >>> all_leaves([1, (2,)])
    False
    >>> all_leaves([None])
    False
    """
    for x in iterable:
        if _handler_of(x, is_leaf) is not None:
            return False
    return True


def treedef_is_leaf(treedef):
    """Return True if the treedef has a single node (as in JAX).

    A single node is a leaf, but also ``None`` or an empty container; use
    :func:`treedef_is_strict_leaf` to test for exactly one leaf.

    Examples
    --------
    >>> treedef_is_leaf(tree_structure(1.0))
    True
    >>> treedef_is_leaf(tree_structure([1.0]))
    False
    """
    return treedef.num_nodes == 1


def treedef_is_strict_leaf(treedef):
    """Return True if the treedef is exactly one leaf.

    Examples
    --------
    >>> treedef_is_strict_leaf(tree_structure(1.0))
    True
    >>> treedef_is_strict_leaf(tree_structure(None))
    False
    """
    return treedef._struct is None


def treedef_children(treedef):
    """Return the treedefs of the root's children (see PyTreeDef.children).

    Examples
    --------
    >>> treedef_children(tree_structure({'a': 1, 'b': (2,)}))
    [PyTreeDef(*), PyTreeDef((*,))]
    """
    return treedef.children()


def treedef_tuple(treedefs):
    """Build the treedef of a tuple whose children have the given treedefs.

    Examples
    --------
    >>> treedef_tuple([tree_structure(1), tree_structure([1, 2])])
    PyTreeDef((*, [*, *]))
    """
    treedefs = list(treedefs)
    struct = (tuple, None, tuple(td._struct for td in treedefs))
    return _new_treedef(struct, sum(td._num_leaves for td in treedefs))


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys_func=None):
    """Register a class as a pytree node.

    Parameters
    ----------
    nodetype : type
        The class.  Only exact instances are nodes; subclasses stay leaves
        unless registered too.
    flatten_func : callable
        ``flatten_func(x) -> (children, aux_data)``; ``children`` is an
        iterable of subtrees, ``aux_data`` is hashable metadata kept in the
        treedef (it takes part in treedef equality and hashing).
    unflatten_func : callable
        ``unflatten_func(aux_data, children) -> x``; ``children`` is a
        tuple.
    flatten_with_keys_func : callable, optional
        ``flatten_with_keys_func(x) -> (((key, child), ...), aux_data)``,
        giving key path entries for :func:`tree_flatten_with_path`.  Without
        it children get :class:`FlattenedIndexKey` entries.

    Raises
    ------
    ValueError
        If ``nodetype`` is already registered (built-ins included).

    Examples
    --------
    >>> class Pair:
    ...     def __init__(self, a, b):
    ...         self.a, self.b = a, b
    >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None),
    ...                      lambda aux, kids: Pair(*kids))
    >>> tree_leaves([Pair(1, 2), 3])
    [1, 2, 3]
    """
    _register(
        _Node(nodetype, flatten_func, unflatten_func, flatten_with_keys_func, _custom_describe(nodetype))
    )


def register_pytree_with_keys(nodetype, flatten_with_keys, unflatten_func, flatten_func=None):
    """Register a class as a pytree node, giving key paths for its children.

    Parameters
    ----------
    nodetype : type
    flatten_with_keys : callable
        ``flatten_with_keys(x) -> (((key, child), ...), aux_data)``.
    unflatten_func : callable
        ``unflatten_func(aux_data, children) -> x``.
    flatten_func : callable, optional
        Faster ``flatten_func(x) -> (children, aux_data)``; derived from
        ``flatten_with_keys`` if omitted.

    Examples
    --------
    >>> class Box:
    ...     def __init__(self, v):
    ...         self.v = v
    >>> register_pytree_with_keys(Box, lambda b: (((GetAttrKey('v'), b.v),), None),
    ...                           lambda aux, kids: Box(*kids))
    >>> keystr(tree_leaves_with_path(Box(1))[0][0])
    '.v'
    """
    if flatten_func is None:

        def flatten_func(x):
            keyed, aux = flatten_with_keys(x)
            return [c for _, c in keyed], aux

    register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys)


def register_pytree_node_class(cls):
    """Class decorator: register a class with ``tree_flatten``/``tree_unflatten``.

    The class defines ``tree_flatten(self) -> (children, aux_data)`` and a
    classmethod ``tree_unflatten(cls, aux_data, children)``.

    Returns
    -------
    type
        ``cls`` itself.

    Examples
    --------
    >>> @register_pytree_node_class
    ... class Scaled:
    ...     def __init__(self, x, scale):
    ...         self.x, self.scale = x, scale
    ...     def tree_flatten(self):
    ...         return (self.x,), self.scale
    ...     @classmethod
    ...     def tree_unflatten(cls, scale, children):
    ...         return cls(children[0], scale)
    >>> tree_structure(Scaled(1.0, 2))
    PyTreeDef(CustomNode(Scaled[2], [*]))
    """
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_dataclass(nodetype=None, data_fields=None, meta_fields=None, drop_fields=()):
    """Register a dataclass as a pytree node.

    Data fields are children (subtrees); meta fields are static metadata
    stored in the treedef (they must be hashable).  Unflattening calls the
    constructor with every field as a keyword argument.

    Parameters
    ----------
    nodetype : type
        The class.  With ``data_fields`` and ``meta_fields`` omitted it must
        be a dataclass: every ``init=True`` field is a data field unless
        declared with ``field(metadata=dict(static=True))``, which makes it
        a meta field; ``init=False`` fields are not flattened.
    data_fields, meta_fields : sequence of str, optional
        Explicit field names; give both or neither.
    drop_fields : sequence of str, optional
        ``init=True`` fields deliberately left out of the pytree.

    Returns
    -------
    type
        ``nodetype``, so this can be used as a class decorator.

    Raises
    ------
    TypeError
        If only one of ``data_fields``/``meta_fields`` is given, or fields
        are to be inferred from a class that is not a dataclass.
    ValueError
        If a dataclass's ``init=True`` fields are not exactly the data,
        meta and drop fields, or the type is already registered.

    Examples
    --------
    >>> import dataclasses
    >>> @register_dataclass
    ... @dataclasses.dataclass
    ... class Linear:
    ...     w: object
    ...     b: object
    ...     act: str = dataclasses.field(default='relu', metadata=dict(static=True))
    >>> tree_flatten(Linear(1.0, 2.0))
    ([1.0, 2.0], PyTreeDef(Linear(w=*, b=*, act='relu')))
    """
    if nodetype is None:  # called as @register_dataclass(...) with keywords
        return lambda cls: register_dataclass(cls, data_fields, meta_fields, drop_fields)
    if (data_fields is None) != (meta_fields is None):
        raise TypeError(
            "register_dataclass: give both data_fields and meta_fields, or neither "
            f"(got data_fields={data_fields!r}, meta_fields={meta_fields!r})"
        )
    if data_fields is None:
        if not _dataclasses.is_dataclass(nodetype):
            raise TypeError(
                f"register_dataclass: {nodetype!r} is not a dataclass, so data_fields and "
                "meta_fields must be given explicitly"
            )
        fields = [f for f in _dataclasses.fields(nodetype) if f.init and f.name not in drop_fields]
        data_fields = [f.name for f in fields if not f.metadata.get("static", False)]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
    data_fields = tuple(data_fields)
    meta_fields = tuple(meta_fields)
    drop_fields = tuple(drop_fields)
    both = set(data_fields) & set(meta_fields)
    if both:
        raise ValueError(f"register_dataclass: fields {sorted(both)} are both data and meta fields")
    if _dataclasses.is_dataclass(nodetype):
        init = {f.name for f in _dataclasses.fields(nodetype) if f.init}
        given = set(data_fields) | set(meta_fields) | set(drop_fields)
        if init != given:
            raise ValueError(
                f"register_dataclass: the data, meta and drop fields of {nodetype.__name__} must be "
                f"exactly its init=True fields; missing {sorted(init - given)}, "
                f"not init fields {sorted(given - init)}"
            )
    keys = tuple(GetAttrKey(n) for n in data_fields)

    def flatten(x):
        return [getattr(x, n) for n in data_fields], tuple(getattr(x, n) for n in meta_fields)

    def flatten_with_keys(x):
        return [(k, getattr(x, n)) for k, n in zip(keys, data_fields)], tuple(
            getattr(x, n) for n in meta_fields
        )

    def unflatten(meta, data):
        kwargs = dict(zip(meta_fields, meta))
        kwargs.update(zip(data_fields, data))
        return nodetype(**kwargs)

    def describe(meta, kids):
        parts = [f"{n}={c}" for n, c in zip(data_fields, kids)]
        parts += [f"{n}={v!r}" for n, v in zip(meta_fields, meta)]
        return f"{nodetype.__name__}(" + ", ".join(parts) + ")"

    _register(_Node(nodetype, flatten, unflatten, flatten_with_keys, describe))
    return nodetype
