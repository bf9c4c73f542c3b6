"""The page's pictures, drawn on the server (matplotlib, Agg): a capture's spectrogram, the verdict mix over time."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from pbxguard.audio.files import read_audio
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.features.levels import dbfs

SPECTROGRAM_FRAME = 256  # 32 ms at 8 kHz: the Marchex paper's magnitude spectrogram resolution, near enough


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # not pyplot: no global state between requests

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def spectrogram_png(capture: Path, evidence: dict[str, Any] | None) -> bytes:
    """The capture's spectrogram in dBFS, with the speech the screener heard and the tones and beep it found."""
    samples = read_audio(capture)
    freqs, times, power = signal.spectrogram(samples.astype(np.float64), SAMPLE_RATE, nperseg=SPECTROGRAM_FRAME,
                                             noverlap=SPECTROGRAM_FRAME * 3 // 4, scaling="spectrum")
    fig = _figure(8, 3)
    ax = fig.add_subplot()
    db = dbfs(power)  # the power in each bin, on the screener's scale
    image = ax.pcolormesh(times * 1000, freqs, db, shading="auto", cmap="magma", vmin=-100, vmax=-10)
    fig.colorbar(image, ax=ax, label="dBFS")
    evidence = evidence or {}
    for start, end in evidence.get("utterances_ms", []):
        ax.axvspan(start, end, ymin=0.97, ymax=1.0, color="#4fc3f7")
    for tone in evidence.get("tones", []):
        ax.axvline(tone["start_ms"], color="#81c784", linestyle="--", linewidth=1)
        ax.text(tone["start_ms"], freqs[-1] * 0.9, f" {tone['name']}", color="#81c784", fontsize=8)
    if evidence.get("beep_ms") is not None:
        ax.axvline(evidence["beep_ms"], color="#ffb74d", linewidth=1)
    ax.set_xlabel("ms (blue: speech heard; green: tones; orange: beep)")
    ax.set_ylabel("Hz")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def mix_svg(buckets: list[str], series: dict[str, list[int]], title: str) -> bytes:
    """Stacked bars: calls per bucket of time, one colour per verdict (or action)."""
    fig = _figure(9, 3)
    ax = fig.add_subplot()
    bottom = np.zeros(len(buckets))
    for name, counts in series.items():
        ax.bar(range(len(buckets)), counts, bottom=bottom, label=name, width=0.9)
        bottom += counts
    step = max(1, len(buckets) // 12)
    ax.set_xticks(range(0, len(buckets), step), buckets[::step], fontsize=8)
    ax.set_ylabel("calls")
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=8, ncols=min(len(series), 5), loc="upper left")
    out = io.BytesIO()
    fig.savefig(out, format="svg")
    return out.getvalue()
