"""Shared test configuration.

Hypothesis profiles (choose with ``FUNCTAD_HYPOTHESIS_PROFILE``):

* ``dev`` (default): random examples, no deadline (the first call of a
  transform may be slow);
* ``ci``: derandomized, so that a CI run is reproducible and cannot flake;
  selected automatically when the ``CI`` environment variable is set;
* ``thorough``: many more examples, for a local soak before a release.

Tests set their own ``max_examples`` where speed matters; the others use
Hypothesis's default (100), or 300 under ``thorough``.  A test's own
``@settings(max_examples=...)`` wins over the profile.
"""

import os

import numpy as np
import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:     # pragma: no cover - hypothesis is a test dependency
    settings = None

if settings is not None:
    _common = dict(deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    settings.register_profile("dev", **_common)
    settings.register_profile("ci", derandomize=True, **_common)
    settings.register_profile("thorough", max_examples=300, **_common)
    _default = "ci" if os.environ.get("CI") else "dev"
    settings.load_profile(os.environ.get("FUNCTAD_HYPOTHESIS_PROFILE", _default))


@pytest.fixture
def rng():
    """A seeded NumPy random generator, fresh for each test."""
    return np.random.default_rng(0)


# jit: the general suite runs jitted functions on the NumPy executor (tier 0),
# so that hundreds of small jitted test functions do not each start a Numba
# compile; the Numba tier is tested in test_jit_numba.py and test_lower_*.py,
# which switch the backend with ``functad.config.override``.  Compiled programs
# are cached in .pytest_cache, which repeated local runs reuse (CI starts
# empty).
os.environ.setdefault("FUNCTAD_JIT_BACKEND", "numpy")
os.environ.setdefault("FUNCTAD_CACHE_DIR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "functad"))
