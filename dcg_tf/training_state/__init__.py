"""Training-only state owned by training models, never by towers: queues,
momentum encoders, negative samplers. It is checkpointed but never exported.
"""
