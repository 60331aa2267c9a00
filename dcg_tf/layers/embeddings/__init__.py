"""Embeddings of ids and features: items, catalog features, time and position."""
