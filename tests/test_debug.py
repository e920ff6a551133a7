"""functad.debug: ``debug.print`` through every transform, and ``debug_nans``."""

import numpy as np
import pytest

import functad as fd
import functad.numpy as fnp
from functad import core, lax
from functad.debug import debug_print_p


def lines(capsys):
    return capsys.readouterr().out.splitlines()


# --------------------------------------------------------------------------
# debug.print
# --------------------------------------------------------------------------

def test_eager_print_formats_values(capsys):
    fd.debug.print("x = {}, y = {y:.2f}, s = {}", fnp.arange(3.0), "text", y=np.float32(1.5))
    fd.debug.print("no arguments {{}}")
    assert lines(capsys) == ["x = [0. 1. 2.], y = 1.50, s = text", "no arguments {}"]


def test_jit_prints_on_every_call_not_only_while_tracing(capsys):
    @fd.jit
    def f(x):
        fd.debug.print("x = {}", x)
        return x * 2.0
    f(1.0)
    f(2.0)
    assert f.trace_count == 1
    assert lines(capsys) == ["x = 1.0", "x = 2.0"]


def test_staged_equation_is_effectful_and_kept(capsys):
    def f(x):
        fd.debug.print("{x} {tag}", x=x, tag="static")
        return x + 1.0
    jaxpr = fd.make_jaxpr(f)(np.ones(2))
    assert [e.primitive.name for e in jaxpr.eqns] == ["debug_print", "add"]
    assert debug_print_p.effectful
    core.check_jaxpr(jaxpr.jaxpr)
    assert not capsys.readouterr().out          # staging does not print
    jaxpr(np.ones(2))                            # evaluating the jaxpr does
    fd.jit(lambda x: (f(x), 0.0)[1])(np.zeros(2))   # output unused: still printed
    assert lines(capsys) == ["[1. 1.] static", "[0. 0.] static"]


def test_grad_and_jvp_print_primal_values_once(capsys):
    def f(x):
        fd.debug.print("x = {}", x)
        return fnp.sin(x) * x
    fd.grad(f)(2.0)
    fd.jvp(f, (2.0,), (1.0,))
    fd.jit(fd.grad(f))(3.0)
    fd.grad(fd.jit(f))(4.0)
    fd.grad(fd.grad(f))(5.0)
    assert lines(capsys) == ["x = 2.0", "x = 2.0", "x = 3.0", "x = 4.0", "x = 5.0"]


def test_vmap_prints_once_per_example(capsys):
    xs = fnp.arange(6.0).reshape(3, 2)
    fd.vmap(lambda x, c: fd.debug.print("x={} c={}", x, c), in_axes=(0, None))(xs, 7.0)
    assert lines(capsys) == ["x=[0. 1.] c=7.0", "x=[2. 3.] c=7.0", "x=[4. 5.] c=7.0"]
    # nested: the outer index varies slowest; y is batched by the inner vmap only
    fd.vmap(fd.vmap(lambda x, y: fd.debug.print("{} {}", x, y)), in_axes=(0, None))(
        fnp.arange(4.0).reshape(2, 2), fnp.array([10.0, 20.0]))
    assert lines(capsys) == ["0.0 10.0", "1.0 20.0", "2.0 10.0", "3.0 20.0"]
    fd.jit(fd.vmap(fd.grad(lambda x: (fd.debug.print("g {}", x), x ** 2)[1])))(fnp.arange(2.0))
    assert lines(capsys) == ["g 0.0", "g 1.0"]
    fd.vmap(lambda x: fd.debug.print("unbatched"))(fnp.ones(3))
    assert lines(capsys) == ["unbatched"]


def test_inside_control_flow(capsys):
    def body(c, x):
        fd.debug.print("c={} x={}", c, x)
        return c + x, c
    lax.scan(body, 0.0, fnp.arange(2.0))
    fd.jit(lambda xs: lax.scan(body, 0.0, xs))(fnp.arange(2.0))
    assert lines(capsys) == ["c=0.0 x=0.0", "c=0.0 x=1.0"] * 2


def test_numba_tier_calls_back_into_python(capsys):
    """One compiled program with one ``numba.objmode`` block: a scalar, a
    bool, a static string and a batched array printed per example."""
    def f(x, s):
        fd.vmap(lambda r: fd.debug.print("s={} pos={} row={} {}", s, s > 0, r, "t"))(x)
        return fnp.sin(x) * s
    x = np.arange(4.0).reshape(2, 2)
    with fd.config.override(jit_backend="numba"):
        jf = fd.jit(f)
        out = jf(x, 1.5)
        jf(x + 1.0, -2.0)
        low = jf.lower(x, 1.5)
    assert low.program.state == "compiled"
    assert "objmode" in low.numba_source
    np.testing.assert_allclose(out, np.sin(x) * 1.5)
    assert lines(capsys) == ["s=1.5 pos=True row=[0. 1.] t", "s=1.5 pos=True row=[2. 3.] t",
                             "s=-2.0 pos=False row=[1. 2.] t", "s=-2.0 pos=False row=[3. 4.] t"]


