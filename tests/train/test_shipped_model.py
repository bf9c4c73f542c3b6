"""The shipped model is what README's commands make from the named sources: its three reproduction lines,
run as written (each a fresh process, as an admin runs them) into a temporary folder."""

import json

from pbxguard.audio.files import read_audio
from pbxguard.screener.persist import MANIFEST, MODEL_FILE, SHIPPED_MANIFEST_SHA256, sha256_of
from pbxguard.screener.screener import Screener
from pbxguard.shipped import MODELS_DIR
from tests.readme import REPRODUCE, lines_to_run, run_line
from tests.streaming import same_answer, streamed


def test_the_shipped_model_byte_reproduces_from_readmes_commands(tmp_path):
    shipped = json.loads((MODELS_DIR / MANIFEST).read_text())
    said = [run_line(line, {"build/corpus": str(tmp_path / "corpus"), "--out pbxguard/models": f"--out {tmp_path / 'models'}"},
                     timeout=1800, activated=True) for line in lines_to_run(REPRODUCE)]
    rebuilt = json.loads((tmp_path / "models" / MANIFEST).read_text())
    assert rebuilt["corpus_sha256"] == shipped["corpus_sha256"]  # the same corpus, byte for byte, first
    assert sha256_of(tmp_path / "models" / MODEL_FILE) == shipped["files"][MODEL_FILE]["sha256"]
    assert rebuilt["thresholds"] == shipped["thresholds"]
    # The manifest too, byte for byte: its hash is the pin in the package code.
    assert sha256_of(tmp_path / "models" / MANIFEST) == sha256_of(MODELS_DIR / MANIFEST) == SHIPPED_MANIFEST_SHA256
    assert "macro-F1" in said[-1].stdout  # README's eval line

    # One decision path: on every clip of the shipped model's test split, the stream fed as AudioSocket and
    # a recording reader feed it gives what batch `screen()` gives, at the same decided_ms.
    screener = Screener()
    for clip in sorted((tmp_path / "corpus" / "test").glob("*.wav")):
        samples = read_audio(clip)
        assert same_answer(streamed(screener, samples), screener.screen(samples)), clip.name
