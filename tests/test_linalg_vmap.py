"""vmap of products and linear algebra (functad.lax.linalg and the
functad.numpy functions built on it).

The law tested throughout: ``vmap(f, in_axes=a, out_axes=b)(*xs)`` equals the
eager results ``f(*x)`` of the examples (taken along ``a``; an argument whose
axis is ``None`` is the same for every example), stacked along ``b``.  ``a``
(per argument, ``None`` included) and ``b`` (per output) are random, negative
ones included.  It is checked eagerly and staged (``make_jaxpr`` of the
vmapped function type-checks and computes the same values).  Then the
compositions ``vmap(grad(f))``, ``grad(sum of vmap(f))``, ``jvp(vmap(f))``
and ``vmap(vmap(f))`` against loops, per-example gradients of a small MLP,
and the shape of the staged programs: an unbatched weight matrix is never
broadcast.
"""

import warnings

import numpy as np
import pytest
from hypothesis import strategies as st

import functad as fd
import functad.numpy as fnp
from functad import core, lax
from functad import tree_util as tu
from functad.lax import linalg as ll

import helpers
from helpers import draw_dot_general_axes
from helpers import assert_tree_same

INF = np.inf


# --------------------------------------------------------------------------
# Inputs: well-conditioned examples
# --------------------------------------------------------------------------

