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
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import cast

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from pbxguard.audio.files import write_wav
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.features.levels import measure_levels
from pbxguard.features.tones import CADENCES
from pbxguard.screener.verdict import LABELLED_CLASSES as CLASSES
from pbxguard.train import channel, codecs, recordings, signals, sources

CLIP_SECONDS = 2.4  # a little longer than the 2 s window
SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.6, 0.2, 0.2)
LABEL_COLUMNS = ("file", "split", "class", "subclass", "source", "params")  # several sources: "a|b"
TTS_PER_VOICE = 6


@dataclass
class SourcePools:
    """Sources by split: what a clip of a given split may draw from."""

    speech: dict[str, list[sources.Source]]  # people: Debian voices and the real speakers
    readers: dict[str, list[sources.Source]]  # read speech for recorded announcements (LibriSpeech)
    music: dict[str, list[sources.Source]]
    ambient: dict[str, list[sources.Source]]  # real noise recordings
    rooms: dict[str, list[sources.Source]]  # real room tone
    voices: dict[str, list[str]]
    tts: dict[str, list[np.ndarray]]  # voice id -> synthesized utterances
    dither: dict[str, list[tuple[str, np.ndarray]]]

    def provenance(self) -> list[dict]:
        """One row per recorded source a clip may use: id, split, unit, origin, licence."""
        rows = []
        for pool in (self.speech, self.readers, self.music, self.ambient, self.rooms):
            for split, members in pool.items():
                rows += [{"id": s.id, "split": split, "unit": s.split_unit, "origin": s.origin, "licence": s.licence}
                         for s in members]
        return sorted(rows, key=lambda r: r["id"])


def assign_splits(ids: list[str]) -> dict[str, str]:
    """Source id -> split, by a stable hash: 60/20/20, and every split gets at least one when there are three."""
    ordered = sorted(ids, key=lambda i: (sources.stable_hash(i), i))
    n = len(ordered)
    if n < 3:
        return dict.fromkeys(ordered, "train")
    n_val = max(1, round(n * SPLIT_SHARES[1]))
    n_test = max(1, round(n * SPLIT_SHARES[2]))
    n_train = n - n_val - n_test
    return {i: ("train" if k < n_train else "val" if k < n_train + n_val else "test") for k, i in enumerate(ordered)}


def _by_split(items: list, key) -> dict[str, list]:
    """Items by split, each (group, unit) key's unit held out whole within its group."""
    groups: dict[str, list] = {}
    for group in sorted({key(i)[0] for i in items}):
        members = [i for i in items if key(i)[0] == group]
        split_of = assign_splits(sorted({key(i)[1] for i in members}))
        for i in members:
            groups.setdefault(split_of[key(i)[1]], []).append(i)
    return {s: groups.get(s, []) for s in SPLITS}


def _sources_by_split(items: list[sources.Source]) -> dict[str, list[sources.Source]]:
    return _by_split(items, lambda s: (s.group, s.split_unit))


def load_pools(seed: int, tts_per_voice: int = TTS_PER_VOICE, workers: int = 2, sources_root: str | Path | None = None) -> SourcePools:
    real = recordings.load(sources_root)
    speech = _sources_by_split(sources.natural_speech() + real.speech)
    music = _sources_by_split(sources.music() + real.music)
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
    return SourcePools(speech, _sources_by_split(real.readers), music, _sources_by_split(real.ambient),
                       _sources_by_split(real.rooms), voices, tts, dither)


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
    best, best_power = x[:n], -1.0
    for _ in range(20):
        start = int(rng.integers(0, len(x) - n))
        piece = x[start : start + n]
        power = float(np.mean(piece.astype(np.float64) ** 2))
        if not active or power >= 0.25 * whole:
            return piece
        if power > best_power:
            best, best_power = piece, power
    return best  # the loudest tried: a piece of the words, not of the pause around them


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


