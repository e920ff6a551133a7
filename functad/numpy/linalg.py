"""functad.numpy.linalg: differentiable linear algebra (stub, filled in by its owner)."""

__all__ = []
