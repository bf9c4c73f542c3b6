import time
import uuid

import pytest

from pbxguard.audio.files import read_audio
from pbxguard.store.calllog import SQLiteCallLog
from pbxguard.store.captures import Captures
from pbxguard.store.record import CallRecord
from tests.daemon import EXAMPLES
from tests.web.page import WebPage, web_config


def fill(folder, n=130, caller="+12025550143"):
    """A call log with `n` calls a minute apart, every tenth with a real capture; returns the call ids, newest first."""
    log = SQLiteCallLog(folder / "calls.db")
    captures = Captures(folder / "captures", 30, 100)
    opening = read_audio(EXAMPLES / "greeting_beep.wav")
    ids, now = [], time.time()
    for i in range(n):
        call_id = str(uuid.uuid4())
        capture = str(captures.save(call_id, opening)) if i % 10 == 0 else None
        log.record_call(CallRecord(call_id, "screened", started=now - 60 * i, caller=caller, verdict=("human", "machine")[i % 2],
                                   confidence=0.8, scores={"human": 0.8, "machine": 0.2}, action=("BRIDGE", "CHALLENGE")[i % 2],
                                   reason="HUMAN", decided_ms=2000.0, capture=capture,
                                   evidence={"levels": {"rms_dbfs": -27.5, "peak_dbfs": -8.8}, "tones": [], "beep_ms": 1808.0,
                                             "speech_onset_ms": 320.0, "utterances_ms": [[320.0, 1460.0]], "speech_ms": 960.0}))
        ids.append(call_id)
    log.close()
    return ids


@pytest.fixture
def filled(tmp_path):
    return tmp_path, fill(tmp_path)


@pytest.fixture
def page(filled):
    folder, _ = filled
    p = WebPage(web_config(folder))
    yield p
    p.stop()
