"""Tests for functad.tree_util (pytrees)."""

import dataclasses
import operator
import pickle
import re
import subprocess
import sys
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functad import tree_util as tu
from functad.tree_util import (
    DictKey,
    FlattenedIndexKey,
    GetAttrKey,
    PyTreeDef,
    SequenceKey,
    all_leaves,
    keystr,
    register_dataclass,
    register_pytree_node,
    register_pytree_node_class,
    register_pytree_with_keys,
    tree_all,
    tree_flatten,
    tree_flatten_with_path,
    tree_leaves,
    tree_leaves_with_path,
    tree_map,
    tree_map_with_path,
    tree_reduce,
    tree_structure,
    tree_transpose,
    tree_unflatten,
    treedef_children,
    treedef_is_leaf,
    treedef_is_strict_leaf,
    treedef_tuple,
)

Point = namedtuple("Point", "x y")
Triple = namedtuple("Triple", ["a", "b", "c"])


class Opaque:
    """A leaf with identity semantics (no __eq__), to check leaves by identity."""

    def __repr__(self):
        return f"Opaque@{id(self):x}"


# ---------------------------------------------------------------------------
# Reference implementation used as a test oracle.  It is written
# independently of the library (isinstance checks, no registry) and only
# covers the built-in node types the strategies generate.
# ---------------------------------------------------------------------------


def ref_is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def ref_leaves(x):
    if x is None:
        return []
    if ref_is_namedtuple(x) or type(x) in (tuple, list):
        return [leaf for c in x for leaf in ref_leaves(c)]
    if type(x) is dict:
        return [leaf for k in sorted(x) for leaf in ref_leaves(x[k])]
    if type(x) is OrderedDict:
        return [leaf for k in x for leaf in ref_leaves(x[k])]
    return [x]


def ref_skeleton(x):
    """Hashable description of the structure of ``x`` with leaves erased."""
    if x is None:
        return ("None",)
    if ref_is_namedtuple(x) or type(x) in (tuple, list):
        return (type(x),) + tuple(ref_skeleton(c) for c in x)
    if type(x) is dict:
        return ("dict",) + tuple((k, ref_skeleton(x[k])) for k in sorted(x))
    if type(x) is OrderedDict:
        return ("odict",) + tuple((k, ref_skeleton(v)) for k, v in x.items())
    return "*"


def ref_replace_leaves(x, make):
    """Copy of ``x`` with every leaf replaced by ``make()``."""
    if x is None:
        return None
    if ref_is_namedtuple(x):
        return type(x)(*[ref_replace_leaves(c, make) for c in x])
    if type(x) in (tuple, list):
        return type(x)(ref_replace_leaves(c, make) for c in x)
    if type(x) in (dict, OrderedDict):
        return type(x)((k, ref_replace_leaves(v, make)) for k, v in x.items())
    return make()


def assert_same_tree(got, expected):
    """Same node types, same keys, identical (``is``) leaves."""
    assert type(got) is type(expected), (got, expected)
    if expected is None:
        return
    if ref_is_namedtuple(expected) or type(expected) in (tuple, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same_tree(g, e)
    elif type(expected) is dict:
        assert list(got) == sorted(expected), "dicts come back in sorted key order"
        for k in expected:
            assert_same_tree(got[k], expected[k])
    elif type(expected) is OrderedDict:
        assert list(got) == list(expected)
        for k in expected:
            assert_same_tree(got[k], expected[k])
    else:
        assert got is expected


leaf_values = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.builds(Opaque),
    st.builds(lambda n: np.arange(n, dtype=np.float64), st.integers(0, 3)),
)
keys = st.text(alphabet="abcdxyz", min_size=1, max_size=2)


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.builds(Point, children, children),
        st.builds(Triple, children, children, children),
        st.lists(st.tuples(keys, children), max_size=3).map(OrderedDict),
    )


trees = st.recursive(st.one_of(leaf_values, st.none()), _containers, max_leaves=25)


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------


