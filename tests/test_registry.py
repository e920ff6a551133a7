"""Every primitive has all of its rules.

A primitive is defined in one place with its impl, abstract evaluation, JVP
rule, (if linear) transpose rule and batching rule.  This test walks the
registry after importing every module that defines primitives, so a new
primitive that forgets a rule fails here, not three transforms later.  The
Numba lowering (``lower``) is required too, except for the primitives that
functad.lowering handles structurally (calls it inlines, identities).
"""

import importlib
import pkgutil

import pytest

import functad
import functad.numpy  # noqa: F401  (registers the primitives functad.numpy uses)
from functad import core


def _import_all_modules():
    """Import every functad submodule, so that every primitive is registered."""
    for info in pkgutil.walk_packages(functad.__path__, "functad."):
        if info.name == "functad.testing":
            continue        # needs no primitives; keeps the test independent of it
        importlib.import_module(info.name)


_import_all_modules()
PRIMITIVES = sorted(core.primitives.values(), key=lambda p: p.name)


def test_registry_is_populated():
    names = {p.name for p in PRIMITIVES}
    for expected in ["add", "mul", "sin", "select", "convert_element_type", "reduce_sum",
                     "broadcast_to", "reshape", "transpose", "custom_jvp_call",
                     "custom_vjp_call", "stop_gradient"]:
        assert expected in names


def test_registry_keys_match_names():
    for name, prim in core.primitives.items():
        assert isinstance(prim, core.Primitive)
        assert prim.name == name


@pytest.mark.parametrize("rule", ["impl", "abstract_eval", "jvp", "batch"])
def test_every_primitive_has_rule(rule):
    missing = [p.name for p in PRIMITIVES if not callable(getattr(p, rule, None))]
    assert not missing, f"primitives without a {rule} rule: {missing}"


def test_linear_primitives_have_transpose():
    missing = [p.name for p in PRIMITIVES if p.linear_in and not callable(p.transpose)]
    assert not missing, f"linear primitives without a transpose rule: {missing}"


def test_every_primitive_has_a_numba_lowering():
    from functad.lowering import STRUCTURAL
    missing = [p.name for p in PRIMITIVES
               if not callable(getattr(p, "lower", None)) and p.name not in STRUCTURAL]
    assert not missing, f"primitives without a Numba lowering rule: {missing}"
