"""Encoders: token embeddings + attention mask → sentence embedding (or logits).

Each encoder lives in its own file and is registered by name in ``textcls.registry.ENCODERS``.
"""
