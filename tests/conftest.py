"""Shared fixtures: a small corpus and a small model trained from it, built once per test session."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from pbxguard.train import corpus, train
from tests.daemon import calls_audio, daemon  # noqa: F401  (fixtures for every test folder)

SMALL_PER_CLASS = 40


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    corpus.build(out, seed=7, per_class=SMALL_PER_CLASS, progress=False)
    return out


@pytest.fixture(scope="session")
def small_models(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    train.train(small_corpus, out, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def screener(small_models):
    from pbxguard.screener.persist import manifest_pin
    from pbxguard.screener.screener import Screener

    return Screener(small_models, manifest_sha256=manifest_pin(small_models))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A real PostgreSQL server of our own, on a free loopback port; `stop()` and `start()` make an outage."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        assert bindirs, "PostgreSQL is not installed: run bash .ci/setup (Debian package postgresql)"
        self.bindir = bindirs[-1]
        self.root = tempfile.mkdtemp(prefix="pbxguard-pg-")
        self.data, self.port = os.path.join(self.root, "data"), _free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        subprocess.run([*self.as_postgres, f"{self.bindir}/initdb", "-D", self.data, "--auth=trust", "-U", "postgres"],
                       check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        subprocess.run([*self.as_postgres, f"{self.bindir}/pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"),
                        "-w", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.as_postgres, f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)


@pytest.fixture(scope="session")
def postgres():
    server = Postgres()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres):
    return postgres.url
