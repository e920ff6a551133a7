"""vmap of indexing and sorting: the ``gather``/``scatter`` primitives
(functad.lax.indexing), ``sort``/``searchsorted`` (functad.lax.sorting) and the
functad.numpy functions built on them.

The law tested throughout: ``vmap(f, in_axes=a, out_axes=b)(*args)`` equals
the eager results ``f(*example)`` for each example, stacked along ``b`` with
NumPy, for random ``a`` and ``b`` (negative ones included); every operand
(array, index arrays, update values) is batched or not.  The staged form
type-checks and gives the same values.  Then the compositions with ``grad``,
``jvp`` and ``vmap`` itself, and the shape of the staged rules: a batched
gather or scatter is one equation, and unbatched operands stay unbatched.

Indices are in bounds: out of bounds, concrete indices raise while traced
ones clamp (gather) or are dropped (scatter), so the eager reference and the
batched (traced) indices would legitimately differ.
"""

import numpy as np
import pytest
from hypothesis import strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core
from functad.lax import indexing as li
from functad.lax import sorting as lsort
from functad.testing import shapes

from helpers import assert_law, assert_same, law, out_axis_for, stacked, take, values

PRIMS = [li.gather_p, li.scatter_p, lsort.sort_p, lsort.searchsorted_p]


def test_every_primitive_of_the_modules_has_a_rule_and_a_test():
    defined = {p.name for p in core.primitives.values()
               if any(getattr(m, n, None) is p for m in (li, lsort) for n in dir(m))}
    assert defined == {p.name for p in PRIMS}
    missing = [p.name for p in PRIMS if not callable(p.batch)]
    assert not missing, f"primitives without a batching rule: {missing}"


# --------------------------------------------------------------------------
# The law
# --------------------------------------------------------------------------

def stack_at(draw, make, n):
    """``n`` examples ``make(i)`` stacked along a random (maybe negative) axis."""
    ex = [make(i) for i in range(n)]
    nd = np.ndim(ex[0]) + 1
    axis = draw(st.integers(-nd, nd - 1))
    return np.stack(ex, axis=axis), axis


def maybe_batched(draw, make, n, batched=None):
    """An operand: ``make(i)`` per example (batched), or one ``make(0)`` (unbatched)."""
    if batched is None:
        batched = draw(st.booleans())
    if not batched:
        return make(0), None
    return stack_at(draw, make, n)


def getitem(x, idx):
    # x[idx] on tracers; functad's indexing on unbatched NumPy operands (NumPy's
    # own ndarray indexing cannot take a tracer index)
    return x[idx] if isinstance(x, core.Tracer) else fnp._getitem(x, idx)


def at(x):
    return fnp.asarray(x).at


# --------------------------------------------------------------------------
# Random NumPy indices with batchable integer arrays
# --------------------------------------------------------------------------

@st.composite
def index_template(draw, shape, arrays=True):
    """A random NumPy index for an example of ``shape``: a list of items
    ``("s", slice)``, ``("i", int)``, ``("a", j)`` (the j-th index array),
    ``("n",)`` and ``("e",)``; plus the shapes of the index arrays (they
    broadcast together) and the sizes of the dimensions they index."""
    items, a_dims = [], []
    kinds = ["s", "i", "a", "full"] if arrays else ["s", "i", "full"]
    for d in shape:
        kind = draw(st.sampled_from(kinds))
        if kind == "s":
            start = draw(st.none() | st.integers(-d, d))
            stop = draw(st.none() | st.integers(-d, d))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            items.append(("s", slice(start, stop, step)))
        elif kind == "i":
            items.append(("i", draw(st.integers(-d, d - 1))))
        elif kind == "a":
            items.append(("a", len(a_dims)))
            a_dims.append(d)
        else:
            items.append(("s", slice(None)))
    # an Ellipsis over a (maybe empty) run of full slices
    if draw(st.booleans()):
        full = [k for k, it in enumerate(items) if it == ("s", slice(None))]
        start = draw(st.sampled_from(full + [len(items)]))
        end = start
        while end < len(items) and items[end] == ("s", slice(None)) and draw(st.booleans()):
            end += 1
        items[start:end] = [("e",)]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), ("n",))
    # drop trailing full slices sometimes (NumPy adds them back) -- not after an
    # Ellipsis: it would then stretch over the dropped dimensions and shift the
    # items after it onto other dimensions than the ones they were drawn for
    while items and ("e",) not in items and items[-1] == ("s", slice(None)) \
            and draw(st.booleans()):
        items.pop()
    b = draw(shapes(min_dims=0, max_dims=2, max_side=3))
    a_shapes = []
    for _ in a_dims:
        k = draw(st.integers(0, len(b)))
        a_shapes.append(tuple(draw(st.sampled_from([1, s])) for s in b[len(b) - k:]))
    return items, a_shapes, a_dims


