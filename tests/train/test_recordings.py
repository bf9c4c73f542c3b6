"""The real recordings: read from the pinned tarballs in ../shared/corpus-sources, licence-filtered, provenance
recorded, held out by speaker; a missing or altered source is a clear error."""

import csv
import subprocess

import numpy as np
import pytest

from pbxguard.train import recordings


@pytest.fixture(scope="module")
def root():
    return recordings.sources_dir()


@pytest.fixture(scope="module")
def precise(root):
    return recordings.Checkout(recordings.PRECISE, root)


def test_only_files_a_precise_waiver_names_are_used(precise):
    waived = recordings.precise_waivers(precise)
    speech, rooms = recordings.precise_speech(precise)
    every_wav = precise.paths(r".+\.wav")
    used = {s.id.split(":", 1)[1] for s in speech + rooms}
    assert used and all(p.rsplit("/", 1)[-1] in waived for p in used)
    assert {s.licence for s in speech} <= {f"public domain waiver ({lic})" for _, lic in waived.values()}
    # a file of the repository that no waiver names is never read
    unwaived = [p for p in every_wav if p.rsplit("/", 1)[-1] not in waived]
    assert unwaived and not set(unwaived) & used


def test_speakers_are_the_split_units(root):
    digits = recordings.digit_speakers(recordings.Checkout(recordings.DIGITS, root))
    assert {s.split_unit for s in digits} == {f"digits:{n}" for n in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")}
    assert all(s.licence == "CC-BY-SA-4.0" and s.origin.startswith("github:Jakobovski/free-spoken-digit-dataset@26eb9aa")
               for s in digits)


def test_a_missing_source_names_what_to_get(root, tmp_path):
    for repo in recordings.REPOSITORIES[1:]:
        (tmp_path / repo.tarball).symlink_to((root / repo.tarball).resolve())
    with pytest.raises(recordings.SourcesError, match="Jakobovski/free-spoken-digit-dataset missing.*26eb9aaf76e8"):
        recordings.load(tmp_path)


def test_an_altered_tarball_is_refused(tmp_path):
    (tmp_path / recordings.DIGITS.tarball).write_bytes(b"not the pinned archive")
    with pytest.raises(recordings.SourcesError, match="is not the pinned"):
        recordings.Checkout(recordings.DIGITS, tmp_path)


def test_a_clone_at_another_commit_is_refused(tmp_path):
    clone = tmp_path / recordings.DIGITS.name
    clone.mkdir()
    (clone / "README.md").write_text("a different tree\n")
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    with pytest.raises(recordings.SourcesError, match="must be a git clone of Jakobovski/free-spoken-digit-dataset at 26eb9aa"):
        recordings.Checkout(recordings.DIGITS, tmp_path)


def test_no_sources_folder_says_how_to_get_them(tmp_path):
    with pytest.raises(recordings.SourcesError, match="--sources DIR or set PBXGUARD_CORPUS_SOURCES"):
        recordings.sources_dir(tmp_path / "absent")


def test_room_tone_is_the_quiet_part_of_a_recording():
    rng = np.random.default_rng(0)
    words = rng.standard_normal(8000) * 3000
    room = rng.standard_normal(8000) * 10
    tone = recordings.room_tone(np.concatenate([room, words, room]).astype(np.int16))
    assert len(tone) == 16000 and np.std(tone) < 20


def test_the_corpus_records_every_recorded_source_it_uses(small_corpus):
    with open(small_corpus / "sources.csv") as f:
        provenance = {r["id"]: r for r in csv.DictReader(f)}
    with open(small_corpus / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    used = {s.split("@")[0] for r in rows for s in r["source"].split("|")}
    recorded = {s for s in used if s.split(":", 1)[0] in recordings.RECORDED_GROUPS}
    assert recorded and recorded <= set(provenance)
    for source in recorded:
        row = provenance[source]
        assert row["origin"] and row["licence"], source
    # one speaker (or file) is in one split only, whichever of its recordings a clip used
    split_of_unit = {}
    for r in rows:
        for s in r["source"].split("|"):
            unit = provenance.get(s.split("@")[0], {}).get("unit")
            if unit:
                assert split_of_unit.setdefault(unit, r["split"]) == r["split"], unit
