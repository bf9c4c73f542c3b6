"""STIR/SHAKEN: what the PBX or the carrier found of the caller ID's signature, as a policy signal.

Two sources, one record. Asterisk verifies the Identity header itself (res_stir_shaken) and the shipped
dialplan passes `STIR_SHAKEN(0,attestation)` and `STIR_SHAKEN(0,verify_result)`; carriers that verify
upstream put `verstat` on P-Asserted-Identity or From (ATIS-1000074), which the dialplan (Asterisk) or the
ESL relay (FreeSWITCH) passes when the PBX did not verify. The two vocabularies meet here:

- verified: Asterisk's `success`, a verstat `TN-Validation-Passed` (optionally `-A`/`-B`/`-C`);
- failed:   any other Asterisk result (`signature_validation`, `iat_range_error`, `cert_retrieval_failure`,
            ...), a verstat `TN-Validation-Failed`;
- missing:  Asterisk's `missing_identity_hdr`, a verstat `No-TN-Validation`;
- "" (nobody checked): nothing passed, or Asterisk's `disabled`.

Attestation alone never hangs up a call (config refuses it): a signature proves who signed, not who calls.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger("pbxguard.identity")

VERIFIED, FAILED, MISSING = "verified", "failed", "missing"
LEVELS = ("A", "B", "C")
ATTESTATION_ACTIONS = ("", "CHALLENGE")  # what an attestation may add to a verdict's action
MAX_DETAIL = 48  # the longest word either vocabulary uses is ~25 characters
_ASTERISK_WORD = re.compile(r"[a-z][a-z0-9_]*")
_VERSTAT = re.compile(r"(TN-Validation-Passed|TN-Validation-Failed|No-TN-Validation)(?:-([ABC]))?", re.IGNORECASE)
VERSTAT_STATUS = {"tn-validation-passed": VERIFIED, "tn-validation-failed": FAILED, "no-tn-validation": MISSING}


@dataclass(frozen=True)
class Identity:
    status: str = ""  # VERIFIED, FAILED, MISSING or "" (not checked)
    attestation: str = ""  # A, B or C when verified
    detail: str = ""  # the verifier's own word: Asterisk's verify_result or the verstat value

    def record(self) -> dict[str, str] | None:
        """For the call log (None when nobody checked)."""
        if not self.status:
            return None
        return {"status": self.status, "attestation": self.attestation, "detail": self.detail}

    @classmethod
    def from_pbx(cls, attestation: str, result: str) -> Identity:
        """The dialplan's two values: an attestation level and a verification result in either vocabulary."""
        result = (result or "").strip()[:MAX_DETAIL]
        level = (attestation or "").strip().upper()
        level = level if level in LEVELS else ""
        if not result or result == "disabled":
            return cls()
        verstat = _VERSTAT.fullmatch(result)
        if verstat:
            status = VERSTAT_STATUS[verstat.group(1).lower()]
            level = (verstat.group(2) or level).upper() if status == VERIFIED else ""
            return cls(status, level, result)
        if not _ASTERISK_WORD.fullmatch(result):
            log.warning("identity: verification result %r is neither Asterisk's nor a verstat; ignored", result)
            return cls()
        if result == "success":
            return cls(VERIFIED, level, result)
        return cls(MISSING if result == "missing_identity_hdr" else FAILED, "", result)


NOT_CHECKED = Identity()
