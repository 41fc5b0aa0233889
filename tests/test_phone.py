"""Phone numbers to E.164, and what is wrong with one said in our words (not phonenumbers')."""

from __future__ import annotations

import pytest

from ctm_pbx.core.phone import InvalidNumber, to_e164


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
