"""Real recordings from four public repositories at pinned commits, and music from three Debian game packages.

The repositories are read from their tarballs (`git archive` of the commit, as `../shared/corpus-sources/`
holds them, checked against the SHA-256 pinned here) or from a folder where each is a git clone at that
commit. Every file the corpus may use has a licence that allows redistributing a trained model; files
without one are left out here, not later: Precise-Community-Data only where a contributor's waiver names
the file, librosa-data without its non-commercial clips, MAX-Audio-Classifier without the unlicensed ones.

Each recording is a `sources.Source` whose `unit` is what a split holds out whole: the speaker for speech
(a digit-dataset speaker, a Precise contributor, a LibriSpeech reader), the file for noise and music.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from scipy.signal import butter, sosfiltfilt

from pbxguard.audio.files import AudioError, decode_audio
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.audio.resample import to_int16
from pbxguard.train.sources import Source, debian_version, trim

SOURCES_ENV = "PBXGUARD_CORPUS_SOURCES"
DEFAULT_SOURCES = Path("../shared/corpus-sources")
MUSIC_EXCERPT_S = 40.0  # of each game track, from MUSIC_OFFSET_S on: past the intro, enough for many clips
MUSIC_OFFSET_S = 15.0
MIN_DIGIT_SAMPLES = 1600  # 0.2 s: a few recordings are near-silent and trim to almost nothing


@dataclass(frozen=True)
class Repository:
    name: str  # the tarball's top folder, and the clone's folder name
    upstream: str  # GitHub owner/name
    commit: str
    tarball: str
    sha256: str

    @property
    def origin(self) -> str:
        return f"github:{self.upstream}@{self.commit}"


DIGITS = Repository("free-spoken-digit-dataset", "Jakobovski/free-spoken-digit-dataset",
                    "26eb9aaf76e81b692f806f9140c2d2777410d7a1", "free-spoken-digit-dataset-26eb9aa.tar.xz",
                    "475f6c06e141d59872067beeda8146c463a0ecb4818cf0a282a5808caf3ade34")
PRECISE = Repository("Precise-Community-Data", "MycroftAI/Precise-Community-Data",
                     "4854e39b7f8c0e14d387d4e135aa10486f5158bf", "Precise-Community-Data-4854e39.tar.xz",
                     "2b9cebc85f85ed8c230989a5a1ba266ae1817a7612e777d30770f6dad95941c7")
LIBROSA = Repository("librosa-data", "librosa/data", "450cdd8a002c98e7bdbfebb309fc1ed024001f77",
                     "librosa-data-450cdd8.tar.xz", "9e28927306390073a57342a257dc5af272c7296f8ee11c896be2631cb7ee3dfb")
MAX_SAMPLES = Repository("MAX-Audio-Classifier", "IBM/MAX-Audio-Classifier", "3c308abcb04e1523e668ebaf76ca55898cd97d28",
                         "MAX-Audio-Classifier-samples-3c308ab.tar.xz",
                         "0d4e0f6d157a4e1a245941d847e109aea53d3e14eaef6ad5531cd0ef9cc87c61")
REPOSITORIES = (DIGITS, PRECISE, LIBROSA, MAX_SAMPLES)

# librosa-data: what each kept clip is (non-commercial clips are not in the tarball and never read).
LIBROSA_SPEECH = ("198-209-0000", "3436-172162-0000", "5703-47212-0000")  # LibriSpeech readers, CC-BY-4.0
LIBROSA_AMBIENT = ("glacier-bay-humpback", "456440__inspectorj__bird-whistling-robin-single-13")
LIBROSA_MUSIC = ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)", "Karissa_Hobbs_-_Lets_Go_Fishin",
                 "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy", "Kevin_MacLeod_-_Vibe_Ace",
                 "sorohanro_-_solo-trumpet-06")  # "Let's Go Fishin'" is also there under a second name: one track, read once
# MAX-Audio-Classifier samples/README.md: "Attribution" is CC-BY, "Creative Commons 0" is CC0.
MAX_AMBIENT = {"applause": "CC-BY", "birds1": "CC-BY", "car_engine": "CC-BY", "crowd_cheering": "CC0", "rain": "CC-BY",
               "snoring": "CC-BY", "thunder": "CC-BY", "train": "CC0", "typing": "CC0"}
MAX_MUSIC = {"arcade_music": "CC-BY", "cinematic": "CC-BY", "guitar": "CC0", "jazz_guitar": "CC0", "piano": "CC-BY"}
GAME_MUSIC = {  # Debian package -> folder of its music
    "wesnoth-1.16-music": Path("/usr/share/games/wesnoth/1.16/data/core/music"),
    "warzone2100-music": Path("/usr/share/games/warzone2100/music"),
    "frozen-bubble-data": Path("/usr/share/games/frozen-bubble/snd"),
}
FROZEN_BUBBLE_MUSIC = ("frozen-mainzik-1p.ogg", "frozen-mainzik-2p.ogg", "introzik.ogg")  # the rest are sound effects


# Source-id groups that are real recordings (speakers, rooms, noise, music), as opposed to Debian's prompts
# and TTS voices and pbxguard's own signals: the evaluation reports the clips made from them on their own.
RECORDED_GROUPS = ("digits", "precise", "readers", "room", "ambient", "music", "game")


class SourcesError(FileNotFoundError):
    pass


def sources_dir(path: str | Path | None = None) -> Path:
    """Where the repositories are: `path`, else $PBXGUARD_CORPUS_SOURCES, else ../shared/corpus-sources."""
    chosen = Path(path or os.environ.get(SOURCES_ENV) or DEFAULT_SOURCES)
    if not chosen.is_dir():
        raise SourcesError(f"no corpus sources at {chosen}: {_how_to_get()}")
    return chosen


def _how_to_get() -> str:
    repos = "; ".join(f"{r.upstream} at {r.commit} (or its tarball {r.tarball})" for r in REPOSITORIES)
    return (f"put the four repositories there as clones at their commits, or their `git archive` tarballs, "
            f"and pass --sources DIR or set {SOURCES_ENV}: {repos}")


class Checkout:
    """One repository's files at its pinned commit, from the tarball or from a clone."""

    def __init__(self, repo: Repository, root: Path) -> None:
        self.repo = repo
        tarball, clone = root / repo.tarball, root / repo.name
        if tarball.is_file():
            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            if digest != repo.sha256:
                raise SourcesError(f"{tarball}: SHA-256 {digest} is not the pinned {repo.sha256}: not {repo.origin}")
            self._files = _tar_files(tarball, repo.name)
        elif clone.is_dir():
            head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
            if head.returncode != 0 or head.stdout.strip() != repo.commit:
                found = head.stdout.strip() or head.stderr.strip()[:200]
                raise SourcesError(f"{clone}: must be a git clone of {repo.upstream} at {repo.commit}, found {found}")
            self._files = {p.relative_to(clone).as_posix(): p.read_bytes() for p in clone.rglob("*")
                           if p.is_file() and ".git" not in p.relative_to(clone).parts}
        else:
            raise SourcesError(f"{repo.upstream} missing: no {tarball} and no {clone}; {_how_to_get()}")

    def paths(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return sorted(p for p in self._files if rx.fullmatch(p))

    def read(self, path: str) -> bytes:
        return self._files[path]


def _tar_files(tarball: Path, top: str) -> dict[str, bytes]:
    files = {}
    with tarfile.open(tarball, "r:xz") as tar:
        for member in tar:
            if member.isfile() and member.name.startswith(top + "/"):
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has contents
                files[member.name[len(top) + 1 :]] = handle.read()
    return files


def decode_with_ffmpeg(data: bytes, offset_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Any format ffmpeg reads (Ogg Vorbis, Opus) to 8 kHz int16 mono, resampled by ffmpeg."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-ss", str(offset_s), *(["-t", str(seconds)] if seconds else []),
           "-i", "-", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-bitexact", "-"]
    done = subprocess.run(cmd, input=data, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise AudioError("<ffmpeg>", done.stderr.decode(errors="replace")[-300:])
    return np.frombuffer(done.stdout, dtype="<i2").astype(np.int16)


HIGHPASS_HZ = 80.0
_HIGHPASS = butter(4, HIGHPASS_HZ, btype="highpass", fs=SAMPLE_RATE, output="sos")


def highpass(x: np.ndarray) -> np.ndarray:
    """What a handset's microphone path does before any codec: no DC and no rumble. Some home-microphone
    recordings carry most of their energy below 100 Hz; levelled with it, their words would be inaudible."""
    return to_int16(sosfiltfilt(_HIGHPASS, x.astype(np.float64)))


def _source(repo: Repository, path: str, group: str, unit: str, licence: str, samples: np.ndarray) -> Source:
    return Source(f"{group}:{path}", group, samples, unit=f"{group}:{unit}", origin=f"{repo.origin}:{path}", licence=licence)


def digit_speakers(checkout: Checkout) -> list[Source]:
    """3,000 spoken digits, 6 speakers (file names are digit_speaker_index.wav). CC-BY-SA-4.0."""
    out = []
    for path in checkout.paths(r"recordings/\d_[a-z]+_\d+\.wav"):
        speaker = PurePosixPath(path).stem.split("_")[1]
        words = trim(highpass(decode_audio(path, checkout.read(path))))
        if len(words) >= MIN_DIGIT_SAMPLES:
            out.append(_source(checkout.repo, path, "digits", speaker, "CC-BY-SA-4.0", words))
    return out


def precise_waivers(checkout: Checkout) -> dict[str, tuple[str, str]]:
    """File name -> (contributor, waiver file) for every WAV a `licenses/license-*.txt` waiver names."""
    named: dict[str, tuple[str, str]] = {}
    for lic in checkout.paths(r"licenses/license-\d{8}-.+\.txt"):
        contributor = PurePosixPath(lic).stem.split("-", 2)[2]
        for line in checkout.read(lic).decode(errors="replace").splitlines():
            name = PurePosixPath(line.strip()).name
            if name.endswith(".wav"):
                named.setdefault(name, (contributor, lic))
    return named


def precise_speech(checkout: Checkout) -> tuple[list[Source], list[Source]]:
    """Wake words and other phrases from home microphones (English, Spanish), waived files only; and
    the room tone of each (the stretches before and after the words), for dead air from real rooms."""
    waivers = precise_waivers(checkout)
    speech, rooms = [], []
    for path in checkout.paths(r".+\.wav"):
        name = PurePosixPath(path).name
        if name not in waivers:
            continue
        contributor, waiver = waivers[name]
        try:
            x = highpass(decode_audio(path, checkout.read(path)))
        except AudioError:
            continue
        licence = f"public domain waiver ({waiver})"
        words = trim(x, threshold_db=_speech_floor(x))
        if len(words) >= 2400:
            speech.append(_source(checkout.repo, path, "precise", contributor, licence, words))
        room = room_tone(x)
        if len(room) >= 1600:
            # the unit names the contributor as the speech does, so one person's rooms and words share a split
            rooms.append(Source(f"room:{path}", "room", room, unit=f"precise:{contributor}", origin=f"{checkout.repo.origin}:{path}",
                                licence=licence))
    return speech, rooms


def _speech_floor(x: np.ndarray) -> float:
    """A trim threshold 30 dB under the loudest 20 ms of the recording (home mics have loud room tone)."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
    return float(max(level.max() - 30.0, -50.0))


def room_tone(x: np.ndarray) -> np.ndarray:
    """The frames of a recording at least 35 dB under its loudest: the room with nobody speaking."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-3)
    quiet = level < level.max() - 35.0
    return frames[quiet].ravel().astype(np.int16)


def librosa_clips(checkout: Checkout) -> dict[str, list[Source]]:
    """LibriSpeech readers (speech), a whale and a robin (ambient), five music tracks; licence from each .txt."""
    out: dict[str, list[Source]] = {"readers": [], "ambient": [], "music": []}
    for kind, stems in (("readers", LIBROSA_SPEECH), ("ambient", LIBROSA_AMBIENT), ("music", LIBROSA_MUSIC)):
        for stem in stems:
            path = f"audio/{stem}.ogg"
            licence = _licence_line(checkout.read(f"audio/{stem}.txt").decode(errors="replace"))
            x = highpass(decode_with_ffmpeg(checkout.read(path), 0.0, 60.0))
            unit = stem.split("-")[0] if kind == "readers" else stem
            out[kind].append(_source(checkout.repo, path, kind, unit, licence, trim(x) if kind == "readers" else x))
    return out


def _licence_line(text: str) -> str:
    for line in text.splitlines():
        if re.match(r"\s*(CC|Public Domain)", line, re.IGNORECASE):
            return line.strip()
    raise SourcesError(f"librosa-data: no licence line in {text[:80]!r}")


def max_samples(checkout: Checkout) -> dict[str, list[Source]]:
    """Freesound ambient noise and music from MAX-Audio-Classifier's samples (licences: samples/README.md)."""
    out: dict[str, list[Source]] = {"ambient": [], "music": []}
    for kind, table in (("ambient", MAX_AMBIENT), ("music", MAX_MUSIC)):
        for stem, licence in table.items():
            path = f"samples/{stem}.wav"
            out[kind].append(_source(checkout.repo, path, kind, stem, f"{licence} (Freesound; samples/README.md)",
                                     highpass(decode_audio(path, checkout.read(path)))))
    return out


def game_music() -> list[Source]:
    """A MUSIC_EXCERPT_S excerpt of each track of the permitted Debian game-music packages (GPL-2+ / CC-BY-SA)."""
    out = []
    for package, folder in GAME_MUSIC.items():
        if not folder.is_dir():
            raise SourcesError(f"no music in {folder}: install the Debian package {package} (bash .ci/setup)")
        tracks = sorted([*folder.rglob("*.ogg"), *folder.rglob("*.opus")])
        if package == "frozen-bubble-data":
            tracks = [t for t in tracks if t.name in FROZEN_BUBBLE_MUSIC]
        version = debian_version(package)
        for track in tracks:
            x = decode_with_ffmpeg(track.read_bytes(), MUSIC_OFFSET_S, MUSIC_EXCERPT_S)
            if len(x) < 5 * SAMPLE_RATE:  # a jingle shorter than the offset: take it from its start
                x = decode_with_ffmpeg(track.read_bytes(), 0.0, MUSIC_EXCERPT_S)
            rel = track.relative_to(folder).as_posix()
            out.append(Source(f"game:{package}/{rel}", "game", highpass(x), unit=f"game:{package}/{rel}",
                              origin=f"debian:{package}={version}:{track}",
                              licence=f"see /usr/share/doc/{package}/copyright"))
    return out


@dataclass
class Recordings:
    speech: list[Source]  # live speakers: digits, Precise
    readers: list[Source]  # LibriSpeech: read speech, for recorded announcements in other voices
    rooms: list[Source]  # real room tone for dead air
    ambient: list[Source]  # real noise
    music: list[Source]

    def all(self) -> Iterator[Source]:
        for group in (self.speech, self.readers, self.rooms, self.ambient, self.music):
            yield from group


def load(root: str | Path | None = None) -> Recordings:
    """Every permitted real recording; a missing or altered source is a `SourcesError` saying what to get."""
    root = sources_dir(root)
    digits, precise = Checkout(DIGITS, root), Checkout(PRECISE, root)
    librosa, maxs = librosa_clips(Checkout(LIBROSA, root)), max_samples(Checkout(MAX_SAMPLES, root))
    speech, rooms = precise_speech(precise)
    return Recordings(speech=digit_speakers(digits) + speech, readers=librosa["readers"], rooms=rooms,
                      ambient=librosa["ambient"] + maxs["ambient"], music=librosa["music"] + maxs["music"] + game_music())
