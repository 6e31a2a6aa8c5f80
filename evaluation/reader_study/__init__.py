"""Blinded real-vs-synthetic reader study."""
