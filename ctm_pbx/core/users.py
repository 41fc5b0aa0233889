"""Dashboard users and their sessions: the rules, pure (time passed in as ``now``).

Two roles: ``admin`` (may edit calls' tags and notes) and ``viewer`` (reads). A
session lasts ``SESSION_IDLE`` without use and at most ``SESSION_MAX`` in all; the
server keeps it (the cookie holds only a random token), so logout and expiry are real.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing a megabyte of "password" is a denial of service
SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(days=7)


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


class UserError(ValueError):
    """A username, password or role that cannot be used; the message says why."""


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise UserError(
            f"invalid username '{name}': use lowercase letters, digits and . _ @ -, "
            "starting with a letter or digit, at most 64 characters"
        )
    return name


def check_password(password: str, username: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password must have at most {MAX_PASSWORD} characters")
    if password.lower() == username.lower():
        raise UserError("the password must not be the username")
    return password


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    csrf: str
    created_at: datetime
    last_seen_at: datetime

    def expired(self, now: datetime) -> bool:
        return now - self.last_seen_at > SESSION_IDLE or now - self.created_at > SESSION_MAX

    @property
    def can_edit(self) -> bool:
        return self.role is Role.ADMIN
