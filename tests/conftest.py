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
    from pbxguard.screener import Screener

    return Screener(small_models)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bindirs, "PostgreSQL is not installed: run bash .ci/setup (Debian package postgresql)"
    bindir = bindirs[-1]
    root = tempfile.mkdtemp(prefix="pbxguard-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    subprocess.run([*as_postgres, f"{bindir}/initdb", "-D", data, "--auth=trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


