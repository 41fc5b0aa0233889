"""Phone numbers: normalisation to E.164 with the ``phonenumbers`` library."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers


class InvalidNumber(ValueError):
    """A string that is not a valid phone number."""


@lru_cache(maxsize=65536)
def to_e164(text: str, default_country: str = "US") -> str:
    """Normalise a human-written number (``(555) 010-0100``, ``+44 20 …``) to E.164.

    Raises ``InvalidNumber`` saying in our words what is wrong with it
    (phonenumbers' own messages, "(1) The string supplied…", are not for users).
    Cached: a config's reload validates the same thousands of numbers again.
    """
    raw = str(text).strip()
    if not raw:
        raise InvalidNumber("empty phone number")
    nanp = _valid_nanp(raw)
    if nanp is not None:
        return nanp
    try:
        parsed = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.NOT_A_NUMBER:
            raise InvalidNumber(f"'{raw}' is not a phone number") from None
        reason = _PARSE_REASONS.get(exc.error_type, "it cannot be read as one")
        raise InvalidNumber(f"'{raw}' is not a valid phone number: {reason}") from None
    if not phonenumbers.is_valid_number(parsed):
        reason = _why_invalid(parsed, written_with_plus=raw.startswith("+"))
        raise InvalidNumber(f"'{raw}' is not a valid phone number: {reason}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# "+1" and ten digits, the first 2-9, with spaces, dots, dashes or brackets between: what
# phonenumbers parses to country code 1 and those digits (the test compares the two).
_NANP = re.compile(r"\+1[ ().-]*([2-9](?:[ ().-]*[0-9]){9})")
_SEPARATORS = re.compile(r"[ ().-]")


def _valid_nanp(raw: str) -> str | None:
    """The E.164 form of a valid NANP number written ``+1 …``, built without parsing it
    (the parse is half of a config's validation); None for anything else."""
    match = _NANP.fullmatch(raw)
    if match is None:
        return None
    digits = _SEPARATORS.sub("", match.group(1))
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
    # the US first: ``is_valid_number`` of a +1 number tries the US (the plan's main
    # country) first too, and then checks the region it found a second time
    valid = phonenumbers.is_valid_number_for_region(number, "US") or (
        phonenumbers.is_valid_number(number)
    )
    return "+1" + digits if valid else None


_PARSE = phonenumbers.NumberParseException
_PARSE_REASONS = {
    _PARSE.INVALID_COUNTRY_CODE: "no country has the code it starts with",
    _PARSE.TOO_SHORT_AFTER_IDD: "too short",
    _PARSE.TOO_SHORT_NSN: "too short",
    _PARSE.TOO_LONG: "too long",
}


def _why_invalid(parsed: phonenumbers.PhoneNumber, *, written_with_plus: bool) -> str:
    plan = f"+{parsed.country_code}"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    result = phonenumbers.ValidationResult
    if reason == result.INVALID_COUNTRY_CODE:
        return "no country has the code it starts with"
    if reason == result.TOO_SHORT or (
        reason == result.IS_POSSIBLE_LOCAL_ONLY and written_with_plus
    ):
        return f"too short for a {plan} number"
    if reason == result.TOO_LONG:
        return f"too long for a {plan} number"
    if reason == result.IS_POSSIBLE_LOCAL_ONLY:
        return "too short (a local number? give its area code)"
    if reason == result.INVALID_LENGTH:
        return f"no {plan} number has that many digits"
    return f"no {plan} number is in use in that range (check the area code and digits)"


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
