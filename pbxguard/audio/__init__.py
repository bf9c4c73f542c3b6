"""Audio in: G.711 codecs and file readers. Nothing here knows about features or calls."""

from pbxguard.audio.files import SAMPLE_RATE, AudioError, decode_raw, read_audio, write_wav

__all__ = ["SAMPLE_RATE", "AudioError", "decode_raw", "read_audio", "write_wav"]
