"""Every example in the docstrings of functad and in docs/*.md runs and prints what it says."""

import doctest
import importlib
import pathlib
import pkgutil

import numpy as np
import pytest

import functad

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
MODULES = sorted(m.name for m in pkgutil.walk_packages(functad.__path__, "functad."))
DOCS = sorted(p.name for p in (ROOT / "docs").glob("*.md") if ">>>" in p.read_text())


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, extraglobs=dict(vars(mod), np=np), optionflags=FLAGS)
    assert res.failed == 0, res


@pytest.mark.parametrize("name", DOCS)
def test_markdown_examples(name):
    res = doctest.testfile(str(ROOT / "docs" / name), module_relative=False, optionflags=FLAGS)
    assert res.attempted > 0 and res.failed == 0, res


def test_public_functions_have_examples():
    """Each public function of the top-level API documents itself with an example."""
    missing = [n for n in ("grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd",
                           "jacrev", "hessian", "vmap", "make_jaxpr", "eval_shape",
                           "stop_gradient", "custom_jvp", "custom_vjp")
               if ">>>" not in (getattr(functad, n).__doc__ or "")]
    assert not missing, missing


def test_readme_example_runs(capsys):
    import re
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert abs(float(ns["value"]) - np.log(2)) < 1e-12
    assert ns["per_example"].shape == (4, 3)
    np.testing.assert_allclose(ns["g"], np.mean(ns["per_example"], axis=0) / 1.0, atol=1e-12)
    assert "dot_general" in capsys.readouterr().out
