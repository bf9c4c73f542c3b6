"""Shared fixtures: a small corpus and a small model trained from it, built once per test session."""

from __future__ import annotations

import numpy as np
import pytest

from pbxguard.features.analysis import SAMPLE_RATE
from pbxguard.train import channel, corpus, signals, train

SMALL_PER_CLASS = 40


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    corpus.build(out, seed=7, per_class=SMALL_PER_CLASS, progress=False)
    return out


@pytest.fixture(scope="session")
def small_models(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    train.train(small_corpus, out, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def screener(small_models):
    from pbxguard.screener import Screener

    return Screener(small_models)


def through_line(x: np.ndarray, rng: np.random.Generator, law: str = "ulaw", noise_dbfs: float = -65.0) -> np.ndarray:
    """A clean test signal through the telephone channel: band limit, line noise, G.711."""
    line = channel.ChannelDraw(law=law, low_hz=300, high_hz=3400, noise_dbfs=noise_dbfs, noise_colour="white",
                               hum_dbfs=-200.0, mains_hz=50.0, agc_db=0.0, dc=0.0, loss_rate=0.0)
    return channel.apply(x, line, rng)


def seconds(s: float) -> int:
    return int(s * SAMPLE_RATE)


__all__ = ["through_line", "seconds", "signals"]
