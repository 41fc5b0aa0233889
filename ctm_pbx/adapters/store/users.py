"""Dashboard users and sessions in SQLite; passwords hashed with argon2id.

argon2-cffi (the reference implementation's bindings) with its default parameters
(RFC 9106's low-memory profile); a hash made with older parameters is upgraded at
the next login. Session cookies carry a random token; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from functools import cache

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.users import Role, Session, UserError, check_password, check_username

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so that a wrong name costs as long as a wrong
    password. Made at the first login, not at import: hashing costs as much as a login."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(
    db: sqlite_utils.Database, name: str, password: str, role: Role, now: datetime
) -> None:
    check_username(name)
    check_password(password, name)
    if db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
        raise UserError(f"user '{name}' exists already (change the password with users passwd)")
    with db.conn:
        db.execute(
            "INSERT INTO users (name, password_hash, role, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [name, hash_password(password), role.value, iso(now), iso(now)],
        )


def set_password(db: sqlite_utils.Database, name: str, password: str, now: datetime) -> None:
    check_password(password, name)
    with db.conn:
        cur = db.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
            [hash_password(password), iso(now), name],
        )
        if cur.rowcount == 0:
            raise UserError(f"no user '{name}'")
        db.execute("DELETE FROM sessions WHERE user = ?", [name])  # log them out everywhere


def remove_user(db: sqlite_utils.Database, name: str) -> None:
    with db.conn:
        db.execute("DELETE FROM sessions WHERE user = ?", [name])
        if db.execute("DELETE FROM users WHERE name = ?", [name]).rowcount == 0:
            raise UserError(f"no user '{name}'")


def list_users(db: sqlite_utils.Database) -> list[dict]:
    return [
        dict(zip(("name", "role", "created_at", "updated_at"), row, strict=True))
        for row in db.execute(
            "SELECT name, role, created_at, updated_at FROM users ORDER BY name"
        ).fetchall()
    ]


def verify_login(db: sqlite_utils.Database, name: str, password: str) -> Role | None:
    """The user's role if ``password`` is theirs; None otherwise (same cost either way)."""
    row = db.execute("SELECT password_hash, role FROM users WHERE name = ?", [name]).fetchone()
    stored = row[0] if row else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        db.execute(
            "UPDATE users SET password_hash = ? WHERE name = ?", [hash_password(password), name]
        )
    return Role(row[1])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(db: sqlite_utils.Database, name: str, now: datetime) -> tuple[str, str]:
    """A new session for ``name``: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [_token_hash(token), name, csrf, iso(now), iso(now)],
    )
    return token, csrf


def get_session(db: sqlite_utils.Database, token: str) -> Session | None:
    row = db.execute(
        "SELECT s.user, u.role, s.csrf, s.created_at, s.last_seen_at FROM sessions s"
        " JOIN users u ON u.name = s.user WHERE s.token_hash = ?",
        [_token_hash(token)],
    ).fetchone()
    if row is None:
        return None
    return Session(row[0], Role(row[1]), row[2], parse_iso(row[3]), parse_iso(row[4]))


def touch_session(db: sqlite_utils.Database, token: str, now: datetime) -> None:
    db.execute(
        "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", [iso(now), _token_hash(token)]
    )


def end_session(db: sqlite_utils.Database, token: str) -> None:
    db.execute("DELETE FROM sessions WHERE token_hash = ?", [_token_hash(token)])


def purge_sessions(
    db: sqlite_utils.Database, idle_before: datetime, created_before: datetime
) -> int:
    cur = db.execute(
        "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
        [iso(idle_before), iso(created_before)],
    )
    return cur.rowcount
