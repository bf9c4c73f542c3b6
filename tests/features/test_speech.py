import numpy as np
import pytest

from pbxguard.features.analysis import analyse
from pbxguard.train import sources
from tests.signals import seconds, through_line


def prompt(name):
    return next(s for s in sources.natural_speech() if s.id == f"asterisk:{name}.wav").samples.astype(np.float64)


def test_live_hello_then_waiting():
    rng = np.random.default_rng(1)
    hello = prompt("hello-world")[: seconds(0.6)]
    canvas = np.zeros(seconds(2))
    canvas[seconds(0.3) : seconds(0.3) + len(hello)] = hello
    talk = analyse(through_line(canvas, rng)).talk
    assert talk.onset_ms == pytest.approx(300, abs=60)
    assert len(talk.utterances) == 1
    assert talk.trailing_silence_ms > 900


def test_quiet_talker_below_amds_threshold_is_still_speech():
    # app_amd calls any frame with mean |x| < 256 (about -42 dBFS) silence; this talker is at -48 dBFS RMS.
    rng = np.random.default_rng(2)
    hello = prompt("hello-world")[: seconds(0.8)]
    hello *= 10 ** (-48 / 20) * 32768 / np.sqrt(np.mean(hello**2))
    canvas = np.zeros(seconds(2))
    canvas[seconds(0.2) : seconds(0.2) + len(hello)] = hello
    talk = analyse(through_line(canvas, rng, noise_dbfs=-75)).talk
    assert talk.utterances and talk.speech_ms >= 300


def test_greeting_is_continuous():
    rng = np.random.default_rng(3)
    greeting = np.concatenate([prompt("vm-intro"), prompt("demo-thanks")])[: seconds(2)]
    talk = analyse(through_line(greeting, rng)).talk
    assert talk.speech_ms > 1400
    assert talk.trailing_silence_ms < 300


def test_dead_air_has_no_utterances():
    rng = np.random.default_rng(4)
    talk = analyse(through_line(np.zeros(seconds(2)), rng, noise_dbfs=-72)).talk
    assert talk.utterances == ()
    assert talk.onset_ms == 2000
