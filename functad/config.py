"""Global settings, JAX style: ``functad.config.update(name, value)``.

``jit_backend``
    How :func:`functad.jit` runs a staged program.  ``"tiered"`` (the
    default): at once with the NumPy executor while Numba compiles the program
    in a background thread, then with the compiled code.  ``"numba"``: compile
    before the first call and always use it (errors if Numba cannot compile).
    ``"numpy"``: never compile.  The environment variable
    ``FUNCTAD_JIT_BACKEND`` sets the initial value.

``jit_parallel_threshold``
    Fused loops with at least this many elements run their outer loop on
    several threads (Numba ``prange``, compiled with ``parallel=True``); ``0``
    disables threading.  Default 2**18 (``FUNCTAD_PARALLEL_THRESHOLD``).

``jit_scratch_limit``
    Compiled programs keep their large temporaries between calls (see
    ``docs/jit.md``, "Temporaries are reused"); this is the most memory, in
    bytes, that all of them keep together.  Beyond it a program allocates
    its temporaries at each call, as if it had none to keep.  Default 1 GiB
    (``FUNCTAD_SCRATCH_LIMIT``).

``debug_nans``
    Raise ``FloatingPointError`` at the first primitive that produces a NaN,
    in eager evaluation (forward and backward passes); a jitted function whose
    result contains a NaN is re-run without jit to find it.  See
    :mod:`functad.debug`.  Default off (``FUNCTAD_DEBUG_NANS=1`` turns it on).

>>> import functad as fd
>>> fd.config.jit_backend in ("tiered", "numba", "numpy")
True
>>> with fd.config.override(jit_backend="numpy"):
...     fd.config.jit_backend
'numpy'
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["config"]

_CHOICES = {"jit_backend": ("tiered", "numba", "numpy"), "debug_nans": (False, True)}

# setting -> callback(new value), run whenever the setting is assigned (also when
# ``override`` restores it): functad.debug swaps the eval interpreter's method for
# debug_nans, so that a flag is never tested per primitive.
_ON_CHANGE: dict = {}


class _Config:
    def __init__(self):
        self.jit_backend = os.environ.get("FUNCTAD_JIT_BACKEND", "tiered")
        self.jit_parallel_threshold = int(os.environ.get("FUNCTAD_PARALLEL_THRESHOLD", 1 << 18))
        self.jit_scratch_limit = int(os.environ.get("FUNCTAD_SCRATCH_LIMIT", 1 << 30))
        self.debug_nans = os.environ.get("FUNCTAD_DEBUG_NANS", "0").lower() not in ("", "0", "false")
        self._check("jit_backend", self.jit_backend)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        hook = _ON_CHANGE.get(name)
        if hook is not None:
            hook(value)

    def _check(self, name, value):
        if name.startswith("_") or not hasattr(self, name):
            known = ", ".join(k for k in vars(self) if not k.startswith("_"))
            raise KeyError(f"functad.config has no setting {name!r}; known: {known}")
        choices = _CHOICES.get(name)
        if choices and value not in choices:
            raise ValueError(f"functad.config.{name} must be one of {choices}, got {value!r}")

    def update(self, name, value):
        """Set a setting (``config.update("jit_backend", "numba")``)."""
        self._check(name, value)
        setattr(self, name, value)

    @contextlib.contextmanager
    def override(self, **settings):
        """Temporarily change settings inside a ``with`` block."""
        old = {k: getattr(self, k, None) for k in settings}
        for k, v in settings.items():
            self.update(k, v)
        try:
            yield self
        finally:
            for k, v in old.items():
                setattr(self, k, v)

    def __repr__(self):
        return "functad.config(" + ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")) + ")"


config = _Config()
