"""`pbxguard eval`: the whole engine (detectors, learned stages, policy) on a labelled folder.

Reports per-class precision, recall, F1 and support, the confusion matrix, macro-F1, one-vs-rest ROC-AUC,
the live-caller false-block rate, and the project's own targets. `--report` also writes JSON, Markdown
and (with matplotlib installed) PNG plots.

On a corpus split the same report is also given for two parts of it (`parts`): the clips made from real
recordings (a real speaker, room, noise or music track: `recordings.RECORDED_GROUPS`) and the clips made
from Debian's voices and pbxguard's own signals only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

from pbxguard.asr.stage import TranscriptStage
from pbxguard.audio.files import AudioError, read_audio
from pbxguard.policy.rules import Policy
from pbxguard.screener.screener import Screener
from pbxguard.screener.verdict import CLASSES
from pbxguard.train.dataset import read_labelled
from pbxguard.train.recordings import RECORDED_GROUPS

PARTS = ("recorded", "generated")
T30_TONES = ("fax_cng", "fax_ced", "fax_v21", "cng_ringback")  # the fax openings a detector can prove; modems it cannot


def recorded(source: str) -> bool:
    """A clip made from at least one real recording (its source ids are "group:path@...", "|"-joined)."""
    return any(s.split(":", 1)[0] in RECORDED_GROUPS for s in source.split("|"))


def run(folder: str | Path, screener: Screener, labels_csv: str | Path | None = None, policy: Policy | None = None) -> dict:
    policy = policy or Policy()
    clips = read_labelled(folder, labels_csv)
    truth, predicted, actions, scores, synthetic, subclasses, errors, proven, real = [], [], [], [], [], [], [], [], []
    decided, horizons = [], []
    horizons_ms = screener.early.horizons_ms if screener.early else ()
    # A call answered early was captured up to its answer: as long as the earliest horizon, the engine replays it.
    shortest_ms = min((*horizons_ms, screener.window_ms))
    for clip in clips:
        try:
            samples = read_audio(clip.path, min_seconds=shortest_ms / 1000)
        except AudioError as exc:
            errors.append(str(exc))
            continue
        verdict = screener.screen(samples)
        truth.append(clip.label)
        subclasses.append(clip.subclass)
        real.append(recorded(clip.source))
        predicted.append(verdict.label)
        proven.append(verdict.proven)
        decided.append(verdict.decided_ms)
        horizons.append(screener.prefix_answers(samples))
        actions.append(policy.decide(verdict).action)
        scores.append([verdict.scores[c] for c in CLASSES])
        synthetic.append(verdict.label == "machine" and verdict.evidence.get("synthetic_voice", 0.0) >= 0.5)
    columns = {"truth": np.array(truth), "predicted": np.array(predicted), "actions": np.array(actions),
               "scores": np.array(scores), "synthetic": np.array(synthetic), "subclasses": np.array(subclasses),
               "proven": np.array(proven, dtype=bool), "decided": np.array(decided, dtype=float),
               "horizons": np.array(horizons, dtype=str).reshape(len(truth), len(horizons_ms))}
    report = metrics(**columns, errors=errors, horizons_ms=horizons_ms, window_ms=screener.window_ms)
    if any(c.source for c in clips):
        mask = np.array(real, dtype=bool)
        report["parts"] = {part: metrics(**{k: v[m] for k, v in columns.items()}, errors=[], horizons_ms=horizons_ms,
                                         window_ms=screener.window_ms)
                           for part, m in zip(PARTS, (mask, ~mask)) if m.any()}
    return report


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> float | None:
    n = int(denominator.sum())
    return round(float((numerator & denominator).sum() / n), 4) if n else None


def _times(decided: np.ndarray) -> dict[str, float | None]:
    if not len(decided):
        return {"median": None, "p90": None}
    return {"median": round(float(np.median(decided)), 1), "p90": round(float(np.percentile(decided, 90)), 1)}


def decision_times(truth: np.ndarray, decided: np.ndarray, window_ms: float) -> dict:
    """`decided_ms` (the audio time of the answer) over all clips and per true class, with the share
    answered before the window's end."""
    times = {"all": _times(decided)} | {c: _times(decided[truth == c]) for c in CLASSES if (truth == c).any()}
    return {"early_share": round(float(np.mean(decided < window_ms)), 4) if len(decided) else None, **times}


