"""Calls in progress (`service.calls`), without a PBX: what a relay's early audio becomes once its session claims it."""

import asyncio
import uuid
from pathlib import Path

from pbxguard.audio.files import read_audio
from pbxguard.screener.screener import Screener
from pbxguard.service.calls import CallRegistry
from pbxguard.store.record import CallRecord
from tests.signals import with_beep

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_relayed_calls_early_audio_adopted_by_an_outbound_session_listens_for_the_beep():
    x = with_beep(read_audio(EXAMPLES / "music.wav"), at_ms=3000.0)

    async def main():
        registry, call_id = CallRegistry(Screener()), str(uuid.uuid4())
        early = registry.attach(call_id, early=True)  # the relay's audio came before its AGI session
        call = registry.open(CallRecord(call_id, status=""), 2000, beep_window_ms=5000)
        assert call is early
        done = next(k for k in range(0, len(x), 160) if call.feed(x[k : k + 160]))
        verdict = call.outcome.result()
        registry.close(call_id)
        return done, verdict

    done, verdict = asyncio.run(main())
    assert verdict.label == "machine" and verdict.evidence["beep_end_ms"] is not None
    assert done < 4000 * 8  # the audio side was let go once the beep had ended
