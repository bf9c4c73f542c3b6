"""Recorded and synthetic audio sources, all from Debian packages the project's setup installs.

natural speech: asterisk-core-sounds-en-wav prompts, pocketsphinx-testdata and codec2-examples voices;
music: asterisk-moh-opsound-wav; synthetic voices: espeak-ng and flite, run here. Each source has a stable
id: the split of a corpus is decided per source id, so one recording or voice never lands in two splits.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from pbxguard.audio.files import AudioError, read_audio

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_MOH = Path("/usr/share/asterisk/moh")
POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
CODEC2_SPEECH = [Path("/usr/share/codec2/raw") / f"{name}.raw" for name in (
    "big_dog", "cq_ref", "cross", "f2400", "forig", "g3plx", "hts", "hts1", "hts2", "kristoff", "m2400", "mmt1",
    "morig", "ve9qrp", "vk5qi")] + [Path("/usr/share/codec2/wav") / f"{name}.wav" for name in ("david4", "vk2tpm_004")]

ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")  # festvox-kallpc8k, -kdlpc8k, -us-slt-hts

SCRIPTS = (
    "Hello, this is an important message about your account. Please stay on the line.",
    "Congratulations, you have been selected to receive a free cruise to the Bahamas.",
    "This is the final notice regarding your vehicle's extended warranty.",
    "We are calling about your recent application. Press one to speak to an agent.",
    "Your credit card has been temporarily suspended due to suspicious activity.",
    "Hi, you have reached the voicemail of John. I am not available right now.",
    "Thank you for calling. All of our representatives are busy helping other customers.",
    "This call is from the tax office about an unpaid balance on your file.",
    "Please leave your name, number and a short message after the tone.",
    "You are eligible for a lower interest rate on your student loans, act now.",
    "Hello, the person you are calling is not available. Please try again later.",
    "Attention, this is a courtesy call from your electricity provider.",
    "Good afternoon, we have an exclusive offer on home security systems for you.",
    "Your package could not be delivered. Press nine to reschedule the delivery.",
    "Sorry we missed your call. Leave a message and we will get back to you soon.",
    "This is a reminder of your appointment tomorrow morning at ten o'clock.",
)


@dataclass(frozen=True)
class Source:
    id: str  # stable across machines: package-relative path or engine:voice
    group: str  # asterisk, pocketsphinx, codec2, moh; digits, precise, readers, room, ambient, music, game
    samples: np.ndarray  # int16 at 8 kHz
    unit: str = ""  # what a split holds out whole (a speaker, a file); the id when empty
    origin: str = ""  # package=version or repository@commit, and the path
    licence: str = ""

    @property
    def split_unit(self) -> str:
        return self.unit or self.id


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def trim(x: np.ndarray, threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading and trailing near-silence from a prompt (20 ms resolution)."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
    active = np.flatnonzero(level > threshold_db)
    return x[active[0] * 160 : (active[-1] + 1) * 160] if active.size else x[:0]


def _read_16k_raw(path: Path) -> np.ndarray:
    """pocketsphinx's headerless test utterances are 16 kHz s16le, not the 8 kHz `.raw` convention."""
    wide = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float64)
    return np.clip(np.rint(resample_poly(wide, 1, 2)), -32768, 32767).astype(np.int16)


PACKAGE_LICENCES = {"asterisk": ("asterisk-core-sounds-en-wav", "CC-BY-SA-3.0"), "pocketsphinx": ("pocketsphinx-testdata", "BSD-2"),
                    "codec2": ("codec2-examples", "LGPL-2.1"), "moh": ("asterisk-moh-opsound-wav", "CC-BY-SA-3.0")}


def debian_version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _load(paths: list[Path], group: str, root: Path, trim_silence: bool = True) -> list[Source]:
    package, licence = PACKAGE_LICENCES[group]
    origin = f"debian:{package}={debian_version(package)}"
    sources = []
    for path in sorted(paths):
        try:
            x = _read_16k_raw(path) if group == "pocketsphinx" and path.suffix == ".raw" else read_audio(path)
        except AudioError:
            continue
        x = trim(x) if trim_silence else x
        if len(x) >= 2400:  # 0.3 s: enough for one short utterance
            sources.append(Source(f"{group}:{path.relative_to(root)}", group, x, origin=f"{origin}:{path}", licence=licence))
    return sources


