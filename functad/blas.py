"""The BLAS that compiled programs call for their matrix products.

Compiled code (:mod:`functad.numba_runtime`) calls four symbols,
``functad_sgemm``, ``functad_dgemm``, ``functad_cgemm`` and ``functad_zgemm``,
with the Fortran ``?gemm`` interface (every argument by pointer, 32-bit
integers).  :func:`bind` points them at a library when
:mod:`functad.numba_runtime` is imported, before any program is compiled or
loaded from the disk cache; the cached machine code names the symbols, not an
address, so it stays valid whichever library a later process binds.

``FUNCTAD_BLAS`` chooses the library:

* ``auto`` (the default): Intel MKL if the ``mkl`` package is installed
  (``pip install mkl``, or functad's ``[mkl]`` extra), else SciPy's OpenBLAS;
* ``scipy``: SciPy's OpenBLAS, the library Numba's own ``np.dot`` calls;
* ``mkl``: Intel MKL, an error if it is not installed.

Why MKL: on the development machine (Xeon, one thread) its ``sgemm`` took
0.75-1.03x OpenBLAS's time for the products of an MLP training step, 0.80x
at the median of seven runs (``benchmarks/bench_blas.py``).  MKL is 220 MB
and Intel's, so it is optional; results differ from OpenBLAS's only by
rounding.

>>> from functad import blas
>>> blas.bind() in ("scipy", "mkl")
True
"""

from __future__ import annotations

import ctypes
import os
import warnings

__all__ = ["bind", "addresses", "mkl_path", "KINDS"]

KINDS = "sdcz"          # float32, float64, complex64, complex128
_bound = None


def _scipy_address(name):
    """The address of ``scipy.linalg.cython_blas.<name>`` (a PyCapsule)."""
    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def mkl_path():
    """The path of MKL's single dynamic library from the ``mkl`` package, or None."""
    from importlib import metadata
    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        base = os.path.basename(str(f))
        if base.startswith(("libmkl_rt.so", "libmkl_rt.", "mkl_rt.")) and \
                not base.endswith((".a", ".lib")):
            path = str(f.locate())
            if os.path.exists(path):
                return path
    return None


def _mkl_addresses(path):
    lib = ctypes.CDLL(path)
    lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
    lib.MKL_Set_Interface_Layer(0)          # LP64: 32-bit integers, as SciPy's
    return {k: ctypes.cast(getattr(lib, f"{k}gemm_"), ctypes.c_void_p).value for k in KINDS}


def addresses(choice):
    """``(name, {kind: address})`` of the ``?gemm`` functions of the BLAS
    that ``choice`` (a ``FUNCTAD_BLAS`` value) selects."""
    if choice not in ("auto", "scipy", "mkl"):
        raise ValueError(f"FUNCTAD_BLAS must be 'auto', 'scipy' or 'mkl', got {choice!r}")
    path = mkl_path() if choice in ("auto", "mkl") else None
    if choice == "mkl" and path is None:
        raise ImportError("FUNCTAD_BLAS=mkl, but Intel MKL is not installed: "
                          "pip install mkl (functad's [mkl] extra), or unset FUNCTAD_BLAS")
    if path is not None:
        try:
            return "mkl", _mkl_addresses(path)
        except (OSError, AttributeError) as e:      # a broken install: the library or a symbol
            if choice == "mkl":
                raise ImportError(f"FUNCTAD_BLAS=mkl, but Intel MKL ({path}) could not be "
                                  f"loaded: {e}") from e
            warnings.warn(f"functad: Intel MKL ({path}) could not be loaded ({e}); matrix "
                          "products use SciPy's OpenBLAS", RuntimeWarning, stacklevel=2)
    return "scipy", {k: _scipy_address(f"{k}gemm") for k in KINDS}


def bind():
    """Point the ``functad_?gemm`` symbols at the BLAS ``FUNCTAD_BLAS``
    selects; returns its name, ``"mkl"`` or ``"scipy"``.  Only the first call
    binds: code already compiled keeps the addresses it resolved."""
    global _bound
    if _bound is None:
        name, found = addresses(os.environ.get("FUNCTAD_BLAS", "auto"))
        from llvmlite import binding
        for k, address in found.items():
            binding.add_symbol(f"functad_{k}gemm", address)
        _bound = name
    return _bound
