"""Screener: evidence and features in, a Verdict out. Models are loaded here, once per process."""

from pbxguard.screener.persist import ModelError
from pbxguard.screener.screener import Screener, ScreeningStream
from pbxguard.screener.verdict import CLASSES, Verdict

__all__ = ["CLASSES", "ModelError", "Screener", "ScreeningStream", "Verdict"]
