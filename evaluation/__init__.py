"""Evaluation: augmentation study, fidelity, privacy audit, reader study."""
