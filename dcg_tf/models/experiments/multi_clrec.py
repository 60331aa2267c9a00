"""Experiment builders (filled in by the module owner)."""