@given(trees)
@settings(max_examples=300, deadline=None)
def test_flatten_unflatten_round_trip(tree):
    leaves, treedef = tree_flatten(tree)
    expected = ref_leaves(tree)
    assert len(leaves) == len(expected) == treedef.num_leaves
    assert all(a is b for a, b in zip(leaves, expected))
    assert_same_tree(tree_unflatten(treedef, leaves), tree)
    assert_same_tree(treedef.unflatten(iter(leaves)), tree)  # any iterable works
    assert all(a is b for a, b in zip(tree_leaves(tree), expected))
    assert tree_structure(tree) == treedef


@given(trees)
@settings(max_examples=200, deadline=None)
def test_compiled_builder_agrees_with_interpreter(tree):
    leaves, treedef = tree_flatten(tree)
    if treedef_is_strict_leaf(treedef):
        return
    builder = tu._compile_builder(treedef._struct)
    assert builder is not None
    assert_same_tree(builder(leaves), tree)


def test_reused_treedef_switches_to_builder_and_stays_correct():
    tree = {"b": [1, (2, None)], "a": Point(3, {"z": 4}), "c": OrderedDict([("y", 5), ("x", 6)])}
    leaves, treedef = tree_flatten(tree)
    for i in range(tu._COMPILE_AFTER + 5):
        new = [f"v{i}_{j}" for j in range(len(leaves))]
        out = treedef.unflatten(new)
        assert tree_leaves(out) == new
        assert tree_structure(out) == treedef
    assert treedef._builder is not None
    with pytest.raises(ValueError, match="expects 6 leaves, but 5 were given"):
        treedef.unflatten(leaves[:5])


@given(trees, trees)
@settings(max_examples=300, deadline=None)
def test_treedef_eq_hash_iff_same_structure(a, b):
    ta, tb = tree_structure(a), tree_structure(b)
    same = ref_skeleton(a) == ref_skeleton(b)
    assert (ta == tb) is same
    assert (ta != tb) is (not same)
    if same:
        assert hash(ta) == hash(tb)
        assert repr(ta) == repr(tb)


@given(trees)
@settings(max_examples=200, deadline=None)
def test_treedef_equal_for_different_leaves(tree):
    other = ref_replace_leaves(tree, Opaque)
    t1, t2 = tree_structure(tree), tree_structure(other)
    assert t1 == t2 and hash(t1) == hash(t2)
    assert {t1: "x"}[t2] == "x"
    assert t1.num_nodes == t2.num_nodes


