"""functad.nn: activation functions and stable building blocks (a ``jax.nn`` subset).

>>> import functad as fd, functad.numpy as fnp
>>> from functad import nn
>>> nn.softmax(fnp.array([1.0, 1.0]))
Array([0.5, 0.5])
>>> fd.grad(nn.logsumexp)(fnp.array([-800.0, -800.0]))    # finite where exp underflows
Array([0.5, 0.5])
"""

from functad.nn.functions import *  # noqa: F401,F403
from functad.nn.functions import __all__  # noqa: F401
