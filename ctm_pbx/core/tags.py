"""Tags and comments a person adds to a call (filterable in the log and reports)."""

from __future__ import annotations

import re

TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_TAGS = 10
MAX_COMMENT = 2000


class TagError(ValueError):
    pass


def parse_tags(text: str) -> list[str]:
    """``"Sales lead, spam"`` -> ``["sales-lead", "spam"]``: lowercase, spaces as ``-``,
    duplicates dropped, in the order given."""
    tags: list[str] = []
    for raw in text.split(","):
        tag = "-".join(raw.strip().lower().split())
        if not tag:
            continue
        if not TAG.match(tag):
            raise TagError(f"invalid tag '{raw.strip()}': letters, digits, '-' and '_', at most 32")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise TagError(f"at most {MAX_TAGS} tags per call")
    return tags


def check_comment(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_COMMENT:
        raise TagError(f"a comment has at most {MAX_COMMENT} characters")
    return text