# Each class's kinds of opening and their shares of it: the real lines' variety, not one idealised case.
HUMAN_KINDS = {"live_answer": 0.4, "long_answer": 0.25, "background": 0.15, "speakerphone": 0.1, "conversation": 0.1}
MACHINE_KINDS = {"robocall": 0.4, "greeting": 0.3, "greeting_beep": 0.2, "announcement": 0.1}
FAX_KINDS = {"tone": 0.5, "cng_ringback": 0.1, "fsk_modem": 0.15, "data_modem": 0.2, "ansam": 0.05}
STORED_SHARE = 0.8  # of machine and music openings: played from a stored file (the rest: TTS sent live, a stream)
MUSIC_KINDS = {"track": 0.85, "ringtone": 0.15}
NOISE_KINDS = {"coloured": 0.2, "ambient": 0.4, "weather": 0.25, "babble": 0.15}
# name -> (carrier Hz, baud, constellation points): V.22, V.22bis, V.27ter, V.29, V.17, V.32bis, V.34-like
DATA_MODEMS = {"v22": (1200, 600, 4), "v22_ans": (2400, 600, 4), "v22bis": (1200, 600, 16), "v27ter": (1800, 1600, 8),
               "v29": (1700, 2400, 16), "v17": (1800, 2400, 64), "v32bis": (1800, 2400, 64), "v34": (1959, 3200, 256)}


def _kind(rng: np.random.Generator, shares: dict[str, float]) -> str:
    return str(rng.choice(list(shares), p=list(shares.values())))


@dataclass
class Draft:
    """A clip before its codec hops: `audio` after the channel's front end (float), or the final int16
    samples when `line` is None (digital silence reaches the PBX as it was made)."""

    cls: str
    index: int
    audio: np.ndarray
    line: channel.ChannelDraw | None
    row: dict