@given(trees)
@settings(max_examples=200, deadline=None)
def test_tree_map_several_trees(tree):
    a = ref_replace_leaves(tree, Opaque)
    b = ref_replace_leaves(tree, Opaque)
    marker = Opaque()
    out = tree_map(lambda x, y, z: (marker, x, y, z), tree, a, b)
    is_result = lambda x: type(x) is tuple and len(x) == 4 and x[0] is marker  # noqa: E731
    assert tree_structure(out, is_leaf=is_result) == tree_structure(tree)
    got = tree_leaves(out, is_leaf=is_result)
    want = list(zip(ref_leaves(tree), ref_leaves(a), ref_leaves(b)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert all(p is q for p, q in zip(g[1:], w))


@given(trees)
@settings(max_examples=200, deadline=None)
def test_flatten_with_path_matches_flatten_and_paths_locate_leaves(tree):
    pairs, treedef = tree_flatten_with_path(tree)
    assert treedef == tree_structure(tree)
    expected = ref_leaves(tree)
    assert len(pairs) == len(expected)
    assert all(p is q for (_, p), q in zip(pairs, expected))

    def follow(x, path):
        for k in path:
            if isinstance(k, SequenceKey):
                x = x[k.idx]
            elif isinstance(k, DictKey):
                x = x[k.key]
            elif isinstance(k, GetAttrKey):
                x = getattr(x, k.name)
            else:  # pragma: no cover
                raise AssertionError(k)
        return x

    for path, leaf in pairs:
        assert follow(tree, path) is leaf
    assert len({keystr(p) for p, _ in pairs}) == len(pairs)


# ---------------------------------------------------------------------------
# Node types
# ---------------------------------------------------------------------------


def test_none_is_an_empty_node():
    assert tree_leaves(None) == []
    assert tree_leaves([None, 1, (None,)]) == [1]
    td = tree_structure(None)
    assert td.num_leaves == 0 and td.num_nodes == 1
    assert repr(td) == "PyTreeDef(None)"
    assert tree_unflatten(td, []) is None
    assert tree_structure(None) != tree_structure(1)


def test_leaves_include_arrays_and_shaped_objects():
    class HasShape:
        shape = (2, 3)

    a, s = np.ones(3), HasShape()
    leaves, td = tree_flatten({"a": a, "s": s, "n": np.float32(1), "str": "abc"})
    assert leaves[0] is a and leaves[2] is s
    assert leaves[3] == "abc"
    assert td.num_leaves == 4


def test_dict_sorted_keys_and_unflatten_order():
    d = {"b": 1, "a": 2, "c": 3}
    leaves, td = tree_flatten(d)
    assert leaves == [2, 1, 3]
    out = tree_unflatten(td, leaves)
    assert list(out) == ["a", "b", "c"]
    assert repr(td) == "PyTreeDef({'a': *, 'b': *, 'c': *})"


def test_dict_with_incomparable_keys_is_deterministic():
    d1 = {"a": 1, 2: 2, (1,): 3}
    d2 = {(1,): 30, 2: 20, "a": 10}
    assert tree_structure(d1) == tree_structure(d2)
    assert tree_map(operator.add, d1, d2) == {"a": 11, 2: 22, (1,): 33}


def test_ordered_dict_keeps_insertion_order():
    od = OrderedDict([("b", 1), ("a", 2)])
    leaves, td = tree_flatten(od)
    assert leaves == [1, 2]
    out = tree_unflatten(td, [10, 20])
    assert type(out) is OrderedDict and list(out.items()) == [("b", 10), ("a", 20)]
    assert td != tree_structure(OrderedDict([("a", 2), ("b", 1)]))
    assert td != tree_structure({"b": 1, "a": 2})
    assert repr(td) == "PyTreeDef(OrderedDict({'b': *, 'a': *}))"


def test_defaultdict_keeps_factory():
    dd = defaultdict(list, {"b": 1, "a": 2})
    leaves, td = tree_flatten(dd)
    assert leaves == [2, 1]
    out = tree_unflatten(td, [3, 4])
    assert type(out) is defaultdict and out.default_factory is list
    assert dict(out) == {"a": 3, "b": 4}
    assert td != tree_structure(defaultdict(dict, {"b": 1, "a": 2}))
    assert repr(td) == "PyTreeDef(defaultdict(list, {'a': *, 'b': *}))"


def test_namedtuple_is_a_node_distinct_from_tuple():
    p = Point(1, (2, 3))
    leaves, td = tree_flatten(p)
    assert leaves == [1, 2, 3]
    out = tree_unflatten(td, [4, 5, 6])
    assert type(out) is Point and out == Point(4, (5, 6))
    assert td != tree_structure((1, (2, 3)))
    assert repr(td) == "PyTreeDef(Point(x=*, y=(*, *)))"

    class TupleSub(tuple):  # no _fields: a leaf
        pass

    t = TupleSub((1, 2))
    assert tree_leaves(t)[0] is t


def test_subclass_of_container_is_a_leaf():
    class MyDict(dict):
        pass

    d = MyDict(a=1)
    assert tree_leaves([d])[0] is d


def test_repr_forms():
    assert repr(tree_structure(1)) == "PyTreeDef(*)"
    assert repr(tree_structure((1,))) == "PyTreeDef((*,))"
    assert repr(tree_structure(())) == "PyTreeDef(())"
    assert repr(tree_structure([])) == "PyTreeDef([])"
    assert repr(tree_structure({"a": 1, "b": (2, 3)})) == "PyTreeDef({'a': *, 'b': (*, *)})"
    assert repr(tree_structure([1, {"x": None}])) == "PyTreeDef([*, {'x': None}])"


def test_treedef_properties_and_helpers():
    td = tree_structure({"a": 1, "b": (2, [3, None])})
    assert td.num_leaves == 3
    # dict, leaf, tuple, leaf, list, leaf, None
    assert td.num_nodes == 7
    kids = td.children()
    assert [repr(k) for k in kids] == ["PyTreeDef(*)", "PyTreeDef((*, [*, None]))"]
    assert [k.num_leaves for k in kids] == [1, 2]
    assert treedef_children(td) == kids
    assert td.node_data() == (dict, ("a", "b"))
    assert tree_structure(1).node_data() is None
    assert tree_structure(1).children() == []
    tup = treedef_tuple(kids)
    assert tup == tree_structure((0, (0, [0, None])))
    assert tup.num_leaves == 3


def test_treedef_is_leaf_follows_jax():
    assert treedef_is_leaf(tree_structure(1))
    assert treedef_is_leaf(tree_structure(None))  # one node, as in JAX
    assert not treedef_is_leaf(tree_structure([1]))
    assert treedef_is_strict_leaf(tree_structure(np.ones(2)))
    assert not treedef_is_strict_leaf(tree_structure(None))
    assert not treedef_is_strict_leaf(tree_structure(()))


def test_all_leaves():
    assert all_leaves([1, "a", np.ones(2)])
    assert not all_leaves([1, (2,)])
    assert not all_leaves([None])
    assert all_leaves([None, (1,)], is_leaf=lambda x: x is None or isinstance(x, tuple))
    assert all_leaves([])


def test_treedef_eq_edge_cases():
    assert tree_structure((1, 2)) != tree_structure([1, 2])
    assert tree_structure({"a": 1}) != tree_structure({"b": 1})
    assert tree_structure({"a": None}) != tree_structure({"a": 1})
    assert tree_structure([None]) != tree_structure([()])
    assert tree_structure([[]]) != tree_structure([()])
    assert tree_structure((1, 2)) != (1, 2)
    assert tree_structure(1) == tree_structure("not a node")
    cache = {tree_structure((1, {"w": 2})): "hit"}
    assert cache[tree_structure((np.ones(3), {"w": np.ones(2)}))] == "hit"
    assert tree_structure((1, {"w": 2})) not in {tree_structure((1, {"v": 2})): 0}


def test_treedef_pickles():
    td = tree_structure({"a": Point(1, None), "b": [OrderedDict(x=1)], "c": defaultdict(list, y=2)})
    td2 = pickle.loads(pickle.dumps(td))
    assert td2 == td and hash(td2) == hash(td)
    assert tree_unflatten(td2, [1, 2, 3]) == tree_unflatten(td, [1, 2, 3])


def test_treedef_cannot_be_constructed_directly():
    with pytest.raises(TypeError, match="cannot be constructed directly"):
        PyTreeDef()


def test_deep_nesting():
    tree = 0
    for _ in range(300):
        tree = [tree]
    leaves, td = tree_flatten(tree)
    assert leaves == [0] and td.num_nodes == 301
    for _ in range(tu._COMPILE_AFTER + 2):
        assert tree_unflatten(td, [7]) == tree_map(lambda x: 7, tree)


# ---------------------------------------------------------------------------
# is_leaf
# ---------------------------------------------------------------------------


def test_is_leaf_makes_none_a_leaf():
    tree = {"a": None, "b": (1, None)}
    leaves, td = tree_flatten(tree, is_leaf=lambda x: x is None)
    assert leaves == [None, 1, None]
    assert td.num_leaves == 3
    assert tree_unflatten(td, [1, 2, 3]) == {"a": 1, "b": (2, 3)}
    assert tree_map(lambda x: x is None, tree, is_leaf=lambda x: x is None) == {"a": True, "b": (False, True)}


def test_is_leaf_stops_descent_and_applies_to_root():
    tree = [(1, 2), [3, (4, 5)]]
    leaves = tree_leaves(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), 3, (4, 5)]
    assert tree_leaves(tree, is_leaf=lambda x: isinstance(x, list)) == [tree]
    calls = []
    tree_flatten({"a": [1]}, is_leaf=lambda x: calls.append(x) or False)
    assert calls == [{"a": [1]}, [1], 1]


def test_is_leaf_with_paths():
    pairs, td = tree_flatten_with_path({"a": (1, 2), "b": 3}, is_leaf=lambda x: isinstance(x, tuple))
    assert [(keystr(p), x) for p, x in pairs] == [("['a']", (1, 2)), ("['b']", 3)]
    assert td == tree_structure({"a": 0, "b": 0})


# ---------------------------------------------------------------------------
# tree_map and friends
# ---------------------------------------------------------------------------


def test_tree_map_basic_and_none_preserved():
    assert tree_map(lambda x: x * 2, {"a": 1, "b": (2, None)}) == {"a": 2, "b": (4, None)}
    assert tree_map(lambda x, y, z: x + y + z, [1, 2], [10, 20], [100, 200]) == [111, 222]
    assert tree_map(lambda x: x + 1, 1) == 2


def test_tree_map_prefix_semantics():
    # a leaf of the first tree takes a whole subtree of the others
    out = tree_map(lambda x, y: (x, y), [1, 2], [[3, 4], {"k": 5}])
    assert out == [(1, [3, 4]), (2, {"k": 5})]
    out = tree_map(lambda x, y: y, 0, {"whole": "tree"})
    assert out == {"whole": "tree"}
    # dict key order of the other trees does not matter
    assert tree_map(operator.sub, {"a": 5, "b": 7}, {"b": 1, "a": 2}) == {"a": 3, "b": 6}


def test_tree_map_mismatch_arity_names_both_structures_and_path():
    msg = (
        "tree_map: tree argument 1 does not match the structure of the first tree at key path "
        "['a'][1]: expected a tuple of length 2, got length 3"
    )
    with pytest.raises(ValueError, match=re.escape(msg)) as info:
        tree_map(operator.add, {"a": [1, (2, 3)]}, {"a": [1, (2, 3, 4)]})
    text = str(info.value)
    assert "first tree:   PyTreeDef({'a': [*, (*, *)]})" in text
    assert "argument 1:   PyTreeDef({'a': [*, (*, *, *)]})" in text


def test_tree_map_mismatch_type_and_keys_and_none():
    with pytest.raises(ValueError, match=re.escape("at key path [0]: expected a tuple, got list")):
        tree_map(operator.add, [(1, 2)], [[1, 2]])
    with pytest.raises(ValueError, match=r"at key path \[1\]: expected a dict with keys \['a', 'b'\], got keys \['a', 'c'\]"):
        tree_map(operator.add, (0, {"a": 1, "b": 2}), (0, {"a": 1, "c": 2}))
    with pytest.raises(ValueError, match=re.escape("tree argument 2 does not match")):
        tree_map(lambda *a: 0, [1], [2], [3, 4])
    with pytest.raises(ValueError, match=re.escape("at key path ['x']: expected None, got int")):
        tree_map(lambda *a: 0, {"x": None}, {"x": 1})
    with pytest.raises(ValueError, match=re.escape("at key path .y: expected a tuple, got int")):
        tree_map(lambda *a: 0, Point(1, (2,)), Point(1, 2))
    with pytest.raises(ValueError, match=re.escape("at key path <root>: expected a Point, got tuple")):
        tree_map(lambda *a: 0, Point(1, 2), (1, 2))


def test_tree_map_with_path():
    out = tree_map_with_path(lambda p, x, y: f"{keystr(p)}={x + y}", {"a": [1, 2], "b": Point(3, 4)}, {"a": [10, 20], "b": Point(30, 40)})
    assert out == {"a": ["['a'][0]=11", "['a'][1]=22"], "b": Point("['b'].x=33", "['b'].y=44")}
    with pytest.raises(ValueError, match=re.escape("tree_map_with_path: tree argument 1")):
        tree_map_with_path(lambda p, x, y: 0, [1], [1, 2])


def test_flatten_up_to():
    td = tree_structure((0, {"a": 0}))
    assert td.flatten_up_to(([1, 2], {"a": (3,)})) == [[1, 2], (3,)]
    with pytest.raises(ValueError, match=re.escape("Tree structure mismatch at key path [1]['a']: expected None")):
        tree_structure((0, {"a": None})).flatten_up_to((1, {"a": 2}))
    assert tree_structure(5).flatten_up_to({"x": 1}) == [{"x": 1}]


def test_tree_reduce_and_tree_all():
    assert tree_reduce(operator.add, {"a": 1, "b": [2, 3]}) == 6
    assert tree_reduce(operator.add, {"a": 1, "b": [2, 3]}, 10) == 16
    assert tree_reduce(operator.add, [], 0) == 0
    with pytest.raises(TypeError):
        tree_reduce(operator.add, [])
    assert tree_reduce(lambda a, b: a + [b], [(1,), (2,)], [], is_leaf=lambda x: isinstance(x, tuple)) == [(1,), (2,)]
    assert tree_all([True, {"a": 1}, None])
    assert not tree_all([True, {"a": 0}])
    assert tree_all([])
    assert not tree_all([None], is_leaf=lambda x: x is None)


def test_tree_transpose():
    outer = tree_structure([0, 0, 0])
    inner = tree_structure({"a": 0, "b": 0})
    tree = [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}]
    assert tree_transpose(outer, inner, tree) == {"a": [1, 3, 5], "b": [2, 4, 6]}
    assert tree_transpose(outer, None, tree) == {"a": [1, 3, 5], "b": [2, 4, 6]}
    with pytest.raises(ValueError):
        tree_transpose(outer, inner, [{"a": 1, "b": 2}, {"a": 3, "b": (4, 5)}, {"a": 5, "b": 6}])


