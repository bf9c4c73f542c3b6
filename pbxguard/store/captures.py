"""Captured openings: each screened window saved as a WAV, for labelling and retraining.

File names come from the call id (a uuid the daemon made), never from caller-supplied strings. Callers'
voices: files 0600 and folders 0700, whatever the umask. Retention by age and by total size; the oldest
files go first.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np

from pbxguard.audio.files import write_wav

log = logging.getLogger("pbxguard.captures")


class Captures:
    def __init__(self, directory: str | Path, max_days: float, max_megabytes: float) -> None:
        self.directory = Path(directory)
        self.max_seconds = max_days * 86400.0
        self.max_bytes = int(max_megabytes * 1024 * 1024)

    def save(self, call_id: str, samples: np.ndarray) -> Path:
        name = str(uuid.UUID(call_id))  # raises on anything that is not a uuid: no path tricks
        day = time.strftime("%Y-%m-%d", time.gmtime())
        path = self.directory / day / f"{name}.wav"
        for folder in (self.directory, path.parent):
            if not folder.exists():
                folder.mkdir(parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
        write_wav(path, samples, mode=0o600)
        return path

    def prune(self, now: float | None = None) -> int:
        """Delete captures past the age limit, then the oldest until under the size limit; returns how many."""
        now = time.time() if now is None else now
        files = sorted((p.stat().st_mtime, p.stat().st_size, p) for p in self.directory.glob("*/*.wav"))
        removed, total = 0, sum(size for _, size, _ in files)
        for mtime, size, path in files:
            if now - mtime <= self.max_seconds and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        for day in self.directory.glob("*"):
            if day.is_dir() and not any(day.iterdir()):
                day.rmdir()
        if removed:
            log.info("captures: removed %d old files", removed)
        return removed
