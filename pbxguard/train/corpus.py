"""`pbxguard corpus build`: a reproducible, labelled, source-disjoint corpus of call openings.

Openings are composed the way calls start (a live "hello?" then waiting; a greeting that runs on, maybe to
a beep; a robocall's synthetic voice; tones, fax, music, noise, dead air, digital silence) and passed
through a telephone channel. Each clip draws from its own Generator seeded by (seed, class, index), so
the same seed gives the same bytes whatever the order or number of workers. Sources (prompt, voice,
music track, dither file) are assigned to one split each by a hash of their id.
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import cast

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from pbxguard.audio.files import write_wav
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.features.tones import CADENCES
from pbxguard.screener.verdict import LABELLED_CLASSES as CLASSES
from pbxguard.train import channel, signals, sources

CLIP_SECONDS = 2.4  # a little longer than the 2 s window
SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.6, 0.2, 0.2)
LABEL_COLUMNS = ("file", "split", "class", "subclass", "source", "params")  # several sources: "a|b"
TTS_PER_VOICE = 6


@dataclass
class SourcePools:
    """Sources by split: what a clip of a given split may draw from."""

    speech: dict[str, list[sources.Source]]
    music: dict[str, list[sources.Source]]
    voices: dict[str, list[str]]
    tts: dict[str, list[np.ndarray]]  # voice id -> synthesized utterances
    dither: dict[str, list[tuple[str, np.ndarray]]]


def assign_splits(ids: list[str]) -> dict[str, str]:
    """Source id -> split, by a stable hash: 60/20/20, and every split gets one when there are three."""
    ordered = sorted(ids, key=lambda i: (sources.stable_hash(i), i))
    n = len(ordered)
    n_train = max(1, round(n * SPLIT_SHARES[0])) if n >= 3 else n
    n_val = max(1, round(n * SPLIT_SHARES[1])) if n >= 3 else 0
    return {i: ("train" if k < n_train else "val" if k < n_train + n_val else "test") for k, i in enumerate(ordered)}


def _by_split(items: list, key) -> dict[str, list]:
    groups: dict[str, list] = {}
    for group in sorted({key(i)[0] for i in items}):
        members = [i for i in items if key(i)[0] == group]
        split_of = assign_splits([key(i)[1] for i in members])
        for i in members:
            groups.setdefault(split_of[key(i)[1]], []).append(i)
    return {s: groups.get(s, []) for s in SPLITS}


def load_pools(seed: int, tts_per_voice: int = TTS_PER_VOICE, workers: int = 2) -> SourcePools:
    speech = _by_split(sources.natural_speech(), lambda s: (s.group, s.id))
    music = _by_split(sources.music(), lambda s: (s.group, s.id))
    voices = _by_split(sources.synthetic_voices(), lambda v: (v.split(":")[0], v))
    dither_files = sorted((sources.ASTERISK_SOUNDS / "silence").glob("*.wav"))
    dither = _by_split([(f"asterisk:silence/{p.name}", x) for p, x in zip(dither_files, sources.editor_dither())],
                       lambda d: ("dither", d[0]))
    jobs = []
    for voice in sorted(v for vs in voices.values() for v in vs):
        rng = np.random.default_rng([seed, sources.stable_hash(voice) % 2**32])
        for _ in range(tts_per_voice):
            text = sources.SCRIPTS[int(rng.integers(len(sources.SCRIPTS)))]
            jobs.append((voice, text, float(rng.uniform(0.85, 1.2)), int(rng.integers(20, 81))))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        spoken = list(pool.map(lambda job: sources.synthesize(*job), jobs))
    tts: dict[str, list[np.ndarray]] = {}
    for (voice, *_), x in zip(jobs, spoken):
        if len(x) >= 2400:
            tts.setdefault(voice, []).append(x)
    return SourcePools(speech, music, voices, tts, dither)


def _perturb(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Pitch and tempo together, by resampling: the test voices will not be the training voices."""
    factor = float(rng.choice([0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12]))
    up, down = round(factor * 25), 25
    return resample_poly(x.astype(np.float64), down, up) if factor != 1.0 else x.astype(np.float64), factor