def horizon_accuracy(truth: np.ndarray, predicted: np.ndarray, horizons: np.ndarray, horizons_ms) -> dict[str, float | None]:
    """Accuracy of each early horizon's classifier alone (no threshold) and of the engine's answers."""
    accuracy = {str(int(h)): round(float(np.mean(horizons[:, k] == truth)), 4) if len(truth) else None
                for k, h in enumerate(horizons_ms)}
    return accuracy | {"engine": round(float(np.mean(predicted == truth)), 4) if len(truth) else None}


def metrics(truth, predicted, actions, scores, synthetic, subclasses, errors, proven, decided, horizons, horizons_ms,
            window_ms) -> dict:
    """`proven`: decided by a detector. The tone and fax recalls count only those: an unproven fax or tone
    is challenged, not hung up, so only a proof does what the target is about. `decided`: each answer's
    decided_ms; `horizons`: each early horizon's answer per clip (columns in `horizons_ms` order)."""
    present = [c for c in CLASSES if c in set(truth) or c in set(predicted)]
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=present, zero_division=0)
    auc = {}
    for k, c in enumerate(CLASSES):
        positive = truth == c
        if 0 < positive.sum() < len(truth):
            auc[c] = round(float(roc_auc_score(positive, scores[:, k])), 4)
    human, silence = truth == "human", truth == "silence"
    said_silence = predicted == "silence"
    speech = np.isin(truth, ["human", "machine"])
    on_spec = ~np.char.startswith(subclasses.astype(str), "offspec")
    robocall = subclasses == "robocall"
    targets = {
        "deadair_recall": _rate(said_silence, silence),
        "deadair_precision_vs_live": _rate(silence, said_silence & (silence | human)),
        "digital_silence_recall": _rate(predicted == "digital_silence", truth == "digital_silence"),
        "deadair_taken_for_digital_silence": _rate(predicted == "digital_silence", silence),
        "tone_recall_on_spec_proven": _rate((predicted == "tone") & proven, (truth == "tone") & on_spec),
        "fax_recall_proven": _rate((predicted == "fax") & proven, (truth == "fax") & np.isin(subclasses, T30_TONES)),
        "speech_taken_for_tone_or_fax": _rate(np.isin(predicted, ["tone", "fax"]), speech),
        "live_vs_machine_accuracy": _rate(predicted == truth, speech),
        "synthetic_voice_f1": round(float(f1_score(robocall[speech], synthetic[speech], zero_division=0)), 4) if speech.any() else None,
        "live_false_block_rate": _rate(actions != "BRIDGE", human),
        "live_hung_up": _rate(actions == "HANGUP", human),
        "fax_modem_recall": _rate(predicted == "fax", truth == "fax"),
        "noise_recall": _rate(predicted == "noise", truth == "noise"),
        "music_precision": _rate(truth == "music", predicted == "music"),
        "non_human_bridged_as_human": _rate((predicted == "human") & (actions == "BRIDGE"),
                                            ~np.isin(truth, ["human", "digital_silence"])),
    }
    true_present = [c for c in present if c in set(truth)]
    return {
        "clips": int(len(truth)),
        "unreadable": errors,
        "per_class": {c: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
                          "support": int(s[i])} for i, c in enumerate(present)},
        "macro_f1": round(float(f1_score(truth, predicted, labels=true_present, average="macro", zero_division=0)), 4),
        "roc_auc": auc,
        "confusion": {"labels": present, "matrix": confusion_matrix(truth, predicted, labels=present).tolist()},
        "targets": targets,
        "actions": {a: int((actions == a).sum()) for a in ("BRIDGE", "CHALLENGE", "HANGUP")},
        "decision_ms": decision_times(truth, decided, window_ms),
        "horizon_accuracy": horizon_accuracy(truth, predicted, horizons, horizons_ms),
    }


