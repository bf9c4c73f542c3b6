"""The `pbxguard` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Per-call work is small matrices: BLAS threads only add overhead and steal the other calls' cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pbxguard import __version__  # noqa: E402  (after the thread limits)
from pbxguard.shipped import MODELS_DIR  # noqa: E402


class _Version(argparse.Action):
    """--version: the package's and the shipped model's; the manifest is read only when asked."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the package's and the shipped model's version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from pbxguard.screener.persist import MANIFEST

        try:
            model = str(json.loads((MODELS_DIR / MANIFEST).read_text())["model_version"])
        except (OSError, ValueError, KeyError):
            model = "missing"
        print(f"pbxguard {__version__} (model {model})")  # on stdout, as argparse's own version action
        parser.exit()


def _said_in_one_line(command):
    """For the commands that read corpora and models: a missing source, an unlabelled folder, a bad label or
    models that do not match their pin is one line naming what is wrong (exit status 2), not a traceback."""

    def run(args) -> int:
        from pbxguard.screener.persist import ModelError  # at call time: the supervisor's commands do not load numpy

        try:
            return command(args)
        except (ValueError, FileNotFoundError, ModelError) as exc:
            print(f"pbxguard: {exc}", file=sys.stderr)
            return 2
    return run


def _screener(args):
    from pbxguard.screener.screener import Screener

    return Screener(args.models, window_ms=args.window_ms, manifest_sha256=args.manifest_sha256)


def _key_evidence(verdict) -> str:
    ev = verdict.evidence
    parts = [f"rms {ev['levels']['rms_dbfs']:.0f} dBFS"]
    if ev["tones"]:
        parts.append("tone " + ev["tones"][0]["name"])
    if ev["utterances_ms"]:
        parts.append(f"speech at {ev['speech_onset_ms']:.0f} ms, {len(ev['utterances_ms'])} utt")
    if ev.get("beep_ms") is not None:
        parts.append(f"beep at {ev['beep_ms']:.0f} ms")
    if "synthetic_voice" in ev:
        parts.append(f"synthetic {ev['synthetic_voice']:.2f}")
    return ", ".join(parts)


ACTION_WORDS = {"BRIDGE": "BRIDGE: put through to the agents", "CHALLENGE": "CHALLENGE: press-a-key test",
                "HANGUP": "HANGUP: hang up"}


@_said_in_one_line
def cmd_classify(args) -> int:
    from pbxguard.audio.files import AudioError, read_audio

    try:
        screener = _screener(args)
    except Exception as exc:  # a broken install must say what is wrong, not dump a traceback
        print(f"pbxguard: cannot load models: {exc}", file=sys.stderr)
        return 2
    from pbxguard.policy.rules import Policy

    policy = Policy()  # what the shipped dialplan would do with the call under the default rules
    failed = 0
    if not args.json:
        print(f"{'file':<40} {'verdict':<16} {'conf':>6} {'decided_ms':>10}  {'action (default policy)':<34} evidence")
    for name in args.files:
        try:
            samples = read_audio(name, min_seconds=args.window_ms / 1000)
        except AudioError as exc:
            print(f"pbxguard: {exc}", file=sys.stderr)
            failed += 1
            continue
        verdict = screener.screen(samples)
        action = policy.decide(verdict).action
        if args.json:
            print(json.dumps({"file": name, **verdict.as_dict(), "action": action}))
        else:
            print(f"{Path(name).name:<40} {verdict.label:<16} {verdict.confidence:>6.3f} "
                  f"{verdict.decided_ms:>10.0f}  {ACTION_WORDS[action]:<34} {_key_evidence(verdict)}")
    return 2 if failed else 0


