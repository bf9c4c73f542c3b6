"""The real-PBX harness: each tarball is checked against SHA256SUMS before it is unpacked."""

import shutil

import pytest

from pbxguard.testing import pbx


@pytest.mark.parametrize("name", [pbx.TARBALL, pbx.FREESWITCH_TARBALL])
def test_each_tarball_is_checked_against_its_own_sum(tmp_path, monkeypatch, name):
    real, shared = pbx.SHARED_PBX, tmp_path / "shared"
    shared.mkdir()
    if not (real / name).exists():
        pytest.skip(f"{real / name} is missing")  # the real-PBX tests fail on that in CI
    shutil.copy(real / "SHA256SUMS", shared / "SHA256SUMS")
    (shared / name).write_bytes(b"not the tarball")  # a file of that name with the wrong contents
    monkeypatch.setattr(pbx, "SHARED_PBX", shared)
    monkeypatch.setattr(pbx, "BUILD", tmp_path / "build")
    with pytest.raises(pbx.MissingPBX, match="is not the one in SHA256SUMS"):
        pbx.unpack(name)
    shutil.copy(real / name, shared / name)
    assert pbx.unpack(name).name == name.split("-debian12")[0]