def natural_speech() -> list[Source]:
    """Recorded human speech: Asterisk prompts, pocketsphinx test utterances, codec2 test voices."""
    sphinx = list(POCKETSPHINX_DATA.rglob("*.wav")) + list(POCKETSPHINX_DATA.rglob("*.raw"))
    groups = (("asterisk", list(ASTERISK_SOUNDS.glob("*.wav")), ASTERISK_SOUNDS, "asterisk-core-sounds-en-wav and asterisk-core-sounds-en"),
              ("pocketsphinx", sphinx, POCKETSPHINX_DATA, "pocketsphinx-testdata"),
              ("codec2", [p for p in CODEC2_SPEECH if p.exists()], Path("/usr/share/codec2"), "codec2-examples"))
    sources = []
    for group, paths, root, package in groups:
        if not paths:  # a corpus quietly built without one of its sources is a different corpus
            raise FileNotFoundError(f"no {group} speech in {root}: install the Debian package(s) {package} (bash .ci/setup)")
        sources += _load(paths, group, root)
    return sources


def music() -> list[Source]:
    sources = _load(list(ASTERISK_MOH.glob("*.wav")), "moh", ASTERISK_MOH, trim_silence=False)
    if not sources:
        raise FileNotFoundError("no music sources: install asterisk-moh-opsound-wav (bash .ci/setup)")
    return sources


def editor_dither() -> list[np.ndarray]:
    """Asterisk's silence/N.wav: digital silence with an editor's +-1 dither, as shipped."""
    return [read_audio(p) for p in sorted((ASTERISK_SOUNDS / "silence").glob("*.wav"))]


def synthetic_voices() -> list[str]:
    voices = []
    if shutil.which("espeak-ng"):
        voices += [f"espeak:{v}{'+' + var if var else ''}" for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS]
    if shutil.which("flite"):
        voices += [f"flite:{v}" for v in FLITE_VOICES]
    if shutil.which("text2wave"):
        voices += [f"festival:{v}" for v in FESTIVAL_VOICES if list(Path("/usr/share/festival/voices").glob(f"*/{v}"))]
    missing = [engine for engine in ("espeak", "flite", "festival") if not any(v.startswith(engine + ":") for v in voices)]
    if missing:  # a corpus without one of its engines is a different corpus
        raise FileNotFoundError(f"no synthetic voices of {', '.join(missing)}: install espeak-ng, flite, festival and "
                                f"festvox-kallpc8k, festvox-kdlpc8k, festvox-us-slt-hts (bash .ci/setup)")
    return voices


def synthesize(voice: str, text: str, speed: float, pitch: int) -> np.ndarray:
    """Run a TTS engine for one voice id ('espeak:en-us+f2', 'flite:slt', 'festival:kal_diphone') and read its
    8 kHz audio.

    `pitch` is 0-99: espeak's own pitch setting; for flite it sets the target f0 (70-250 Hz) and its spread;
    festival's voices keep their own.
    """
    engine, name = voice.split(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tts.wav"
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", name, "-s", str(int(175 * speed)), "-p", str(pitch), "-w", str(out), text]
        elif engine == "flite":
            cmd = ["flite", "-voice", name, "--setf", f"duration_stretch={1 / speed:.3f}",
                   "--setf", f"int_f0_target_mean={70 + pitch * 1.8:.0f}", "--setf", f"int_f0_target_stddev={5 + pitch % 30}",
                   "-t", text, "-o", str(out)]
        else:
            (Path(tmp) / "text.txt").write_text(text + "\n")
            cmd = ["text2wave", "-eval", f"(voice_{name})", "-eval", f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})",
                   "-o", str(out), str(Path(tmp) / "text.txt")]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return trim(read_audio(out))