def draft(cls: str, index: int, seed: int, pools: SourcePools) -> Draft:
    """One clip of class `cls`, up to its codec hops, and its label row (without the file name)."""
    rng = np.random.default_rng([seed, CLASSES.index(cls), index])
    split = str(rng.choice(SPLITS, p=SPLIT_SHARES))
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    canvas = np.zeros(n)
    params: dict = {}
    subclass, source = cls, "generated"
    line = channel.draw(rng)

    def pick_group(pool: list[sources.Source]) -> str:
        groups = sorted({s.group for s in pool})
        return groups[int(rng.integers(len(groups)))]

    def pick_source(pool: list[sources.Source], group: str | None = None) -> sources.Source:
        # Group, then unit (speaker), then file: the Asterisk prompts are hundreds of files of one voice and
        # a digit speaker is 500 files; drawing files alone would teach the models a few speakers.
        group = group or pick_group(pool)
        units = sorted({s.split_unit for s in pool if s.group == group})
        unit = units[int(rng.integers(len(units)))]
        members = [s for s in pool if s.split_unit == unit]
        return members[int(rng.integers(len(members)))]

    def natural(max_seconds: float | None = None, pool: list[sources.Source] | None = None):
        """Utterances from one group of the pool (one prompt voice, one corpus of speakers), at one level:
        a recording is played at one gain."""
        level = float(rng.uniform(-32, -12))
        members = pool or pools.speech[split]
        group = pick_group(members)

        def pick():
            s = pick_source(members, group)
            x, factor = _perturb(s.samples, rng)
            x = _excerpt(x, max_seconds, rng, active=True) if max_seconds else x
            return f"{s.id}@{factor}", signals.set_rms(x, level + float(rng.uniform(-2, 2)))
        return pick

    def one_speaker():
        """Utterances of one speaker at about one level (a person on one phone)."""
        first = pick_source(pools.speech[split])
        same = [s for s in pools.speech[split] if s.split_unit == first.split_unit]
        level = float(rng.uniform(-32, -12))

        def pick(max_seconds: float | None = None):
            s = same[int(rng.integers(len(same)))]
            x, factor = _perturb(s.samples, rng)
            x = _excerpt(x, max_seconds, rng, active=True) if max_seconds else x
            return f"{s.id}@{factor}", signals.set_rms(x, level + float(rng.uniform(-3, 3)))
        return pick

    if cls == "human":
        subclass = _kind(rng, HUMAN_KINDS)
        speaker = one_speaker()
        if subclass in ("live_answer", "background", "speakerphone"):
            lead = float(rng.uniform(0.0, 0.8))
            pos, used = int(lead * SAMPLE_RATE), []
            first = float(rng.uniform(0.3, 1.2))
            second_room = 1.7 - lead - first - 0.25
            lengths = [first] + ([float(rng.uniform(0.3, min(1.2, second_room)))] if second_room >= 0.3 and rng.random() < 0.4 else [])
            for length in lengths:
                source_id, x = speaker(length)
                pos = _place(canvas, _fade(x), pos) + int(rng.uniform(0.25, 0.6) * SAMPLE_RATE)
                used.append(source_id)
            params = {"lead_s": round(lead, 3), "utterance_s": [round(v, 3) for v in lengths]}
        elif subclass == "long_answer":  # "hello, this is ... speaking": words with short gaps, past 1.4 s
            lead = float(rng.uniform(0.0, 0.5))
            stop = int(float(rng.uniform(lead + 1.4, CLIP_SECONDS)) * SAMPLE_RATE)
            used, pos = [], int(lead * SAMPLE_RATE)
            while pos < stop:
                source_id, x = speaker()
                pos = _place(canvas, _fade(x[: stop - pos]), pos) + int(rng.uniform(0.03, 0.2) * SAMPLE_RATE)
                used.append(source_id)
            params = {"lead_s": round(lead, 3), "speech_to_s": round(stop / SAMPLE_RATE, 3)}
        else:  # a conversation already under way when the call connects
            used = _continuous(canvas, speaker, rng, 0, n)
        if subclass == "background":
            canvas, extra = _with_background(canvas, rng, pools.ambient[split])
            params.update(extra)
            used.append(extra["background"])
        if subclass == "speakerphone":
            canvas, extra = signals.echo(canvas, rng)
            params.update(extra)
        source = "|".join(used)
    elif cls == "machine":
        subclass = _kind(rng, MACHINE_KINDS)
        start = int(rng.uniform(0.0, 0.4) * SAMPLE_RATE)
        voices = pools.voices[split]
        voice = voices[int(rng.integers(len(voices)))] if voices else ""
        spoken = pools.tts.get(voice) or []
        if subclass == "robocall" and spoken:
            level = float(rng.uniform(-32, -12))

            def tts():
                x, factor = _perturb(spoken[int(rng.integers(len(spoken)))], rng)
                return f"{voice}@{factor}", signals.set_rms(x, level + float(rng.uniform(-2, 2)))
            used = _continuous(canvas, tts, rng, start, n)
        elif subclass == "announcement" and pools.readers[split]:  # read speech in another voice, to the end
            used = _continuous(canvas, natural(None, pools.readers[split]), rng, start, n)
        elif subclass == "greeting_beep":
            beep_at = int((rng.uniform(0.9, 1.5)) * SAMPLE_RATE) + start
            used = _continuous(canvas, natural(), rng, start, beep_at)
            canvas[beep_at:] = 0.0
            beep_at += int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)
            tone, bp = signals.beep(int(rng.uniform(0.2, 0.6) * SAMPLE_RATE), rng, float(rng.uniform(-25, -10)))
            _place(canvas, tone, beep_at)
            params.update(bp, beep_ms=round(beep_at * 1000 / SAMPLE_RATE, 1))
        else:
            subclass = "greeting"
            used = _continuous(canvas, natural(), rng, start, n)
        source = "|".join(used)
        params["start_ms"] = round(start * 1000 / SAMPLE_RATE, 1)

    elif cls == "silence":
        rooms = pools.rooms[split]
        room = rooms[int(rng.integers(len(rooms)))] if rooms else None
        canvas, params = signals.dead_air(n, rng, room.samples if room is not None else None)
        subclass, line = params["kind"], channel.draw(rng, quiet_line=True)
        source = room.id if room is not None and subclass == "room" else "generated"
    elif cls == "digital_silence":
        dither = pools.dither[split]
        pick = dither[int(rng.integers(len(dither)))] if dither and rng.random() < 0.2 else None
        canvas, params = signals.digital_silence(n, rng, pick[1] if pick else None)
        subclass, source = params["kind"], pick[0] if pick else "generated"
        return Draft(cls, index, canvas.astype(np.int16), None, _row(split, cls, subclass, source, params, None))
    elif cls == "fax":
        canvas, subclass, params = _fax_opening(n, rng)
    elif cls == "tone":
        canvas, subclass, params = _tone_opening(n, rng, natural)
    elif cls == "music":
        subclass = _kind(rng, MUSIC_KINDS)
        level = float(rng.uniform(-35, -12))
        if subclass == "ringtone":
            canvas = signals.melody(n, rng, level)
        else:
            track = pick_source(pools.music[split])
            x = _excerpt(track.samples.astype(np.float64), CLIP_SECONDS, rng, active=True)
            canvas[: len(x)] = signals.set_rms(x, level)
            subclass, source = track.group, track.id
        params = {"level_dbfs": round(level, 1)}
    elif cls == "noise":
        subclass = _kind(rng, NOISE_KINDS)
        if subclass == "coloured":
            colour = str(rng.choice(["white", "pink", "brown"]))
            level = float(rng.uniform(-50, -20))
            canvas = signals.coloured_noise(n, rng, colour)
            if rng.random() < 0.3:  # crackle: sparse impulses on top
                canvas += (rng.random(n) < 0.002) * rng.normal(0, 15, n)
            params = {"colour": colour}
        else:
            level = float(rng.uniform(-35, -10))  # real noise is loud: rain, traffic, a crowd
            if subclass == "ambient" and pools.ambient[split]:
                recording = pick_source(pools.ambient[split])
                canvas = _excerpt(recording.samples.astype(np.float64), CLIP_SECONDS, rng, active=True)
                canvas = np.pad(canvas, (0, n - len(canvas)))
                source = recording.id
            elif subclass == "babble":
                crowd = [pick_source(pools.speech[split]) for _ in range(int(rng.integers(5, 12)))]
                canvas = signals.babble(n, rng, [s.samples for s in crowd])
                # "babble:" keeps these out of the recorded part: the crowd is made here, of recorded voices
                source, params = "|".join(f"babble:{s.id}" for s in crowd), {"voices": len(crowd)}
            else:
                canvas, kind = signals.weather(n, rng)
                subclass, params = "weather", {"kind": kind}
        canvas = signals.set_rms(canvas, level)
        params["level_dbfs"] = round(level, 1)
    else:
        raise ValueError(f"unknown class {cls!r}")
    if cls in ("machine", "music") and rng.random() < STORED_SHARE:
        # a greeting, prompt or hold music is played from a stored file: one more codec, first
        line = replace(line, hops=(str(rng.choice(codecs.STORED)), *line.hops))
    audio = channel.front(canvas, line, rng, band_limit=cls != "silence")
    return Draft(cls, index, audio, line, _row(split, cls, subclass, source, params, line))


