"""Call-progress, SIT and fax tones with frequency and cadence; the voicemail beep.

Two resolutions, because 20 ms is too short to tell 440+480 Hz from 425 Hz or 400+450 Hz:
1. Each 20 ms frame is projected by least squares onto sinusoids at the spec frequencies of every tone set
   (basis frequencies at f +- 4 Hz). When a set explains most of the frame's energy and the frame is loud
   enough, the frame gets that set's *family*: all the 350-620 Hz call-progress sets are one family; each
   fax tone and each SIT segment is its own.
2. Runs of a family are matched against the cadence tables, and a cadence's own frequencies are checked on
   one high-resolution spectrum of the run (up to 256 ms, ~4 Hz resolution): most of the run's energy must
   lie within 1.5 % (at least 10 Hz) of them, and every component must be there.
A tone is *proven* only when frequencies and timing both match, which is what lets the policy hang up on
it. Speech and music rarely put 70 % of a frame's energy into one spec frequency set, and never with a spec
cadence and steady level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from pbxguard.audio.format import FRAME, FRAME_MS, SAMPLE_RATE

TOLERANCE_HZ = 4.0
MIN_EXPLAINED = 0.7  # share of a frame's energy a tone set must explain
MIN_COMPONENT = 0.15  # share each half of a dual tone must explain on its own
SIMPLER_WINS_BY = 0.03  # a set with fewer frequencies wins unless the richer one explains this much more
MIN_TONE_DBFS = -50.0
MAX_LEVEL_SPREAD_DB = 3.0  # a generator's level is steady; music and speech are not
GAP_FILL_FRAMES = 2  # a lost packet or a CED phase reversal does not end a tone
MIN_RUN_FRAMES = 2
CONFIRM_MS = 60.0  # how long a tone must be gone before its segment counts as complete
VERIFY_SAMPLES = 2048  # 256 ms: the high-resolution look at a run's frequencies
VERIFY_NFFT = 8192
FREQ_TOLERANCE = 0.015
MIN_FREQ_TOLERANCE_HZ = 10.0
PROGRESS = "progress"
CUT_BURST_MIN_SHARE = 0.3  # of a single burst's length, when the audio starts inside it
CUT_BURST_LEAD_MS = 100.0  # such a burst starts this close to the start of the audio


@dataclass(frozen=True)
class ToneSet:
    name: str
    freqs: tuple[float, ...]
    family: str = ""  # frames of sets in one family are one tone to the cadence matcher; default: own name
    all_components: bool = True  # False for FSK, where a 20 ms frame may hold only one of the two


TONE_SETS: tuple[ToneSet, ...] = (
    ToneSet("350+440", (350.0, 440.0), PROGRESS),
    ToneSet("440+480", (440.0, 480.0), PROGRESS),
    ToneSet("480+620", (480.0, 620.0), PROGRESS),
    ToneSet("400", (400.0,), PROGRESS),
    ToneSet("425", (425.0,), PROGRESS),
    ToneSet("913.8", (913.8,)),
    ToneSet("985.2", (985.2,)),
    ToneSet("1100", (1100.0,)),
    ToneSet("1370.6", (1370.6,)),
    ToneSet("1428.5", (1428.5,)),
    ToneSet("1650+1850", (1650.0, 1850.0), all_components=False),
    ToneSet("1776.7", (1776.7,)),
    ToneSet("2100", (2100.0,)),
)
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(s.family or s.name for s in TONE_SETS))
_FAMILY_OF_SET = np.array([FAMILIES.index(s.family or s.name) for s in TONE_SETS] + [-1])  # [-1] maps "no tone"
_SET_SIZES = np.array([len(s.freqs) for s in TONE_SETS], dtype=float)
SET_INDEX = {s.name: i for i, s in enumerate(TONE_SETS)}


@dataclass(frozen=True)
class Cadence:
    """A tone: its frequencies and its timing (on/off pairs in ms, cyclic; None for a continuous tone)."""

    name: str
    verdict: str  # "tone" or "fax"
    freqs: tuple[float, ...]
    family: str
    pattern_ms: tuple[tuple[float, float], ...] | None
    min_on_ms: float | None = None  # an on-run this long proves it alone (long or continuous tones)
    single_burst: bool = False  # one complete on-segment proves it (fax CNG: 0.5 s on, 3 s off)
    min_in_band: float = 0.8  # share of the run's energy within tolerance of `freqs`
    min_component: float = 0.12  # share each of `freqs` must hold on its own


CADENCES: tuple[Cadence, ...] = (
    Cadence("busy_na", "tone", (480.0, 620.0), PROGRESS, ((500, 500),)),
    Cadence("reorder_na", "tone", (480.0, 620.0), PROGRESS, ((250, 250),)),
    Cadence("ringback_na", "tone", (440.0, 480.0), PROGRESS, ((2000, 4000),), min_on_ms=1000),
    Cadence("dial_na", "tone", (350.0, 440.0), PROGRESS, None, min_on_ms=1000),
    Cadence("busy_eu", "tone", (425.0,), PROGRESS, ((500, 500),)),
    Cadence("congestion_eu", "tone", (425.0,), PROGRESS, ((250, 250),)),
    Cadence("ringback_eu", "tone", (425.0,), PROGRESS, ((1000, 4000),), single_burst=True),
    Cadence("dial_eu", "tone", (425.0,), PROGRESS, None, min_on_ms=1500),
    Cadence("busy_uk", "tone", (400.0,), PROGRESS, ((375, 375),)),
    Cadence("congestion_uk", "tone", (400.0,), PROGRESS, ((400, 350), (225, 525))),
    Cadence("ringback_uk", "tone", (400.0, 450.0), PROGRESS, ((400, 200), (400, 2000))),
    Cadence("fax_cng", "fax", (1100.0,), "1100", ((500, 3000),), single_burst=True),
    Cadence("fax_ced", "fax", (2100.0,), "2100", None, min_on_ms=500),
    # HDLC flags are mostly ones: about 70 % of the energy sits at 1650 Hz and 10 % at 1850 Hz.
    Cadence("fax_v21", "fax", (1650.0, 1850.0), "1650+1850", None, min_on_ms=500, min_in_band=0.6, min_component=0.05),
)

_FAX_FAMILIES = {FAMILIES.index(c.family) for c in CADENCES if c.verdict == "fax"}
SIT_FIRST = ("913.8", "985.2")
SIT_SECOND = ("1370.6", "1428.5")
SIT_THIRD = "1776.7"
SIT_SEGMENT_MS = (200.0, 460.0)  # 274 or 380 ms each, with tolerance
SIT_MAX_GAP_MS = 80.0
_CADENCE_FAMILY = tuple(FAMILIES.index(c.family) for c in CADENCES)
_SIT_FAMILIES = tuple(FAMILIES.index(name) for name in (*SIT_FIRST, *SIT_SECOND, SIT_THIRD))
_SIT_THIRD_FAMILY = FAMILIES.index(SIT_THIRD)


@dataclass(frozen=True)
class ToneEvent:
    """A proven tone: which cadence, when it started and when it was proven (ms from the window start)."""

    name: str
    verdict: str
    start_ms: float
    decided_ms: float

    def as_dict(self) -> dict:
        return {"name": self.name, "verdict": self.verdict, "start_ms": self.start_ms, "decided_ms": self.decided_ms}


@cache
def _projection() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stacked orthonormal bases of every tone set and of each component a dual set must show.

    Returns the (FRAME x columns) matrix, each group's starting column (for np.add.reduceat), the indices of
    the dual sets that must show both components, and those components' group indices (one row per set).
    """
    t = np.arange(FRAME) / SAMPLE_RATE
    freqs = sorted({f for s in TONE_SETS if s.all_components and len(s.freqs) > 1 for f in s.freqs})
    groups = [s.freqs for s in TONE_SETS] + [(f,) for f in freqs]
    blocks, starts, col = [], [], 0
    for group in groups:
        cols = []
        for f in group:
            for g in (f - TOLERANCE_HZ, f + TOLERANCE_HZ):
                cols += [np.cos(2 * np.pi * g * t), np.sin(2 * np.pi * g * t)]
        q, _ = np.linalg.qr(np.stack(cols, axis=1))
        blocks.append(q)
        starts.append(col)
        col += q.shape[1]
    checked = [i for i, s in enumerate(TONE_SETS) if s.all_components and len(s.freqs) > 1]
    components = np.array([[len(TONE_SETS) + freqs.index(f) for f in TONE_SETS[i].freqs] for i in checked])
    return np.hstack(blocks), np.array(starts), np.array(checked), components


