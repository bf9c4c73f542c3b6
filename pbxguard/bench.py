"""`pbxguard bench`: CPU time per `screen()` call over a fixed mixed set of clips, and peak RSS.

The clips are composed by the corpus builder with a fixed seed (all classes), so every run measures the
same work. CPU time (`time.process_time`) of a single thread: the figure a core spends per call.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.screener.screener import Screener
from pbxguard.shipped import DIALPLAN
from pbxguard.testing.pbx import free_port

BENCH_SEED = 20261121


def _compose(per_class: int) -> list[tuple[str, np.ndarray]]:
    from pbxguard.train import corpus

    pools = corpus.load_pools(BENCH_SEED, tts_per_voice=1)
    drafts = [corpus.draft(cls, i, BENCH_SEED, pools) for cls in corpus.CLASSES for i in range(per_class)]
    return [(d.cls, audio) for d, audio in zip(drafts, corpus.render(drafts))]


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
    live = corpus.render([next(d for i in range(200) for d in [corpus.draft("human", i, BENCH_SEED, pools)]
                               if d.row["split"] == "test" and d.row["subclass"] == "live_answer")])[0]
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


def _load_outcome(results: list, expected: dict[str, str], audio_ms: dict[str, float], window_ms: float) -> dict:
    """What `_generate_load`'s calls got: failures, latency after the window, wrong verdicts, short audio."""
    latencies = np.array([r[2] for r in results if r[2] is not None and r[1] == "SUCCESS"])
    return {
        "calls": len(results),
        "failed_calls": sum(1 for r in results if r[1] != "SUCCESS"),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "misrouted_or_wrong_verdicts": sum(1 for kind, _, _, _, verdict, _ in results if verdict != expected[kind]),
        "calls_missing_audio": sum(1 for kind, _, _, call_id, _, _ in results
                                   if kind != "fax" and (audio_ms.get(call_id) or 0.0) < window_ms),
    }


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

    try:
        results, cpu, wall = asyncio.run(main())
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return {
        "pbx": pbx,
        "channels": channels,
        **_load_outcome(results, expected, audio_ms, screener.window_ms),
        "daemon_cpu_percent_of_one_core": round(100.0 * cpu / wall, 1),
        "daemon_peak_rss_mb": round(hwm / 1024.0, 1),
        "rss_budget_mb": round(300 + channels * 64 / 1024, 1),
    }


