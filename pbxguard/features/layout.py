"""The feature layout: which named features the learned stages see, in which order.

A model is trained on one layout and is only valid for it: the manifest pins `LAYOUT_VERSION` and the
names' digest, and the screener refuses a model whose layout is not this one. Change a name, its order
or its meaning, and bump the version.
"""

from __future__ import annotations

import hashlib

from pbxguard.features.spectral import BASIS_FEATURES, MODULATION_FEATURES, SHARE_FEATURES, SPECTRUM_FEATURES
from pbxguard.features.speech import SPREAD_VOICE_FEATURES, VOICE_FEATURES

LAYOUT_VERSION = 2
WINDOW_MS = 2000  # the opening the models are trained on
# The temporal shape of the window (where the speech is, how loud when), which the spectral bases lack.
ACTIVITY_BLOCK_MS = 400
ENVELOPE_BLOCK_MS = 200
ACTIVITY_FEATURES = tuple(f"speech_in_{k * ACTIVITY_BLOCK_MS}_{(k + 1) * ACTIVITY_BLOCK_MS}ms"
                          for k in range(WINDOW_MS // ACTIVITY_BLOCK_MS))
ENVELOPE_FEATURES = tuple(f"level_in_{k * ENVELOPE_BLOCK_MS}_{(k + 1) * ENVELOPE_BLOCK_MS}ms"
                          for k in range(WINDOW_MS // ENVELOPE_BLOCK_MS))

OPENING_FEATURES: tuple[str, ...] = (
    "rms_dbfs", "peak_dbfs", "crest_db", "zero_fraction", "idle_fraction", "outlier_fraction",
    "level_p10", "level_p50", "level_p90", "level_std",
    "onset_ms", "utterances", "speech_ms", "longest_utterance_ms", "first_utterance_ms",
    "trailing_silence_ms", "longest_pause_ms", "speech_snr_db",
    "tonal_fraction", "longest_tonal_ms", "fax_tonal_fraction", "progress_tonal_fraction", "sit_tonal_fraction",
    "beep", "beep_onset_ms",
    *SPECTRUM_FEATURES, *MODULATION_FEATURES, *SHARE_FEATURES, *VOICE_FEATURES, *SPREAD_VOICE_FEATURES,
    *ACTIVITY_FEATURES, *ENVELOPE_FEATURES,
)
# The Marchex dead-air block: the top spectral bases, their energy shares, and the level they lack.
DEADAIR_FEATURES: tuple[str, ...] = (*BASIS_FEATURES, *SHARE_FEATURES, "rms_dbfs", "peak_dbfs")
# One row of the learned stages' X: the dead-air block first, then the opening block.
FEATURES: tuple[str, ...] = (*(f"deadair.{n}" for n in DEADAIR_FEATURES), *(f"opening.{n}" for n in OPENING_FEATURES))


def layout() -> dict:
    """What a manifest records of the layout a model was trained on."""
    digest = hashlib.sha256("\n".join(FEATURES).encode()).hexdigest()
    return {"version": LAYOUT_VERSION, "features": len(FEATURES), "sha256": digest}
