"""`pbxguard bench`: CPU time per `screen()` call over a fixed mixed set of clips, and peak RSS.

The clips are composed by the corpus builder with a fixed seed (all classes), so every run measures the
same work. CPU time (`time.process_time`) of a single thread: the figure a core spends per call.
"""

from __future__ import annotations

import resource
import time
from multiprocessing import get_context

import numpy as np

from pbxguard.screener import Screener

BENCH_SEED = 20261121


def _compose(per_class: int) -> list[tuple[str, np.ndarray]]:
    from pbxguard.train import corpus

    pools = corpus.load_pools(BENCH_SEED, tts_per_voice=1)
    return [(cls, corpus.compose(cls, i, BENCH_SEED, pools)[0]) for cls in corpus.CLASSES for i in range(per_class)]


def bench_clips(per_class: int) -> list[tuple[str, np.ndarray]]:
    """The fixed clip set, composed in a child process so its sources do not count in this one's RSS."""
    with get_context("fork").Pool(1) as pool:
        return pool.apply(_compose, (per_class,))


def run(screener: Screener, per_class: int = 25, rounds: int = 5) -> dict:
    clips = bench_clips(per_class)
    for _, samples in clips:  # warm caches and lazy imports
        screener.screen(samples)
    per_round, latencies = [], []
    for _ in range(rounds):
        times = []
        for _, samples in clips:
            start = time.process_time()
            screener.screen(samples)
            times.append(time.process_time() - start)
        per_round.append(np.median(times))
        latencies.extend(times)
    lat = np.array(latencies) * 1000.0
    total = sum(lat) / 1000.0
    return {
        "clips": len(clips),
        "rounds": rounds,
        "median_ms": round(float(np.median(per_round)) * 1000.0, 3),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "clips_per_second": round(len(lat) / total, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),  # models loaded
    }