def _with_background(canvas: np.ndarray, rng: np.random.Generator, ambient: list[sources.Source]) -> tuple[np.ndarray, dict]:
    """A live answer over real background noise (a street, a kitchen), 10-25 dB under the voice."""
    level = float(rng.uniform(-55, -35))
    if ambient:
        recording = ambient[int(rng.integers(len(ambient)))]
        noise = _excerpt(recording.samples.astype(np.float64), CLIP_SECONDS, rng)
        name = recording.id
    else:
        noise, name = signals.weather(len(canvas), rng)
    noise = np.pad(noise, (0, max(0, len(canvas) - len(noise))))[: len(canvas)]
    return canvas + signals.set_rms(noise, level), {"background": name, "background_dbfs": round(level, 1)}


BATCH = 256  # a block of clip indices whose clips (of all classes) share codec runs


def render(drafts: list[Draft], map_=map) -> list[np.ndarray]:
    """The drafts' final int16 audio: each codec stage in batches of one codec, then the PBX end.

    A batch holds the clips whose index falls in one block of BATCH, so a clip's bytes depend on the
    recipe (seed, clips per class), never on the number of workers.
    """
    audio = [d.audio for d in drafts]
    for stage in range(max((len(d.line.stages) for d in drafts if d.line), default=0)):
        batches: dict[tuple[str, int], list[int]] = {}
        for i, d in enumerate(drafts):
            if d.line is not None and stage < len(d.line.stages):
                batches.setdefault((d.line.stages[stage], d.index // BATCH), []).append(i)
        keys = sorted(batches)
        results = map_(_transcode_job, [(key[0], [audio[i] for i in batches[key]]) for key in keys])
        for key, outputs in zip(keys, results):
            for i, y in zip(batches[key], outputs):
                audio[i] = y
    return [channel.finish(a, d.line) if d.line is not None else a for a, d in zip(audio, drafts)]


def _transcode_job(job: tuple[str, list[np.ndarray]]) -> list[np.ndarray]:
    return codecs.transcode(*job)


def compose(cls: str, index: int, seed: int, pools: SourcePools) -> tuple[np.ndarray, dict]:
    """One clip of class `cls`: int16 samples and its label row (without the file name)."""
    one = draft(cls, index, seed, pools)
    return render([one])[0], one.row


def _fax_opening(n: int, rng: np.random.Generator) -> tuple[np.ndarray, str, dict]:
    """Fax and data modems: the T.30 tones, CNG under the network's ringback, FSK and PSK/QAM handshakes and
    page data, V.8 ANSam."""
    kind = _kind(rng, FAX_KINDS)
    if kind in ("tone", "cng_ringback"):
        level = float(rng.uniform(-45, -10))
        names = ["fax_cng"] if kind == "cng_ringback" else ["fax_cng", "fax_ced", "fax_v21"]
        cadence = CADENCES[[c.name for c in CADENCES].index(str(rng.choice(names)))]
        start = float(rng.uniform(0.0, 0.6))
        if cadence.name == "fax_v21":
            x, params = signals.v21_flags(n, rng, level), {"level_dbfs": round(level, 1)}
        else:
            offset = float(rng.uniform(-1400.0, 200.0)) if cadence.name == "fax_cng" else 0.0
            x, params = signals.cadence_tone(cadence, n, rng, level, offset_ms=offset % 3500 if offset else 0.0)
        if cadence.name != "fax_cng":
            x[: int(start * SAMPLE_RATE)] = 0.0
            params["start_ms"] = round(start * 1000, 1)
        if kind == "cng_ringback":
            ringbacks = [c for c in CADENCES if c.name.startswith("ringback")]
            ringback = ringbacks[int(rng.integers(len(ringbacks)))]
            ring_level = level + float(rng.uniform(-12, 3))
            x = x + signals.cadence_tone(ringback, n, rng, ring_level)[0]
            return x, "cng_ringback", {**params, "ringback": ringback.name, "ringback_dbfs": round(ring_level, 1)}
        return x, cadence.name, params
    level = float(rng.uniform(-25, -8))
    params = {"level_dbfs": round(level, 1)}
    if kind == "fsk_modem":
        mode = str(rng.choice(list(signals.FSK_MODES)))
        return signals.fsk_modem(n, rng, mode, level), mode, params
    if kind == "ansam":
        return signals.ansam(n, rng, level), "ansam", params
    name = str(rng.choice(list(DATA_MODEMS)))
    carrier, baud, points = DATA_MODEMS[name]
    x = signals.psk_qam(n, rng, carrier, baud, points, level)
    if rng.random() < 0.3:  # the answer tone before the training and data
        cut = int(rng.uniform(0.2, 1.2) * SAMPLE_RATE)
        x[:cut] = signals.ansam(cut, rng, level)
        params["ansam_ms"] = round(cut * 1000 / SAMPLE_RATE, 1)
    return x, name, params


def _tone_opening(n: int, rng: np.random.Generator, natural) -> tuple[np.ndarray, str, dict]:
    level = float(rng.uniform(-45, -10))
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


def _draft_job(job: tuple[str, int, int]) -> Draft:
    assert _POOLS is not None, "the worker pool's initializer loads the source pools"
    return draft(*job, _POOLS)


PROVENANCE_COLUMNS = ("id", "split", "unit", "origin", "licence")


def build(out: str | Path, seed: int = 1, per_class: int = 500, workers: int | None = None, progress: bool = True,
          sources_root: str | Path | None = None) -> Path:
    """Write the corpus under `out` (split folders, each with labels.csv, plus out/labels.csv, sources.csv with
    every recorded source's origin and licence, and recipe.json); return out/labels.csv."""
    global _POOLS
    out = Path(out)
    missing = codecs.missing_tools()
    if missing:
        raise FileNotFoundError(f"the channel model needs the Debian packages {', '.join(missing)} (bash .ci/setup)")
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    workers = workers or min(2, os.cpu_count() or 1)
    _POOLS = load_pools(seed, TTS_PER_VOICE if per_class >= 100 else 1, workers, sources_root)
    jobs = [(cls, i, seed) for cls in CLASSES for i in range(per_class)]
    with get_context("fork").Pool(workers) as pool:
        drafts = list(tqdm(pool.imap(_draft_job, jobs, chunksize=16), total=len(jobs), desc="corpus", disable=not progress))
        audio = render(drafts, lambda f, items: pool.imap(f, items))
    rows = []
    for d, samples in zip(drafts, audio):
        if d.cls == "silence" and measure_levels(samples).digital_silence:
            # a codec that rounds the quietest dead air to zeros hands the PBX digital silence, not dead air
            d.row.update({"class": "digital_silence", "subclass": "codec_zeroed"})
        name = f"{d.row['split']}/{d.cls}_{d.index:05d}.wav"
        write_wav(out / name, samples)
        rows.append({"file": name, **d.row})
    write_labels(out / "labels.csv", rows)
    for split in SPLITS:
        write_labels(out / split / "labels.csv",
                     [{**r, "file": r["file"].split("/", 1)[1]} for r in rows if r["split"] == split])
    with open(out / "sources.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PROVENANCE_COLUMNS)
        writer.writeheader()
        writer.writerows(_POOLS.provenance())
    repositories = {r.upstream: {"commit": r.commit, "tarball_sha256": r.sha256} for r in recordings.REPOSITORIES}
    (out / "recipe.json").write_text(json.dumps({"seed": seed, "per_class": per_class, "clip_seconds": CLIP_SECONDS,
                                                  "classes": CLASSES, "split_shares": SPLIT_SHARES,
                                                  "repositories": repositories}, indent=2) + "\n")
    return out / "labels.csv"


EXAMPLES = (("human", "live_answer"), ("machine", "greeting"), ("machine", "greeting_beep"), ("machine", "robocall"), ("silence", None),
            ("digital_silence", "alaw_d5"), ("fax", "fax_cng"), ("tone", "busy_na"), ("music", None), ("noise", None))


def write_examples(out: str | Path, seed: int = 1, sources_root: str | Path | None = None) -> list[Path]:
    """One test-split opening per kind of call, for the Quickstart: never seen by the shipped models."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pools = load_pools(seed, tts_per_voice=1, sources_root=sources_root)
    written, rows = [], []
    for cls, subclass in EXAMPLES:
        for index in range(10_000):
            chosen = draft(cls, index, seed + 1000, pools)
            if chosen.row["split"] == "test" and subclass in (None, chosen.row["subclass"]):
                break
        name = f"{chosen.row['subclass'] if subclass else cls}.wav"
        write_wav(out / name, render([chosen])[0])
        written.append(out / name)
        rows.append({"file": name, **chosen.row})
    write_labels(out / "labels.csv", rows)
    return written


def write_labels(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
