"""A stream fed the way the relays feed it, for the tests that hold it to batch `screen()`."""

from __future__ import annotations

import numpy as np

from pbxguard.screener.screener import Screener
from pbxguard.screener.verdict import Verdict

# AudioSocket's frames: mostly 320 bytes with a 24-byte one among them, odd sizes from relays, and a
# recording read in large pieces (several 100 ms checks at once).
CHUNK_SIZES = (160, 12, 160, 148, 7, 153, 160, 320, 4000, 160, 2411)


def streamed(screener: Screener, samples: np.ndarray, beep_window_ms: int = 0) -> Verdict:
    stream, pos, k, verdict = screener.stream(beep_window_ms=beep_window_ms), 0, 0, None
    while verdict is None and pos < len(samples):
        verdict = stream.feed(samples[pos : pos + CHUNK_SIZES[k % len(CHUNK_SIZES)]])
        pos, k = pos + CHUNK_SIZES[k % len(CHUNK_SIZES)], k + 1
    return verdict or stream.finish()


def same_answer(a: Verdict, b: Verdict) -> bool:
    return (a.label, a.decided_ms, a.proven, a.scores) == (b.label, b.decided_ms, b.proven, b.scores)
