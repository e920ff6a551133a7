"""functad.blas: the BLAS that compiled matrix products call.

The products themselves are checked against NumPy by the dot_general tests
(test_lower_linalg.py) with whichever BLAS the test process bound; here, the
choice, its errors, and one process per available BLAS sharing one disk
cache (machine code compiled while one BLAS was bound runs with the other).
"""

import os
import subprocess
import sys
import textwrap

import pytest

from functad import blas

HAVE_MKL = blas.mkl_path() is not None


def test_an_unknown_choice_is_an_error():
    with pytest.raises(ValueError, match="FUNCTAD_BLAS must be 'auto', 'scipy' or 'mkl'"):
        blas.addresses("openblas")


def test_scipy_provides_every_kind():
    name, found = blas.addresses("scipy")
    assert name == "scipy" and sorted(found) == sorted(blas.KINDS)
    assert all(isinstance(a, int) and a > 0 for a in found.values())


def test_mkl_is_used_when_installed_and_asking_for_it_otherwise_says_how():
    if HAVE_MKL:
        name, found = blas.addresses("mkl")
        assert name == "mkl" and all(a > 0 for a in found.values())
        assert blas.addresses("auto")[0] == "mkl"
    else:
        with pytest.raises(ImportError, match=r"pip install mkl \(functad's \[mkl\] extra\)"):
            blas.addresses("mkl")
        assert blas.addresses("auto")[0] == "scipy"


def test_a_broken_mkl_install_falls_back_to_openblas_unless_asked_for(monkeypatch, tmp_path):
    fake = tmp_path / "libmkl_rt.so.2"
    fake.write_bytes(b"not a library")
    monkeypatch.setattr(blas, "mkl_path", lambda: str(fake))
    with pytest.warns(RuntimeWarning, match="could not be loaded.*SciPy's OpenBLAS"):
        assert blas.addresses("auto")[0] == "scipy"
    with pytest.raises(ImportError, match="FUNCTAD_BLAS=mkl, but Intel MKL .* could not be loaded"):
        blas.addresses("mkl")


_SCRIPT = textwrap.dedent("""
    import numpy as np
    import functad as fd
    from functad import blas

    def products(a, b, c, d):
        # every layout case of dot_blas_mm: C and Fortran order, strided copies
        return [a @ b, a.T.T @ b, (b.T @ a.T).T, a[::2] @ b, a @ b[:, ::2], c @ d, d.T @ c.T]

    rng = np.random.default_rng(0)
    ok = True
    with fd.config.override(jit_backend="numba"):
        for dt, tol in [(np.float32, 1e-4), (np.float64, 1e-11), (np.complex64, 1e-4),
                        (np.complex128, 1e-11)]:
            a, b = rng.normal(size=(40, 30)), rng.normal(size=(30, 20))
            c, d = rng.normal(size=(16, 8)), rng.normal(size=(8, 24))
            if np.dtype(dt).kind == "c":
                a = a + 1j * rng.normal(size=a.shape)
                d = d - 1j * rng.normal(size=d.shape)
            args = [x.astype(dt) for x in (a, b, c, d)]
            got = fd.jit(products)(*args)
            for g, w in zip(got, products(*args)):
                ok &= bool(np.allclose(np.asarray(g), w, rtol=tol, atol=tol))
    print(ok, blas.bind())
""")


def test_compiled_products_agree_with_numpy_under_each_blas(tmp_path):
    # one process per BLAS (a process binds once), one disk cache: the second
    # process runs the machine code the first one compiled
    for choice in ["scipy", "mkl"] if HAVE_MKL else ["scipy"]:
        env = dict(os.environ, FUNCTAD_BLAS=choice, FUNCTAD_CACHE_DIR=str(tmp_path))
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split()[-2:] == ["True", choice], out.stdout