def orthogonal(rng, lead, n):
    q, r = np.linalg.qr(rng.standard_normal(lead + (n, n)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def general(rng, lead, n):
    """U diag(s) V with singular values in [1, 3]: invertible, either sign of det."""
    s = rng.uniform(1.0, 3.0, lead + (n,))
    return orthogonal(rng, lead, n) @ (s[..., :, None] * orthogonal(rng, lead, n))


def spd(rng, lead, n):
    b = rng.standard_normal(lead + (n, n))
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def symmetric(rng, lead, n):
    """Q diag(w) Q^T with eigenvalue gaps of at least 0.5."""
    w = np.cumsum(rng.uniform(0.5, 1.5, lead + (n,)), axis=-1) - n
    q = orthogonal(rng, lead, n)
    a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
    return (a + np.swapaxes(a, -1, -2)) / 2


def triangular(rng, lead, n):
    """A dominant diagonal, small entries elsewhere (both triangles filled: the
    primitives read one), so that every triangle and unit-diagonal variant is
    well conditioned."""
    a = rng.uniform(-0.3, 0.3, lead + (n, n)) / n
    d = rng.uniform(1.0, 2.0, lead + (n,)) * rng.choice([-1.0, 1.0], lead + (n,))
    return a + d[..., :, None] * np.eye(n)


def distinct_sv(rng, lead, m, n):
    """An (m, n) matrix with distinct singular values in [1, 4] (spaced by >= 0.5)."""
    k = min(m, n)
    s = 1.0 + 0.5 * np.arange(k)[::-1] + rng.uniform(0, 0.3, lead + (k,))
    u = orthogonal(rng, lead, m)[..., :, :k]
    v = orthogonal(rng, lead, n)[..., :k, :]
    return u @ (s[..., :, None] * v)


def normal(rng, lead, *shape):
    return rng.standard_normal(lead + tuple(shape))


KINDS = {"normal": normal, "general": general, "spd": spd, "symmetric": symmetric,
         "triangular": triangular, "distinct_sv": distinct_sv}


def make_examples(seed, n, specs):
    """For each ``(kind, shape[, dtype])`` of ``specs``: ``n`` examples stacked on axis 0."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        kind, shape = spec[0], spec[1]
        dtype = spec[2] if len(spec) > 2 else np.float64
        if kind == "int":
            x = rng.integers(-3, 4, (n,) + tuple(shape))
        elif kind == "normal":
            x = normal(rng, (n,), *shape)
        else:   # matrices: shape is (lead..., m[, n]) with the kind's own meaning
            *lead, last = shape
            if kind == "distinct_sv":
                *lead, m = lead
                x = distinct_sv(rng, (n,) + tuple(lead), m, last)
            else:
                x = KINDS[kind](rng, (n,) + tuple(lead)[:-1], last)
        out.append(np.asarray(x).astype(dtype))
    return out


# --------------------------------------------------------------------------
# The law
# --------------------------------------------------------------------------

def as_tuple(out):
    """Outputs as a plain tuple (lists of multiple results, named tuples)."""
    return tuple(out) if isinstance(out, (list, tuple)) else out


def in_axes_for(draw, ranks, batched=None):
    """One (maybe negative) axis per argument, or ``None`` for an unbatched one;
    at least one argument is batched."""
    if batched is None:
        batched = draw(st.lists(st.booleans(), min_size=len(ranks), max_size=len(ranks))
                       .filter(any))
    return tuple(draw(st.integers(-(r + 1), r)) if b else None for r, b in zip(ranks, batched))


def out_axes_for(draw, out):
    """A (maybe negative) axis for each output leaf, in the output's structure."""
    axes = [draw(st.integers(-(np.ndim(o) + 1), np.ndim(o))) for o in tu.tree_leaves(out)]
    return tu.tree_unflatten(tu.tree_structure(out), axes)


def batch_args(examples, in_axes):
    return [ex[0] if ax is None else np.moveaxis(ex, 0, ax) for ex, ax in zip(examples, in_axes)]


def example(examples, in_axes, i):
    return [ex[0] if ax is None else ex[i] for ex, ax in zip(examples, in_axes)]


def stacked(f, examples, in_axes, out_axes, n):
    """The reference: ``f`` on each example, eagerly, each output leaf stacked
    along its out axis."""
    outs = [as_tuple(f(*example(examples, in_axes, i))) for i in range(n)]
    leaves = [tu.tree_leaves(o) for o in outs]
    axes = tu.tree_leaves(out_axes)
    res = [np.stack([np.asarray(lv[k]) for lv in leaves], axis=axes[k]) for k in range(len(axes))]
    return tu.tree_unflatten(tu.tree_structure(outs[0]), res)


def assert_close(got, expected, tol=None):
    """Same structure, shapes and dtypes; close values (looser than elsewhere:
    factorizations round more)."""
    assert_tree_same(got, expected, tol32=tol or 2e-4, tol64=tol or 1e-9)


def check_law(draw, f, specs, batched=None, tol=None):
    """``vmap(f)`` against the stacked loop, eagerly and staged, for random
    ``in_axes``/``out_axes``.  ``specs`` describe one example of each argument."""
    n = draw(st.integers(1, 3))
    examples = make_examples(draw(st.integers(0, 2**31)), n, specs)
    in_axes = in_axes_for(draw, [np.ndim(ex) - 1 for ex in examples], batched)
    args = batch_args(examples, in_axes)
    g = lambda *a: as_tuple(f(*a))                      # noqa: E731
    out_axes = out_axes_for(draw, g(*example(examples, in_axes, 0)))
    expected = stacked(g, examples, in_axes, out_axes, n)
    vf = fd.vmap(g, in_axes=in_axes, out_axes=out_axes)
    got = vf(*args)
    assert_close(got, expected, tol)
    closed = fd.make_jaxpr(vf)(*args)
    core.check_jaxpr(closed.jaxpr)
    staged = core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
    assert_close(tuple(staged), tuple(tu.tree_leaves(got)), tol)
    return closed


def law(test):
    return helpers.law(test, max_examples=15)


# --------------------------------------------------------------------------
# Every primitive of lax/linalg.py has a rule, and is tested
# --------------------------------------------------------------------------

def _module_primitives():
    return {p for p in core.primitives.values()
            if any(getattr(ll, n, None) is p for n in dir(ll))}


def test_every_linalg_primitive_has_a_batching_rule():
    prims = _module_primitives()
    missing = sorted(p.name for p in prims if not callable(p.batch))
    assert not missing, f"primitives of lax/linalg.py without a batching rule: {missing}"
    untested = sorted(p.name for p in prims if p.name not in PRIM_CASES)
    assert not untested, f"primitives of lax/linalg.py not covered here: {untested}"


# --------------------------------------------------------------------------
# Each primitive: random parameters and inputs
# --------------------------------------------------------------------------

leads = st.sampled_from([(), (2,)])        # leading (stack) dimensions of an example
sides = st.integers(1, 3)
DTYPES = [np.float64, np.float32, np.int64]


@st.composite
def dot_general_case(draw):
    """Random dimension numbers: labelled batch, contracting and free axes in
    random positions of each operand."""
    xl, yl, size, dn = draw_dot_general_axes(draw, min_side=1)
    dx, dy = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    specs = [("int" if np.dtype(dt).kind == "i" else "normal", [size[a] for a in labs], dt)
             for labs, dt in ((xl, dx), (yl, dy))]
    return (lambda x, y: lax.dot_general(x, y, dn)), specs


@st.composite
def diagonal_case(draw):
    nd = draw(st.integers(2, 4))
    shape = [draw(sides) for _ in range(nd)]
    a1, a2 = draw(st.permutations(range(nd)))[:2]
    offset = draw(st.integers(-2, 2))
    return (lambda x: ll.diagonal_p.bind(x, offset=offset, axis1=a1, axis2=a2)), [
        ("normal", shape)]


@st.composite
def embed_diagonal_case(draw):
    n, m = draw(sides), draw(sides)
    offset = draw(st.integers(-n + 1, m - 1))
    d = ll._diag_len(n, m, offset)
    lead = list(draw(st.sampled_from([(), (2,), (1, 2)])))
    return (lambda v: ll.embed_diagonal_p.bind(v, offset=offset, n=n, m=m)), [
        ("normal", lead + [d])]


def unary_case(fn, kind, square=True, **param_strategies):
    @st.composite
    def case(draw):
        lead = list(draw(leads))
        params = {k: draw(s) for k, s in param_strategies.items()}
        if square:
            n = draw(sides)
            shape = lead + [n, n]
        else:
            shape = lead + [draw(sides), draw(sides)]
        return (lambda a: fn(a, **params)), [(kind, shape)]
    return case()


@st.composite
def triangular_solve_case(draw):
    lead, n, k = list(draw(leads)), draw(sides), draw(sides)
    params = dict(lower=draw(st.booleans()), transpose_a=draw(st.booleans()),
                  unit_diagonal=draw(st.booleans()))
    return (lambda a, b: ll.triangular_solve_p.bind(a, b, **params)), [
        ("triangular", lead + [n, n]), ("normal", lead + [n, k])]


@st.composite
def solve_case(draw):
    lead, n, k = list(draw(leads)), draw(sides), draw(sides)
    return lax.solve, [("general", lead + [n, n]), ("normal", lead + [n, k])]


PRIM_CASES = {
    "dot_general": dot_general_case(),
    "diagonal": diagonal_case(),
    "embed_diagonal": embed_diagonal_case(),
    "cholesky": unary_case(lax.cholesky, "spd"),
    "triangular_solve": triangular_solve_case(),
    "solve": solve_case(),
    "inv": unary_case(lax.inv, "general"),
    "det": unary_case(lax.det, "general"),
    "slogdet": unary_case(lax.slogdet, "general"),
    "eigh": unary_case(lax.eigh, "normal", lower=st.booleans()),   # reads one triangle
    "svd": unary_case(lax.svd, "distinct_sv", square=False, full_matrices=st.booleans()),
    "qr": unary_case(lax.qr, "normal", square=False, full_matrices=st.booleans()),
}


@pytest.mark.parametrize("name", sorted(PRIM_CASES))
@law
def test_primitive_vmap_equals_stacked_loop(name, data):
    f, specs = data.draw(PRIM_CASES[name])
    check_law(data.draw, f, specs)


@pytest.mark.parametrize("name", sorted(PRIM_CASES))
@law
def test_primitive_vmap_of_vmap(name, data):
    """Two batch axes: the inner rule's operands are tracers of the outer vmap,
    so the outer rule batches the inner rule's output (and each level may have
    unbatched operands of its own)."""
    draw = data.draw
    f, specs = draw(PRIM_CASES[name])
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    # m * n examples of every argument, as an (m, n, ...) grid
    grid = [ex.reshape((m, n) + ex.shape[1:]) for ex in make_examples(seed, m * n, specs)]
    ranks = [ex.ndim - 2 for ex in grid]
    inner_axes = in_axes_for(draw, ranks)
    outer_axes = in_axes_for(draw, [r + (ax is not None) for r, ax in zip(ranks, inner_axes)])
    # the inner level's view of each argument: an (m, ...) stack, batched or not
    mid = [ex[:, 0] if ax is None else np.moveaxis(ex, 1, 1 + ax % (ex.ndim - 1))
           for ex, ax in zip(grid, inner_axes)]
    args = [ex[0] if ax is None else np.moveaxis(ex, 0, ax) for ex, ax in zip(mid, outer_axes)]
    g = lambda *a: as_tuple(f(*a))                      # noqa: E731
    one = [ex[0, 0] for ex in grid]
    out_inner = out_axes_for(draw, g(*one))
    out_outer = tu.tree_unflatten(tu.tree_structure(out_inner), [
        draw(st.integers(-(np.ndim(o) + 2), np.ndim(o) + 1)) for o in tu.tree_leaves(g(*one))])
    inner = fd.vmap(g, in_axes=inner_axes, out_axes=out_inner)
    got = fd.vmap(inner, in_axes=outer_axes, out_axes=out_outer)(*args)
    # the reference: the example (i, j) uses grid[i, j] (or [i, 0], [0, j], [0, 0])
    rows = []
    for i in range(m):
        row = []
        for j in range(n):
            ex = [e[0 if oa is None else i, 0 if ia is None else j]
                  for e, ia, oa in zip(grid, inner_axes, outer_axes)]
            row.append(tu.tree_leaves(g(*ex)))
        rows.append(row)
    res = []
    for k, (ai, ao) in enumerate(zip(tu.tree_leaves(out_inner), tu.tree_leaves(out_outer))):
        inner_stacks = [np.stack([np.asarray(r[j][k]) for j in range(n)], axis=ai) for r in rows]
        res.append(np.stack(inner_stacks, axis=ao))
    expected = tu.tree_unflatten(tu.tree_structure(out_inner), res)
    assert_close(got, expected)


# --------------------------------------------------------------------------
# The rules move and broadcast only what they must
# --------------------------------------------------------------------------

def eqn_names(closed):
    return [e.primitive.name for e in closed.jaxpr.eqns]


@pytest.mark.parametrize("x_shape", [(3,), (2, 3), (4, 2, 3)])
def test_x_at_W_is_one_dot_general_with_W_as_is(x_shape):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 5))
    xs = rng.standard_normal((6,) + x_shape)
    closed = fd.make_jaxpr(fd.vmap(lambda x: x @ W, in_axes=(0,)))(xs)
    core.check_jaxpr(closed.jaxpr)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.primitive is ll.dot_general_p
    assert eqn.inputs[0] is closed.jaxpr.invars[0]
    (wvar,) = closed.jaxpr.constvars
    assert eqn.inputs[1] is wvar and wvar.aval.shape == W.shape
    np.testing.assert_allclose(fd.vmap(lambda x: x @ W)(xs), xs @ W, rtol=1e-12)
    # W as an unbatched argument, and on the other side of the product
    closed = fd.make_jaxpr(fd.vmap(lambda x, w: x @ w, in_axes=(0, None)))(xs, W)
    assert eqn_names(closed) == ["dot_general"]
    assert closed.jaxpr.eqns[0].inputs[1] is closed.jaxpr.invars[1]
    # W on the left of a batch of vectors or matrices: still one product, and at
    # most vmap's own transpose to put the batch axis in front
    Wt = W.T.copy()
    ys = rng.standard_normal((6, 3) + x_shape[1:][:1])
    closed = fd.make_jaxpr(fd.vmap(lambda y: Wt @ y))(ys)
    names = eqn_names(closed)
    assert names[0] == "dot_general" and names[1:] in ([], ["transpose"]), names
    assert closed.jaxpr.eqns[0].inputs[0] is closed.jaxpr.constvars[0]
    np.testing.assert_allclose(fd.vmap(lambda y: Wt @ y)(ys), np.stack([Wt @ y for y in ys]),
                               rtol=1e-12)


