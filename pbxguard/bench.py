"""`pbxguard bench`: CPU time per `screen()` call over a fixed mixed set of clips, and peak RSS.

The clips are composed by the corpus builder with a fixed seed (all classes), so every run measures the
same work. CPU time (`time.process_time`) of a single thread: the figure a core spends per call.
"""

from __future__ import annotations

import resource
import tempfile
import time
from multiprocessing import get_context

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE
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


LOAD_KINDS = ("live", "dead_air", "fax")


def load_audio() -> dict[str, np.ndarray]:
    """The three openings every benchmark channel cycles through (a live hello, dead air, a proven fax)."""
    from pbxguard.features.tones import CADENCES
    from pbxguard.train import channel, corpus, signals

    rng = np.random.default_rng(BENCH_SEED)
    cng = next(c for c in CADENCES if c.name == "fax_cng")
    fax, _ = signals.cadence_tone(cng, int(corpus.CLIP_SECONDS * SAMPLE_RATE), rng, -20.0, offset_ms=3400.0)
    pools = corpus.load_pools(BENCH_SEED, tts_per_voice=1)
    live = next(a for i in range(200) for a, row in [corpus.compose("human", i, BENCH_SEED, pools)] if row["split"] == "test")
    dead = corpus.compose("silence", 0, BENCH_SEED, pools)[0]
    return {"live": live, "dead_air": dead, "fax": channel.apply(fax, channel.draw(rng), rng)}


def _generate_load(port: int, audio: dict[str, bytes], channels: int, seconds: float, out, pbx: str = "asterisk") -> None:
    """Child process: `channels` fake Asterisk (or FreeSWITCH) channels placing calls back to back for `seconds`."""
    import asyncio
    import random

    from pbxguard.testing.asterisk import FakeAsterisk
    from pbxguard.testing.freeswitch import freeswitch_call

    clips = {k: np.frombuffer(v, dtype="<i2") for k, v in audio.items()}
    results = []

    async def channel(k: int) -> None:
        fake = FakeAsterisk("127.0.0.1", port)
        await asyncio.sleep(random.Random(k).uniform(0, 2.0))  # calls do not all start together
        deadline = time.monotonic() + seconds
        n = k
        while time.monotonic() < deadline:
            kind = LOAD_KINDS[n % len(LOAD_KINDS)]
            if pbx == "freeswitch":
                call = await freeswitch_call("127.0.0.1", port, clips[kind])
                variables = {k.upper(): v for k, v in call.variables.items()}
            else:
                call = await fake.call(clips[kind])
                variables = call.variables
            results.append((kind, call.agistatus, call.latency_ms, variables.get("PBXGUARD_CALL_ID"),
                            variables.get("PBXGUARD_VERDICT"), call.audio_sent_ms))
            n += 1

    async def main() -> None:
        await asyncio.gather(*(channel(k) for k in range(channels)))

    asyncio.run(main())
    out.send(results)


def run_channels(screener: Screener, channels: int, seconds: float, pbx: str = "asterisk") -> dict:
    """Concurrent channels through a real daemon: latency after the window, CPU, RSS, lost or misrouted audio."""
    import asyncio
    import multiprocessing

    from pbxguard import config
    from pbxguard.server import Server
    from pbxguard.store.record import CallRecord, ChallengeOutcome

    with get_context("fork").Pool(1) as pool:  # the corpus sources stay out of the daemon's RSS
        audio = pool.apply(load_audio)
    expected = {k: screener.screen(v).label.upper() for k, v in audio.items()}
    rundir = tempfile.mkdtemp(prefix="pbxguard-bench-")
    cfg = config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, metrics={"port": 0},
                                  database={"path": f"{rundir}/calls.db"})
    if pbx == "freeswitch":
        cfg = cfg.with_(eagi={"directory": rundir}, freeswitch={"enabled": True, "port": 0, "recordings": f"{rundir}/recordings"})
    audio_ms: dict[str, float] = {}  # per call id: the audio the daemon received

    def keep(record: CallRecord | ChallengeOutcome) -> None:
        if isinstance(record, CallRecord):
            audio_ms[record.call_id] = record.audio_ms or 0.0

    async def main() -> tuple[list, float, float]:
        server = Server(cfg, screener)
        server.recorder.subscribers.append(keep)
        await server.start()
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        port = server.freeswitch_port if pbx == "freeswitch" else server.port(0)
        child = ctx.Process(target=_generate_load, args=(port, {k: v.astype("<i2").tobytes() for k, v in audio.items()},
                                                         channels, seconds, send, pbx))
        cpu0, wall0 = time.process_time(), time.monotonic()
        child.start()
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(None, receive.recv)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await loop.run_in_executor(None, child.join)
        await server.stop()
        return results, cpu, wall

    results, cpu, wall = asyncio.run(main())
    latencies = np.array([r[2] for r in results if r[2] is not None and r[1] == "SUCCESS"])
    misrouted = sum(1 for kind, _, _, _, verdict, _ in results if verdict != expected[kind])
    short = sum(1 for kind, _, _, call_id, _, _ in results
                if kind != "fax" and audio_ms.get(call_id, 0.0) < screener.window_ms)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return {
        "pbx": pbx,
        "channels": channels,
        "calls": len(results),
        "failed_calls": sum(1 for r in results if r[1] != "SUCCESS"),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "misrouted_or_wrong_verdicts": misrouted,
        "calls_missing_audio": short,
        "daemon_cpu_percent_of_one_core": round(100.0 * cpu / wall, 1),
        "daemon_peak_rss_mb": round(hwm / 1024.0, 1),
        "rss_budget_mb": round(300 + channels * 64 / 1024, 1),
    }
