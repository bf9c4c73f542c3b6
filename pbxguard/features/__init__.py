"""Features: pure functions from samples to evidence and feature vectors. No I/O, no models."""