# ---------------------------------------------------------------------------
# Key paths
# ---------------------------------------------------------------------------


def test_key_classes_str_repr_eq():
    assert str(SequenceKey(0)) == "[0]"
    assert str(DictKey("a")) == "['a']"
    assert str(DictKey(1)) == "[1]"
    assert str(GetAttrKey("w")) == ".w"
    assert str(FlattenedIndexKey(2)) == "[2]"
    assert repr(DictKey("a")) == "DictKey(key='a')"
    assert SequenceKey(0) == SequenceKey(0) and hash(SequenceKey(0)) == hash(SequenceKey(0))
    assert SequenceKey(0) != FlattenedIndexKey(0)
    assert DictKey("a") != DictKey("b")
    assert len({GetAttrKey("x"), GetAttrKey("x"), DictKey("x")}) == 2
    with pytest.raises(AttributeError):
        SequenceKey(0).idx = 1
    assert pickle.loads(pickle.dumps(DictKey("k"))) == DictKey("k")


def test_flatten_with_path_and_keystr():
    tree = {"layers": [{"w": 1, "b": 2}], "cfg": Point(3, None), "od": OrderedDict(z=4)}
    pairs, td = tree_flatten_with_path(tree)
    assert [(keystr(p), x) for p, x in pairs] == [
        ("['cfg'].x", 3),
        ("['layers'][0]['b']", 2),
        ("['layers'][0]['w']", 1),
        ("['od']['z']", 4),
    ]
    assert pairs[1][0] == (DictKey("layers"), SequenceKey(0), DictKey("b"))
    assert td == tree_structure(tree)
    assert keystr(pairs[1][0], simple=True, separator="/") == "layers/0/b"
    assert keystr(pairs[0][0], simple=True, separator=".") == "cfg.x"
    assert keystr(()) == ""
    assert tree_leaves_with_path(5) == [((), 5)]


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def test_register_pytree_node_and_duplicate():
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    seen = Pair(1, 2)
    assert tree_leaves([seen])[0] is seen  # a leaf before registration

    got_children = []

    def unflatten(aux, children):
        got_children.append(children)
        return Pair(*children)

    register_pytree_node(Pair, lambda p: ((p.a, p.b), "meta"), unflatten)
    leaves, td = tree_flatten([Pair(1, (2, 3))])  # registration invalidates the cached "leaf"
    assert leaves == [1, 2, 3]
    assert repr(td) == "PyTreeDef([CustomNode(Pair['meta'], [*, (*, *)])])"
    out = tree_unflatten(td, [4, 5, 6])[0]
    assert type(out) is Pair and out.a == 4 and out.b == (5, 6)
    assert got_children and tuple(got_children[-1]) == (4, (5, 6))
    pairs, _ = tree_flatten_with_path(Pair(1, 2))
    assert [p for p, _ in pairs] == [(FlattenedIndexKey(0),), (FlattenedIndexKey(1),)]
    with pytest.raises(ValueError, match="Duplicate pytree node registration"):
        register_pytree_node(Pair, lambda p: ((), None), lambda a, c: Pair(0, 0))

    class SubPair(Pair):
        pass

    sp = SubPair(1, 2)
    assert tree_leaves(sp)[0] is sp


