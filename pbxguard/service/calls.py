"""Calls in progress, whatever the PBX: each call's screening stream and the verdict it ends in.

An adapter opens a call when the PBX hands it over, the audio side feeds it frames, and the adapter awaits
`call.outcome`: a Verdict, or None when the audio stopped well short of the window (the caller hung up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.audio.resample import StreamResampler
from pbxguard.screener.screener import Screener, ScreeningStream
from pbxguard.screener.verdict import Verdict
from pbxguard.store.record import CallRecord

log = logging.getLogger("pbxguard.service.calls")

# Audio that ends this close to the window still decides: AudioSocket sometimes misses the first frame.
SHORT_WINDOW_TOLERANCE_MS = 100.0
EARLY_AUDIO_S = 5.0


@dataclass
class Call:
    call_id: str
    window_ms: int
    stream: ScreeningStream
    outcome: asyncio.Future
    record: CallRecord  # what the PBX said of the call: channel, caller, called, mode
    early: bool = False  # opened by its audio, before its AGI session claimed it
    audio_started: float | None = None
    attached: bool = False
    end_reason: str = ""
    resampler: StreamResampler | None = None

    def audio(self, rate: int, pcm: bytes) -> bool:
        """AudioSocket's s16le samples at `rate`; True once no more audio is needed."""
        samples = np.frombuffer(pcm, dtype="<i2")
        if rate != SAMPLE_RATE:
            if self.resampler is None:
                self.resampler = StreamResampler(rate)
            samples = self.resampler(samples)
        return self.feed(samples) if len(samples) else self.outcome.done()

    def feed(self, samples: np.ndarray) -> bool:
        """Take 8 kHz samples; True once a verdict is ready and no more audio is needed."""
        if self.outcome.done():
            return True
        if self.audio_started is None:
            self.audio_started = time.monotonic()
        verdict = self.stream.feed(samples)
        if verdict is not None:
            self.outcome.set_result(verdict)
            return True
        return False

    def end(self, reason: str) -> None:
        """The audio stopped before a verdict: decide on what came if it nearly filled the window."""
        if self.outcome.done():
            return
        self.end_reason = reason
        if self.stream.listening or self.stream.received_ms >= self.window_ms - SHORT_WINDOW_TOLERANCE_MS:
            self.outcome.set_result(self.stream.finish())
        else:
            self.outcome.set_result(None)


class CallRegistry:
    def __init__(self, screener: Screener, counted: Callable[[int], None] = lambda active: None) -> None:
        self.screener = screener
        self.calls: dict[str, Call] = {}
        self.counted = counted  # told the number of calls in progress whenever it changes (the metrics gauge)

    def open(self, record: CallRecord, window_ms: int | None = None, early: bool = False, beep_window_ms: int = 0) -> Call:
        known = self.calls.get(record.call_id)
        if known is not None and known.early:  # its audio came first (a relay): adopt it
            known.record, known.early = record, early
            known.stream.listen_for_beep(self.screener.beep_samples(beep_window_ms))
            return known
        window = min(window_ms or self.screener.window_ms, self.screener.window_ms)
        call = Call(record.call_id, window, self.screener.stream(window, beep_window_ms), asyncio.get_running_loop().create_future(),
                    record, early)
        self.calls[record.call_id] = call
        self.counted(len(self.calls))
        return call

    def attach(self, call_id: str, early: bool = False) -> Call | None:
        """The call an audio connection belongs to; None for an unknown or already attached UUID.

        With `early` (a local relay, whose audio may beat its AGI session here) an unknown UUID gets a call
        that waits EARLY_AUDIO_S for its session to claim it, and is dropped otherwise.
        """
        call = self.calls.get(call_id)
        if call is None and early:
            call = self.open(CallRecord(call_id, status=""), early=True)
            asyncio.get_running_loop().call_later(EARLY_AUDIO_S, self._expire, call_id)
        if call is None or call.attached:
            return None
        call.attached = True
        return call

    def _expire(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.early:
            log.warning("audio for call %s came from a relay but no AGI session claimed it; dropped", call_id)
            self.close(call_id)

    def close(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        self.counted(len(self.calls))
        if call is not None and not call.outcome.done():
            call.outcome.set_result(None)

    @property
    def active(self) -> int:
        return len(self.calls)


async def outcome(call: Call, timeout: float) -> Verdict | None:
    """The call's verdict, or None if the audio never (or only briefly) came within `timeout` seconds."""
    try:
        return await asyncio.wait_for(asyncio.shield(call.outcome), timeout)
    except TimeoutError:
        return None