def test_dot_general_rule_renumbers_and_never_broadcasts():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 2))
    dn = (((0,), (0,)), ((), ()))            # per example: x (3, 5), y (3, 2)
    f = lambda x, y: lax.dot_general(x, y, dn)         # noqa: E731
    for ax in (0, 1, 2):
        xs = np.moveaxis(x, 0, ax)
        closed = fd.make_jaxpr(fd.vmap(f, in_axes=(ax, None)))(xs, y)
        names = eqn_names(closed)
        assert names[0] == "dot_general" and set(names[1:]) <= {"transpose"}, names
        assert closed.jaxpr.eqns[0].inputs == [closed.jaxpr.invars[0], closed.jaxpr.invars[1]]
    # both batched: the batch axes pair up as a dot_general batch dimension, in place
    ys = rng.standard_normal((3, 2, 4))
    closed = fd.make_jaxpr(fd.vmap(f, in_axes=(1, 2)))(np.moveaxis(x, 0, 1), ys)
    (eqn,) = closed.jaxpr.eqns
    assert eqn.params["dimension_numbers"] == (((0,), (0,)), ((1,), (2,)))


def test_dot_general_every_placement_of_the_batch_axes():
    """All batch positions of both operands (or None), every out axis, and
    dimension numbers with batch, contracting and free axes on both sides."""
    rng = np.random.default_rng(4)
    dn = (((2,), (0,)), ((1,), (2,)))        # per example: x (2, 3, 4), y (4, 5, 3)
    x, y = rng.standard_normal((3, 2, 3, 4)), rng.standard_normal((3, 4, 5, 3))
    f = lambda x, y: lax.dot_general(x, y, dn)         # noqa: E731
    for ax in [None, 0, 1, 2, 3]:
        for ay in [None, 0, 1, 2, 3]:
            if ax is None and ay is None:
                continue
            for out in range(4):
                examples = [x, y]
                expected = stacked(f, examples, (ax, ay), out, 3)
                got = fd.vmap(f, in_axes=(ax, ay), out_axes=out)(*batch_args(examples, (ax, ay)))
                assert_close(got, expected)