@pytest.mark.parametrize("t", [tuple, list, dict, type(None), OrderedDict, defaultdict])
def test_cannot_reregister_builtins(t):
    with pytest.raises(ValueError, match="already registered"):
        register_pytree_node(t, lambda x: ((), None), lambda a, c: None)


def test_custom_aux_data_in_treedef_equality_and_mismatch():
    class Scaled:
        def __init__(self, x, scale):
            self.x, self.scale = x, scale

    register_pytree_node(Scaled, lambda s: ((s.x,), s.scale), lambda scale, kids: Scaled(kids[0], scale))
    assert tree_structure(Scaled(1, 2)) == tree_structure(Scaled(5, 2))
    assert tree_structure(Scaled(1, 2)) != tree_structure(Scaled(1, 3))
    with pytest.raises(ValueError, match=re.escape("at key path [0]: node data of Scaled differs: expected 2, got 3")):
        tree_map(lambda a, b: a, [Scaled(1, 2)], [Scaled(1, 3)])


def test_register_pytree_node_class():
    @register_pytree_node_class
    class Box:
        def __init__(self, items, tag):
            self.items, self.tag = items, tag

        def tree_flatten(self):
            return self.items, self.tag

        @classmethod
        def tree_unflatten(cls, tag, children):
            return cls(list(children), tag)

    leaves, td = tree_flatten(Box([1, {"a": 2}], "t"))
    assert leaves == [1, 2]
    out = tree_unflatten(td, [3, 4])
    assert isinstance(out, Box) and out.items == [3, {"a": 4}] and out.tag == "t"
    with pytest.raises(ValueError, match="Duplicate"):
        register_pytree_node_class(Box)