def _excerpt(x: np.ndarray, seconds: float, rng: np.random.Generator, active: bool = False) -> np.ndarray:
    """A random `seconds` of x; with `active`, one about as loud as the whole (not a pause between words)."""
    n = int(seconds * SAMPLE_RATE)
    if len(x) <= n:
        return x
    whole = np.mean(x.astype(np.float64) ** 2)
    for _ in range(20):
        start = int(rng.integers(0, len(x) - n))
        piece = x[start : start + n]
        if not active or np.mean(piece.astype(np.float64) ** 2) >= 0.25 * whole:
            break
    return piece


def _fade(x: np.ndarray, ms: float = 15.0) -> np.ndarray:
    m = min(int(ms * SAMPLE_RATE / 1000), len(x) // 2)
    ramp = np.linspace(0.0, 1.0, m)
    y = x.copy()
    y[:m] *= ramp
    y[len(y) - m :] *= ramp[::-1]
    return y


def _place(canvas: np.ndarray, x: np.ndarray, at: int) -> int:
    end = min(len(canvas), at + len(x))
    if at < end:
        canvas[at:end] += x[: end - at]
    return at + len(x)


def _continuous(canvas: np.ndarray, utterances, rng: np.random.Generator, start: int, stop: int) -> list[str]:
    """Chain utterances with short pauses from `start` until `stop`: a greeting or announcement."""
    used, pos = [], start
    while pos < stop:
        source_id, x = utterances()
        pos = _place(canvas, _fade(x), pos) + int(rng.uniform(0.05, 0.25) * SAMPLE_RATE)
        used.append(source_id)
    return used


def _speech_level(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    level = float(rng.uniform(-32, -12))
    return signals.set_rms(x, level), level


def compose(cls: str, index: int, seed: int, pools: SourcePools) -> tuple[np.ndarray, dict]:
    """One clip of class `cls`: int16 samples and its label row (without the file name)."""
    rng = np.random.default_rng([seed, CLASSES.index(cls), index])
    split = str(rng.choice(SPLITS, p=SPLIT_SHARES))
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    canvas = np.zeros(n)
    params: dict = {}
    subclass, source = cls, "generated"
    line = channel.draw(rng)

    def natural(max_seconds: float | None = None):
        def pick():
            # Group first: the Asterisk prompts are hundreds of files of one voice, the other groups are
            # many voices in few files; drawing files alone would teach the models one speaker.
            groups = sorted({s.group for s in pools.speech[split]})
            group = groups[int(rng.integers(len(groups)))]
            members = [s for s in pools.speech[split] if s.group == group]
            s = members[int(rng.integers(len(members)))]
            x, factor = _perturb(s.samples, rng)
            x = _excerpt(x, max_seconds, rng, active=True) if max_seconds else x
            return f"{s.id}@{factor}", _speech_level(x, rng)[0]
        return pick

    if cls == "human":
        lead = float(rng.uniform(0.0, 0.8))
        pos, used = int(lead * SAMPLE_RATE), []
        first = float(rng.uniform(0.3, 1.2))
        second_room = 1.7 - lead - first - 0.25
        lengths = [first] + ([float(rng.uniform(0.3, min(1.2, second_room)))] if second_room >= 0.3 and rng.random() < 0.4 else [])
        for length in lengths:
            source_id, x = natural(length)()
            pos = _place(canvas, _fade(x), pos) + int(rng.uniform(0.25, 0.6) * SAMPLE_RATE)
            used.append(source_id)
        subclass, source = "live_answer", "|".join(used)
        params = {"lead_s": round(lead, 3), "utterance_s": [round(v, 3) for v in lengths]}
    elif cls == "machine":
        start = int(rng.uniform(0.0, 0.4) * SAMPLE_RATE)
        synthetic = rng.random() < 0.5 and pools.voices[split]
        if synthetic:
            voice = pools.voices[split][int(rng.integers(len(pools.voices[split])))]
            spoken = pools.tts.get(voice) or []

            def tts():
                x, factor = _perturb(spoken[int(rng.integers(len(spoken)))], rng)
                return f"{voice}@{factor}", _speech_level(x, rng)[0]
            used = _continuous(canvas, tts, rng, start, n) if spoken else []
            subclass, source = "robocall", voice
        if not synthetic or not used:
            beep_at = None
            if rng.random() < 0.25:
                beep_at = int((rng.uniform(0.9, 1.5)) * SAMPLE_RATE) + start
                used = _continuous(canvas, natural(), rng, start, beep_at)
                canvas[beep_at:] = 0.0
                beep_at += int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)
                tone, bp = signals.beep(int(rng.uniform(0.2, 0.6) * SAMPLE_RATE), rng, float(rng.uniform(-25, -10)))
                _place(canvas, tone, beep_at)
                params.update(bp, beep_ms=round(beep_at * 1000 / SAMPLE_RATE, 1))
            else:
                used = _continuous(canvas, natural(), rng, start, n)
            subclass, source = ("greeting_beep" if beep_at else "greeting"), "|".join(used)
        params["start_ms"] = round(start * 1000 / SAMPLE_RATE, 1)
    elif cls == "silence":
        canvas, params = signals.dead_air(n, rng)
        subclass, line = params["kind"], channel.draw(rng, quiet_line=True)
    elif cls == "digital_silence":
        dither = pools.dither[split]
        pick = dither[int(rng.integers(len(dither)))] if dither and rng.random() < 0.2 else None
        canvas, params = signals.digital_silence(n, rng, pick[1] if pick else None)
        subclass, source = params["kind"], pick[0] if pick else "generated"
        return canvas.astype(np.int16), _row(split, cls, subclass, source, params, None)
    elif cls in ("tone", "fax"):
        canvas, subclass, params = _tone_opening(cls, n, rng, natural)
    elif cls == "music":
        track = pools.music[split][int(rng.integers(len(pools.music[split])))]
        x = _excerpt(track.samples.astype(np.float64), CLIP_SECONDS, rng)
        level = float(rng.uniform(-35, -12))
        canvas[: len(x)] = signals.set_rms(x, level)
        source, params = track.id, {"level_dbfs": round(level, 1)}
    elif cls == "noise":
        colour = str(rng.choice(["white", "pink", "brown"]))
        level = float(rng.uniform(-50, -20))
        canvas = signals.coloured_noise(n, rng, colour)
        if rng.random() < 0.3:  # crackle: sparse impulses on top
            canvas += (rng.random(n) < 0.002) * rng.normal(0, 15, n)
        canvas = signals.set_rms(canvas, level)
        subclass, params = colour, {"level_dbfs": round(level, 1)}
    else:
        raise ValueError(f"unknown class {cls!r}")
    audio = channel.apply(canvas, line, rng, band_limit=cls != "silence")
    return audio, _row(split, cls, subclass, source, params, line)


def _tone_opening(cls: str, n: int, rng: np.random.Generator, natural) -> tuple[np.ndarray, str, dict]:
    level = float(rng.uniform(-45, -10))
    if cls == "fax":
        cadence = CADENCES[[c.name for c in CADENCES].index(str(rng.choice(["fax_cng", "fax_ced", "fax_v21"])))]
        start = float(rng.uniform(0.0, 0.6))
        if cadence.name == "fax_v21":
            x, params = signals.v21_flags(n, rng, level), {"level_dbfs": round(level, 1)}
        else:
            offset = float(rng.uniform(-1400.0, 200.0)) if cadence.name == "fax_cng" else 0.0
            x, params = signals.cadence_tone(cadence, n, rng, level, offset_ms=offset % 3500 if offset else 0.0)
        if cadence.name != "fax_cng":
            x[: int(start * SAMPLE_RATE)] = 0.0
            params["start_ms"] = round(start * 1000, 1)
        return x, cadence.name, params
    roll = rng.random()
    if roll < 0.1:
        x, params = signals.sit_tone(n, rng, level, float(rng.uniform(0, 300)))
        end = int((params["start_ms"] + sum(cast(list[float], params["segments_ms"]))) * SAMPLE_RATE / 1000)
        _continuous(x, natural(), rng, end + int(0.05 * SAMPLE_RATE), n)  # the announcement after the SIT
        return x, "sit", params
    cadence = [c for c in CADENCES if c.verdict == "tone"][int(rng.integers(sum(c.verdict == "tone" for c in CADENCES)))]
    scale = float(np.clip(rng.normal(1.0, 0.002), 0.994, 1.006))
    if roll < 0.2:  # frequencies well off every spec set
        scale = float(rng.choice([rng.uniform(0.8, 0.9), rng.uniform(1.1, 1.2)]))
        x, params = signals.cadence_tone(cadence, n, rng, level, freq_scale=scale)
        return x, "offspec_freq", params
    if roll < 0.3:  # spec frequencies, a cadence no table has
        pattern = ((float(rng.uniform(80, 180)), float(rng.uniform(650, 1000))),)
        x, params = signals.cadence_tone(cadence, n, rng, level, pattern_ms=pattern)
        return x, "offspec_cadence", params
    x, params = signals.cadence_tone(cadence, n, rng, level, freq_scale=scale)
    return x, cadence.name, params


def _row(split: str, cls: str, subclass: str, source: str, params: dict, line: channel.ChannelDraw | None) -> dict:
    if line is not None:
        params = {**params, "channel": line.as_dict()}
    return {"split": split, "class": cls, "subclass": subclass, "source": source, "params": json.dumps(params, sort_keys=True)}


_POOLS: SourcePools | None = None


def _compose_job(job: tuple[str, int, int, str]) -> dict:
    cls, index, seed, out = job
    assert _POOLS is not None, "the worker pool's initializer loads the source pools"
    audio, row = compose(cls, index, seed, _POOLS)
    name = f"{row['split']}/{cls}_{index:05d}.wav"
    write_wav(Path(out) / name, audio)
    return {"file": name, **row}


def build(out: str | Path, seed: int = 1, per_class: int = 500, workers: int | None = None, progress: bool = True) -> Path:
    """Write the corpus under `out` (split folders, each with labels.csv, plus out/labels.csv); return the latter."""
    global _POOLS
    out = Path(out)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    workers = workers or min(2, os.cpu_count() or 1)
    _POOLS = load_pools(seed, TTS_PER_VOICE if per_class >= 100 else 1, workers)
    jobs = [(cls, i, seed, str(out)) for cls in CLASSES for i in range(per_class)]
    with get_context("fork").Pool(workers) as pool:
        rows = list(tqdm(pool.imap(_compose_job, jobs, chunksize=16), total=len(jobs), desc="corpus", disable=not progress))
    write_labels(out / "labels.csv", rows)
    for split in SPLITS:
        write_labels(out / split / "labels.csv",
                     [{**r, "file": r["file"].split("/", 1)[1]} for r in rows if r["split"] == split])
    (out / "recipe.json").write_text(json.dumps({"seed": seed, "per_class": per_class, "clip_seconds": CLIP_SECONDS,
                                                  "classes": CLASSES, "split_shares": SPLIT_SHARES}, indent=2) + "\n")
    return out / "labels.csv"


EXAMPLES = (("human", "live_answer"), ("machine", "greeting"), ("machine", "robocall"), ("silence", None),
            ("digital_silence", "alaw_d5"), ("fax", "fax_cng"), ("tone", "busy_na"), ("music", None), ("noise", None))


def write_examples(out: str | Path, seed: int = 1) -> list[Path]:
    """One test-split opening per kind of call, for the Quickstart: never seen by the shipped models."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pools = load_pools(seed, tts_per_voice=1)
    written, rows = [], []
    for cls, subclass in EXAMPLES:
        for index in range(10_000):
            audio, row = compose(cls, index, seed + 1000, pools)
            if row["split"] == "test" and subclass in (None, row["subclass"]):
                break
        name = f"{row['subclass'] if subclass else cls}.wav"
        write_wav(out / name, audio)
        written.append(out / name)
        rows.append({"file": name, **row})
    write_labels(out / "labels.csv", rows)
    return written


def write_labels(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
