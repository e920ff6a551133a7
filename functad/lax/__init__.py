"""functad.lax: the primitives, each defined with all of its rules.

``functad.numpy`` is written on top of these functions.  Modules:

* :mod:`functad.lax.elementwise` — unary and binary elementwise families (tables);
* :mod:`functad.lax.shapes` — broadcasting, reshape, transpose, ...;
* :mod:`functad.lax.reductions` — sums, maxima, cumulative ops, ...;
"""

from functad.lax.elementwise import *  # noqa: F401,F403
from functad.lax.shapes import *  # noqa: F401,F403
from functad.lax.reductions import *  # noqa: F401,F403
from functad.ad import stop_gradient  # noqa: F401
from functad.lax.indexing import *  # noqa: F401,F403
from functad.lax.sorting import *  # noqa: F401,F403
from functad.lax.linalg import *  # noqa: F401,F403
from functad.lax.control_flow import *  # noqa: F401,F403