def cmd_bench(args) -> int:
    from pbxguard import bench

    if args.processes:
        result = bench.run_processes()
    elif args.startup:
        result = bench.run_startup(args.startup, runs=args.rounds * 4)
    elif args.library:
        result = bench.run_library(args.library)
    elif args.web_rows:
        result = bench.run_web(args.web_rows, rounds=args.rounds * 4)
    elif args.avmd:
        result = bench.run_avmd(_screener(args), args.avmd)
    elif args.soak:
        result = bench.run_soak(_screener(args), args.channels or 10, args.soak)
    elif args.sipp:
        result = bench.run_sipp(_screener(args), args.sipp, args.seconds)
    elif args.freeswitch:
        result = bench.run_freeswitch(_screener(args), args.freeswitch, args.seconds, args.workers)
    elif args.channels and args.workers:
        result = bench.run_channels_served(_screener(args), args.channels, args.seconds, args.workers)
    elif args.channels:
        result = bench.run_channels(_screener(args), args.channels, args.seconds, args.pbx)
    else:
        result = bench.run(_screener(args), per_class=args.per_class, rounds=args.rounds)
    for k, v in result.items():
        print(f"{k:<18} {v}")
    return 0


@_said_in_one_line
def cmd_corpus(args) -> int:
    from pbxguard.train import corpus

    labels = corpus.build(args.out, seed=args.seed, per_class=args.per_class, workers=args.workers, progress=not args.quiet,
                          sources_root=args.sources)
    print(f"wrote {labels}")
    return 0


@_said_in_one_line
def cmd_examples(args) -> int:
    from pbxguard.train import corpus

    for path in corpus.write_examples(args.out, sources_root=args.sources):
        print(f"wrote {path}")
    return 0


@_said_in_one_line
def cmd_train(args) -> int:
    from pbxguard.screener.persist import manifest_pin
    from pbxguard.train import train

    manifest = train.train(args.corpus, args.out, seed=args.seed, site=args.site, workers=args.workers, progress=not args.quiet)
    summary = {k: manifest[k] for k in ("model_version", "training_clips", "skipped_clips", "thresholds", "metrics")}
    print(json.dumps({**summary, "manifest_sha256": manifest_pin(args.out)}, indent=2))
    print(f"pin these models in the configuration: engine: {{models: {args.out}, manifest_sha256: {manifest_pin(args.out)}}}",
          file=sys.stderr)
    return 0


@_said_in_one_line
def cmd_eval(args) -> int:
    from pbxguard.train import evaluate

    if args.transcript:
        from pbxguard.asr.engines import EngineError, make_engine
        from pbxguard.asr.stage import TranscriptStage

        try:
            stage = TranscriptStage(make_engine(args.transcript, args.vosk_model), unsure_below=args.unsure_below)
        except EngineError as exc:
            print(f"pbxguard: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(evaluate.transcript_effect(args.folder, _screener(args), stage, args.labels), indent=1))
        return 0

    report = evaluate.run(args.folder, _screener(args), args.labels)
    print(evaluate.format_report(report))
    for problem in report["unreadable"]:
        print(f"pbxguard: {problem}", file=sys.stderr)
    if args.report:
        for path in evaluate.write_report(report, args.report):
            print(f"wrote {path}")
    return 0


def cmd_serve(args) -> int:
    from pbxguard import config as config_module
    from pbxguard import logs

    path = _config_path(args)
    config = str(path) if path else None
    try:
        cfg = config_module.load(config)
    except config_module.ConfigError as exc:
        print(f"pbxguard: {exc}", file=sys.stderr)
        return 2
    if not cfg.watchdog.enabled:
        from pbxguard import server

        return server.main(["--config", config] if config else [])
    from pbxguard.supervisor import Supervisor

    logs.configure(cfg)
    return Supervisor(config, cfg.watchdog.stall_s, cfg.worker_count()).run()


DEFAULT_CONFIG = Path("/etc/pbxguard/pbxguard.yaml")


def _config_path(args) -> Path | None:
    """--config, else /etc/pbxguard/pbxguard.yaml when it exists, else None (the built-in defaults)."""
    return getattr(args, "config", None) or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)


def _config(args):
    from pbxguard import config as config_module

    return config_module.load(_config_path(args))