def run_channels_served(screener: Screener, channels: int, seconds: float, workers: int) -> dict:
    """Concurrent fake Asterisk channels through `pbxguard serve` with `workers` workers, as systemd runs it:
    latency after the window (as the channels saw it), CPU and peak RSS of every worker, lost or misrouted
    calls. `screener` (the same models) gives each opening's expected verdict."""
    import multiprocessing
    import sqlite3

    with get_context("fork").Pool(1) as pool:
        audio = pool.apply(load_audio)
    expected = {k: screener.screen(v).label.upper() for k, v in audio.items()}
    folder = Path(tempfile.mkdtemp(prefix="pbxguard-bench-workers-"))
    try:
        with _serving(folder, {"workers": workers, "log": {"level": "warning"}}) as (_, pids, config):
            port = config["fastagi"]["port"]
            ctx = multiprocessing.get_context("spawn")
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_generate_load, args=(port, {k: v.astype("<i2").tobytes() for k, v in audio.items()},
                                                             channels, seconds, send))
            ticks0, wall0 = {pid: _cpu_ticks(pid) for pid in pids.values()}, time.monotonic()
            child.start()
            results = receive.recv()
            wall = time.monotonic() - wall0
            cpu_s = sum(_cpu_ticks(pid) - ticks0[pid] for pid in pids.values()) / os.sysconf("SC_CLK_TCK")
            peak_mb = sum(_status_kb(pid, "VmHWM") for pid in pids.values()) / 1024
            child.join()
        with contextlib.closing(sqlite3.connect(folder / "calls.db")) as db:
            audio_ms = dict(db.execute("SELECT call_id, audio_ms FROM calls"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "workers": workers,
        "channels": channels,
        **_load_outcome(results, expected, audio_ms, screener.window_ms),
        "workers_cpu_percent_of_one_core": round(100.0 * cpu_s / wall, 1),
        "workers_cpu_ms_per_call": round(1000.0 * cpu_s / max(1, len(results)), 2),
        "workers_peak_rss_mb": round(peak_mb, 1),
        "rss_budget_mb": round(300 + channels * 64 / 1024, 1),
    }


def _hostile_load(agi_port: int, audio_port: int, seconds: float, out) -> None:
    """Child process: the hostile clients' mix for `seconds`."""
    import asyncio

    from pbxguard.testing import hostile

    async def main() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await hostile.mix(agi_port, audio_port, stop)

    out.send(asyncio.run(main()))


def run_soak(screener: Screener, channels: int, seconds: float, sample_s: float = 10.0) -> dict:
    """Good calls back to back on `channels` channels for `seconds`, with the hostile mix running all along:
    wrong and late verdicts, rows lost from the call log, and the daemon's RSS and open files over time."""
    import multiprocessing
    import sqlite3

    from pbxguard import config, logs

    with get_context("fork").Pool(1) as pool:
        audio = pool.apply(load_audio)
    expected = {k: screener.screen(v).label.upper() for k, v in audio.items()}
    rundir = tempfile.mkdtemp(prefix="pbxguard-soak-")
    cfg = config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, metrics={"port": 0},
                                  database={"path": f"{rundir}/calls.db"}, log={"level": "warning"})
    logs.configure(cfg)  # as the daemon logs: escaped, and repeated warnings limited
    daemon = ThreadedDaemon(cfg, screener)
    ctx = multiprocessing.get_context("spawn")
    good_in, good_out = ctx.Pipe(duplex=False)
    bad_in, bad_out = ctx.Pipe(duplex=False)
    clips = {k: v.astype("<i2").tobytes() for k, v in audio.items()}
    good = ctx.Process(target=_generate_load, args=(daemon.server.port(0), clips, channels, seconds, good_out))
    bad = ctx.Process(target=_hostile_load, args=(daemon.server.port(0), daemon.server.port(1), seconds, bad_out))
    samples = []
    start = time.monotonic()
    good.start()
    bad.start()
    while not good_in.poll(sample_s):
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        samples.append({"t_s": round(time.monotonic() - start), "rss_mb": round(rss / 1024, 1),
                        "open_files": len(os.listdir("/proc/self/fd"))})
    results, rounds = good_in.recv(), bad_in.recv()
    good.join()
    bad.join()
    daemon.stop()
    with contextlib.closing(sqlite3.connect(f"{rundir}/calls.db")) as db:
        logged = {row[0] for row in db.execute("SELECT call_id FROM calls")}
    shutil.rmtree(rundir, ignore_errors=True)
    answered = [r for r in results if r[1] == "SUCCESS" and r[3]]
    latencies = np.array([r[2] for r in answered if r[2] is not None])
    return {
        "channels": channels, "seconds": seconds, "hostile_rounds": rounds,
        "calls": len(results), "failed_calls": len(results) - len(answered),
        "wrong_verdicts": sum(1 for kind, _, _, _, verdict, _ in answered if verdict != expected[kind]),
        "late_over_100ms": int(np.sum(latencies > 100.0)),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "rows_lost": sum(1 for r in answered if r[3] not in logged),
        "samples": samples,
    }


