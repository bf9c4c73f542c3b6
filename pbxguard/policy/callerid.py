"""Caller IDs: normalised to E.164 with `phonenumbers`, matched against allow and deny lists by number or
prefix, and counted per minute (a burst of calls from one number is a traffic-pumping sign)."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

import phonenumbers

from pbxguard.policy.identity import NOT_CHECKED, Identity

ALLOW, DENY = "allow", "deny"
ANONYMOUS = {"", "unknown", "anonymous", "restricted", "private", "unavailable"}


class CallerIDError(ValueError):
    pass


def normalise(number: str, region: str = "US") -> str | None:
    """E.164 (+15551234567) for a valid number; None for anonymous or invalid caller IDs. URI parameters
    after the number (`+15551234567;verstat=...`, as FreeSWITCH passes a signed caller's) are not part of it."""
    number = (number or "").split(";", 1)[0].strip()
    if number.lower() in ANONYMOUS:
        return None
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def list_pattern(entry: str, region: str = "US") -> str:
    """A list entry: a full number (validated, to E.164) or a prefix ending in '*' (+1555*)."""
    entry = entry.strip()
    if entry.endswith("*"):
        digits = entry[:-1]
        if not (digits.startswith("+") and digits[1:].isdecimal() and len(digits) >= 2):
            raise CallerIDError(f"{entry!r}: a prefix is '+' and digits followed by '*', e.g. +1555*")
        return digits + "*"
    e164 = normalise(entry, region)
    if e164 is None:
        raise CallerIDError(f"{entry!r} is not a valid phone number (region {region})")
    return e164


def matches(e164: str, pattern: str) -> bool:
    return e164.startswith(pattern[:-1]) if pattern.endswith("*") else e164 == pattern


def listing(e164: str, lists: list[tuple[str, str, str]]) -> str | None:
    """ALLOW, DENY or None for a number, given the (kind, pattern, note) lists; deny wins when on both."""
    for kind in (DENY, ALLOW):
        if any(k == kind and matches(e164, p) for k, p, _ in lists):
            return kind
    return None


@dataclass(frozen=True)
class Caller:
    raw: str
    e164: str | None
    listed: str | None  # ALLOW, DENY or None
    calls_last_minute: int
    identity: Identity = NOT_CHECKED  # STIR/SHAKEN, as the dialplan passed it to `screen`

    @property
    def anonymous(self) -> bool:
        return self.e164 is None

    def masked(self) -> str:
        return mask_number(self.e164 or self.raw)


def mask_number(number: str) -> str:
    """For logs at info level and the web page: enough to tell calls apart, not the whole number."""
    number = number or "anonymous"
    return number if len(number) < 7 else number[:4] + "*" * (len(number) - 7) + number[-3:]


RATE_WINDOW_S = 60.0
MAX_TRACKED = 100_000  # callers whose last minute is kept: ~100 bytes each


class CallerIndex:
    """List lookups and per-caller call rates for the daemon."""

    def __init__(self, region: str = "US", max_tracked: int = MAX_TRACKED) -> None:
        self.region = region
        self.max_tracked = max_tracked
        self.recent: dict[str, deque] = defaultdict(deque)

    def classify(self, raw: str, lists: list[tuple[str, str, str]], now: float | None = None,
                 identity: Identity = NOT_CHECKED) -> Caller:
        now = time.monotonic() if now is None else now
        e164 = normalise(raw, self.region)
        listed = listing(e164, lists) if e164 else None
        key = e164 or "anonymous"
        if key not in self.recent and len(self.recent) >= self.max_tracked:
            self._forget(now)
        window = self.recent[key]
        window.append(now)
        while window and now - window[0] > RATE_WINDOW_S:
            window.popleft()
        return Caller(raw, e164, listed, len(window), identity)

    def _forget(self, now: float) -> None:
        """Spoofed numbers must not grow the table: drop callers quiet for a minute, then the oldest seen."""
        for key in [k for k, w in self.recent.items() if not w or now - w[-1] > RATE_WINDOW_S]:
            del self.recent[key]
        for key in list(self.recent)[: max(0, len(self.recent) - self.max_tracked // 2)]:
            del self.recent[key]
