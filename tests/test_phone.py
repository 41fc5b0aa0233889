"""Phone numbers to E.164, and what is wrong with one said in our words (not phonenumbers')."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctm_pbx.core.phone import _NANP, InvalidNumber, _valid_nanp, to_e164


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not a phone number"),
        ("+1", "'+1' is not a phone number"),
        (
            "+999 123",
            "'+999 123' is not a valid phone number: no country has the code it starts with",
        ),
        ("12345", "'12345' is not a valid phone number: too short for a +1 number"),
        (
            "+1 312 555 01011111",
            "'+1 312 555 01011111' is not a valid phone number: too long for a +1 number",
        ),
        (
            "3125550142000000000000",
            "'3125550142000000000000' is not a valid phone number: too long",
        ),
        (
            "555-0100",
            "'555-0100' is not a valid phone number: too short"
            " (a local number? give its area code)",
        ),
        ("+44 20 1234", "'+44 20 1234' is not a valid phone number: too short for a +44 number"),
        (
            "+1 800 000 0000",
            "'+1 800 000 0000' is not a valid phone number: no +1 number is in use in that range"
            " (check the area code and digits)",
        ),
    ],
)
def test_what_is_wrong_is_said_in_our_words(text: str, message: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        to_e164(text, "US")
    assert str(caught.value) == message


SEPARATOR = st.text(alphabet=" ().-", max_size=2)


DIGITS = "0123456789"
# ten digits shaped like a NANP number (area code and exchange 2-9..), or any ten
TEN_DIGITS = st.one_of(
    st.tuples(
        st.sampled_from("23456789"),
        st.text(alphabet=DIGITS, min_size=2, max_size=2),
        st.sampled_from("23456789"),
        st.text(alphabet=DIGITS, min_size=6, max_size=6),
    ).map("".join),
    st.text(alphabet=DIGITS, min_size=10, max_size=10),
)


@st.composite
def plus_one_numbers(draw) -> str:
    """``+1`` and ten digits (valid, unassigned, a leading 0 or 1) with separators."""
    return "+1" + "".join(draw(SEPARATOR) + d for d in draw(TEN_DIGITS))


def parsed_e164(raw: str, country: str) -> str | None:
    """phonenumbers' own answer: the E.164 form when it parses and is valid, else None."""
    try:
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=1000, deadline=None, database=None)
@given(raw=plus_one_numbers(), country=st.sampled_from(["US", "CA", "GB"]))
def test_the_nanp_shortcut_answers_as_phonenumbers_does(raw: str, country: str) -> None:
    shortcut = _valid_nanp(raw)
    assert shortcut is None or shortcut == parsed_e164(raw, country)
    if _NANP.fullmatch(raw):  # what it takes on, it decides: valid or not, as phonenumbers
        assert shortcut == parsed_e164(raw, country)
    try:
        assert to_e164(raw, country) == parsed_e164(raw, country)
    except InvalidNumber:
        assert parsed_e164(raw, country) is None


@pytest.mark.parametrize(
    "raw", ["+1 312 555 0142", "+1 (646) 200-0000", "+1.212.555.2368", "+13125550142"]
)
def test_the_usual_ways_of_writing_a_nanp_number_take_the_shortcut(raw: str) -> None:
    assert _valid_nanp(raw) == to_e164(raw) == parsed_e164(raw, "US")
