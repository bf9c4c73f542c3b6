"""Codec round trips for the channel model, through the encoders real calls pass: Debian's ffmpeg and sox,
and AMR-NB through libopencore-amrnb by ctypes (ffmpeg here decodes AMR but cannot encode it).

`transcode(codec, clips)` encodes and decodes many clips in one run of the tool: the clips are joined with
PAD_S of zeros between them (codec state does not carry across that much silence), so a corpus of
thousands of clips costs a few hundred process starts, not tens of thousands. Each codec's delay is
measured once with a probe and taken off, so a clip comes back aligned with what went in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from functools import cache, lru_cache

import numpy as np

from pbxguard.audio import g711
from pbxguard.audio.format import FRAME, SAMPLE_RATE

PAD_S = 0.5
_S16 = ["-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1"]

# name -> (ffmpeg encoder arguments, container); the decoder finds the codec in the container.
FFMPEG = {
    "gsm": (["-c:a", "libgsm"], "gsm"),
    "opus6k": (["-c:a", "libopus", "-b:a", "6k", "-application", "voip"], "ogg"),
    "opus9k": (["-c:a", "libopus", "-b:a", "9k", "-application", "voip"], "ogg"),
    "opus12k": (["-c:a", "libopus", "-b:a", "12k", "-application", "voip"], "ogg"),
    "speex": (["-c:a", "libspeex"], "ogg"),
    "g722": (["-ar", "16000", "-c:a", "g722"], "g722"),
    "g726_16k": (["-c:a", "g726", "-b:a", "16k"], "wav"),
    "g726_24k": (["-c:a", "g726", "-b:a", "24k"], "wav"),
    "g726_32k": (["-c:a", "g726", "-b:a", "32k"], "wav"),
    "g726_40k": (["-c:a", "g726", "-b:a", "40k"], "wav"),
    "g723_1": (["-c:a", "g723_1", "-b:a", "6.3k"], "g723_1"),
    "ima_adpcm": (["-c:a", "adpcm_ima_wav"], "wav"),
    "ms_adpcm": (["-c:a", "adpcm_ms"], "wav"),
    "mp3_16k": (["-c:a", "libmp3lame", "-b:a", "16k"], "mp3"),
    "mp3_32k": (["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
    "vorbis": (["-c:a", "libvorbis", "-q:a", "0"], "ogg"),
}
SOX = {"vox": ["-t", "vox"]}  # OKI/Dialogic ADPCM, as call recorders and old IVRs store it
AMR_MODES = {"amr4_75": 0, "amr5_9": 2, "amr7_4": 4, "amr12_2": 7}  # libopencore's enum Mode
G711 = ("ulaw", "alaw")

MOBILE = ("gsm", "amr4_75", "amr5_9", "amr7_4", "amr12_2", "opus6k", "opus9k", "opus12k", "speex")
TRUNK = ("g722", "g726_16k", "g726_24k", "g726_32k", "g726_40k", "g723_1", "ima_adpcm", "ms_adpcm", "vox", "ulaw", "alaw")
RECORDER = ("mp3_16k", "mp3_32k", "vorbis", "opus12k", "gsm", "vox")  # what call recorders and SBC captures store
STORED = ("ulaw", "alaw", "gsm", "g722", "ima_adpcm", "mp3_32k", "vox")  # how voicemail and IVR systems keep prompts
CODECS = tuple(sorted({*FFMPEG, *SOX, *AMR_MODES, *G711}))


class CodecError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """The Debian packages this module needs and does not find."""
    missing = [pkg for tool, pkg in (("ffmpeg", "ffmpeg"), ("sox", "sox")) if shutil.which(tool) is None]
    if _amr_library() is None:
        missing.append("libopencore-amrnb0")
    return missing


def transcode(codec: str, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Each float clip (int16 units) after an encode and decode by `codec`, same length, as float64."""
    if codec in G711:
        return [_round_trip(codec, x) for x in clips]
    pad = np.zeros(int(PAD_S * SAMPLE_RATE))
    joined = np.concatenate([pad, *(np.concatenate([x, pad]) for x in clips)])
    out = _round_trip(codec, joined)
    delay = codec_delay(codec)
    result, pos = [], len(pad)
    for x in clips:
        piece = out[pos + delay : pos + delay + len(x)]
        result.append(np.concatenate([piece, np.zeros(len(x) - len(piece))]) if len(piece) < len(x) else piece)
        pos += len(x) + len(pad)
    return result


