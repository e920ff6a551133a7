"""functad: composable automatic differentiation for NumPy code on the CPU.

Write pure functions over :mod:`functad.numpy`; transform them with ``grad``,
``value_and_grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``hessian``,
``vmap`` and ``jit``, nested in any order.  The API follows JAX's names and
semantics.

>>> import functad as fd, functad.numpy as fnp
>>> f = lambda x: -fnp.log(1.0 / (1.0 + fnp.exp(-3.0 * x)))
>>> fd.grad(f)(0.0)
np.float64(-1.5)
"""

__version__ = "0.1.0"

from functad import core, tree_util  # noqa: F401
from functad.config import config  # noqa: F401
from functad.core import (make_jaxpr, ShapedArray, Array, ConcretizationTypeError,  # noqa: F401
                          UnexpectedTracerError, TracerArrayConversionError, check_jaxpr)
from functad.ad import (jvp, linearize, vjp, grad, value_and_grad, jacfwd, jacrev,  # noqa: F401
                        hessian, custom_jvp, custom_vjp, stop_gradient)
from functad.batching import vmap  # noqa: F401
from functad.jit import jit  # noqa: F401
from functad import lax  # noqa: F401
from functad import numpy  # noqa: F401
from functad import nn  # noqa: F401
from functad.api import eval_shape, ShapeDtypeStruct  # noqa: F401
from functad.remat import checkpoint, remat  # noqa: F401
from functad import debug  # noqa: F401
