"""functad.nn (stub, filled in by its owner)."""