def test_register_pytree_with_keys():
    class Named:
        def __init__(self, **kw):
            self.kw = kw

    register_pytree_with_keys(
        Named,
        lambda n: ([(GetAttrKey(k), n.kw[k]) for k in sorted(n.kw)], tuple(sorted(n.kw))),
        lambda names, kids: Named(**dict(zip(names, kids))),
    )
    pairs, td = tree_flatten_with_path({"n": Named(q=1, p=(2,))})
    assert [keystr(p) for p, _ in pairs] == ["['n'].p[0]", "['n'].q"]
    assert tree_unflatten(td, [5, 6])["n"].kw == {"p": (5,), "q": 6}


def test_registered_namedtuple_class_overrides_default():
    NT = namedtuple("NT", "a b")
    assert tree_leaves(NT(1, 2)) == [1, 2]
    register_pytree_node(NT, lambda t: ((t.a,), t.b), lambda b, kids: NT(kids[0], b))
    assert tree_leaves(NT(1, 2)) == [1]


def test_register_dataclass_explicit_fields():
    @dataclasses.dataclass
    class Layer:
        w: object
        b: object
        name: str

    assert register_dataclass(Layer, data_fields=["w", "b"], meta_fields=["name"]) is Layer
    leaves, td = tree_flatten(Layer(1, 2, "l1"))
    assert leaves == [1, 2]
    assert repr(td) == "PyTreeDef(Layer(w=*, b=*, name='l1'))"
    assert td != tree_structure(Layer(1, 2, "l2"))
    out = tree_unflatten(td, [3, 4])
    assert out == Layer(3, 4, "l1")
    pairs, _ = tree_flatten_with_path(Layer(1, 2, "l1"))
    assert [keystr(p) for p, _ in pairs] == [".w", ".b"]


