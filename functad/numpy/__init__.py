"""functad.numpy: a differentiable NumPy, with NumPy 2 semantics.

Every function here works on NumPy arrays, Python scalars and functad tracers,
so the same code runs eagerly and under ``grad``, ``vmap`` and ``jit``.
Results follow NumPy 2 promotion (NEP 50: Python scalars are weak), with
float64 by default; float32 inputs stay float32.

>>> import functad.numpy as fnp
>>> fnp.sum(fnp.sin(fnp.zeros(3)) + 1.0)
np.float64(3.0)
"""

from functad.numpy._core import *  # noqa: F401,F403
from functad.numpy._ufuncs import *  # noqa: F401,F403
from functad.numpy._reductions import *  # noqa: F401,F403
from functad.numpy._shapes import *  # noqa: F401,F403
from functad.numpy._indexing import *  # noqa: F401,F403
from functad.numpy._sorting import *  # noqa: F401,F403
from functad.numpy._linalg_ops import *  # noqa: F401,F403
from functad.numpy import linalg  # noqa: F401
from functad.numpy import _methods  # noqa: F401  (operators and methods on tracers)
from functad.core import Array as ndarray  # noqa: F401