def test_matrix_functions_leave_a_leading_batch_axis_in_place():
    rng = np.random.default_rng(2)
    a = general(rng, (2, 4), 3)                 # examples (2, 3, 3), batch axis 1
    for fn in (lax.inv, lax.det, lax.slogdet, lax.svd, lax.qr,
               lambda a: lax.eigh(a), lambda a: lax.solve(a, a)):
        closed = fd.make_jaxpr(fd.vmap(fn, in_axes=1, out_axes=1))(a)
        assert len(closed.jaxpr.eqns) == 1, eqn_names(closed)
        assert closed.jaxpr.eqns[0].inputs[0] is closed.jaxpr.invars[0]


def test_solve_with_only_b_batched_factorizes_a_once():
    """The batch goes into the columns of b: a single solve with a as it is."""
    rng = np.random.default_rng(3)
    a, bs = general(rng, (), 3), rng.standard_normal((5, 3, 2))
    for prim_fn in (lax.solve, lambda a, b: lax.triangular_solve(a, b, lower=False)):
        for ax in (0, 1, 2):
            closed = fd.make_jaxpr(fd.vmap(prim_fn, in_axes=(None, ax)))(a, np.moveaxis(bs, 0, ax))
            core.check_jaxpr(closed.jaxpr)
            names = eqn_names(closed)
            assert "broadcast_to" not in names, names
            solves = [e for e in closed.jaxpr.eqns if e.primitive.name in ("solve",
                                                                          "triangular_solve")]
            assert len(solves) == 1 and solves[0].inputs[0] is closed.jaxpr.invars[0]
            assert solves[0].outvars[0].aval.shape == (3, 10)
    # a batched with b unbatched: b is broadcast (the primitive needs it), a is not moved
    a_s = general(rng, (2, 4), 3)
    b = rng.standard_normal((2, 3, 1))
    closed = fd.make_jaxpr(fd.vmap(lax.solve, in_axes=(1, None)))(a_s, b)
    solve_eqn = [e for e in closed.jaxpr.eqns if e.primitive.name == "solve"][0]
    assert solve_eqn.inputs[0] is closed.jaxpr.invars[0]


# --------------------------------------------------------------------------
# functad.numpy functions
# --------------------------------------------------------------------------

def n_(*shape):
    return ("normal", list(shape))


MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((3,), (2, 3, 4)),
                 ((2, 2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 4)), ((2, 2, 3), (2, 3, 1))]