def build_index(items, arrays):
    out = []
    for it in items:
        if it[0] in "si":
            out.append(it[1])
        elif it[0] == "a":
            out.append(arrays[it[1]])
        elif it[0] == "n":
            out.append(None)
        else:
            out.append(Ellipsis)
    return tuple(out)


def index_arrays(draw, a_shapes, a_dims, n, seed):
    """Index arrays in bounds (negative ones included), each batched or not."""
    arrays, axes = [], []
    for j, (s, d) in enumerate(zip(a_shapes, a_dims)):
        def make(i, s=s, d=d, j=j):
            return np.random.default_rng(seed + 7 * i + j).integers(-d, d, s)
        a, ax = maybe_batched(draw, make, n)
        arrays.append(a)
        axes.append(ax)
    return arrays, axes


# --------------------------------------------------------------------------
# gather: x[idx]
# --------------------------------------------------------------------------

@law
def test_getitem(data):
    """Basic, integer-array and mixed indices; the array and each index array
    batched or not (at least one of them batched)."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    items, a_shapes, a_dims = draw(index_template(shape))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    arrays, a_axes = index_arrays(draw, a_shapes, a_dims, n, seed)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
    x_batched = True if all(a is None for a in a_axes) else draw(st.booleans())
    x, xa = maybe_batched(draw, lambda i: values(seed + i, shape, dtype), n, x_batched)

    def f(x, *arrays):
        return getitem(x, build_index(items, arrays))
    rank = np.ndim(f(take(x, 0, xa), *[take(a, 0, ax) for a, ax in zip(arrays, a_axes)]))
    jaxpr = assert_law(f, [x, *arrays], [xa, *a_axes], out_axis_for(draw, rank))
    gathers = [e for e in jaxpr.eqns if e.primitive is li.gather_p]
    assert len(gathers) <= 1
    if xa is None and gathers:       # the unbatched array is gathered from as it is
        assert gathers[0].inputs[0] is jaxpr.invars[0]


@law
def test_getitem_with_a_concrete_boolean_mask(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    k = draw(st.integers(1, len(shape)))
    lead = draw(st.integers(0, len(shape) - k))
    seed = draw(st.integers(0, 2**16))
    mask = np.random.default_rng(seed).uniform(size=shape[lead:lead + k]) < 0.5
    idx = (slice(None),) * lead + (mask,)
    if draw(st.booleans()):
        idx = idx + (Ellipsis, None)
    x, xa = stack_at(draw, lambda i: values(seed + i, shape), draw(st.integers(1, 3)))

    def f(x):
        return x[idx]
    rank = np.ndim(f(take(x, 0, xa)))
    assert_law(f, [x], [xa], out_axis_for(draw, rank))


@law
def test_take_and_take_along_axis(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    fn = draw(st.sampled_from(["take", "take_clip", "take_wrap", "take_along_axis"]))
    size = int(np.prod(shape)) if axis is None else shape[axis]
    if fn == "take_along_axis":
        ishape = (draw(st.integers(1, 5)),) if axis is None else tuple(
            draw(st.integers(1, 3)) if d == axis % len(shape) else
            draw(st.sampled_from([1, s])) for d, s in enumerate(shape))
    else:
        ishape = draw(shapes(min_dims=0, max_dims=2, max_side=3))
    wild = fn in ("take_clip", "take_wrap")     # out of bounds, handled by the mode

    def make_idx(i):
        rng = np.random.default_rng(seed + 100 + i)
        return rng.integers(-2 * size - 1, 2 * size + 2, ishape) if wild else \
            rng.integers(-size, size, ishape)
    idx, ia = maybe_batched(draw, make_idx, n)
    x, xa = maybe_batched(draw, lambda i: values(seed + i, shape), n,
                          True if ia is None else None)

    def f(x, i):
        if fn == "take_along_axis":
            return fnp.take_along_axis(x, i, axis=axis)
        return fnp.take(x, i, axis=axis, mode=fn[5:] or None)
    rank = np.ndim(f(take(x, 0, xa), take(idx, 0, ia)))
    assert_law(f, [x, idx], [xa, ia], out_axis_for(draw, rank))


# --------------------------------------------------------------------------
# scatter: x.at[idx].set/add/multiply/min/max, and .get
# --------------------------------------------------------------------------

MODES = ["set", "add", "multiply", "min", "max", "get"]


@pytest.mark.parametrize("mode", MODES)
@law
def test_at_updates(mode, data):
    """The array, each index array and the values batched or not; repeated
    indices (they accumulate, and for ``set`` the same update wins)."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    items, a_shapes, a_dims = draw(index_template(shape))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    arrays, a_axes = index_arrays(draw, a_shapes, a_dims, n, seed)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    ex_idx = build_index(items, [take(a, 0, ax) for a, ax in zip(arrays, a_axes)])
    g = np.zeros(shape)[ex_idx].shape
    k = draw(st.integers(0, len(g)))
    vshape = tuple(draw(st.sampled_from([1, s])) for s in g[len(g) - k:])
    v, va = maybe_batched(draw, lambda i: values(seed + 50 + i, vshape, dtype), n)
    x, xa = maybe_batched(draw, lambda i: values(seed + i, shape, dtype), n,
                          True if all(a is None for a in [va, *a_axes]) else None)

    def f(x, v, *arrays):
        ref = at(x)[build_index(items, arrays)]
        return ref.get() if mode == "get" else getattr(ref, mode)(v)
    rank = np.ndim(f(take(x, 0, xa), take(v, 0, va),
                     *[take(a, 0, ax) for a, ax in zip(arrays, a_axes)]))
    jaxpr = assert_law(f, [x, v, *arrays], [xa, va, *a_axes], out_axis_for(draw, rank))
    if mode != "get":
        (scatter,) = [e for e in jaxpr.eqns if e.primitive is li.scatter_p]
        if va is None:      # unbatched values are never broadcast to the batch
            assert np.prod(scatter.inputs[1].aval.shape) == np.prod(vshape)