class ThreadedDaemon:
    """A daemon on its own event loop in a thread of the benchmark, keeping every call's row by the number
    it dialled (and every verdict's latency)."""

    def __init__(self, cfg, screener: Screener) -> None:
        import asyncio
        import threading

        from pbxguard.server import Server

        self.records: dict = {}
        self.loop = asyncio.new_event_loop()
        self.server = Server(cfg, screener)
        self.server.recorder.subscribers.append(self._keep)
        self.server.metrics.latency_samples = []
        self.loop.run_until_complete(self.server.start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _keep(self, record) -> None:
        from pbxguard.store.record import CallRecord

        if isinstance(record, CallRecord):
            self.records[record.called] = record

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


SIPP_SCENARIO = DIALPLAN / "sipp" / "uac_rtp.xml"
SIPP_CALLERS = {"live": "+12025550101", "dead_air": "+12025550102", "fax": "+12025550103"}
SIPP_PREFIX = {"live": "71", "dead_air": "72", "fax": "73"}
SIPP_MODULES = ("chan_pjsip", "res_pjsip", "res_pjsip_session", "res_pjsip_sdp_rtp", "res_pjproject",
                "res_pjsip_endpoint_identifier_ip", "res_pjsip_caller_id", "res_pjsip_logger", "res_rtp_asterisk",
                "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_pjsip_authenticator_digest",
                "res_pjsip_outbound_authenticator_digest", "res_http_websocket", "res_pjsip_transport_websocket",
                "res_pjsip_pubsub", "res_pjsip_registrar", "res_pjsip_acl", "res_pjsip_rfc3326", "res_pjsip_dtmf_info")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run_sipp(screener: Screener, channels: int, seconds: float) -> dict:
    """SIPp callers streaming RTP from recorded openings into a real Asterisk 22.10.1 running the shipped
    dialplan's [pbxguard-amd], screened by a real daemon in this process: `channels` concurrent calls (a
    third per opening) for about `seconds`. Every call is matched to its call-log row by the number it
    dialled; its verdict must be the one its audio gets screened alone (after the mu-law the RTP carries)."""
    import socket

    from pbxguard import config
    from pbxguard.audio import g711
    from pbxguard.testing import pbx

    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester; bash .ci/setup installs it)")
    work = Path(tempfile.mkdtemp(prefix="pbxguard-sipp-"))
    with get_context("fork").Pool(1) as pool:
        audio = pool.apply(load_audio)
    expected, files = {}, {}
    for kind, samples in audio.items():
        codes = g711.ulaw_encode(samples)
        expected[kind] = screener.screen(g711.ulaw_decode(codes)).label
        files[kind] = work / f"{kind}.ulaw"
        files[kind].write_bytes(codes.tobytes())

    cfg = config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, metrics={"enabled": False},
                                  database={"path": str(work / "calls.db")})
    daemon = ThreadedDaemon(cfg, screener)
    server, records = daemon.server, daemon.records

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    extensions = (f"[globals]\nPBXGUARD_SERVER=127.0.0.1:{server.port(0)}\n\n"
                  f"#include {DIALPLAN / 'asterisk' / 'extensions_pbxguard.conf'}\n"
                  "[sipp-load]\nexten => _X.,1,Answer()\n same => n,Gosub(pbxguard-amd,s,1(2000,${EXTEN}))\n"
                  " same => n,Hangup()\n")
    configs = {
        "pjsip.conf": f"[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{sip_port}\n\n"
                      "[load]\ntype = endpoint\ncontext = sipp-load\ndisallow = all\nallow = ulaw\ndirect_media = no\n"
                      "rtp_symmetric = yes\n\n[load-ip]\ntype = identify\nendpoint = load\nmatch = 127.0.0.1\n",
        "rtp.conf": "[general]\nrtpstart = 10000\nrtpend = 19999\n",
    }
    asterisk = pbx.Asterisk(work / "asterisk", extensions, configs, extra_modules=SIPP_MODULES)
    per_kind = max(1, channels // len(audio))
    calls_per_kind = max(per_kind, int(per_kind * seconds / 3.0))
    cpu0 = time.process_time()
    ast0, wall0 = _cpu_ticks(asterisk.process.pid), time.monotonic()
    runs = []
    for k, kind in enumerate(audio):
        # SIPp expands no keyword inside rtp_stream="...": each opening gets its own copy of the scenario.
        scenario = work / f"uac_{kind}.xml"
        scenario.write_text(SIPP_SCENARIO.read_text().replace('rtp_stream="[audio],', f'rtp_stream="{files[kind]},'))
        log = open(work / f"sipp_{kind}.log", "w")
        runs.append((subprocess.Popen(
            [sipp, f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-s", SIPP_PREFIX[kind], "-key", "caller",
             SIPP_CALLERS[kind], "-i", "127.0.0.1", "-p", str(sip_port + 1 + k),
             "-l", str(per_kind), "-r", str(per_kind), "-rp", "3000", "-m", str(calls_per_kind), "-nostdin",
             "-mi", "127.0.0.1", "-mp", str(20000 + 4000 * k), "-timeout", f"{int(seconds + 120)}s",
             "-trace_err", "-error_file", str(work / f"sipp_{kind}.err")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work), log))
    for process, log in runs:
        process.wait()
        log.close()
    wall = time.monotonic() - wall0
    ast_cpu = (_cpu_ticks(asterisk.process.pid) - ast0) / os.sysconf("SC_CLK_TCK")
    time.sleep(1.0)  # the last calls' rows
    daemon_cpu = time.process_time() - cpu0
    asterisk.stop()
    daemon.stop()

    placed = {kind: [f"{SIPP_PREFIX[kind]}{n}" for n in range(1, calls_per_kind + 1)] for kind in audio}
    total = sum(len(v) for v in placed.values())
    lost = sum(1 for kind, numbers in placed.items() for n in numbers
               if n not in records or records[n].status != "screened")
    wrong = sum(1 for kind, numbers in placed.items() for n in numbers
                if n in records and records[n].status == "screened" and records[n].verdict != expected[kind])
    latencies = np.array(server.metrics.latency_samples) * 1000.0
    if not lost and not wrong:
        shutil.rmtree(work, ignore_errors=True)  # otherwise kept: SIPp's and Asterisk's logs say why
    return {
        "work": str(work) if lost or wrong else "(removed)",
        "pbx": "asterisk 22.10.1 + sipp",
        "channels": per_kind * len(audio),
        "calls": total,
        "lost_verdicts": lost,
        "wrong_verdicts": wrong,
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "asterisk_cpu_ms_per_call": round(1000.0 * ast_cpu / max(total, 1), 2),
        "daemon_cpu_ms_per_call": round(1000.0 * daemon_cpu / max(total, 1), 2),
        "wall_s": round(wall, 1),
    }


FS_LOAD_ROUTES = """<include>
  <context name="pbxguard">
    <extension name="load-done">
      <condition field="destination_number" expression="^pbxguard_route_">
        <action application="hangup"/>
      </condition>
    </extension>
  </context>
</include>
"""


AVMD_ROUTES = """<include>
  <extension name="bench-pbxguard-outbound">
    <condition field="destination_number" expression="^(556\\d{4})$">
      <action application="set" data="pbxguard_mode=outbound"/>
      <action application="socket" data="127.0.0.1:ESL_PORT async full"/>
      <action application="hangup"/>
    </condition>
  </extension>
  <extension name="bench-avmd-voicemail">
    <condition field="destination_number" expression="^(557\\d{4})$">
      <action application="answer"/>
      <action application="playback" data="WORK/${destination_number}.wav"/>
      <action application="sleep" data="2000"/>
      <action application="hangup"/>
    </condition>
  </extension>
</include>
"""


def _greetings(clips: int) -> list[tuple[np.ndarray, float | None]]:
    """Held-out openings from the corpus recipe: `clips` greetings with a beep (and its onset), then half as
    many greetings without one and a quarter as many fax calls (a CNG tone is a single frequency too)."""
    from pbxguard.train import corpus

    pools = corpus.load_pools(BENCH_SEED, tts_per_voice=1)
    wanted = {("machine", "greeting_beep"): clips, ("machine", "greeting"): clips // 2, ("fax", None): clips // 4}
    found: dict[tuple, list[tuple[np.ndarray, float | None]]] = {key: [] for key in wanted}
    for cls in ("machine", "fax"):
        index = 0
        while any(len(found[key]) < n for key, n in wanted.items() if key[0] == cls):
            chosen = corpus.draft(cls, index, BENCH_SEED, pools)
            index += 1
            key = (cls, chosen.row["subclass"] if cls == "machine" else None)
            if chosen.row["split"] == "test" and key in wanted and len(found[key]) < wanted[key]:
                found[key].append((corpus.render([chosen])[0], json.loads(chosen.row["params"]).get("beep_ms")))
    return [clip for key in wanted for clip in found[key]]


def run_avmd(screener: Screener, clips: int = 20) -> dict:
    """The beep of a voicemail greeting, found by pbxguard (outbound mode, through its ESL server) and by
    FreeSWITCH's mod_avmd, on the same held-out greetings played into a real FreeSWITCH 1.10.12, one call at
    a time. Times are from the answer of the screened leg; the true onset is the playback's start on the
    other leg plus the beep's place in the file."""

    from pbxguard import config
    from pbxguard.audio.files import write_wav
    from pbxguard.testing import pbx

    work = Path(tempfile.mkdtemp(prefix="pbxguard-avmd-"))
    with get_context("fork").Pool(1) as pool:
        greetings = pool.apply(_greetings, (clips,))
    cfg = config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, metrics={"enabled": False},
                                  database={"path": str(work / "calls.db")}, eagi={"directory": str(work / "run")},
                                  freeswitch={"enabled": True, "port": 0, "recordings": str(work / "recordings")})
    daemon = ThreadedDaemon(cfg, screener)
    routes = AVMD_ROUTES.replace("ESL_PORT", str(daemon.server.freeswitch_port)).replace("WORK", str(work))
    fs = pbx.FreeSWITCH(work / "freeswitch", {"public/00_bench.xml": routes})
    fs.esl.subscribe("CUSTOM avmd::beep")
    rows = []
    for k, (audio, onset) in enumerate(greetings):
        row: dict = {"beep_in_file_ms": onset}
        for who, prefix in (("pbxguard", "556"), ("avmd", "557")):
            number = f"{prefix}{k:04d}"
            write_wav(work / f"{number}.wav", audio)
            # pbxguard screens the leg the greeting comes in on; mod_avmd only runs on an outbound leg, so it
            # listens on the originating leg while the other one plays the greeting.
            app = f"'playback:{work}/{number}.wav,sleep:2000' inline" if who == "pbxguard" else "'avmd_start,sleep:4500' inline"
            fs.esl.bgapi(f"originate loopback/{number}/public {app}")
            listener, player = (f"loopback/{number}-b", f"loopback/{number}-a") if who == "pbxguard" else \
                (f"loopback/{number}-a", f"loopback/{number}-b")
            done = fs.esl.wait_event(lambda e, name=listener: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                                     and e.get("Channel-Name") == name, 30)
            played = next(e for e in fs.esl.events if e.get("Event-Name") == "CHANNEL_EXECUTE"
                          and e.get("Channel-Name") == player and e.get("Application") == "playback")
            answered = int(done["Caller-Channel-Answered-Time"])
            row[f"{who}_playback_at_ms"] = round((int(played["Event-Date-Timestamp"]) - answered) / 1000.0, 1)
            if who == "pbxguard":
                beep = done.get("variable_pbxguard_beep_ms") or ""
                row["pbxguard_onset_ms"] = float(beep) if beep else None
                row["pbxguard_decided_ms"] = float(done.get("variable_pbxguard_decided_ms") or "nan")
            else:
                fired = [e for e in fs.esl.events if e.get("Event-Subclass") == "avmd::beep"
                         and e.get("Unique-ID") == done.get("Unique-ID")]
                row["avmd_event_ms"] = (int(fired[0]["Event-Date-Timestamp"]) - answered) / 1000.0 if fired else None
        rows.append(row)
    fs.stop()
    daemon.stop()
    shutil.rmtree(work, ignore_errors=True)
    return _avmd_summary(rows)


def _avmd_summary(rows: list[dict]) -> dict:
    beeps = [r for r in rows if r["beep_in_file_ms"] is not None]
    plain = [r for r in rows if r["beep_in_file_ms"] is None]

    def true_onset(r: dict, who: str) -> float:
        return r["beep_in_file_ms"] + r[f"{who}_playback_at_ms"]

    ours = [r["pbxguard_onset_ms"] - true_onset(r, "pbxguard") for r in beeps if r["pbxguard_onset_ms"] is not None]
    theirs = [r["avmd_event_ms"] - true_onset(r, "avmd") for r in beeps if r["avmd_event_ms"] is not None]
    median = lambda xs: round(float(np.median(xs)), 1) if xs else None  # noqa: E731
    return {
        "greetings_with_beep": len(beeps), "openings_without_beep": len(plain),
        "pbxguard_found": len(ours), "avmd_found": len(theirs),
        "pbxguard_onset_error_median_ms": median(ours),
        "pbxguard_onset_error_abs_p90_ms": round(float(np.percentile(np.abs(ours), 90)), 1) if ours else None,
        "pbxguard_decided_median_ms": median([r["pbxguard_decided_ms"] for r in beeps]),
        "avmd_event_after_onset_median_ms": median(theirs),
        "pbxguard_false_beeps": sum(r["pbxguard_onset_ms"] is not None for r in plain),
        "avmd_false_beeps": sum(r["avmd_event_ms"] is not None for r in plain),
    }


FS_NOMINAL_HOLD_S = 2.2  # a screened call's life on the route side: the window and the way in and out


def run_freeswitch(screener: Screener, channels: int, seconds: float, workers: int = 0) -> dict:
    """Loopback calls through a real FreeSWITCH 1.10.12 running the shipped entry extension, screened by a
    real daemon and its ESL process: calls arrive steadily (a third per opening) so that about `channels` are
    being screened at once, for about `seconds`. The daemon is `pbxguard serve` with `workers` workers, as
    systemd runs it, or with `workers=0` a daemon in this process (whose CPU then includes this benchmark's
    reading of FreeSWITCH's events). Hold time is from the answer to the hangup that follows the verdict;
    every call is matched to its call-log row by the number it dialled."""
    import sqlite3

    from pbxguard import config
    from pbxguard.audio.files import write_wav
    from pbxguard.testing import pbx

    work = Path(tempfile.mkdtemp(prefix="pbxguard-fsload-"))
    with get_context("fork").Pool(1) as pool:
        audio = pool.apply(load_audio)
    expected = {kind: screener.screen(samples).label for kind, samples in audio.items()}
    files = {}
    for kind, samples in audio.items():
        files[kind] = work / f"{kind}.wav"
        write_wav(files[kind], samples)
    fs_port = free_port() if workers else 0
    settings = {"metrics": {"enabled": False}, "database": {"path": str(work / "calls.db")},
                "eagi": {"directory": str(work / "run")},
                "freeswitch": {"enabled": True, "port": fs_port, "recordings": str(work / "recordings")}}
    with contextlib.ExitStack() as daemons:
        if workers:
            _, pids, _ = daemons.enter_context(_serving(work, {**settings, "workers": workers, "log": {"level": "warning"}}))
            daemon_pids, esl_port = list(pids.values()), fs_port
            esl_pid = next(c for c in _children(pids[0]) if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes())
        else:
            daemon = ThreadedDaemon(config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, **settings), screener)
            daemons.callback(daemon.stop)
            daemon_pids, esl_port = [os.getpid()], daemon.server.freeswitch_port
            esl_pid = (daemon.server.freeswitch.pid if daemon.server.freeswitch is not None else None) or 0
        shipped = DIALPLAN / "freeswitch" / "public" / "00_pbxguard.xml"
        entry = shipped.read_text().replace("127.0.0.1:8084", f"127.0.0.1:{esl_port}")
        entry = entry.replace('expression="^(5551000)$"', 'expression="^(5\\d{6})$"')
        fs = pbx.FreeSWITCH(work / "freeswitch", {"public/00_pbxguard.xml": entry, "pbxguard.xml": FS_LOAD_ROUTES})
        fs.esl.api("fsctl sps 5000")
        placed: dict[str, str] = {}
        kinds = list(audio)
        started = time.monotonic()
        daemon_cpu0, fs_cpu0, esl_cpu0 = sum(map(_cpu_ticks, daemon_pids)), _cpu_ticks(fs.process.pid), _cpu_ticks(esl_pid)
        # Steady arrivals, so that about `channels` calls are in their window at any moment.
        spacing = FS_NOMINAL_HOLD_S / channels
        k = 0
        while time.monotonic() - started < seconds:
            kind = kinds[k % len(kinds)]
            number = f"5{k:06d}"
            placed[number] = kind
            fs.esl.bgapi(f"originate {{origination_caller_id_number=+12025550143}}loopback/{number}/public "
                         f"'playback:{files[kind]},sleep:3000' inline")
            k += 1
            with contextlib.suppress(TimeoutError):
                fs.esl.wait_event(lambda e: False, max(0.0, started + k * spacing - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            fs.esl.wait_event(lambda e: False, 6.0)
        wall = time.monotonic() - started
        ticks = os.sysconf("SC_CLK_TCK")
        fs_cpu = (_cpu_ticks(fs.process.pid) - fs_cpu0) / ticks
        replaced_workers = sum(not Path(f"/proc/{pid}").exists() for pid in daemon_pids)  # the supervisor replaced them
        daemon_cpu = None if replaced_workers else (sum(map(_cpu_ticks, daemon_pids)) - daemon_cpu0) / ticks
        if workers:  # the watchdog replaced the ESL process
            replaced = esl_pid not in _children(pids[0])
        else:
            replaced = daemon.server.freeswitch is None or daemon.server.freeswitch.pid != esl_pid
        esl_cpu = None if replaced else (_cpu_ticks(esl_pid) - esl_cpu0) / ticks
        holds = {}
        for e in fs.esl.events:
            name = e.get("Channel-Name", "")
            answered = e.get("Caller-Channel-Answered-Time", "0") != "0"
            if e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE" and name.endswith("-b") and answered:
                number = name.split("/")[1].rsplit("-", 1)[0]
                holds[number] = (int(e["Caller-Channel-Hangup-Time"]) - int(e["Caller-Channel-Answered-Time"])) / 1000.0
        fs.stop()
    with contextlib.closing(sqlite3.connect(work / "calls.db")) as db:
        rows = {called: (status, verdict) for called, status, verdict in db.execute("SELECT called, status, verdict FROM calls")}
    screened = {n: rows[n][1] for n in placed if n in rows and rows[n][0] == "screened"}
    lost = len(placed) - len(screened)
    wrong = sum(1 for n, verdict in screened.items() if verdict != expected[placed[n]])
    window_holds = np.array([holds[n] for n, kind in placed.items() if n in holds and kind != "fax"])
    if not lost and not wrong:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "work": str(work) if lost or wrong else "(removed)",
        "pbx": "freeswitch 1.10.12",
        "daemon": f"pbxguard serve, {workers} workers" if workers else "in this process",
        "channels": channels,
        "calls": len(placed),
        "lost_verdicts": lost,
        "wrong_verdicts": wrong,
        "hold_p50_ms": round(float(np.percentile(window_holds, 50)), 1) if len(window_holds) else None,
        "hold_p99_ms": round(float(np.percentile(window_holds, 99)), 1) if len(window_holds) else None,
        "held_past_window_plus_1s": int(np.sum(window_holds > screener.window_ms + 1000.0)),
        "freeswitch_cpu_ms_per_call": round(1000.0 * fs_cpu / max(len(placed), 1), 2),
        "daemon_cpu_ms_per_call": None if daemon_cpu is None else round(1000.0 * daemon_cpu / max(len(placed), 1), 2),
        "esl_cpu_ms_per_call": None if esl_cpu is None else round(1000.0 * esl_cpu / max(len(placed), 1), 2),
        "workers_replaced": replaced_workers,
        "esl_process_replaced": replaced,
        "wall_s": round(wall, 1),
    }


WEB_QUERIES = {  # what an admin asks of the calls page, each a page of 100 newest first
    "newest": "/calls",
    "verdict (fax, 1 %)": "/calls?verdict=fax",
    "action HANGUP": "/calls?action=HANGUP",
    "challenge FAIL": "/calls?challenge=FAIL",
    "one number": "/calls?number=%2B12025550417",
    "a day, a week ago": "/calls?since={week_ago}&until={day_later}",
    "page 50 deep": None,  # the cursor of the 5,000th newest call
    "overview, 24 h": "/?range=24h",  # counts over the range: not a page of 100, reported beside it
    "overview, 30 days": "/?range=30d",
}


def _fill_call_log(path: Path, rows: int, rng: np.random.Generator) -> None:
    """`rows` calls over 30 days: a realistic mix of verdicts, actions, challenges and 10,000 callers."""
    from pbxguard.store.calllog import SQLiteCallLog
    from pbxguard.store.record import COLUMNS, CallRecord

    log = SQLiteCallLog(path)
    verdicts = ["human", "machine", "silence", "digital_silence", "fax", "tone", "music", "noise"]
    weights = np.array([55, 20, 10, 3, 1, 6, 2, 3], float)
    now = time.time()
    evidence = {"levels": {"rms_dbfs": -27.5, "peak_dbfs": -8.8}, "tones": [], "beep_ms": None,
                "speech_onset_ms": 320.0, "utterances_ms": [[320.0, 1460.0]], "speech_ms": 960.0}
    chosen = rng.choice(len(verdicts), size=rows, p=weights / weights.sum())
    started = np.sort(now - rng.uniform(0, 30 * 86400, rows))
    callers = rng.integers(0, 10_000, rows)
    sql = log._sql(f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})")
    batch = []
    for i in range(rows):
        verdict = verdicts[chosen[i]]
        action = "BRIDGE" if verdict == "human" else "HANGUP" if verdict in ("fax", "tone") else "CHALLENGE"
        challenge = None if action != "CHALLENGE" else ("PASS", "FAIL")[i % 3 > 0]
        batch.append(CallRecord(str(uuid.UUID(int=i, version=4)), "screened", started=float(started[i]),
                                caller=f"+1202555{callers[i]:04d}", verdict=verdict, confidence=0.9, action=action,
                                challenge=challenge, reason=verdict.upper(), decided_ms=2000.0,
                                scores={verdict: 0.9}, evidence=evidence).row())
        if len(batch) == 50_000 or i == rows - 1:
            log.db.executemany(sql, batch)
            log.db.commit()
            batch = []
    log.db.execute("ANALYZE")
    log.close()


def run_web(rows: int, rounds: int = 20) -> dict:
    """Milliseconds to load a page of 100 calls (over loopback, logged in) from a call log of `rows` calls."""
    from pbxguard import config
    from pbxguard.testing.web import Client, WebPage
    from pbxguard.web.auth import hash_password

    folder = Path(tempfile.mkdtemp(prefix="pbxguard-web-bench-"))
    try:
        began = time.monotonic()
        _fill_call_log(folder / "calls.db", rows, np.random.default_rng(BENCH_SEED))
        filled_s = time.monotonic() - began
        password = "bench password"
        cfg = config.load(None).with_(database={"path": str(folder / "calls.db")},
                                      web={"password_hash": hash_password(password), "secret_file": str(folder / "secret")})
        page = WebPage(cfg)
        client = Client(page.port)
        client.login(password)
        week_ago = time.time() - 7 * 86400
        moment = "%Y-%m-%dT%H:%M"
        result: dict = {"rows": rows, "fill_s": round(filled_s, 1)}
        deep = ""
        for name, query in WEB_QUERIES.items():
            if query is None:
                path = deep
            else:
                path = query.format(week_ago=time.strftime(moment, time.localtime(week_ago)),
                                   day_later=time.strftime(moment, time.localtime(week_ago + 86400)))
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                status, _, body = client.get(path)
                times.append((time.perf_counter() - began) * 1000)
                assert status == 200, (path, status)
            result[f"{name} ms"] = f"p50 {np.median(times):.1f} p90 {np.percentile(times, 90):.1f} ({body.count(b'<tr>') - 1} rows)"
            if name == "newest":
                deep = "/calls"
                for _ in range(50):  # walk 50 pages down, as an admin clicking Older would
                    older = client.get(deep)[2].split(b'id="older"')[0].rsplit(b'href="', 1)[1].split(b'"')[0]
                    deep = older.decode().replace("&amp;", "&")
        page.stop()
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


LIBRARY_PROGRAM = """
import sys, time
import numpy as np
from pbxguard.audio.files import read_audio
from pbxguard.screener.screener import Screener
screener = Screener()
clips = [read_audio(path) for path in sys.argv[1:]]
for clip in clips:
    screener.screen(clip)
wall = []
for _ in range(40):
    for clip in clips:
        began = time.perf_counter()
        screener.screen(clip)
        wall.append((time.perf_counter() - began) * 1000)
print(f"{np.median(wall):.2f} {np.percentile(wall, 99):.2f} {len(wall)}")
"""


def run_library(examples: Path) -> dict:
    """Wall time of `screen()` in a program of its own, without the commands' thread limits in its environment."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    files = [str(p) for p in sorted(examples.glob("*.wav"))]
    done = subprocess.run([sys.executable, "-c", LIBRARY_PROGRAM, *files], capture_output=True, text=True, env=env,
                          check=True, timeout=600)
    median, p99, calls = done.stdout.split()
    return {"calls": int(calls), "wall_median_ms": float(median), "wall_p99_ms": float(p99)}


HEAVY_MODULES = ("sklearn", "scipy", "joblib", "matplotlib")  # what the hot path must not import
STARTUP_PROGRAM = """
import sys
from pbxguard.cli import main
status = main(["classify", sys.argv[1]])
print(" ".join(m for m in sys.argv[2:] if m in sys.modules) or "-", file=sys.stderr)
sys.exit(status)
"""


def run_startup(file: Path, runs: int = 20) -> dict:
    """Wall time of `pbxguard classify FILE` as an admin runs it (a fresh process each time, the console script
    beside this Python), beside the floor under it on this machine (the interpreter alone, and importing numpy),
    and the heavy modules a classify imports."""
    import sys

    script = Path(sys.executable).with_name("pbxguard")
    classify = [str(script)] if script.exists() else [sys.executable, "-m", "pbxguard"]

    def median_ms(command: list[str]) -> float:
        wall = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True, timeout=120)
            wall.append((time.perf_counter() - began) * 1000)
        return round(float(np.median(wall)), 1)

    imported = subprocess.run([sys.executable, "-c", STARTUP_PROGRAM, str(file), *HEAVY_MODULES], capture_output=True,
                              text=True, check=True, timeout=120).stderr.strip().splitlines()[-1]
    return {"runs": runs, "classify_median_ms": median_ms([*classify, "classify", str(file)]),
            "python_median_ms": median_ms([sys.executable, "-c", "pass"]),
            "numpy_median_ms": median_ms([sys.executable, "-c", "import numpy"]),
            "heavy_modules": [] if imported == "-" else imported.split()}


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def _status_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")))


def _rss_mb(pid: int) -> float:
    return round(_status_kb(pid, "VmRSS") / 1024, 1)


@contextlib.contextmanager
def _serving(folder: Path, config: dict) -> Iterator[tuple[subprocess.Popen, dict[int, int], dict]]:
    """`pbxguard serve` on `config` (free ports filled in), until every worker is ready: (supervisor, {worker
    index: pid}, the whole configuration); stopped with SIGTERM after."""
    import signal
    import socket
    import sys

    import yaml

    expected = config.get("workers") or len(os.sched_getaffinity(0))
    audio = free_port(run=expected)
    config = {"fastagi": {"port": free_port()}, "audiosocket": {"port": audio, "advertise": f"127.0.0.1:{audio}"},
              "metrics": {"port": free_port()}, "database": {"path": str(folder / "calls.db")}, **config}
    (folder / "pbxguard.yaml").write_text(yaml.safe_dump(config))
    script = Path(sys.executable).with_name("pbxguard")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pbxguard"]
    log = open(folder / "serve.log", "w+")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # READY=1 comes once every worker is ready
    notify.bind(str(folder / "notify.sock"))
    notify.settimeout(0.2)
    supervisor = subprocess.Popen([*command, "serve", "--config", str(folder / "pbxguard.yaml")], stdout=log, stderr=log,
                                  env={**os.environ, "NOTIFY_SOCKET": str(folder / "notify.sock")})
    try:
        deadline = time.monotonic() + 120
        while True:
            if supervisor.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pbxguard serve did not get ready: {(folder / 'serve.log').read_text()[-2000:]}")
            with contextlib.suppress(TimeoutError):
                if "READY=1" in notify.recv(4096).decode().split("\n"):
                    break
        workers = {}
        for pid in _children(supervisor.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            workers[int(argv[argv.index(b"--worker") + 1])] = pid
        yield supervisor, workers, config
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=30)
        log.close()
        notify.close()


def run_processes(settle_s: float = 5.0) -> dict:
    """Resident memory of every process of an idle `pbxguard serve` as systemd runs it: the supervisor, the
    workers (one per core), and worker 0's children (the FreeSWITCH ESL server, multiprocessing's resource
    tracker), with FastAGI, AudioSocket, the EAGI relay sockets and ESL all listening."""
    folder = Path(tempfile.mkdtemp(prefix="pbxguard-bench-rss-"))
    try:
        config = {"eagi": {"enabled": True, "directory": str(folder / "run")},
                  "freeswitch": {"enabled": True, "port": free_port(), "recordings": str(folder / "recordings")}}
        with _serving(folder, config) as (supervisor, workers, _):
            time.sleep(settle_s)
            processes = {"supervisor": _rss_mb(supervisor.pid)}
            for index, daemon in workers.items():
                processes[f"worker_{index}"] = _rss_mb(daemon)
                for child in _children(daemon):
                    line = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                    processes["resource_tracker" if "resource_tracker" in line else "esl_server"] = _rss_mb(child)
        return {**{f"{name}_rss_mb": mb for name, mb in processes.items()}, "total_rss_mb": round(sum(processes.values()), 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
