"""Attention blocks that pool a sequence of clicks into head vectors."""