@law
def test_at_updates_with_a_concrete_boolean_mask(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    seed = draw(st.integers(0, 2**16))
    mask = np.random.default_rng(seed).uniform(size=shape[:1]) < 0.5
    n = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["set", "add", "max"]))
    x, xa = stack_at(draw, lambda i: values(seed + i, shape), n)
    v, va = maybe_batched(draw, lambda i: values(seed + 9 + i, shape[1:]), n)

    def f(x, v):
        return getattr(x.at[mask], mode)(v) if isinstance(x, core.Tracer) else \
            getattr(at(x)[mask], mode)(v)
    assert_law(f, [x, v], [xa, va], out_axis_for(draw, len(shape)))


def test_put_along_axis_and_set_with_batched_indices():
    x = np.arange(12.0).reshape(3, 4)
    i = np.array([[0, 3], [1, 1], [2, 0]])
    got = fd.vmap(lambda x, i: fnp.put_along_axis(x, i, -1.0, axis=0, inplace=False))(x, i)
    expected = np.stack([np.where(np.isin(np.arange(4), r), -1.0, row) for row, r in zip(x, i)])
    assert_same(got, expected)


# --------------------------------------------------------------------------
# sort, argsort, lexsort, searchsorted
# --------------------------------------------------------------------------

SORTS = ["sort", "sort_desc", "argsort", "argsort_desc", "msort"]


