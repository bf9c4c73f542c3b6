"""Labelled captures as a site folder for `pbxguard train --site`: the WAVs and a labels.csv naming their class.

One layout for every way out (the CLI writes a folder, the web page sends a tar of the same files).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from pbxguard.store.calllog import CallLog
from pbxguard.store.record import CallRecord

LABELS_FILE = "labels.csv"


def labelled_captures(log: CallLog) -> list[CallRecord]:
    """Calls with a label and a capture still on disk, newest first."""
    return [r for r in log.calls(limit=10**9) if r.label and r.capture and Path(r.capture).exists()]


def site_files(rows: list[CallRecord]) -> Iterator[tuple[str, Path | bytes]]:
    """(name in the site folder, the capture to copy or the bytes to write), labels.csv last."""
    labels = io.StringIO()
    writer = csv.writer(labels, lineterminator="\n")
    writer.writerow(["file", "class", "subclass"])
    for r in rows:
        assert r.capture is not None  # labelled_captures() keeps only calls with one
        yield f"{r.call_id}.wav", Path(r.capture)
        writer.writerow([f"{r.call_id}.wav", r.label, r.challenge or "manual"])
    yield LABELS_FILE, labels.getvalue().encode()


def write_site_folder(rows: list[CallRecord], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, content in site_files(rows):
        target = out / name
        target.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