def format_report(report: dict) -> str:
    lines = [f"{report['clips']} clips, {len(report['unreadable'])} unreadable"]
    lines.append(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for c, m in report["per_class"].items():
        lines.append(f"{c:<16}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}")
    lines.append(f"macro-F1 {report['macro_f1']:.4f}")
    lines.append("ROC-AUC  " + "  ".join(f"{c} {v:.4f}" for c, v in report["roc_auc"].items()))
    labels = report["confusion"]["labels"]
    short = [c[:7] for c in labels]
    lines.append("confusion (rows: truth, columns: verdict)")
    lines.append(f"{'':<16}" + "".join(f"{c:>8}" for c in short))
    for c, row in zip(labels, report["confusion"]["matrix"]):
        lines.append(f"{c:<16}" + "".join(f"{v:>8}" for v in row))
    lines.append("targets")
    for k, v in report["targets"].items():
        lines.append(f"  {k:<36}{'n/a' if v is None else f'{v:.4f}'}")
    lines.append("actions  " + "  ".join(f"{a} {n}" for a, n in report["actions"].items()))
    times = report["decision_ms"]
    lines.append(f"decided_ms (median / p90), {times['early_share']:.1%} before the window's end" if times["early_share"] is not None
                 else "decided_ms")
    for c, t in times.items():
        if c != "early_share" and t["median"] is not None:
            lines.append(f"  {c:<16}{t['median']:>8.0f}{t['p90']:>8.0f}")
    lines.append("accuracy by horizon (each prefix classifier alone; engine: the answers given)  " +
                 "  ".join(f"{h} {'n/a' if a is None else f'{a:.4f}'}" for h, a in report["horizon_accuracy"].items()))
    for part, sub in report.get("parts", {}).items():
        lines.append("")
        lines.append(f"== {part} part: " + ("clips made from real recordings" if part == "recorded"
                                             else "clips made from Debian voices and generated signals only"))
        lines.append(format_report(sub))
    return "\n".join(lines)


def write_report(report: dict, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json", out / "report.txt"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    written[1].write_text(format_report(report) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    labels = report["confusion"]["labels"]
    matrix = np.array(report["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_xlabel("verdict")
    ax.set_ylabel("truth")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    written.append(out / "confusion.png")
    return written


def transcript_effect(folder: str | Path, screener: Screener, stage: TranscriptStage, labels_csv: str | Path | None = None,
                      policy: Policy | None = None) -> dict:
    """What the transcript stage changes on a labelled folder: live-vs-machine accuracy (clips of either
    class called right), live callers not bridged, machines bridged, the verdicts it moved, and the CPU of
    each transcript (engine time in its thread), overall and per part (recorded, generated)."""
    policy = policy or Policy()
    rows = []
    for clip in read_labelled(folder, labels_csv):
        try:
            samples = read_audio(clip.path, min_seconds=screener.window_ms / 1000)
        except AudioError:
            continue
        screened = screener.screen(samples)
        revised = stage.revise_now(screened, samples)
        done = revised.evidence.get("transcript")
        rows.append((clip.label, screened.label, revised.label, policy.decide(screened).action, policy.decide(revised).action,
                     done["cpu_ms"] if done else np.nan, done is not None, recorded(clip.source), bool(done and done["blank"])))
    if not rows:
        return {"clips": 0}
    truth, before, after, act0, act1, cpu, ran, real, blank = (np.array(c) for c in zip(*rows))

    def summary(m: np.ndarray) -> dict:
        lvm = m & np.isin(truth, ("human", "machine"))
        humans, machines = m & (truth == "human"), m & (truth == "machine")
        spent = cpu[m & ran]
        return {
            "clips": int(m.sum()), "transcribed": int((m & ran).sum()), "verdicts_moved": int((m & (before != after)).sum()),
            "moved_right": int((m & (before != after) & (after == truth)).sum()),
            "moved_wrong": int((m & (before != after) & (before == truth)).sum()),
            "live_vs_machine_accuracy": {"without": _rate(before == truth, lvm), "with": _rate(after == truth, lvm)},
            "live_callers_not_bridged": {"without": _rate(act0 != "BRIDGE", humans), "with": _rate(act1 != "BRIDGE", humans)},
            "machines_bridged": {"without": _rate(act0 == "BRIDGE", machines), "with": _rate(act1 == "BRIDGE", machines)},
            "dead_air_blank": _rate(blank, m & ran & (before == "silence")),
            "cpu_ms_per_transcript": {"median": round(float(np.median(spent)), 1) if len(spent) else None,
                                      "p99": round(float(np.percentile(spent, 99)), 1) if len(spent) else None},
        }

    everything = np.ones(len(truth), dtype=bool)
    return {"engine": stage.engine.name, "unsure_below": stage.unsure_below, **summary(everything),
            "parts": {part: summary(m) for part, m in zip(PARTS, (real, ~real)) if m.any()}}