@cache
def codec_delay(codec: str) -> int:
    """Samples by which `codec`'s decoded output lags its input, measured on a noise probe."""
    probe = np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 3000.0
    signal = np.concatenate([np.zeros(int(PAD_S * SAMPLE_RATE)), probe, np.zeros(int(PAD_S * SAMPLE_RATE))])
    out = _round_trip(codec, signal)
    n = len(signal) + len(out)
    corr = np.fft.irfft(np.fft.rfft(out, n) * np.conj(np.fft.rfft(signal, n)), n)
    late, early = 4000, 800  # 0..500 ms late, or up to 100 ms early
    lags = np.r_[corr[:late], corr[-early:]]
    k = int(np.argmax(np.abs(lags)))
    return k if k < late else k - len(lags)


def _round_trip(codec: str, x: np.ndarray) -> np.ndarray:
    if codec in G711:
        return g711.round_trip(np.clip(x, -32768, 32767), codec).astype(np.float64)
    if codec in AMR_MODES:
        return _amr(x, AMR_MODES[codec])
    return _external(codec, x)


def _run(cmd: list[str], data: bytes) -> bytes:
    done = subprocess.run(cmd, input=data, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise CodecError(f"{cmd[0]} failed ({' '.join(cmd[:12])} ...): {done.stderr.decode(errors='replace')[-300:]}")
    return done.stdout


def _external(codec: str, x: np.ndarray) -> np.ndarray:
    pcm = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
    if codec in SOX:
        raw = ["-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1"]
        sox = ["sox", "-D", "-R"]  # no dither (sox dithers 16 to 12 bits at random) and repeatable anyway
        encoded = _run([*sox, *raw, "-", *SOX[codec], "-r", str(SAMPLE_RATE), "-"], pcm)
        decoded = _run([*sox, *SOX[codec], "-r", str(SAMPLE_RATE), "-", *raw, "-"], encoded)
    else:
        args, container = FFMPEG[codec]
        ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1"]
        encoded = _run([*ffmpeg, *_S16, "-i", "-", *args, "-ac", "1", "-f", container, "-bitexact", "-"], pcm)
        decoded = _run([*ffmpeg, "-f", container, "-i", "-", *_S16, "-"], encoded)
    return np.frombuffer(decoded, dtype="<i2").astype(np.float64)


@lru_cache(maxsize=1)
def _amr_library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("opencore-amrnb") or "libopencore-amrnb.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.Encoder_Interface_init.restype = ctypes.c_void_p
    lib.Encoder_Interface_init.argtypes = [ctypes.c_int]
    lib.Encoder_Interface_Encode.restype = ctypes.c_int
    lib.Encoder_Interface_Encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                             ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.Encoder_Interface_exit.argtypes = [ctypes.c_void_p]
    lib.Decoder_Interface_init.restype = ctypes.c_void_p
    lib.Decoder_Interface_Decode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte),
                                             ctypes.POINTER(ctypes.c_short), ctypes.c_int]
    lib.Decoder_Interface_exit.argtypes = [ctypes.c_void_p]
    return lib


def _amr(x: np.ndarray, mode: int) -> np.ndarray:
    """AMR-NB at one mode, 20 ms frame by frame, DTX off (a mobile leg in a call)."""
    lib = _amr_library()
    if lib is None:
        raise CodecError("AMR-NB needs libopencore-amrnb0 (apt install libopencore-amrnb0)")
    frames = np.zeros(-(-len(x) // FRAME) * FRAME, dtype=np.int16)
    frames[: len(x)] = np.clip(np.rint(x), -32768, 32767)
    out = np.zeros_like(frames)
    encoder, decoder = lib.Encoder_Interface_init(0), lib.Decoder_Interface_init()
    packet = (ctypes.c_ubyte * 64)()
    try:
        for k in range(0, len(frames), FRAME):
            speech = np.ascontiguousarray(frames[k : k + FRAME])
            lib.Encoder_Interface_Encode(encoder, mode, speech.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), packet, 0)
            decoded = np.zeros(FRAME, dtype=np.int16)
            lib.Decoder_Interface_Decode(decoder, packet, decoded.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), 0)
            out[k : k + FRAME] = decoded
    finally:
        lib.Encoder_Interface_exit(encoder)
        lib.Decoder_Interface_exit(decoder)
    return out[: len(x)].astype(np.float64)
