"""Screener: evidence and features in, a Verdict out. Models are loaded here, once per process."""

from pbxguard.screener.models import ModelError
from pbxguard.screener.screener import Screener, ScreeningStream

__all__ = ["ModelError", "Screener", "ScreeningStream"]