def _call_log(args, create: bool = True):
    """The configured call log; with `create=False` a missing SQLite file is an error, not a new empty log."""
    from pbxguard.store.calllog import open_call_log

    cfg = _config(args)
    if not create and not cfg.database.url and not Path(cfg.database.path).exists():
        where = cfg.path or "the built-in defaults"
        raise SystemExit(f"pbxguard: no call log at {cfg.database.path} (database.path in {where}; "
                         "is this the daemon's configuration?)")
    return open_call_log(cfg.database.path, cfg.database.url), cfg


def cmd_check_config(args) -> int:
    from pbxguard import config as config_module
    from pbxguard.doctor import startup_checks

    try:
        cfg = config_module.load(args.file or _config_path(args))
    except config_module.ConfigError as exc:
        print(f"pbxguard: {exc}", file=sys.stderr)
        return 2
    problems = [f for f in startup_checks(cfg) if not f.ok]
    for problem in problems:
        print(f"pbxguard: {cfg.path or 'built-in defaults'}: {problem.said}; fix: {problem.fix}", file=sys.stderr)
    if problems:
        return 2
    print(f"{cfg.path or 'built-in defaults'}: ok")
    return 0


def cmd_doctor(args) -> int:
    from pbxguard import config as config_module
    from pbxguard.doctor import examine
    from pbxguard.install import UNIT_PATH

    try:
        cfg = config_module.load(_config_path(args))
    except config_module.ConfigError as exc:
        print(f"FAIL  config: {exc}; fix: correct it (pbxguard check-config tells the same)")
        return 1
    print(f"ok    config: {cfg.path or 'built-in defaults (no /etc/pbxguard/pbxguard.yaml)'}")
    findings = examine(cfg, args.unit or UNIT_PATH, args.asterisk_cli)
    for finding in findings:
        print(finding.line())
    failed = sum(not f.ok for f in findings)
    print(f"{failed} problem{'s' if failed != 1 else ''}" if failed else "no problems found")
    return 1 if failed else 0


def cmd_install(args) -> int:
    from pbxguard.install import InstallError, install

    try:
        return install(dry_run=args.dry_run)
    except InstallError as exc:
        print(f"pbxguard install: {exc}", file=sys.stderr)
        return 2


def cmd_web(args) -> int:
    from pbxguard.web.auth import hash_password

    if args.hash_password:
        import getpass

        if sys.stdin.isatty():
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                print("pbxguard web: the two passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            print("pbxguard web: a password of 8 characters or more, please", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    from pbxguard import logs
    from pbxguard.web.server import WebError, serve

    cfg = _config(args)
    logs.configure(cfg)
    try:
        serve(cfg)
    except WebError as exc:
        print(f"pbxguard web: {exc}", file=sys.stderr)
        return 2
    return 0


def _since(text: str | None) -> float | None:
    import time

    if not text:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1] in units and text[:-1].isdecimal():
        return time.time() - int(text[:-1]) * units[text[-1]]
    raise SystemExit(f"pbxguard: --since takes a number and m, h or d (e.g. 2h), not {text!r}")


def cmd_calls(args) -> int:
    import time

    from pbxguard.screener.verdict import CLASSES

    log_, cfg = _call_log(args, create=False)
    action = args.calls_command or "list"
    if action == "list":
        rows = log_.calls(since=_since(args.since), verdict=args.verdict, limit=args.limit)
        print(f"{'time':<20} {'call id':<37} {'status':<10} {'verdict':<16} {'action':<10} {'challenge':<9} label")
        for r in rows:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
            print(f"{stamp:<20} {r.call_id:<37} {r.status:<10} {r.verdict or '-':<16} {r.action or '-':<10} "
                  f"{r.challenge or '-':<9} {r.label or '-'}")
    elif action == "show":
        record = log_.call(args.id)
        if record is None:
            print(f"pbxguard: no call {args.id}", file=sys.stderr)
            return 2
        print(json.dumps(record.as_dict(), indent=2))
    elif action == "label":
        if args.label not in CLASSES:
            print(f"pbxguard: {args.label!r} is not a verdict class ({', '.join(CLASSES)})", file=sys.stderr)
            return 2
        if not log_.label(args.id, args.label):
            print(f"pbxguard: no call {args.id}", file=sys.stderr)
            return 2
        print(f"{args.id}: {args.label}")
    elif action == "export":
        from pbxguard.store.export import labelled_captures, write_site_folder

        rows = labelled_captures(log_)
        write_site_folder(rows, Path(args.out))
        print(f"exported {len(rows)} labelled calls to {args.out} (train on them: pbxguard train --corpus ... --site {args.out})")
    log_.close()
    return 0