DOT_SHAPES = [((), (3,)), ((2, 3), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)),
              ((2, 3), (3, 4)), ((2, 3), (4, 3, 2)), ((2, 2, 3), (3,))]
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("i,i->", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]), ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]), ("ijk,jl,k->li", [(2, 3, 2), (3, 2), (2,)]),
    ("iij,jk->ik", [(2, 2, 3), (3, 2)]), ("ij,ij->i", [(2, 3), (2, 3)]),
    ("i,jk,k->ij", [(2,), (3, 2), (2,)]), ("...i,...i", [(2, 3), (3,)]),
    ("ab,cb,c->a", [(2, 3), (4, 3), (4,)]), ("ijj->", [(2, 3, 3)]),
    ("ij,ij->ij", [(2, 1), (2, 3)]), ("...i,...i->...", [(1, 3), (2, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 1), (1, 2)]), ("i,i,i->", [(3,), (3,), (3,)]),
]
TENSORDOT_CASES = [(0, [(2,), (3,)]), (1, [(2, 3), (3, 4)]), (2, [(2, 3, 4), (3, 4, 2)]),
                   (([1, 0], [0, 1]), [(2, 3), (3, 2)]), (([2], [0]), [(2, 3, 4), (4, 2)]),
                   ((-1, 0), [(2, 3), (3, 2)]), (([0, 2], [2, 0]), [(2, 3, 4), (4, 1, 2)])]
VECTOR_ORDS = [None, 1, 2, 3, 0.5, -1, 0, INF, -INF]
MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, INF, -INF]


@st.composite
def from_list(draw, cases, build):
    return build(*draw(st.sampled_from(cases)))


def binary(fn):
    return lambda xs, ys: (fn, [n_(*xs), n_(*ys)])


@st.composite
def norm_case(draw):
    """``norm`` with every ord and every form of axis (None, an int, a pair)."""
    kind = draw(st.sampled_from(["all", "vector", "matrix"]))
    keepdims = draw(st.booleans())
    if kind == "all":       # ord None over the whole array, any rank
        shape = list(draw(st.sampled_from([(3,), (2, 3), (2, 1, 3)])))
        return (lambda x: fnp.linalg.norm(x, keepdims=keepdims)), [n_(*shape)]
    if kind == "vector":
        ord_ = draw(st.sampled_from(VECTOR_ORDS))
        nd = draw(st.integers(1, 3))
        shape = [draw(sides) for _ in range(nd)]
        axis = None if nd == 1 and draw(st.booleans()) else draw(st.integers(-nd, nd - 1))
        return (lambda x: fnp.linalg.norm(x, ord=ord_, axis=axis, keepdims=keepdims)), [
            n_(*shape)]
    ord_ = draw(st.sampled_from(MATRIX_ORDS))
    nd = draw(st.integers(2, 3))
    shape = [draw(st.integers(2, 3)) for _ in range(nd)]
    if nd == 2 and draw(st.booleans()):
        axis = None
    else:
        a, b = draw(st.permutations(range(nd)))[:2]
        axis = (a - nd * draw(st.integers(0, 1)), b)
    return (lambda x: fnp.linalg.norm(x, ord=ord_, axis=axis, keepdims=keepdims)), [n_(*shape)]


@st.composite
def vector_norm_case(draw):
    nd = draw(st.integers(1, 3))
    shape = [draw(sides) for _ in range(nd)]
    axis = draw(st.none() | st.integers(-nd, nd - 1)
                | st.permutations(range(nd)).map(lambda p: tuple(p[:max(1, nd - 1)])))
    ord_ = draw(st.sampled_from([1, 2, 3, INF, -INF, 0]))
    keepdims = draw(st.booleans())
    return (lambda x: fnp.linalg.vector_norm(x, axis=axis, ord=ord_, keepdims=keepdims)), [
        n_(*shape)]


@st.composite
def matrix_norm_case(draw):
    ord_ = draw(st.sampled_from(["fro", "nuc", 1, -1, 2, -2, INF, -INF]))
    shape = list(draw(leads)) + [draw(st.integers(2, 3)), draw(st.integers(2, 3))]
    keepdims = draw(st.booleans())
    return (lambda x: fnp.linalg.matrix_norm(x, ord=ord_, keepdims=keepdims)), [n_(*shape)]


@st.composite
def trace_diag_case(draw):
    which = draw(st.sampled_from(["trace", "diagonal", "diag1", "diag2", "triu", "tril"]))
    k = draw(st.integers(-2, 2))
    if which == "diag1":
        return (lambda v: fnp.diag(v, k)), [n_(draw(sides))]
    if which == "diag2":
        return (lambda x: fnp.diag(x, k)), [n_(draw(sides), draw(sides))]
    nd = draw(st.integers(2, 3))
    shape = [draw(sides) for _ in range(nd)]
    if which in ("triu", "tril"):
        shape = shape[:draw(st.integers(1, nd))]
        return (lambda x: getattr(fnp, which)(x, k)), [n_(*shape)]
    a1, a2 = draw(st.permutations(range(nd)))[:2]
    a1 -= nd * draw(st.integers(0, 1))
    return (lambda x: getattr(fnp, which)(x, k, a1, a2)), [n_(*shape)]


@st.composite
def cross_case(draw):
    lead = list(draw(st.sampled_from([(), (2,)])))
    return draw(st.sampled_from([
        (lambda a, b: fnp.cross(a, b), [n_(*lead, 3), n_(3)]),
        (lambda a, b: fnp.cross(a, b, axisa=0, axisb=-1, axisc=0), [n_(3, *lead), n_(*lead, 3)]),
        (lambda a, b: fnp.cross(a, b), [n_(*lead, 3), n_(*lead, 3)]),
    ]))


