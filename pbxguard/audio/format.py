"""The one audio format pbxguard screens: 8 kHz, signed 16-bit little-endian, mono, in 20 ms frames.

Standard library only, so the relays (which copy these bytes without looking at them) can import it.
"""

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2  # bytes: s16le
SAMPLES_PER_MS = SAMPLE_RATE // 1000
BYTES_PER_MS = SAMPLES_PER_MS * SAMPLE_WIDTH
FRAME_MS = 20.0  # the ptime of a G.711 call and of AudioSocket's frames
FRAME = int(FRAME_MS) * SAMPLES_PER_MS  # samples per frame
# The engine looks for a verdict once per CHECK_MS of audio, counted from the call's first sample: a relay that
# forwards audio in blocks of this size, so aligned, delays no decision.
CHECK_MS = 100


def samples_for(ms: float) -> int:
    """How many samples `ms` milliseconds of audio hold."""
    return int(ms * SAMPLES_PER_MS)
FRAME_BYTES = FRAME * SAMPLE_WIDTH  # bytes per frame of s16le
