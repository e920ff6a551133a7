"""Indexing of functad.numpy: ``x[idx]``, ``.at[idx]`` updates, take, ..."""

from __future__ import annotations

__all__ = []