@pytest.mark.parametrize("fn", SORTS)
@law
def test_sort_functions(fn, data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
    seed = draw(st.integers(0, 2**16))

    def make(i):
        v = values(seed + i, shape, dtype)
        if dtype == np.float64 and i % 2:
            v.reshape(-1)[0] = np.nan     # NaNs sort last
        return v
    x, xa = stack_at(draw, make, draw(st.integers(1, 3)))
    desc = fn.endswith("_desc")

    def f(x):
        if fn == "msort":
            return fnp.msort(x)
        g = fnp.sort if fn.startswith("sort") else fnp.argsort
        return g(x, axis=axis, descending=desc) if desc else g(x, axis=axis)
    rank = np.ndim(f(take(x, 0, xa)))
    assert_law(f, [x], [xa], out_axis_for(draw, rank))


@law
def test_lax_sort_several_operands(data):
    """Keys and values each batched or not; with unbatched keys the keys stay
    unbatched (sorted once) and the batched values are gathered."""
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    k = draw(st.integers(1, 3))
    num_keys = draw(st.integers(1, k))
    dim = draw(st.integers(0, len(shape) - 1))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    ops, axes = [], []
    for j in range(k):
        dtype = draw(st.sampled_from([np.float64, np.int64]))
        o, a = maybe_batched(draw, lambda i, j=j, dtype=dtype: values(seed + 10 * j + i, shape,
                                                                      dtype), n,
                             True if j == k - 1 and all(a is None for a in axes) else None)
        ops.append(o)
        axes.append(a)

    def f(*ops):
        return lsort.sort(ops, dim, num_keys=num_keys)
    jaxpr = assert_law(f, ops, axes, out_axis_for(draw, len(shape)))
    if all(a is None for a in axes[:num_keys]):
        (eqn,) = [e for e in jaxpr.eqns if e.primitive is lsort.sort_p]
        assert eqn.inputs[0] is jaxpr.invars[0]


@law
def test_lexsort(data):
    draw = data.draw
    shape = draw(shapes(min_dims=1, max_dims=2, max_side=4))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    k1, a1 = stack_at(draw, lambda i: values(seed + i, shape, np.int64), n)
    k2, a2 = maybe_batched(draw, lambda i: values(seed + 5 + i, shape), n)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    assert_law(lambda a, b: fnp.lexsort((a, b), axis=axis), [k1, k2], [a1, a2],
               out_axis_for(draw, len(shape)))


@law
def test_searchsorted(data):
    """The sorted array and the queries each batched or not (a batched sorted
    array is one binary search over all the examples)."""
    draw = data.draw
    m = draw(st.integers(0, 9))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    qshape = draw(shapes(min_dims=0, max_dims=2, max_side=4))
    side = draw(st.sampled_from(["left", "right"]))
    dtype = draw(st.sampled_from([np.float64, np.int64]))
    nans = dtype == np.float64 and draw(st.booleans())

    def sorted_row(i):
        v = np.sort(values(seed + i, (m,), dtype))
        if nans and m:
            v[-1] = np.nan
        return v

    def queries(i):
        q = values(seed + 20 + i, qshape, dtype) * 1.25 if dtype == np.float64 else \
            values(seed + 20 + i, qshape, dtype)
        if nans and q.size:
            q.reshape(-1)[0] = np.nan
        return q.astype(dtype)
    a, aa = maybe_batched(draw, sorted_row, n)
    v, va = maybe_batched(draw, queries, n, True if aa is None else None)
    jaxpr = assert_law(lambda a, v: fnp.searchsorted(a, v, side=side), [a, v], [aa, va],
                       out_axis_for(draw, len(qshape)))
    if aa is None:
        assert [e.primitive for e in jaxpr.eqns][:1] == [lsort.searchsorted_p]


# --------------------------------------------------------------------------
# What the rules stage
# --------------------------------------------------------------------------

def jaxpr_of(f, *args, in_axes=0, out_axes=0):
    jaxpr = fd.make_jaxpr(fd.vmap(f, in_axes=in_axes, out_axes=out_axes))(*args).jaxpr
    core.check_jaxpr(jaxpr)
    return jaxpr


def test_batched_gather_and_scatter_are_one_equation():
    x = np.zeros((5, 4, 3))
    i = np.zeros((5, 2), np.int64)
    for f, axes in [(lambda x, i: x[i, 1:], (0, 0)),                 # both batched
                    (lambda x, i: x[:, i], (None, 0)),               # batched indices only
                    (lambda x, i: x[1, i], (2, None)),               # batched array only
                    (lambda x, i: x.at[i].add(1.0), (0, 0)),
                    (lambda x, i: x.at[:, 0].set(2.0), (1, None))]:
        jaxpr = jaxpr_of(f, x, i, in_axes=axes)
        names = [e.primitive.name for e in jaxpr.eqns]
        assert sum(n in ("gather", "scatter") for n in names) == 1, names
        assert "broadcast_to" not in names, names


def test_batch_axis_of_the_array_is_indexed_in_place():
    """A batch axis outside the block of adjacent advanced indices needs no
    transpose; one inside it is moved next to the block first (inserting a
    slice there would make NumPy put the index shape first)."""
    x = np.arange(4 * 5 * 6.0).reshape(4, 5, 6)
    i = np.array([0, 2])
    jaxpr = jaxpr_of(lambda x: x[:, i], x, in_axes=2, out_axes=2)
    assert [e.primitive.name for e in jaxpr.eqns] == ["gather"]
    assert jaxpr.eqns[0].inputs[0] is jaxpr.invars[0]
    y = np.arange(4 * 5 * 6 * 7.0).reshape(4, 5, 6, 7)
    for f in (lambda x: x[:, i, i], lambda x: x[i, :, i], lambda x: x[..., i, None, 1]):
        for ax in range(4):
            got = fd.vmap(f, in_axes=ax, out_axes=-1)(y)
            assert_same(got, stacked(f, [y], [ax], -1)[0])


def test_unbatched_values_and_keys_stay_unbatched():
    xs = np.zeros((3, 4))
    v = np.arange(2.0)
    jaxpr = jaxpr_of(lambda x, v: x.at[1:3].set(v), xs, v, in_axes=(0, None))
    (eqn,) = [e for e in jaxpr.eqns if e.primitive is li.scatter_p]
    assert eqn.inputs[1] is jaxpr.invars[1]
    keys = np.array([2.0, 0.0, 1.0, 0.0])
    jaxpr = jaxpr_of(lambda k, x: lsort.sort((k, x), 0), keys, xs, in_axes=(None, 0))
    (eqn,) = [e for e in jaxpr.eqns if e.primitive is lsort.sort_p]
    assert eqn.inputs[0] is jaxpr.invars[0] and eqn.outvars[0].aval.shape == (4,)


# --------------------------------------------------------------------------
# Compositions with differentiation and with vmap itself
# --------------------------------------------------------------------------

def _grad_fn(draw, name, shape, n, seed):
    """A differentiable function of one example ``x`` (and batched integer data
    ``d``), the data and its in_axes."""
    if name == "getitem":
        items, a_shapes, a_dims = draw(index_template(shape))
        arrays, axes = index_arrays(draw, a_shapes, a_dims, n, seed)
        return (lambda x, *d: getitem(x, build_index(items, d))), arrays, axes
    if name == "take_along_axis":
        ax = draw(st.integers(0, len(shape) - 1))
        d, a = stack_at(draw, lambda i: np.random.default_rng(seed + i).integers(
            0, shape[ax], shape), n)
        return (lambda x, i: fnp.take_along_axis(x, i, axis=ax)), [d], [a]
    if name in ("set", "add", "multiply", "max"):
        # repeated indices, the same for every example or not
        d, a = maybe_batched(draw, lambda i: np.random.default_rng(seed + i).integers(
            -shape[0], shape[0], (3,)), n)

        def f(x, i):
            vals = fnp.cos(getitem(x, i)) * 2.0
            return getattr(x.at[i], name)(vals) if isinstance(x, core.Tracer) else \
                getattr(at(x)[i], name)(vals)
        return f, [d], [a]
    if name == "sort":
        ax = draw(st.integers(-len(shape), len(shape) - 1))
        return (lambda x: fnp.sort(x * x, axis=ax)), [], []
    raise ValueError(name)


GRAD_FUNCS = ["getitem", "take_along_axis", "set", "add", "multiply", "max", "sort"]


@st.composite
def grad_case(draw, name):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=3))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    f, d, d_axes = _grad_fn(draw, name, shape, n, seed)
    xs, xa = stack_at(draw, lambda i: values(seed + 1000 + i, shape) + 0.25, n)
    return f, xs, xa, d, d_axes


