"""Bad clients on both listeners while good calls go through: the good calls must not notice."""

import asyncio

import pytest

from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.hostile import audiosocket_abuse, garbage, half_open, huge_header, silent, slow_loris
from tests.daemon import Daemon

HEADER_TIMEOUT_S = 30.0  # far longer than the good calls take: a blocked loop would show


@pytest.fixture(scope="module")
def patient_daemon():
    d = Daemon(fastagi={"header_timeout_s": HEADER_TIMEOUT_S}, audiosocket={"first_frame_timeout_s": HEADER_TIMEOUT_S})
    yield d
    d.stop()


def test_bad_clients_leave_good_calls_alone(patient_daemon, calls_audio):
    d = patient_daemon
    fake = FakeAsterisk("127.0.0.1", d.agi_port)

    async def good_calls():
        return await asyncio.gather(*(fake.call(calls_audio[k]) for k in ("live", "dead_air", "fax")))

    baseline = asyncio.run(good_calls())

    async def under_attack():
        stop = asyncio.Event()
        loris = asyncio.ensure_future(slow_loris(d.agi_port, stop))
        quiet = [asyncio.ensure_future(silent(p, stop)) for p in (d.agi_port, d.audio_port)]
        await asyncio.sleep(0.2)
        attacks = asyncio.gather(huge_header(d.agi_port), garbage(d.agi_port), half_open(d.agi_port),
                                 audiosocket_abuse(d.audio_port))
        good = await good_calls()
        stop.set()
        await attacks
        await asyncio.gather(*quiet)
        return good, await loris

    good, loris_still_waiting = asyncio.run(under_attack())
    assert loris_still_waiting, "the good calls finished only after the slow client gave up"
    for before, after in zip(baseline, good):
        assert after.agistatus == "SUCCESS"
        for name in ("PBXGUARD_VERDICT", "PBXGUARD_ACTION", "PBXGUARD_DECIDED_MS"):
            assert after.variables[name] == before.variables[name]