@st.composite
def lax_triangular_solve_case(draw):
    """The lax function: ``left_side=False`` transposes around the primitive."""
    lead, n, k = list(draw(leads)), draw(sides), draw(sides)
    kw = dict(left_side=draw(st.booleans()), lower=draw(st.booleans()),
              transpose_a=draw(st.booleans()), unit_diagonal=draw(st.booleans()))
    b_shape = lead + ([n, k] if kw["left_side"] else [k, n])
    return (lambda a, b: lax.triangular_solve(a, b, **kw)), [("triangular", lead + [n, n]),
                                                            n_(*b_shape)]


@st.composite
def solve_numpy_case(draw):
    n, k = draw(sides), draw(sides)
    form = draw(st.sampled_from(["vector", "matrix", "broadcast_a", "broadcast_b"]))
    shapes = {"vector": ([n, n], [n]), "matrix": ([2, n, n], [2, n, k]),
              "broadcast_a": ([n, n], [2, n, k]), "broadcast_b": ([2, n, n], [n, k])}[form]
    return fnp.linalg.solve, [("general", shapes[0]), n_(*shapes[1])]


def square(kind, fn):
    @st.composite
    def case(draw):
        n = draw(sides)
        return fn, [(kind, list(draw(leads)) + [n, n])]
    return case()


@st.composite
def eigh_numpy_case(draw):
    uplo, sym = draw(st.sampled_from("LU")), draw(st.booleans())
    which = draw(st.sampled_from(["eigh", "eigvalsh"]))
    lead, n = list(draw(leads)), draw(sides)
    if which == "eigvalsh":
        return (lambda a: fnp.linalg.eigvalsh(a, UPLO=uplo)), [("symmetric", lead + [n, n])]
    return (lambda a: fnp.linalg.eigh(a, UPLO=uplo, symmetrize_input=sym)), [
        ("symmetric", lead + [n, n])]


@st.composite
def svd_numpy_case(draw):
    lead, m, n = list(draw(leads)), draw(sides), draw(sides)
    fm, uv = draw(st.booleans()), draw(st.booleans())
    fn = draw(st.sampled_from([lambda a: fnp.linalg.svd(a, full_matrices=fm, compute_uv=uv),
                               fnp.linalg.svdvals]))
    return fn, [("distinct_sv", lead + [m, n])]


@st.composite
def qr_numpy_case(draw):
    lead, m, n = list(draw(leads)), draw(sides), draw(sides)
    mode = draw(st.sampled_from(["reduced", "complete", "r"]))
    return (lambda a: fnp.linalg.qr(a, mode=mode)), [n_(*lead, m, n)]


@st.composite
def multi_dot_case(draw):
    """A chain of 2 to 4 matrices; the first and the last may be vectors."""
    count = draw(st.integers(2, 4))
    dims = [draw(sides) for _ in range(count + 1)]
    shapes = [[dims[i], dims[i + 1]] for i in range(count)]
    if draw(st.booleans()):
        shapes[0] = [dims[1]]
    if draw(st.booleans()):
        shapes[-1] = [dims[-2]]
    return (lambda *xs: fnp.linalg.multi_dot(list(xs))), [n_(*s) for s in shapes]


@st.composite
def pinv_case(draw):
    lead, m, n = list(draw(leads)), draw(sides), draw(sides)
    return fnp.linalg.pinv, [("distinct_sv", lead + [m, n])]


def matmul_operator(x, y):
    return x @ y


NUMPY_CASES = {
    "matmul": from_list(MATMUL_SHAPES, binary(fnp.matmul)),
    "matmul_operator": from_list(MATMUL_SHAPES, binary(matmul_operator)),
    "linalg.matmul": from_list(MATMUL_SHAPES, binary(fnp.linalg.matmul)),
    "dot": from_list(DOT_SHAPES, binary(fnp.dot)),
    "vdot": from_list([((3,), (3,)), ((2, 3), (3, 2)), ((2, 2), (4,))], binary(fnp.vdot)),
    "inner": from_list([((3,), (3,)), ((2, 3), (3,)), ((2, 3), (4, 3)), ((), (2,))],
                       binary(fnp.inner)),
    "outer": from_list([((3,), (2,)), ((2, 2), (3,)), ((), (2,))], binary(fnp.outer)),
    "kron": from_list([((2,), (3,)), ((2, 3), (2, 2)), ((2,), (2, 3)), ((2, 1, 3), (3, 2))],
                      binary(fnp.kron)),
    "vecdot": from_list([((3,), (3,)), ((2, 3), (3,)), ((2, 3), (2, 3))], binary(fnp.vecdot)),
    "tensordot": from_list(TENSORDOT_CASES, lambda axes, shapes: (
        lambda a, b: fnp.tensordot(a, b, axes=axes), [n_(*s) for s in shapes])),
    "einsum": from_list(EINSUM_CASES, lambda spec, shapes: (
        lambda *ops: fnp.einsum(spec, *ops), [n_(*s) for s in shapes])),
    "einsum_sublist": from_list([([0, 1], [1, 2], [0, 2]), ([0, Ellipsis], [Ellipsis, 0], None)],
                                lambda s0, s1, out: (
        (lambda a, b: fnp.einsum(a, s0, b, s1, *([] if out is None else [out]))),
        [n_(2, 3), n_(3, 4)] if out is not None else [n_(2, 3), n_(3, 2)])),
    "cross": cross_case(),
    "trace_diag": trace_diag_case(),
    "norm": norm_case(),
    "vector_norm": vector_norm_case(),
    "matrix_norm": matrix_norm_case(),
    "inv": square("general", fnp.linalg.inv),
    "det": square("general", fnp.linalg.det),
    "slogdet": square("general", fnp.linalg.slogdet),
    "solve": solve_numpy_case(),
    "lax.triangular_solve": lax_triangular_solve_case(),
    "cholesky": square("spd", fnp.linalg.cholesky),
    "cholesky_upper": square("spd", lambda a: fnp.linalg.cholesky(a, upper=True)),
    "eigh": eigh_numpy_case(),
    "svd": svd_numpy_case(),
    "qr": qr_numpy_case(),
    "matrix_power": st.integers(-2, 3).flatmap(lambda p: square(
        "general", lambda a: fnp.linalg.matrix_power(a, p))),
    "multi_dot": multi_dot_case(),
    "pinv": pinv_case(),
    "matrix_transpose": st.just((fnp.linalg.matrix_transpose, [n_(2, 3, 1)])),
    "linalg.trace_outer_tensordot": st.just((
        lambda a, b: (fnp.linalg.trace(a), fnp.linalg.outer(a[0], b),
                      fnp.linalg.tensordot(a, b, axes=1), fnp.linalg.vecdot(a, b),
                      fnp.linalg.diagonal(a), fnp.linalg.cross(a, b)), [n_(3, 3), n_(3)])),
}


