"""Beside the hot path: the call log, captured audio and the caller-ID lists."""
