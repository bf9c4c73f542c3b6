import hashlib

import numpy as np
import pytest

from pbxguard.audio import g711

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
# sha256 of the encode tables over every int16 and of the decode tables, as produced by the ITU/Sun
# reference code (CPython's audioop.lin2ulaw/lin2alaw/ulaw2lin/alaw2lin, which implement it verbatim).
REFERENCE = {
    "ulaw_encode": "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a",
    "alaw_encode": "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b",
    "ulaw_decode": "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827",
    "alaw_decode": "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174",
}


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_tables_match_the_reference_bit_for_bit():
    assert digest(g711.ulaw_encode(ALL_INT16)) == REFERENCE["ulaw_encode"]
    assert digest(g711.alaw_encode(ALL_INT16)) == REFERENCE["alaw_encode"]
    assert digest(g711.ULAW_TO_LINEAR.astype("<i2")) == REFERENCE["ulaw_decode"]
    assert digest(g711.ALAW_TO_LINEAR.astype("<i2")) == REFERENCE["alaw_decode"]


@pytest.mark.parametrize("code, value", [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8)])
def test_ulaw_itu_points(code, value):
    assert g711.ulaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize("code, value", [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256)])
def test_alaw_itu_points(code, value):
    assert g711.alaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_round_trip_is_idempotent_and_monotonic(law):
    once = g711.round_trip(ALL_INT16, law)
    assert np.array_equal(g711.round_trip(once, law), once)
    assert np.all(np.diff(once.astype(np.int32)) >= 0)


def test_smallest_nonzero_output_is_eight():
    assert np.min(np.abs(g711.ULAW_TO_LINEAR[g711.ULAW_TO_LINEAR != 0])) == 8
    assert np.min(np.abs(g711.ALAW_TO_LINEAR)) == 8


def test_unknown_law_is_an_error():
    with pytest.raises(ValueError, match="unknown G.711 law"):
        g711.round_trip(ALL_INT16[:10], "g722")
