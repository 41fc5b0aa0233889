"""Phone numbers: normalisation to E.164 with the ``phonenumbers`` library."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


class InvalidNumber(ValueError):
    """A string that is not a valid phone number."""


def to_e164(text: str, default_country: str = "US") -> str:
    """Normalise a human-written number (``(555) 010-0100``, ``+44 20 …``) to E.164.

    Raises ``InvalidNumber`` with a readable reason.
    """
    raw = str(text).strip()
    if not raw:
        raise InvalidNumber("empty phone number")
    try:
        parsed = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"'{raw}' is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber(f"'{raw}' is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def caller_e164(text: str | None, default_country: str = "US") -> str | None:
    """Best-effort E.164 for a caller id; the raw digits when it does not parse.

    Caller ids come from carriers in many shapes (``5550100100``, ``+1…``,
    ``anonymous``); a call is never refused for its caller id. Cached: parsing
    costs more than the rest of a call's decision.
    """
    if not text:
        return None
    raw = str(text).strip()
    try:
        parsed = phonenumbers.parse(raw, default_country)
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return raw


@lru_cache(maxsize=65536)
def did_e164(exten: str, default_country: str = "US") -> str | None:
    """The E.164 form of a dialled DID as a trunk delivers it (``15550100200``, ``+1…``)."""
    digits = exten.strip()
    candidates = [digits]
    if not digits.startswith("+"):
        candidates.append("+" + digits)
    for cand in candidates:
        try:
            parsed = phonenumbers.parse(cand, default_country)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None
