import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxguard.audio.format import FRAME
from pbxguard.features.analysis import analyse, frame_view
from pbxguard.features.tones import CADENCES, ToneProver, label_frames, prove_tones
from pbxguard.train import signals, sources
from tests.signals import seconds, through_line

CADENCE = {c.name: c for c in CADENCES}
# Entry points into each cycle that put enough of the tone inside a 2 s window to prove it.
ON_SPEC = [
    ("busy_na", 0), ("reorder_na", 100), ("ringback_na", 0), ("dial_na", 0), ("busy_eu", 250),
    ("congestion_eu", 0), ("ringback_eu", 4500), ("dial_eu", 0), ("busy_uk", 0), ("congestion_uk", 0),
    ("ringback_uk", 0), ("fax_cng", 3200), ("fax_ced", 0), ("fax_v21", 0),
]


def tone_clip(name, offset_ms, level, law, rng, **kwargs):
    cadence = CADENCE[name]
    if name == "fax_v21":
        x = signals.v21_flags(seconds(2.4), rng, level)
    else:
        x, _ = signals.cadence_tone(cadence, seconds(2.4), rng, level, offset_ms=offset_ms, **kwargs)
    return through_line(x, rng, law)[: seconds(2)]


@pytest.mark.parametrize("name, offset", ON_SPEC)
@pytest.mark.parametrize("level", [-10.0, -30.0, -45.0])
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_on_spec_tones_are_proven(name, offset, level, law):
    rng = np.random.default_rng(zlib.crc32(f"{name} {level} {law}".encode()))  # the same draw every run
    events = analyse(tone_clip(name, offset, level, law, rng)).tone_events
    assert events, f"{name} at {level} dBFS ({law}) not proven"
    assert events[0].name == name or {events[0].name, name} <= {"busy_uk", "congestion_uk"}
    assert events[0].verdict == CADENCE[name].verdict


def test_fax_cng_is_proven_soon_after_its_burst():
    rng = np.random.default_rng(3)
    event = analyse(tone_clip("fax_cng", 3400, -20.0, "ulaw", rng)).tone_events[0]
    # The burst starts 100 ms in and lasts 500 ms: proven once it has been gone for 60 ms.
    assert event.start_ms == pytest.approx(100, abs=20)
    assert event.decided_ms == pytest.approx(660, abs=40)


@pytest.mark.parametrize("name", ["busy_na", "dial_na", "busy_eu", "fax_cng", "fax_ced"])
@pytest.mark.parametrize("scale", [0.85, 1.15])
def test_off_spec_frequencies_are_not_proven(name, scale):
    rng = np.random.default_rng(5)
    assert not analyse(tone_clip(name, 0 if name != "fax_cng" else 3200, -20.0, "ulaw", rng, freq_scale=scale)).tone_events


@pytest.mark.parametrize("pattern", [((100.0, 900.0),), ((700.0, 150.0),), ((1500.0, 300.0),)])
def test_off_spec_cadences_are_not_proven(pattern):
    rng = np.random.default_rng(6)
    x, _ = signals.cadence_tone(CADENCE["busy_na"], seconds(2.4), rng, -20.0, pattern_ms=pattern, offset_ms=0.0)
    assert not analyse(through_line(x, rng)[: seconds(2)]).tone_events


def test_sit_is_proven():
    rng = np.random.default_rng(8)
    x, params = signals.sit_tone(seconds(2.4), rng, -20.0, 100.0)
    event = analyse(through_line(x, rng)[: seconds(2)]).tone_events[0]
    assert event.name == "sit" and event.verdict == "tone"


def test_speech_and_music_are_not_taken_for_tones():
    speech = sources.natural_speech()
    music = sources.music()
    rng = np.random.default_rng(9)
    clips = [s.samples for s in speech[::4]] + [m.samples[k * 16000 : (k + 1) * 16000] for m in music for k in range(0, 120, 6)]
    for x in clips:
        x = np.concatenate([x, np.zeros(seconds(2))])[: seconds(2)].astype(np.float64)
        assert not analyse(through_line(x, rng)).tone_events