def label_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 20 ms frame (rows of `frames`, int16-scaled): tone-set index into TONE_SETS or -1 (the set that
    explains enough of the frame's energy), and the frame level in dBFS."""
    basis, starts, checked, components = _projection()
    x = frames - frames.mean(axis=1, keepdims=True)  # DC offset is not part of any tone
    energy = np.einsum("ij,ij->i", x, x) + 1e-9
    explained = np.add.reduceat((x @ basis) ** 2, starts, axis=1) / energy[:, None]
    sets = explained[:, : len(TONE_SETS)].copy()
    sets[:, checked] *= explained[:, components].min(axis=2) >= MIN_COMPONENT
    best = np.argmax(sets - SIMPLER_WINS_BY * _SET_SIZES, axis=1)
    share = sets[np.arange(len(best)), best]
    level = 10.0 * np.log10(energy / FRAME / 32768.0**2)
    best = np.where((share >= MIN_EXPLAINED) & (level >= MIN_TONE_DBFS), best, -1)
    return best, level


def fax_sounding(labels: np.ndarray) -> bool:
    """Whether a fax tone sounded in the last CONFIRM_MS: a burst whose end the window may have cut off."""
    recent = _FAMILY_OF_SET[labels[-(int(CONFIRM_MS // FRAME_MS) + 1) :]]
    return any(int(f) in _FAX_FAMILIES for f in recent)


def families(labels: np.ndarray) -> np.ndarray:
    """Frame set labels to family indices into FAMILIES (-1 stays -1)."""
    return _FAMILY_OF_SET[labels]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame index pairs of the True runs of a boolean array, end exclusive."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _tone_mask(family: np.ndarray, index: int) -> np.ndarray:
    mask = family == index
    for start, end in runs(~mask):
        if 0 < start and end < len(mask) and end - start <= GAP_FILL_FRAMES:
            mask[start:end] = True
    for start, end in runs(mask):
        if end - start < MIN_RUN_FRAMES:
            mask[start:end] = False
    return mask


def _steady(level: np.ndarray, mask: np.ndarray) -> bool:
    """The tone's level is steady: judged inside its runs, since a run's first and last frames are only
    partly filled by the tone."""
    interior = mask.copy()
    for s, e in runs(mask):
        if e - s > 2:
            interior[s] = interior[e - 1] = False
    on = np.sort(level[interior])
    return on.size > 0 and float(on[(9 * on.size) // 10] - on[on.size // 10]) <= MAX_LEVEL_SPREAD_DB


@lru_cache(maxsize=8)
def _verify_window(n: int) -> np.ndarray:
    return np.hanning(n)


def run_spectrum(samples: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Power spectrum (VERIFY_NFFT bins) of the middle of the longest run of `mask`."""
    start, end = max(runs(mask), key=lambda r: r[1] - r[0])
    a, b = start * FRAME, min(end * FRAME, len(samples))
    if b - a > VERIFY_SAMPLES:
        a += (b - a - VERIFY_SAMPLES) // 2
        b = a + VERIFY_SAMPLES
    segment = samples[a:b].astype(np.float64)
    segment = (segment - segment.mean()) * _verify_window(len(segment))
    return np.abs(np.fft.rfft(segment, VERIFY_NFFT)) ** 2


def frequencies_match(power: np.ndarray, run_samples: int, cadence: Cadence) -> bool:
    """Most of the run's energy lies near the cadence's frequencies, and each of them holds its share."""
    bin_hz = SAMPLE_RATE / VERIFY_NFFT
    lobe = 2 * SAMPLE_RATE / max(min(run_samples, VERIFY_SAMPLES), 1)  # Hann main-lobe half width
    total = power.sum() + 1e-12
    shares = []
    for f in cadence.freqs:
        tol = max(FREQ_TOLERANCE * f, MIN_FREQ_TOLERANCE_HZ) + lobe
        shares.append(power[int((f - tol) / bin_hz) : int((f + tol) / bin_hz) + 1].sum() / total)
    return sum(shares) >= cadence.min_in_band and min(shares) >= cadence.min_component


def _tol(expected: float) -> float:
    return max(0.2 * expected, 50.0)


def _match(cadence: Cadence, mask: np.ndarray) -> ToneEvent | None:
    n = len(mask)
    on_runs = runs(mask)
    if not on_runs:
        return None
    elements: list[tuple[bool, float, float, bool]] = []  # (on, start_ms, end_ms, complete)
    pos = 0
    for start, end in on_runs:
        if start > pos:
            elements.append((False, pos * FRAME_MS, start * FRAME_MS, pos > 0))
        elements.append((True, start * FRAME_MS, end * FRAME_MS, start > 0 and end < n))
        pos = end
    if pos < n:
        elements.append((False, pos * FRAME_MS, n * FRAME_MS, False))
    now_ms = n * FRAME_MS
    # A segment is only known to have ended once the next one has lasted CONFIRM_MS.
    ended = [i + 1 < len(elements) and min(elements[i + 1][2], now_ms) - e >= CONFIRM_MS
             for i, (_, _, e, _) in enumerate(elements)]
    elements = [(on, s, e, complete and done) for (on, s, e, complete), done in zip(elements, ended)]
    first_on = next(s for on, s, _, _ in elements if on)
    if cadence.pattern_ms is None:
        assert cadence.min_on_ms is not None  # a cadence without a pattern is proven by its length
        if len(on_runs) != 1 or on_runs[0][1] != n:
            return None
        on_ms = (n - on_runs[0][0]) * FRAME_MS
        if on_ms < cadence.min_on_ms:
            return None
        return ToneEvent(cadence.name, cadence.verdict, first_on, first_on + cadence.min_on_ms)
    expected = [d for pair in cadence.pattern_ms for d in pair]
    cut = _cut_burst(cadence, elements, ended)
    if cut is not None:
        return cut
    for phase in range(0 if elements[0][0] else 1, len(expected), 2 if len(expected) > 1 else 1):
        if _consistent(elements, expected, phase):
            return _proof(cadence, elements)
    return None


def _cut_burst(cadence: Cadence, elements: list, ended: list[bool]) -> ToneEvent | None:
    """A single-burst tone already sounding at answer: the audio starts inside its burst (AudioSocket misses
    the first 20-30 ms; a recording may start a frame or two before the caller's audio), so the one burst
    near the start is short of its length. Its frequencies were checked, it ended and stayed off as the
    cadence says, and it kept at least CUT_BURST_MIN_SHARE of its length: that is proof too."""
    on = [k for k, element in enumerate(elements) if element[0]]
    if not (cadence.single_burst and cadence.pattern_ms and len(on) == 1 and ended[on[0]]):
        return None
    _, start, end, _ = elements[on[0]]
    on_ms = cadence.pattern_ms[0][0]
    if start > CUT_BURST_LEAD_MS or not CUT_BURST_MIN_SHARE * on_ms <= end - start <= on_ms + _tol(on_ms):
        return None
    return ToneEvent(cadence.name, cadence.verdict, start, end + CONFIRM_MS)


def _consistent(elements: list, expected: list[float], phase: int) -> bool:
    for i, (_, start, end, complete) in enumerate(elements):
        e = expected[(phase + i) % len(expected)]
        d = end - start
        if complete and abs(d - e) > _tol(e):
            return False
        if not complete and d > e + _tol(e):
            return False
    return True


def _proof(cadence: Cadence, elements: list) -> ToneEvent | None:
    start = next(s for on, s, _, _ in elements if on)
    if cadence.min_on_ms is not None:
        for on, s, e, _ in elements:
            if on and e - s >= cadence.min_on_ms:
                return ToneEvent(cadence.name, cadence.verdict, s, s + cadence.min_on_ms)
    complete = [(on, e) for on, _, e, c in elements if c]
    if cadence.single_burst:
        ends = [e for on, e in complete if on]
        return ToneEvent(cadence.name, cadence.verdict, start, ends[0] + CONFIRM_MS) if ends else None
    if len(complete) >= 2 and any(on for on, _ in complete):
        return ToneEvent(cadence.name, cadence.verdict, start, complete[1][1] + CONFIRM_MS)
    return None


def _match_sit(labels: np.ndarray) -> ToneEvent | None:
    segments = []  # (set name, start_ms, end_ms) in time order
    for name in (*SIT_FIRST, *SIT_SECOND, SIT_THIRD):
        for s, e in runs(_tone_mask(labels, SET_INDEX[name])):
            segments.append((name, s * FRAME_MS, e * FRAME_MS))
    segments.sort(key=lambda seg: seg[1])
    lo, hi = SIT_SEGMENT_MS
    for a, b, c in zip(segments, segments[1:], segments[2:]):
        if a[0] in SIT_FIRST and b[0] in SIT_SECOND and c[0] == SIT_THIRD:
            gaps_ok = b[1] - a[2] <= SIT_MAX_GAP_MS and c[1] - b[2] <= SIT_MAX_GAP_MS
            lengths_ok = all(lo <= seg[2] - seg[1] <= hi for seg in (a, b)) and c[2] - c[1] >= lo
            if gaps_ok and lengths_ok:
                return ToneEvent("sit", "tone", a[1], c[1] + lo)
    return None


# Per set label (and -1 last): 0 no tone, 1 fax, 2 call progress, 3 SIT segment.
_CATEGORY = np.array(
    [1 if (s.family or s.name) in {c.family for c in CADENCES if c.verdict == "fax"}
     else 2 if s.family == PROGRESS else 3 if s.name in (*SIT_FIRST, *SIT_SECOND, SIT_THIRD) else 0
     for s in TONE_SETS] + [0])


def family_fractions(labels: np.ndarray) -> list[float]:
    """Share of frames holding a fax tone, a call-progress tone and a SIT segment."""
    counts = np.bincount(_CATEGORY[labels], minlength=4)
    n = max(len(labels), 1)
    return [counts[1] / n, counts[2] / n, counts[3] / n]


STEADY_TONE_FRAMES = 5  # 100 ms: a vowel can fit a tone set for a frame or two, not steadily for this long


def steady_tone_frames(labels: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Frames inside a steady run (>= 100 ms, steady level) of one tone family, and the frame on each side
    (where the tone starts or stops mid-frame): these are not speech."""
    family = families(labels)
    steady = np.zeros(len(labels), dtype=bool)
    for index in np.unique(family[family >= 0]):
        mask = _tone_mask(family, int(index))
        for s, e in runs(mask):
            if e - s >= STEADY_TONE_FRAMES and _steady(level[s:e], np.ones(e - s, dtype=bool)):
                steady[max(s - 1, 0) : e + 1] = True
    return steady


def prove_tones(labels: np.ndarray, level: np.ndarray, samples: np.ndarray,
                speech_onset_ms: Callable[[], float]) -> list[ToneEvent]:
    """Every cadence proven by the frame labels (and the `samples` they came from), earliest first.

    A fax machine does not talk first: a fax tone that starts after speech (`speech_onset_ms()`, asked only
    when a fax tone is found) is a voicemail beep.
    """
    return ToneProver().prove(labels, level, samples, speech_onset_ms)


class ToneProver:
    """`prove_tones` over frames that arrive in order, each call's labels extending the last call's.

    A family's mask, level check and run spectrum change only when a frame of that family arrives (until then
    the mask only grows by frames without it), so they are kept, and a check redoes only the cadence timing
    of a family that has not sounded since the last one. Equal to `prove_tones` on the same frames."""

    def __init__(self) -> None:
        # family index -> (its frame count, its mask, the cadences whose frequencies its run matches)
        self._families: dict[int, tuple[int, np.ndarray, tuple[Cadence, ...]]] = {}
        self._sit: tuple[tuple[int, ...], ToneEvent | None] | None = None  # (SIT sets' frame counts, result)

    def prove(self, labels: np.ndarray, level: np.ndarray, samples: np.ndarray,
              speech_onset_ms: Callable[[], float]) -> list[ToneEvent]:
        events = []
        family = families(labels)
        counts = np.bincount(family[family >= 0], minlength=len(FAMILIES))
        for cadence, index in zip(CADENCES, _CADENCE_FAMILY):
            if counts[index] < MIN_RUN_FRAMES:
                continue
            mask, matching = self._family(index, int(counts[index]), family, level, samples)
            if cadence not in matching:
                continue
            event = _match(cadence, mask)
            if event and not (cadence.verdict == "fax" and event.start_ms > speech_onset_ms()):
                events.append(event)
        if counts[_SIT_THIRD_FAMILY] >= MIN_RUN_FRAMES:
            key = tuple(int(counts[i]) for i in _SIT_FAMILIES)
            if self._sit is None or self._sit[0] != key:
                self._sit = key, _match_sit(labels)
            if self._sit[1]:
                events.append(self._sit[1])
        return sorted(events, key=lambda e: e.decided_ms)

    def _family(self, index: int, count: int, family: np.ndarray, level: np.ndarray,
                samples: np.ndarray) -> tuple[np.ndarray, tuple[Cadence, ...]]:
        kept = self._families.get(index)
        if kept is None or kept[0] != count:
            mask = _tone_mask(family, index)
            matching: tuple[Cadence, ...] = ()
            if mask.any() and _steady(level, mask):
                power = run_spectrum(samples, mask)
                longest = max(e - s for s, e in runs(mask)) * FRAME
                matching = tuple(c for c, i in zip(CADENCES, _CADENCE_FAMILY)
                                 if i == index and frequencies_match(power, longest, c))
            kept = count, mask, matching
        elif len(kept[1]) < len(family):
            kept = count, np.concatenate((kept[1], np.zeros(len(family) - len(kept[1]), dtype=bool))), kept[2]
        self._families[index] = kept
        return kept[1], kept[2]


@dataclass(frozen=True)
class Beep:
    onset_ms: float
    duration_ms: float
    freq_hz: float


BEEP_MIN_MS = 100.0
BEEP_BAND_HZ = (400.0, 2100.0)
BEEP_MIN_TONALITY = 0.95  # a sustained vowel still spreads over its harmonics
BEEP_MIN_DBFS = -45.0
BEEP_MAX_DRIFT_HZ = 10.0


def find_beep(power: np.ndarray, hop_ms: float, nfft: int, level_db: np.ndarray, after_ms: float | None) -> Beep | None:
    """The first steady single tone of 400-2100 Hz lasting >= 100 ms that starts after `after_ms` (speech).

    `power` is a (frames x bins) power spectrogram, `level_db` its per-frame level.
    """
    if after_ms is None:
        return None
    peak = np.argmax(power[:, 1:-1], axis=1) + 1
    rows = np.arange(power.shape[0])
    lobe = power[rows, peak - 1] + power[rows, peak] + power[rows, peak + 1]
    wide = lobe + power[rows, np.maximum(peak - 2, 0)] + power[rows, np.minimum(peak + 2, power.shape[1] - 1)]
    tonality = wide / (power.sum(axis=1) + 1e-12)
    a, b, c = (np.log(power[rows, peak + k] + 1e-12) for k in (-1, 0, 1))
    offset = 0.5 * (a - c) / np.where(np.abs(a - 2 * b + c) > 1e-12, a - 2 * b + c, 1e-12)
    freq = (peak + np.clip(offset, -0.5, 0.5)) * SAMPLE_RATE / nfft
    lo, hi = BEEP_BAND_HZ
    ok = (tonality >= BEEP_MIN_TONALITY) & (level_db >= BEEP_MIN_DBFS) & (freq >= lo) & (freq <= hi)
    start_frame = int(np.ceil(after_ms / hop_ms))
    ok[:start_frame] = False
    need = int(np.ceil(BEEP_MIN_MS / hop_ms))
    for s, e in runs(ok):
        inner = freq[s + 1 : e - 1]  # the first and last frames straddle the beep's edges
        if e - s >= need and np.ptp(inner) <= 2 * BEEP_MAX_DRIFT_HZ:
            return Beep(onset_ms=s * hop_ms, duration_ms=(e - s) * hop_ms, freq_hz=float(np.median(freq[s:e])))
    return None