def test_print_errors():
    with pytest.raises(TypeError, match="fmt must be a str"):
        fd.debug.print(1.0)
    with pytest.raises(IndexError):
        fd.debug.print("{} {}", 1.0)


# --------------------------------------------------------------------------
# debug_nans
# --------------------------------------------------------------------------

def _line_of(marker):
    """The line number of ``marker`` in this file."""
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return i
    raise AssertionError(marker)


def test_off_by_default_and_free():
    assert fd.config.debug_nans is False
    # off: the eval interpreter runs its ordinary method, nothing is checked
    assert core.EvalInterpreter.process_primitive is fd.debug._fast_process_primitive
    with np.errstate(invalid="ignore"):
        assert np.isnan(fnp.log(-1.0))
    with fd.debug.debug_nans():
        assert core.EvalInterpreter.process_primitive is not fd.debug._fast_process_primitive
    assert core.EvalInterpreter.process_primitive is fd.debug._fast_process_primitive


def test_eager_forward_names_primitive_and_line():
    def f(x):
        y = x - 2.0
        return fnp.sqrt(y)  # NAN-HERE
    with fd.debug.debug_nans(), np.errstate(invalid="ignore"):
        assert f(3.0) == 1.0
        with pytest.raises(FloatingPointError, match="encountered in sqrt") as e:
            f(1.0)
    assert f"test_debug.py:{_line_of('NAN-HERE')}" in str(e.value)


def test_config_update_and_override():
    try:
        fd.config.update("debug_nans", True)
        with pytest.raises(FloatingPointError, match="log"), np.errstate(invalid="ignore"):
            fnp.log(-1.0)
        with fd.config.override(debug_nans=False), np.errstate(invalid="ignore"):
            fnp.log(-1.0)                       # off inside
        with pytest.raises(FloatingPointError), np.errstate(invalid="ignore"):
            fnp.log(-1.0)                       # and on again after
    finally:
        fd.config.update("debug_nans", False)
    with pytest.raises(ValueError):
        fd.config.update("debug_nans", "yes")


def test_backward_pass():
    f = lambda x: fnp.sqrt(x) * 0.0   # noqa: E731 - d sqrt at 0 is inf, and 0 * inf is nan
    with fd.debug.debug_nans(), np.errstate(invalid="ignore", divide="ignore"):
        assert f(0.0) == 0.0                    # the forward pass is fine
        with pytest.raises(FloatingPointError,
                           match=r"mul.*backward pass \(through 'sqrt'\)") as e:
            fd.grad(f)(0.0)  # GRAD-CALL
        assert f"test_debug.py:{_line_of('GRAD-CALL')}" in str(e.value)
        # per-example gradients (the batched tape) name the node too
        with pytest.raises(FloatingPointError, match=r"backward pass \(through 'sqrt'\)"):
            fd.vmap(fd.grad(f))(np.array([1.0, 0.0]))


def test_jit_reruns_without_jit_to_find_the_primitive():
    def g(x):
        a = x * 2.0
        return fnp.log(a - 10.0)  # LOG-LINE
    with fd.debug.debug_nans(), np.errstate(invalid="ignore"):
        jg = fd.jit(g)
        assert np.isfinite(jg(6.0))
        with pytest.raises(FloatingPointError, match="encountered in log") as e:
            jg(1.0)
        assert f"test_debug.py:{_line_of('LOG-LINE')}" in str(e.value)
        with pytest.raises(FloatingPointError, match="log"):
            fd.vmap(jg)(fnp.ones(2))             # jit_call evaluated eagerly: its body re-run
        with pytest.raises(FloatingPointError, match="produced none"):
            fd.jit(lambda x: x)(np.nan)          # the NaN came in with the argument


def test_control_flow_bodies_are_searched():
    with fd.debug.debug_nans(), np.errstate(invalid="ignore"):
        with pytest.raises(FloatingPointError, match="encountered in log"):
            lax.scan(lambda c, x: (fnp.log(c - x), c), 1.0, fnp.arange(3.0))
        with pytest.raises(FloatingPointError, match="encountered in log"):
            lax.fori_loop(0, 3, lambda i, c: fnp.log(c - 2.0), 5.0)
        with pytest.raises(FloatingPointError, match="encountered in log"):
            lax.cond(fnp.float64(1.0) > 0, lambda x: fnp.log(x - 5.0), lambda x: x, 1.0)


def test_no_false_alarms():
    with fd.debug.debug_nans():
        x = np.linspace(-1.0, 1.0, 5)
        np.testing.assert_allclose(fd.grad(lambda x: fnp.sum(fnp.tanh(x) ** 2))(x),
                                   2 * np.tanh(x) / np.cosh(x) ** 2)
        assert fnp.argmax(x) == 4                  # integer results are not checked
        with np.errstate(over="ignore"):
            assert fnp.isinf(fnp.exp(1e4))         # inf is not nan