def cmd_list_edit(args) -> int:
    from pbxguard.policy.callerid import CallerIDError, list_pattern

    log_, cfg = _call_log(args)
    try:
        pattern = list_pattern(args.number, cfg.callerid.region)
    except CallerIDError as exc:
        print(f"pbxguard: {exc}", file=sys.stderr)
        return 2
    if args.command == "unlist":
        removed = [kind for kind in ("allow", "deny") if log_.remove_from_list(kind, pattern)]
        print(f"{pattern}: removed from {', '.join(removed) or 'no list'}")
    else:
        log_.add_to_list(args.command, pattern, args.note)
        print(f"{pattern}: on the {args.command} list (the daemon reads the lists at every call)")
    log_.close()
    return 0


def cmd_lists(args) -> int:
    log_, _ = _call_log(args)
    for kind, pattern, note in log_.lists():
        print(f"{kind:<6} {pattern:<20} {note or ''}")
    log_.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pbxguard", description="Screen the first two seconds of phone calls.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)

    def engine_options(p):
        p.add_argument("--models", type=Path, default=MODELS_DIR, help="model folder with manifest.json (default: %(default)s)")
        p.add_argument("--manifest-sha256", default="",
                       help="the pin of models you trained (pbxguard train prints it; the shipped models need none)")
        p.add_argument("--window-ms", type=int, default=2000, help="audio window to classify (default: %(default)s)")

    p = sub.add_parser("classify", help="classify audio files (WAV, .ul/.ulaw, .al/.alaw, .sln/.raw)")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    engine_options(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("bench", help="CPU time per screen() call, p50/p99 latency, peak RSS")
    p.add_argument("--per-class", type=int, default=25)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--channels", type=int, default=0, help="instead: N concurrent fake Asterisk channels through the daemon")
    p.add_argument("--seconds", type=float, default=20.0, help="with --channels: how long each channel keeps calling")
    p.add_argument("--pbx", choices=("asterisk", "freeswitch"), default="asterisk", help="with --channels: which path")
    p.add_argument("--workers", type=int, default=0,
                   help="with --channels or --freeswitch: through `pbxguard serve` with this many workers (default: the daemon in-process)")
    p.add_argument("--sipp", type=int, default=0,
                   help="instead: N concurrent SIPp calls with RTP through the real Asterisk in ../shared/pbx")
    p.add_argument("--freeswitch", type=int, default=0,
                   help="instead: about N concurrent loopback calls through the real FreeSWITCH in ../shared/pbx")
    p.add_argument("--processes", action="store_true",
                   help="instead: resident memory of each process of an idle `pbxguard serve` (ESL and EAGI on)")
    p.add_argument("--startup", type=Path, metavar="FILE",
                   help="instead: wall time of `pbxguard classify FILE` in fresh processes (4 x --rounds runs)")
    p.add_argument("--library", type=Path, metavar="DIR",
                   help="instead: wall time of screen() on DIR's WAVs in a program without the commands' thread limits")
    p.add_argument("--web-rows", type=int, default=0, metavar="N",
                   help="instead: ms to load a page of 100 calls from `pbxguard web` over a call log of N calls")
    p.add_argument("--avmd", type=int, default=0,
                   help="instead: N voicemail beeps found by pbxguard and by mod_avmd in the real FreeSWITCH")
    p.add_argument("--soak", type=float, default=0.0,
                   help="instead: SECONDS of good calls (--channels, default 10) with hostile clients running all along")
    engine_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("corpus", help="build the labelled corpus of call openings")
    corpus_sub = p.add_subparsers(dest="corpus_command", required=True)
    b = corpus_sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--per-class", type=int, default=500)
    b.add_argument("--workers", type=int, default=None)
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_corpus)
    e = corpus_sub.add_parser("examples", help="write one held-out example opening per kind of call")
    e.add_argument("--out", type=Path, required=True)
    for corpus_parser in (b, e):
        corpus_parser.add_argument("--sources", type=Path, default=None,
                            help="the real recordings' repositories (tarballs or clones); default $PBXGUARD_CORPUS_SOURCES "
                                 "or ../shared/corpus-sources")
    e.set_defaults(func=cmd_examples)

    p = sub.add_parser("train", help="train the learned stages and write models/ with its manifest")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--out", type=Path, default=MODELS_DIR)
    p.add_argument("--site", type=Path, action="append", default=[], help="a labelled folder of the site's own calls (repeatable)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", help="run the daemon: FastAGI and AudioSocket for Asterisk")
    p.add_argument("--config", type=Path, help=f"YAML configuration (default: {DEFAULT_CONFIG} if it exists)")
    p.set_defaults(func=cmd_serve)

    def config_option(p, nested: bool = False):
        # A nested command's --config must not reset the one given before it (`calls --config F list`).
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS if nested else None,
                       help=f"YAML configuration (default: {DEFAULT_CONFIG} if it exists)")

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("file", nargs="?", type=Path)
    config_option(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("doctor", help="check this host's install: models, unit, folders, call log, listeners, Asterisk")
    config_option(p)
    p.add_argument("--unit", type=Path, help="the installed unit (default: the one `pbxguard install` writes)")
    p.add_argument("--asterisk-cli", default="", metavar="COMMAND",
                   help="also check Asterisk's modules and dialplan through its CLI, e.g. 'asterisk -rx'")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("install", help="production install as root: user, folders, /etc/pbxguard, the unit (no packages)")
    p.add_argument("--dry-run", action="store_true", help="say what it would do, change nothing")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("web", help="the admin's web page: calls, captures, labels, caller-ID lists (web: in the config)")
    config_option(p)
    p.add_argument("--hash-password", action="store_true",
                   help="print the hash of a password (asked for, or one line on stdin) for web.password_hash")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("calls", help="the call log: list, show, label, export")
    config_option(p)
    calls_sub = p.add_subparsers(dest="calls_command")
    p.set_defaults(func=cmd_calls, since=None, verdict=None, limit=50)
    for name, help_text in (("list", "recent calls"), ("show", "one call as JSON"), ("label", "set a call's label"),
                            ("export", "a labelled folder for pbxguard train --site")):
        c = calls_sub.add_parser(name, help=help_text)
        config_option(c, nested=True)
        if name == "list":
            c.add_argument("--since", help="e.g. 30m, 2h, 7d")
            c.add_argument("--verdict")
            c.add_argument("--limit", type=int, default=50)
        if name in ("show", "label"):
            c.add_argument("id")
        if name == "label":
            c.add_argument("label")
        if name == "export":
            c.add_argument("out")
        c.set_defaults(func=cmd_calls)

    for name, help_text in (("allow", "skip screening for a number or prefix (+1555*)"),
                            ("deny", "reject a number or prefix before answering"), ("unlist", "remove from both lists")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("number")
        p.add_argument("--note", default="")
        config_option(p)
        p.set_defaults(func=cmd_list_edit)
    p = sub.add_parser("lists", help="show the allow and deny lists")
    config_option(p)
    p.set_defaults(func=cmd_lists)

    p = sub.add_parser("eval", help="evaluate on a labelled folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--labels", type=Path, help="labels CSV (default: FOLDER/labels.csv or class subfolders)")
    p.add_argument("--report", type=Path, help="also write report.json, report.txt and plots here")
    p.add_argument("--transcript", choices=("pocketsphinx", "vosk"),
                   help="instead: what the transcript stage changes, with this engine (README, \"Transcripts\")")
    p.add_argument("--vosk-model", default="", help="with --transcript vosk: the model folder")
    p.add_argument("--unsure-below", type=float, default=0.85, help="with --transcript: as transcript.unsure_below")
    engine_options(p)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `pbxguard classify ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
