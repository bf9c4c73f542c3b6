"""The Asterisk side: what `agi://HOST:4573/screen` and `.../challenge` do with a call.

screen (AGI arguments: inbound|outbound, window ms, queue): make a call id (uuid4), ask Asterisk to stream
the caller's audio with `EXEC AudioSocket "<id>,<our address>"`, let the AudioSocket side feed the call until
the verdict is ready (then it closes the socket and AudioSocket() returns), and set the channel variables.
If the caller hangs up first, nothing is set and the call is logged as abandoned. If anything else goes
wrong the variables say BRIDGE: pbxguard fails open.

challenge (AGI arguments: call id, PASS|FAIL, digits pressed): the Turing test's outcome, reported by the
dialplan; failed challenges are the labels for retraining.
"""

from __future__ import annotations

import logging
import time
import uuid

from pbxguard import calls
from pbxguard.calls import CallRegistry
from pbxguard.channel_vars import INBOUND, OUTBOUND, channel_variables
from pbxguard.policy import Decision, Policy
from pbxguard.protocols import eagi
from pbxguard.protocols.fastagi import AGIError, FastAGIRequest
from pbxguard.verdict import CLASSES, Verdict

log = logging.getLogger("pbxguard.asterisk")

AUDIO_GRACE_S = 3.0  # beyond the window: AudioSocket connects and its first frames arrive
FAIL_OPEN_VERDICT = "UNKNOWN"


def fail_open_variables(call_id: str, reason: str) -> dict[str, str]:
    return {"PBXGUARD_CALL_ID": call_id, "PBXGUARD_VERDICT": FAIL_OPEN_VERDICT, "PBXGUARD_REASON": reason,
            "AMDSTATUS": "NOTSURE", "AMDCAUSE": "TOOLONG-0", "PBXGUARD_ACTION": "BRIDGE"}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AsteriskAdapter:
    def __init__(self, registry: CallRegistry, policy: Policy, audiosocket_address: str,
                 on_decision=None, on_challenge=None) -> None:
        self.registry = registry
        self.policy = policy
        self.audiosocket_address = audiosocket_address
        self.on_decision = on_decision or (lambda record: None)
        self.on_challenge = on_challenge or (lambda record: None)

    def routes(self) -> dict:
        return {"screen": self.screen, "challenge": self.challenge}

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
                self._record(call, None, None, "abandoned", started)
                return
            if verdict is None:
                await self._set(request, fail_open_variables(call_id, "NO_AUDIO"))
                self._record(call, None, None, "no_audio", started)
                return
            decision = self.policy.decide(verdict)
            variables = channel_variables(verdict, decision, call_id, mode)
            await self._set(request, variables)
            self._record(call, verdict, decision, "screened", started, variables.get("PBXGUARD_CHALLENGE_DIGIT"))
        except AGIError as exc:
            self._record(call, None, None, "agi_error", started, error=str(exc))
            raise
        finally:
            self.registry.close(call_id)

    async def _set(self, request: FastAGIRequest, variables: dict[str, str]) -> None:
        for name, value in variables.items():
            await request.send_command(f"SET VARIABLE {name} {_quote(value)}")

    def _record(self, call: calls.Call, verdict: Verdict | None, decision: Decision | None, status: str,
                started: float, digit: str | None = None, error: str = "") -> None:
        record = {"call_id": call.call_id, "status": status, **call.info,
                  "verdict": verdict.label if verdict else None,
                  "confidence": round(verdict.confidence, 4) if verdict else None,
                  "scores": {c: round(verdict.scores[c], 4) for c in CLASSES} if verdict else None,
                  "action": decision.action if decision else None, "reason": decision.reason if decision else None,
                  "decided_ms": verdict.decided_ms if verdict else None, "model": verdict.model if verdict else None,
                  "audio_ms": call.stream.received_ms, "handled_ms": round((time.monotonic() - started) * 1000, 1),
                  "challenge_digit_set": digit is not None, "error": error}
        log.info("call %s %s verdict=%s action=%s decided_ms=%s", call.call_id, status, record["verdict"],
                 record["action"], record["decided_ms"])
        self.on_decision(record)

    async def challenge(self, request: FastAGIRequest) -> None:
        args = request.args + ["", "", ""]
        call_id, result, pressed = args[0], args[1].upper(), args[2]
        if result not in ("PASS", "FAIL"):
            log.warning("challenge report for %s with result %r (expected PASS or FAIL)", call_id, args[1])
            return
        record = {"call_id": call_id, "challenge": result, "pressed": pressed,
                  "channel": request.headers.get("agi_channel", "")}
        log.info("call %s challenge %s", call_id, result)
        self.on_challenge(record)