def scalar_of(f):
    return lambda x, *d: fnp.sum(fnp.sin(f(x, *d)) * 1.5)


@pytest.mark.parametrize("name", GRAD_FUNCS)
@law
def test_vmap_of_grad_and_grad_of_vmap(name, data):
    f, xs, xa, d, d_axes = data.draw(grad_case(name))
    g = scalar_of(f)
    b = out_axis_for(data.draw, np.ndim(xs) - 1)
    args, axes = [xs, *d], [xa, *d_axes]
    (expected,) = stacked(fd.grad(g), args, axes, b)
    assert_same(fd.vmap(fd.grad(g), in_axes=tuple(axes), out_axes=b)(*args), expected)
    total = fd.grad(lambda xs: fnp.sum(fd.vmap(g, in_axes=tuple(axes))(xs, *d)))(xs)
    assert_same(total, stacked(fd.grad(g), args, axes, xa)[0])


@pytest.mark.parametrize("name", GRAD_FUNCS)
@law
def test_jvp_of_vmap(name, data):
    f, xs, xa, d, d_axes = data.draw(grad_case(name))
    ts = values(data.draw(st.integers(0, 2**16)), np.shape(xs))
    n = np.shape(xs)[xa]
    per = [fd.jvp(lambda x, i=i: f(x, *[take(a, i, ax) for a, ax in zip(d, d_axes)]),
                  (take(xs, i, xa),), (take(ts, i, xa),)) for i in range(n)]
    vf = fd.vmap(f, in_axes=(xa, *d_axes), out_axes=-1)
    y, t = fd.jvp(lambda x: vf(x, *d), (xs,), (ts,))
    assert_same(y, np.stack([np.asarray(p[0]) for p in per], axis=-1))
    assert_same(t, np.stack([np.asarray(p[1]) for p in per], axis=-1))