@pytest.mark.parametrize("name", sorted(NUMPY_CASES))
@law
def test_numpy_function_vmap_equals_stacked_loop(name, data):
    f, specs = data.draw(NUMPY_CASES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # 0 ** negative order norms
        check_law(data.draw, f, specs, tol=1e-8)


# --------------------------------------------------------------------------
# Compositions with differentiation
# --------------------------------------------------------------------------

def _c(shape, seed=11):
    return np.random.default_rng(seed).standard_normal(shape)


C33, C32 = _c((3, 3)), _c((3, 2), 12)
W3 = np.arange(1.0, 4.0)

# name -> (scalar function of one example, specs of its arguments).  Functions
# of eigen- and singular vectors are sign-invariant.
GRAD_FUNCS = {
    "matmul": (lambda a, b: fnp.sum(fnp.sin(a @ b)), [n_(3, 3), n_(3, 2)]),
    "einsum": (lambda a, b: fnp.einsum("ij,jk,ik->", a, b, fnp.cos(a @ b)), [n_(3, 3), n_(3, 2)]),
    "tensordot": (lambda a, b: fnp.sum(fnp.tensordot(a, b, axes=([0], [0])) ** 2),
                  [n_(3, 3), n_(3, 2)]),
    "solve": (lambda a, b: fnp.sum(fnp.linalg.solve(a, b) * C32), [("general", [3, 3]), n_(3, 2)]),
    "triangular_solve": (lambda a, b: fnp.sum(lax.triangular_solve(a, b, lower=True) * C32),
                         [("triangular", [3, 3]), n_(3, 2)]),
    "inv": (lambda a, b: fnp.sum(fnp.linalg.inv(a) * C33) + fnp.sum(b), [("general", [3, 3]),
                                                                          n_(2)]),
    "det_slogdet": (lambda a, b: fnp.linalg.det(a) * fnp.sum(b) + fnp.linalg.slogdet(a)[1],
                    [("general", [3, 3]), n_(2)]),
    "cholesky": (lambda a, b: fnp.sum(fnp.linalg.cholesky(a) * C33) * fnp.sum(b * b),
                 [("spd", [3, 3]), n_(2)]),
    "eigh": (lambda a, b: fnp.sum(fnp.linalg.eigh(a)[0] * W3) + fnp.sum(
        (lambda w, v: v @ (fnp.sin(w)[:, None] * v.T))(*fnp.linalg.eigh(a)) * C33)
        + fnp.sum(b), [("symmetric", [3, 3]), n_(2)]),
    "svd": (lambda a, b: fnp.sum(fnp.linalg.svdvals(a) * W3[:2]) + fnp.sum(
        (lambda u, s, vh: (u * fnp.tanh(s)) @ vh)(*fnp.linalg.svd(a, full_matrices=False))
        * C32) + fnp.sum(b), [("distinct_sv", [3, 2]), n_(2)]),
    "qr": (lambda a, b: fnp.sum(fnp.linalg.qr(a)[1] * C32[:2]) + fnp.sum(fnp.linalg.qr(a)[0]
                                                                          * C32) * fnp.sum(b),
           [("distinct_sv", [3, 2]), n_(2)]),
    "norms": (lambda a, b: fnp.linalg.norm(a, "nuc") + fnp.linalg.norm(a, 2)
              + fnp.linalg.norm(a * b, axis=0)[0] + fnp.linalg.norm(b), [("distinct_sv", [3, 3]),
                                                                          n_(3)]),
    "trace_diag": (lambda a, b: fnp.trace(a @ a) + fnp.sum(fnp.diag(b) @ fnp.tril(a[:2, :2])),
                   [n_(3, 3), n_(2)]),
    "pinv_power": (lambda a, b: fnp.sum(fnp.linalg.pinv(a) * C32.T) + fnp.sum(
        fnp.linalg.matrix_power(a.T @ a, 2)) * fnp.sum(b), [("distinct_sv", [3, 2]), n_(2)]),
}


@st.composite
def grad_case(draw, name):
    f, specs = GRAD_FUNCS[name]
    n = draw(st.integers(1, 3))
    examples = make_examples(draw(st.integers(0, 2**31)), n, specs)
    in_axes = in_axes_for(draw, [ex.ndim - 1 for ex in examples])
    return f, examples, in_axes, n


@pytest.mark.parametrize("name", sorted(GRAD_FUNCS))
@law
def test_vmap_of_grad_and_grad_of_vmap(name, data):
    f, examples, in_axes, n = data.draw(grad_case(name))
    args = batch_args(examples, in_axes)
    # per-example gradients with respect to both arguments: that of an
    # unbatched argument differs between examples too
    g = fd.grad(f, argnums=(0, 1))
    out_axes = out_axes_for(data.draw, as_tuple(g(*example(examples, in_axes, 0))))
    expected = stacked(g, examples, in_axes, out_axes, n)
    vg = fd.vmap(g, in_axes=in_axes, out_axes=out_axes)
    assert_close(vg(*args), expected, 1e-8)
    core.check_jaxpr(fd.make_jaxpr(vg)(*args).jaxpr)
    # reverse mode through vmap: the gradient of the sum over examples is the
    # per-example gradients in the input's layout (summed for an unbatched input)
    total = fd.grad(lambda *a: fnp.sum(fd.vmap(f, in_axes=in_axes)(*a)), argnums=(0, 1))(*args)
    per = [fd.grad(f, argnums=(0, 1))(*example(examples, in_axes, i)) for i in range(n)]
    for k, ax in enumerate(in_axes):
        ref = (np.stack([p[k] for p in per], axis=ax) if ax is not None
               else np.sum([p[k] for p in per], axis=0))
        assert_close(total[k], ref, 1e-8)


@pytest.mark.parametrize("name", sorted(GRAD_FUNCS))
@law
def test_jvp_of_vmap(name, data):
    f, examples, in_axes, n = data.draw(grad_case(name))
    args = batch_args(examples, in_axes)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    tans = [rng.standard_normal(np.shape(a)) for a in args]
    y, t = fd.jvp(fd.vmap(f, in_axes=in_axes), tuple(args), tuple(tans))
    per = [fd.jvp(f, tuple(example(examples, in_axes, i)),
                  tuple(tn if ax is None else np.take(tn, i, axis=ax)
                        for tn, ax in zip(tans, in_axes))) for i in range(n)]
    assert_close(y, np.stack([np.asarray(p[0]) for p in per]), 1e-8)
    assert_close(t, np.stack([np.asarray(p[1]) for p in per]), 1e-8)


@pytest.mark.parametrize("name", ["solve", "eigh", "svd", "einsum", "qr"])
@law
def test_vmap_of_vmap_of_grad(name, data):
    """Per-example gradients over a batch of batches: the rules run at three
    levels (outer vmap, inner vmap, and the transpose of the JVP)."""
    f, specs = GRAD_FUNCS[name]
    m, n = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    grid = [ex.reshape((m, n) + ex.shape[1:])
            for ex in make_examples(data.draw(st.integers(0, 2**31)), m * n, specs)]
    g = fd.grad(f, argnums=(0, 1))
    got = fd.vmap(fd.vmap(g, in_axes=(0, None)), in_axes=(1, 0), out_axes=-1)(
        np.moveaxis(grid[0], 1, 0), grid[1][:, 0])
    for i in range(m):
        for j in range(n):
            ga, gb = g(grid[0][i, j], grid[1][i, 0])
            assert_close(got[0][j, ..., i], ga, 1e-8)
            assert_close(got[1][j, ..., i], gb, 1e-8)


# --------------------------------------------------------------------------
# Per-example gradients of a small MLP
# --------------------------------------------------------------------------

def mlp_loss(params, x, y):
    (W1, b1), (W2, b2) = params
    h = fnp.tanh(x @ W1 + b1)
    out = h @ W2 + b2
    return fnp.sum((out - y) ** 2) + 1e-3 * fnp.linalg.norm(W1) ** 2


def test_per_example_gradients_of_an_mlp():
    rng = np.random.default_rng(5)
    params = [(rng.standard_normal((4, 8)) / 2, rng.standard_normal(8)),
              (rng.standard_normal((8, 2)) / 3, rng.standard_normal(2))]
    xs, ys = rng.standard_normal((7, 4)), rng.standard_normal((7, 2))
    per = fd.vmap(fd.grad(mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    loop = [fd.grad(mlp_loss)(params, x, y) for x, y in zip(xs, ys)]
    for k, leaf in enumerate(tu.tree_leaves(per)):
        ref = np.stack([tu.tree_leaves(g)[k] for g in loop])
        assert_close(leaf, ref, 1e-10)
    # the mean of the per-example gradients is the gradient of the mean loss
    mean = fd.grad(lambda p: fnp.mean(fd.vmap(mlp_loss, in_axes=(None, 0, 0))(p, xs, ys)))(params)
    for a, b in zip(tu.tree_leaves(mean), tu.tree_leaves(per)):
        assert_close(a, np.mean(np.asarray(b), axis=0), 1e-10)
    # staged: the weights go into each product as they are, never broadcast
    closed = fd.make_jaxpr(fd.vmap(fd.grad(mlp_loss), in_axes=(None, 0, 0)))(params, xs, ys)
    core.check_jaxpr(closed.jaxpr)
    weights = set(closed.jaxpr.invars[:4])
    for e in closed.jaxpr.eqns:
        if e.primitive.name == "broadcast_to":
            assert not weights & set(e.inputs), core.pp_eqn_line(e)
