"""Shipped model weights (the embedded default generator)."""
