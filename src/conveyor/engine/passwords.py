"""Local users' passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second
choice), and browser sessions opened by a password as short-lived API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import access
from conveyor.errors import DefinitionError, NotFound, Problem, Unauthenticated
from conveyor.store import audit
from conveyor.store.tables import TokenRow, UserRow

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack
SESSION = "browser session"  # the description of the tokens a login opens
SESSION_LIFETIME = timedelta(hours=12)
_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong name takes as long as a wrong
# password: the answer's timing says nothing about who has an account.
_DUMMY = _hasher.hash("not anyone's password")


def set_password(s: Session, user: str, password: str, by: str, now: datetime) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise DefinitionError(
            Problem(
                f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters",
                "command line",
                None,
                "password",
            )
        )
    row = s.get(UserRow, user)
    if row is None:
        raise NotFound(f"no user '{user}': `conveyor user add {user}` first")
    row.password_hash = _hasher.hash(password)
    audit.append(s, now, by, "user.password", f"user:{user}")  # never the password


def open_session(s: Session, user: str, password: str, now: datetime) -> str:
    """A session token for `user` if `password` is theirs; one message for every failure."""
    row = s.get(UserRow, user)
    stored = row.password_hash if row is not None else None
    try:
        _hasher.verify(stored or _DUMMY, password)
        if row is None or stored is None:
            raise VerificationError
    except (VerificationError, InvalidHashError):
        raise Unauthenticated("wrong user name or password") from None
    if _hasher.check_needs_rehash(stored):
        row.password_hash = _hasher.hash(password)
    return access.create_token(s, user, SESSION_LIFETIME, SESSION, user, now)[1]


def close_session(s: Session, token: str, now: datetime) -> None:
    """Revoke a token a login opened (logging out); other tokens are left alone."""
    row = s.scalar(select(TokenRow).where(TokenRow.digest == access.digest(token)))
    if row is not None and row.description == SESSION and row.revoked_at is None:
        access.revoke_token(s, row.id, row.user, now)
