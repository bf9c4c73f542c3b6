"""The screening service, whatever the PBX: what the AGI routes `screen`, `challenge` and `check` do.

Asterisk reaches it over FastAGI (`agi://HOST:4573/screen`) and AudioSocket; the EAGI and FreeSWITCH relays
reach the same routes over the daemon's local sockets, with the audio coming another way.

screen (AGI arguments: inbound|outbound, window ms, the dialled number, the STIR/SHAKEN attestation and
verification result, see `policy.identity`): make a call id (uuid4), ask Asterisk to stream the
caller's audio with `EXEC AudioSocket "<id>,<our address>"` (a relayed call brings its own id and audio),
let the audio side feed the call until the verdict is ready (then it closes the socket and AudioSocket()
returns), and set the channel variables. If the caller hangs up first, nothing is set and the call is
logged as abandoned. If anything else goes wrong the variables say BRIDGE: pbxguard fails open.

challenge (AGI arguments: call id, PASS|FAIL, digits pressed): the Turing test's outcome, reported by the
dialplan; failed challenges are the labels for retraining.

check (before the call is answered): the caller-ID lists. Sets PBXGUARD_LIST to DENY (the dialplan
rejects the call unanswered), ALLOW (screening is skipped) or NONE.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from pbxguard.asr.stage import TranscriptStage
from pbxguard.config import Config
from pbxguard.policy.callerid import DENY, RATE_WINDOW_S, Caller, CallerIndex
from pbxguard.policy.callers import CallerRules
from pbxguard.policy.identity import NOT_CHECKED, Identity
from pbxguard.policy.rules import Decision, Policy
from pbxguard.protocols import agi
from pbxguard.protocols.fastagi import AGIError, FastAGIRequest
from pbxguard.relays.contract import CALL_ID_HEADER, DTMF_KEYS
from pbxguard.screener.verdict import CLASSES, Verdict
from pbxguard.service import calls
from pbxguard.service.calls import CallRegistry
from pbxguard.service.channel_vars import INBOUND, OUTBOUND, channel_variables, fail_open_variables
from pbxguard.service.recorder import Recorder
from pbxguard.store.record import CallRecord

log = logging.getLogger("pbxguard.screening")

AUDIO_GRACE_S = 3.0  # beyond the window: AudioSocket connects and its first frames arrive
MAX_DIGITS = 16


def canonical_uuid(text: str) -> str | None:
    """`text` as pbxguard writes a call id (a canonical uuid), or None if it is not one."""
    try:
        return str(uuid.UUID(text)) if len(text) == 36 else None
    except ValueError:
        return None


class ScreeningService:
    def __init__(self, registry: CallRegistry, recorder: Recorder, config: Config,
                 transcripts: TranscriptStage | None = None) -> None:
        self.registry = registry
        self.transcripts = transcripts
        self.recorder = recorder
        self.callers = CallerIndex(config.callerid.region)
        self.audiosocket_address = config.audiosocket.advertise
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """The settings a reload may change while calls are in progress: policy and caller-ID rules."""
        self.policy = Policy(config.policy.rules, config.policy.low_confidence_action)
        self.caller_rules: CallerRules = config.callerid  # the config's caller-ID section is the rules
        self.callers.region = config.callerid.region

    def routes(self) -> dict[str, Callable[[FastAGIRequest], Awaitable[None]]]:
        return {"screen": self.screen, "challenge": self.challenge, "check": self.check}

    async def _caller(self, request: FastAGIRequest, identity: Identity = NOT_CHECKED) -> Caller:
        caller = self.callers.classify(request.headers.get("agi_callerid", ""), await self.recorder.lists(), identity=identity)
        if not self.caller_rules.max_calls_per_minute:
            return caller
        # Other workers and other daemons on the same database took some of this caller's calls: the call log
        # counts the finished ones, this worker also its own in progress.
        logged = await self.recorder.calls_from(caller.e164 or caller.raw, time.time() - RATE_WINDOW_S)
        return dataclasses.replace(caller, calls_last_minute=max(caller.calls_last_minute, logged + 1))

    @staticmethod
    def _details(request: FastAGIRequest, call_id: str, mode: str = "") -> CallRecord:
        headers = request.headers
        return CallRecord(call_id, status="", channel=headers.get("agi_channel", ""),
                          uniqueid=headers.get("agi_uniqueid", ""), caller=headers.get("agi_callerid", ""),
                          called=headers.get("agi_extension", ""), mode=mode)

    async def check(self, request: FastAGIRequest) -> None:
        caller = await self._caller(request)
        listed = (caller.listed or "none").upper()
        if caller.listed:
            status = "denied" if caller.listed == DENY else "allowed"
            record = self._details(request, str(uuid.uuid4())).with_(status=status, reason=f"{listed}_LIST")
            await self.recorder.call(record, caller)
        await self._set(request, {"PBXGUARD_LIST": listed})

    async def screen(self, request: FastAGIRequest) -> None:
        args = request.args
        mode = args[0].lower() if args and args[0].lower() in (INBOUND, OUTBOUND) else INBOUND
        window = int(args[1]) if len(args) > 1 and args[1].isdecimal() else None
        relayed = self._relayed_call_id(request)  # a relay's call: the audio comes from the relay
        call_id = relayed or str(uuid.uuid4())
        details = self._details(request, call_id, mode)
        if len(args) > 2 and args[2]:  # inside the Gosub the extension is `s`: the dialplan passes the number
            details = details.with_(called=args[2])
        call = self.registry.open(details, window, beep_window_ms=(window or 0) if mode == OUTBOUND else 0)
        caller = await self._caller(request, Identity.from_pbx(*(args[3:5] + ["", ""])[:2]))
        try:
            if relayed:
                reply = {}
                verdict = await calls.outcome(call, timeout=call.stream.most_ms / 1000 + AUDIO_GRACE_S)
            else:
                reply = await request.send_command(f'EXEC AudioSocket "{call_id},{self.audiosocket_address}"',
                                                   timeout=call.stream.most_ms / 1000 + AUDIO_GRACE_S)
                verdict = await calls.outcome(call, timeout=0.5 if call.outcome.done() else AUDIO_GRACE_S)
            # A verdict in hand is sent whatever became of the audio socket: AudioSocket() fails (-1) when it
            # reads a reset after our close, and the channel is still there.
            if request.hung_up or (verdict is None and (reply.get("error") == "AGIAppError" or call.audio_started)):
                await self.recorder.call(self._record(call, None, None, "abandoned"), caller)
                return
            if verdict is None:
                await self.recorder.call(self._record(call, None, None, "no_audio"), caller)
                await self._set(request, fail_open_variables(call_id, "NO_AUDIO"))
                return
            if self.transcripts is not None:
                verdict = await self.transcripts.revise(verdict, call.stream.samples)
            decision = self.policy.decide(verdict, self.caller_rules.signals(caller))
            variables = channel_variables(verdict, decision, call_id, mode)
            window_end = time.monotonic()
            # Acknowledged (committed or spooled) before the verdict is sent: a crash after this loses no row whose
            # verdict went out.
            await self.recorder.call(self._record(call, verdict, decision, "screened"), caller, call.stream.samples)
            await self._set(request, variables)
            self.recorder.metrics.verdict_sent(time.monotonic() - window_end)
        except AGIError as exc:
            await self.recorder.call(self._record(call, None, None, "agi_error", error=str(exc)), caller)
            raise
        finally:
            self.registry.close(call_id)

    @staticmethod
    def _relayed_call_id(request: FastAGIRequest) -> str | None:
        """The call id a relay of ours made (a uuid, over a Unix socket); from anyone else it is ignored."""
        offered = request.headers.get(CALL_ID_HEADER)
        if offered is None:
            return None
        if request.local and (call_id := canonical_uuid(offered)):
            return call_id
        log.warning("screen: ignoring %s %r from %s", CALL_ID_HEADER, offered[:64],
                    "a relay" if request.local else "a TCP peer (only pbxguard's relays name calls)")
        return None

    async def _set(self, request: FastAGIRequest, variables: dict[str, str]) -> None:
        # One command at a time, not pipelined: Asterisk 22's res_agi reads commands through a stdio buffer and
        # then waits on the socket, so a second command already in its buffer waits for more bytes (seen on the
        # real 22.10.1: pipelined SET VARIABLEs got no reply for 5 s). So the verdict goes in one MSet.
        for command in agi.set_variables(variables):
            await request.send_command(command)

    @staticmethod
    def _record(call: calls.Call, verdict: Verdict | None, decision: Decision | None, status: str,
                error: str = "") -> CallRecord:
        record = call.record.with_(status=status, audio_ms=call.stream.received_ms, error=error)
        if verdict is not None:
            record = record.with_(verdict=verdict.label, confidence=round(verdict.confidence, 4),
                                  scores={c: round(verdict.scores[c], 4) for c in CLASSES},
                                  decided_ms=verdict.decided_ms, model=verdict.model,
                                  speech_ms=verdict.evidence.get("speech_ms"), evidence=verdict.evidence)
        if decision is not None:
            record = record.with_(action=decision.action, reason=decision.reason)
        return record

    async def challenge(self, request: FastAGIRequest) -> None:
        args = request.args + ["", "", ""]
        call_id, result, pressed = canonical_uuid(args[0]), args[1].upper(), "".join(filter(DTMF_KEYS.__contains__, args[2]))
        if call_id is None or result not in ("PASS", "FAIL"):
            log.warning("challenge report with call id %r and result %r (expected a uuid and PASS or FAIL); ignored",
                        args[0][:64], args[1][:16])
            return
        if await self.recorder.challenge(call_id, result, pressed[:MAX_DIGITS]) is False:
            log.warning("challenge report for %s, which pbxguard did not challenge or has heard from already", call_id)
