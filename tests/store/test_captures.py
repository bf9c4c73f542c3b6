import os
import time
import uuid

import numpy as np
import pytest

from pbxguard.audio.files import read_audio
from pbxguard.store.captures import Captures


def test_save_names_files_by_call_id_only(tmp_path):
    captures = Captures(tmp_path, max_days=30, max_megabytes=100)
    call_id = str(uuid.uuid4())
    path = captures.save(call_id, np.arange(16000, dtype=np.int16))
    assert path.name == f"{call_id}.wav" and path.parent.parent == tmp_path
    assert np.array_equal(read_audio(path), np.arange(16000, dtype=np.int16))
    for hostile in ("../../etc/passwd", "x/../y", "+15551230000"):
        with pytest.raises(ValueError):
            captures.save(hostile, np.zeros(10, dtype=np.int16))


def test_retention_by_age_and_by_size(tmp_path):
    captures = Captures(tmp_path, max_days=1, max_megabytes=0.1)  # 100 KB: three 32 KB captures
    now = time.time()
    paths = [captures.save(str(uuid.uuid4()), np.zeros(16000, dtype=np.int16)) for _ in range(5)]
    for age_days, path in zip((3, 0.5, 0.4, 0.3, 0.2), paths):
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    assert captures.prune(now) == 2  # the 3-day-old one for age, then the oldest for size
    assert [p.exists() for p in paths] == [False, False, True, True, True]


def test_callers_data_is_private_whatever_the_umask(tmp_path):
    import os
    import stat

    from pbxguard.store.calllog import SQLiteCallLog
    from pbxguard.store.record import CallRecord

    old = os.umask(0)
    try:
        saved = Captures(tmp_path / "captures", 30, 100).save("6f1c2a52-0000-4000-8000-000000000001", np.zeros(80, np.int16))
        log = SQLiteCallLog(tmp_path / "db" / "calls.db")
        log.record_call(CallRecord("6f1c2a52-0000-4000-8000-000000000001", "screened", caller="+12025550143"))
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert modes == {"captures": 0o700, saved.parent.relative_to(tmp_path).as_posix(): 0o700,
                     saved.relative_to(tmp_path).as_posix(): 0o600, "db": 0o700, "db/calls.db": 0o600,
                     "db/calls.db-wal": 0o600, "db/calls.db-shm": 0o600}


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root, as CI runs")
def test_a_call_log_made_by_root_in_the_daemons_folder_is_the_daemons(tmp_path):
    # `pbxguard deny ...` run as root before the daemon's first start must not leave it a call log it cannot open.
    from pbxguard.store.calllog import SQLiteCallLog
    from pbxguard.store.record import CallRecord

    assert os.geteuid() == 0, "CI runs as root"
    folder = tmp_path / "state"
    folder.mkdir()
    os.chown(folder, 65534, 65534)  # nobody
    log = SQLiteCallLog(folder / "calls.db")
    log.record_call(CallRecord("6f1c2a52-0000-4000-8000-000000000002", "screened"))
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in folder.iterdir()}
    log.close()
    assert owners == {name: (65534, 65534) for name in ("calls.db", "calls.db-wal", "calls.db-shm")}
