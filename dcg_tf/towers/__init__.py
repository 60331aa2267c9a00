"""Exportable encoders: item ids -> item vectors, a user's batch -> user vector(s).

Nothing here imports training-only state (tests/test_layout.py).
"""