@pytest.mark.parametrize("name", GRAD_FUNCS + ["searchsorted"])
@law
def test_vmap_of_vmap(name, data):
    """Two batch axes (the inner rule's operands are tracers of the outer vmap);
    the integer data is batched by both vmaps."""
    draw = data.draw
    if name == "searchsorted":
        def f(x, q):
            return fnp.searchsorted(fnp.sort(fnp.ravel(x)), q)
        shape = draw(shapes(min_dims=1, max_dims=2, max_side=3))
        seed = draw(st.integers(0, 2**16))
        m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        xs = values(seed, (m, n) + shape)
        qs = values(seed + 1, (m, n, 2))
        got = fd.vmap(fd.vmap(f, in_axes=(0, 0)), in_axes=(1, 1), out_axes=-1)(
            np.swapaxes(xs, 0, 1), np.swapaxes(qs, 0, 1))
        expected = np.stack([np.stack([np.asarray(f(xs[i, j], qs[i, j])) for j in range(n)])
                             for i in range(m)], axis=-1)
        assert_same(got, expected)
        return
    f, ys, ya, d, d_axes = draw(grad_case(name))
    m = draw(st.integers(1, 3))
    # an outer batch of m inner batches: the array and the data vary along both
    xs = np.stack([ys + k for k in range(m)], axis=0)
    ds = [np.stack([a] * m, axis=0) for a in d]
    inner = fd.vmap(f, in_axes=(ya, *d_axes))
    got = fd.vmap(inner, in_axes=0, out_axes=-1)(xs, *ds)
    expected = np.stack([stacked(f, [xs[k], *d], [ya, *d_axes], 0)[0] for k in range(m)],
                        axis=-1)
    assert_same(got, expected)
