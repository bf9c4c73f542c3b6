"""Fixtures for the tests that run calls through the real PBXs in ../shared/pbx.

In CI (CI=true) a missing PBX is a failure; elsewhere those tests skip and say why.
"""

from __future__ import annotations

import os

import pytest

from pbxguard.testing import pbx as real_pbx


def require(unpack):
    try:
        return unpack()
    except real_pbx.MissingPBX as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the real PBX: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def asterisk_prefix():
    return require(real_pbx.unpack)


@pytest.fixture(scope="session")
def freeswitch_prefix():
    return require(lambda: real_pbx.unpack(real_pbx.FREESWITCH_TARBALL))