@pytest.mark.parametrize("beep_hz", [1000.0, 1100.0, 1650.0, 2100.0])
def test_beep_after_speech_reports_its_onset_and_is_not_fax(beep_hz):
    rng = np.random.default_rng(10)
    prompt = next(s for s in sources.natural_speech() if s.id == "asterisk:vm-intro.wav").samples[: seconds(1.0)]
    canvas = np.zeros(seconds(2.0))
    canvas[: len(prompt)] = prompt
    beep = signals.sinusoids((beep_hz,), seconds(0.6), rng) * signals.db_to_amplitude(-15.0)
    canvas[seconds(1.2) : seconds(1.8)] = beep
    analysis = analyse(through_line(canvas, rng))
    assert analysis.beep is not None
    assert analysis.beep.onset_ms == pytest.approx(1200, abs=30)
    assert not analysis.tone_events


@pytest.mark.parametrize("into_burst_ms", [0, 100, 250, 300])
def test_a_fax_cng_already_on_at_answer_is_proven(into_burst_ms):
    # The audio starts inside the burst, and AudioSocket also misses its first 25 ms.
    rng = np.random.default_rng(into_burst_ms)
    cng = CADENCE["fax_cng"]
    x, _ = signals.cadence_tone(cng, seconds(2.4), rng, -20.0, offset_ms=float(into_burst_ms))
    events = analyse(through_line(x, rng)[200 : seconds(2)]).tone_events
    assert events and events[0].name == "fax_cng"
    assert events[0].decided_ms <= 500 - into_burst_ms + 100


def test_a_short_1100_hz_blip_at_answer_proves_nothing():
    rng = np.random.default_rng(5)
    blip = signals.sinusoids((1100.0,), seconds(0.1), rng) * signals.db_to_amplitude(-20.0)
    x = np.zeros(seconds(2))
    x[: len(blip)] = blip
    assert not analyse(through_line(x, rng)).tone_events


def test_a_cut_cng_burst_after_a_frame_or_two_of_setup_silence_is_proven():
    # FreeSWITCH's recording can start a frame or two before the caller's audio.
    rng = np.random.default_rng(8)
    x, _ = signals.cadence_tone(CADENCE["fax_cng"], seconds(2.4), rng, -20.0, offset_ms=200.0)
    lead = np.zeros(seconds(0.04))
    events = analyse(through_line(np.concatenate([lead, x]), rng)[: seconds(2)]).tone_events
    assert events and events[0].name == "fax_cng" and events[0].start_ms <= 60


def _prefix_proofs(x, steps):
    """Proofs over growing prefixes of `x`'s frames, by one ToneProver (as a stream checks) and afresh."""
    labels, level = label_frames(frame_view(x))
    prover, incremental, fresh = ToneProver(), [], []
    for n in np.cumsum(steps):
        n = min(int(n), len(labels))
        onset = lambda: 700.0  # noqa: E731 (a fax after 700 ms of "speech" is a beep: both paths must ask alike)
        incremental.append(prover.prove(labels[:n], level[:n], x[: n * FRAME], onset))
        fresh.append(prove_tones(labels[:n], level[:n], x[: n * FRAME], onset))
    return incremental, fresh


@pytest.mark.parametrize("name, offset", ON_SPEC)
def test_proofs_kept_between_checks_equal_proofs_made_afresh(name, offset):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = tone_clip(name, offset, -25.0, "ulaw", rng)
    incremental, fresh = _prefix_proofs(x, [1] * (len(x) // FRAME))
    assert incremental == fresh
    assert fresh[-1], f"{name}: the clip proves nothing, so the test shows nothing"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["sit", "fax_cng", "busy_uk", "ringback_uk", "speech", "music"]),
       st.lists(st.integers(1, 12), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_proofs_kept_over_any_checks_equal_proofs_made_afresh(kind, steps, seed):
    rng = np.random.default_rng(seed)
    if kind == "sit":
        x = through_line(signals.sit_tone(seconds(2.4), rng, -20.0, 100.0)[0], rng)[: seconds(2)]
    elif kind in ("speech", "music"):
        pool = sources.natural_speech() if kind == "speech" else sources.music()
        x = pool[int(rng.integers(len(pool)))].samples
        x = through_line(np.concatenate([x, np.zeros(seconds(2))])[: seconds(2)].astype(np.float64), rng)
    else:
        x = tone_clip(kind, 0, -20.0, "alaw", rng)
    incremental, fresh = _prefix_proofs(x, steps)
    assert incremental == fresh