def test_register_dataclass_inferred_decorator_with_static_field():
    post_init_calls = []

    @register_dataclass
    @dataclasses.dataclass
    class Opt:
        lr: float
        state: dict
        kind: str = dataclasses.field(default="adam", metadata=dict(static=True))
        derived: int = dataclasses.field(init=False, default=0)

        def __post_init__(self):
            post_init_calls.append(self.kind)

    o = Opt(0.1, {"m": 1})
    leaves, td = tree_flatten(o)
    assert leaves == [0.1, 1]
    out = tree_unflatten(td, [0.2, 2])
    assert out.lr == 0.2 and out.state == {"m": 2} and out.kind == "adam"
    assert post_init_calls == ["adam", "adam"]  # the constructor is used
    assert tree_map(lambda x: x * 10, o).state == {"m": 10}


def test_register_dataclass_errors():
    @dataclasses.dataclass
    class A:
        x: int
        y: int

    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        register_dataclass(A, data_fields=["x"], meta_fields=[])
    with pytest.raises(TypeError, match="give both data_fields and meta_fields"):
        register_dataclass(A, data_fields=["x", "y"])

    class NotDC:
        pass

    with pytest.raises(TypeError, match="is not a dataclass"):
        register_dataclass(NotDC)
    with pytest.raises(ValueError, match="both data and meta"):
        register_dataclass(A, data_fields=["x", "y"], meta_fields=["x"])

    # a plain class with explicit fields works (no dataclass validation)
    class Plain:
        def __init__(self, x, y):
            self.x, self.y = x, y

    register_dataclass(Plain, data_fields=["x"], meta_fields=["y"])
    out = tree_map(lambda v: v + 1, Plain(1, "s"))
    assert out.x == 2 and out.y == "s"


