"""The Asterisk side: what `agi://HOST:4573/screen` and `.../challenge` do with a call.

screen (AGI arguments: inbound|outbound, window ms, queue): make a call id (uuid4), ask Asterisk to stream
the caller's audio with `EXEC AudioSocket "<id>,<our address>"`, let the AudioSocket side feed the call until
the verdict is ready (then it closes the socket and AudioSocket() returns), and set the channel variables.
If the caller hangs up first, nothing is set and the call is logged as abandoned. If anything else goes
wrong the variables say BRIDGE: pbxguard fails open.

challenge (AGI arguments: call id, PASS|FAIL, digits pressed): the Turing test's outcome, reported by the
dialplan; failed challenges are the labels for retraining.

check (before the call is answered): the caller-ID lists. Sets PBXGUARD_LIST to DENY (the dialplan
rejects the call unanswered), ALLOW (screening is skipped) or NONE.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from pbxguard import calls
from pbxguard.callerid import DENY, Caller, CallerIndex
from pbxguard.calls import CallRegistry
from pbxguard.channel_vars import INBOUND, OUTBOUND, channel_variables
from pbxguard.policy import Decision, Policy
from pbxguard.protocols import eagi
from pbxguard.protocols.fastagi import AGIError, FastAGIRequest
from pbxguard.recorder import Recorder
from pbxguard.verdict import CLASSES, Verdict

log = logging.getLogger("pbxguard.asterisk")

AUDIO_GRACE_S = 3.0  # beyond the window: AudioSocket connects and its first frames arrive
FAIL_OPEN_VERDICT = "UNKNOWN"


def fail_open_variables(call_id: str, reason: str) -> dict[str, str]:
    return {"PBXGUARD_CALL_ID": call_id, "PBXGUARD_VERDICT": FAIL_OPEN_VERDICT, "PBXGUARD_REASON": reason,
            "AMDSTATUS": "NOTSURE", "AMDCAUSE": "TOOLONG-0", "PBXGUARD_ACTION": "BRIDGE"}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class CallerRules:
    """What the caller ID alone may add to a verdict's action (empty action: nothing)."""

    anonymous_action: str = ""
    max_calls_per_minute: int = 0
    rate_action: str = "CHALLENGE"

    def signals(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        out = []
        if caller.anonymous and self.anonymous_action:
            out.append(("ANONYMOUS", self.anonymous_action))
        if self.max_calls_per_minute and caller.calls_last_minute > self.max_calls_per_minute:
            out.append(("CALL_RATE", self.rate_action))
        return tuple(out)


class AsteriskAdapter:
    def __init__(self, registry: CallRegistry, policy: Policy, audiosocket_address: str, recorder: Recorder,
                 callers: CallerIndex, caller_rules: CallerRules) -> None:
        self.registry = registry
        self.policy = policy
        self.audiosocket_address = audiosocket_address
        self.recorder = recorder
        self.callers = callers
        self.caller_rules = caller_rules

    def routes(self) -> dict:
        return {"screen": self.screen, "challenge": self.challenge, "check": self.check}

    async def _caller(self, request: FastAGIRequest) -> Caller:
        return self.callers.classify(request.headers.get("agi_callerid", ""), await self.recorder.lists())

    async def check(self, request: FastAGIRequest) -> None:
        caller = await self._caller(request)
        listed = (caller.listed or "none").upper()
        if caller.listed:
            status = "denied" if caller.listed == DENY else "allowed"
            await self.recorder.call({"call_id": str(uuid.uuid4()), "status": status, "reason": f"{listed}_LIST",
                                      "channel": request.headers.get("agi_channel", ""),
                                      "called": request.headers.get("agi_extension", "")}, caller)
        await self._set(request, {"PBXGUARD_LIST": listed})

    async def screen(self, request: FastAGIRequest) -> None:
        args = request.args
        mode = args[0].lower() if args and args[0].lower() in (INBOUND, OUTBOUND) else INBOUND
        window = int(args[1]) if len(args) > 1 and args[1].isdigit() else None
        relayed = request.headers.get(eagi.CALL_ID_HEADER)  # EAGI: the audio comes from the relay, not AudioSocket
        call_id = relayed or str(uuid.uuid4())
        info = {"channel": request.headers.get("agi_channel", ""), "uniqueid": request.headers.get("agi_uniqueid", ""),
                "caller": request.headers.get("agi_callerid", ""), "called": request.headers.get("agi_extension", ""),
                "mode": mode, "queue": args[2] if len(args) > 2 else ""}
        call = self.registry.open(call_id, window, **info)
        caller = await self._caller(request)
        started = time.monotonic()
        try:
            if relayed:
                reply = {}
                verdict = await calls.outcome(call, timeout=call.window_ms / 1000 + AUDIO_GRACE_S)
            else:
                reply = await request.send_command(f'EXEC AudioSocket "{call_id},{self.audiosocket_address}"',
                                                   timeout=call.window_ms / 1000 + AUDIO_GRACE_S)
                verdict = await calls.outcome(call, timeout=0.5 if call.outcome.done() else AUDIO_GRACE_S)
            if request.hung_up or reply.get("error") == "AGIAppError" or (verdict is None and call.audio_started):
                await self.recorder.call(self._record(call, None, None, "abandoned", started), caller)
                return
            if verdict is None:
                await self.recorder.call(self._record(call, None, None, "no_audio", started), caller)
                await self._set(request, fail_open_variables(call_id, "NO_AUDIO"))
                return
            decision = self.policy.decide(verdict, self.caller_rules.signals(caller))
            variables = channel_variables(verdict, decision, call_id, mode)
            window_end = time.monotonic()
            # Committed before the verdict is sent: a crash after this loses no call whose verdict went out.
            await self.recorder.call(self._record(call, verdict, decision, "screened", started), caller, call.stream.samples)
            await self._set(request, variables)
            self.recorder.metrics.latency.observe(time.monotonic() - window_end)
        except AGIError as exc:
            await self.recorder.call(self._record(call, None, None, "agi_error", started, error=str(exc)), caller)
            raise
        finally:
            self.registry.close(call_id)

    async def _set(self, request: FastAGIRequest, variables: dict[str, str]) -> None:
        for name, value in variables.items():
            await request.send_command(f"SET VARIABLE {name} {_quote(value)}")

    @staticmethod
    def _record(call: calls.Call, verdict: Verdict | None, decision: Decision | None, status: str,
                started: float, error: str = "") -> dict:
        return {"call_id": call.call_id, "status": status, **call.info,
                "verdict": verdict.label if verdict else None,
                "confidence": round(verdict.confidence, 4) if verdict else None,
                "scores": {c: round(verdict.scores[c], 4) for c in CLASSES} if verdict else None,
                "action": decision.action if decision else None, "reason": decision.reason if decision else None,
                "decided_ms": verdict.decided_ms if verdict else None, "model": verdict.model if verdict else None,
                "audio_ms": call.stream.received_ms, "speech_ms": verdict.evidence.get("speech_ms") if verdict else None,
                "handled_ms": round((time.monotonic() - started) * 1000, 1), "error": error}

    async def challenge(self, request: FastAGIRequest) -> None:
        args = request.args + ["", "", ""]
        call_id, result, pressed = args[0], args[1].upper(), args[2]
        if result not in ("PASS", "FAIL"):
            log.warning("challenge report for %s with result %r (expected PASS or FAIL)", call_id, args[1])
            return
        if not await self.recorder.challenge(call_id, result, pressed):
            log.warning("challenge report for unknown call %s", call_id)