# ---------------------------------------------------------------------------
# Errors and imports
# ---------------------------------------------------------------------------


def test_unflatten_wrong_leaf_count_message():
    td = tree_structure({"a": 1, "b": (2, 3)})
    with pytest.raises(ValueError, match=r"expects 3 leaves, but 2 were given"):
        tree_unflatten(td, [1, 2])
    with pytest.raises(ValueError, match=r"expects 3 leaves, but 4 were given"):
        td.unflatten([1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"expects 1 leaves, but 0 were given"):
        tree_unflatten(tree_structure(1), [])
    with pytest.raises(TypeError, match="expects a PyTreeDef"):
        tree_unflatten([1, 2], td)


def test_module_imports_only_stdlib():
    # Load the file on its own (not via the functad package, whose __init__
    # may legitimately import numpy) and check no heavy module came along.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('tu_alone', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "print([m for m in ('numpy', 'numba', 'scipy') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, tu.__file__], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_type_table_does_not_grow_without_bound(monkeypatch):
    monkeypatch.setattr(tu, "_TABLE_MAX", len(tu._TABLE) + 5)
    classes = [type(f"Dyn{i}", (), {}) for i in range(50)]
    objs = [c() for c in classes]
    assert tree_leaves(objs) == objs
    assert len(tu._TABLE) <= tu._TABLE_MAX
    assert tree_leaves({"a": (1, [2])}) == [1, 2]  # built-ins still dispatch after a reset
