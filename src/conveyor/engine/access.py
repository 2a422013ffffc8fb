"""Users, groups, grants and API tokens in the store, and the check every write makes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from conveyor.errors import DefinitionError, Forbidden, NotFound, Problem, Unauthenticated
from conveyor.model.access import Grant, Identity, Need, Role, Scope, permits, refusal
from conveyor.store import audit
from conveyor.store.tables import GrantRow, GroupMemberRow, TokenRow, UserRow

TOKEN_PREFIX = "cvt_"
MAX_TOKEN_LIFETIME = timedelta(days=366)


def _grant(row: GrantRow) -> Grant:
    labels = tuple(sorted((str(k), str(v)) for k, v in row.env_labels.items()))
    return Grant(row.subject, Role(row.role), Scope(tuple(row.environments), labels), row.id)


def groups_of(s: Session, user: str) -> list[str]:
    q = select(GroupMemberRow.group).where(GroupMemberRow.user == user)
    return sorted(s.scalars(q))


def grants_of(s: Session, identity: Identity) -> list[Grant]:
    subjects = identity.subjects(groups_of(s, identity.user))
    return [_grant(r) for r in s.scalars(select(GrantRow).where(GrantRow.subject.in_(subjects)))]


def _someone_administers(s: Session) -> bool:
    return bool(s.scalar(select(exists().where(GrantRow.role == Role.ADMIN.value))))


def claim_if_unowned(s: Session, identity: Identity, now: datetime) -> bool:
    """A store nobody administers (new, or made before roles existed) is claimed by the first
    local user who writes to it: whoever can write its file could do anything anyway."""
    if not identity.local or identity.real or _someone_administers(s):
        return False
    _ensure_user(s, identity.user, identity.user, now)
    s.add(
        GrantRow(
            subject=f"user:{identity.user}",
            role=Role.ADMIN.value,
            environments=[],
            env_labels={},
            granted_at=now,
            granted_by=identity.user,
        )
    )
    audit.append(
        s,
        now,
        identity.user,
        "access.claim",
        f"user:{identity.user}",
        after={"role": Role.ADMIN.value},
    )
    return True


def authorize(
    s: Session,
    identity: Identity,
    role: Role,
    action: str,
    now: datetime,
    environment: str | None = None,
    env_labels: Mapping[str, str] | None = None,
) -> None:
    """Raise Forbidden unless `identity` holds `role` over `environment` (None: all)."""
    need = Need(role, action, environment, env_labels or {})
    # The grants first: a claim is looked for only when they say no (once per store's life).
    if not permits(grants_of(s, identity), need) and not claim_if_unowned(s, identity, now):
        raise Forbidden(refusal(identity, need))


def may_act_as(s: Session, real: Identity, now: datetime) -> None:
    """Only an admin over every environment may act under another name."""
    need = Need(Role.ADMIN, "act as another user (--as)")
    if not permits(grants_of(s, real), need) and not claim_if_unowned(s, real, now):
        raise Forbidden(refusal(real, need))


# --- users and groups ---------------------------------------------------------------------


def _ensure_user(s: Session, name: str, by: str, now: datetime) -> None:
    if s.get(UserRow, name) is None:
        s.add(UserRow(name=name, created_at=now, created_by=by))
        s.flush()


def add_user(s: Session, name: str, groups: list[str], by: str, now: datetime) -> None:
    if not name.strip() or any(c.isspace() for c in name):
        raise DefinitionError(
            Problem(f"'{name}' is not a user name (no spaces)", "command line", None, "NAME")
        )
    for group in groups:
        if not group.strip() or any(c.isspace() for c in group):
            raise DefinitionError(
                Problem(f"'{group}' is not a group name (no spaces)", "command line", None, "GROUP")
            )
    _ensure_user(s, name, by, now)
    have = set(groups_of(s, name))
    added = [g for g in dict.fromkeys(groups) if g not in have]  # each once
    for group in added:
        s.add(GroupMemberRow(group=group, user=name))
    audit.append(
        s, now, by, "user.add", f"user:{name}", after={"groups": sorted(have | set(added))}
    )


def remove_user(s: Session, name: str, by: str, now: datetime) -> None:
    if s.get(UserRow, name) is None:
        raise NotFound(f"no user '{name}' (see `conveyor user list`)")
    s.execute(delete(GrantRow).where(GrantRow.subject == f"user:{name}"))
    s.execute(delete(GroupMemberRow).where(GroupMemberRow.user == name))
    s.execute(delete(TokenRow).where(TokenRow.user == name))
    s.execute(delete(UserRow).where(UserRow.name == name))
    audit.append(s, now, by, "user.remove", f"user:{name}")


def users(s: Session) -> list[tuple[str, list[str]]]:
    return [
        (u.name, groups_of(s, u.name)) for u in s.scalars(select(UserRow).order_by(UserRow.name))
    ]


# --- grants ---------------------------------------------------------------------------------


def grant(s: Session, subject: str, role: Role, scope: Scope, by: str, now: datetime) -> int:
    row = GrantRow(
        subject=subject,
        role=role.value,
        environments=list(scope.names),
        env_labels=dict(scope.labels),
        granted_at=now,
        granted_by=by,
    )
    s.add(row)
    s.flush()
    audit.append(
        s,
        now,
        by,
        "grant.add",
        subject,
        after={"id": row.id, "role": role.value, "scope": str(scope)},
    )
    return row.id


def revoke(s: Session, grant_id: int, by: str, now: datetime) -> None:
    row = s.get(GrantRow, grant_id)
    if row is None:
        raise NotFound(f"no grant {grant_id} (see `conveyor grants`)")
    if row.role == Role.ADMIN.value and not row.environments and not row.env_labels:
        others = select(GrantRow).where(GrantRow.role == Role.ADMIN.value, GrantRow.id != row.id)
        if not any(not g.environments and not g.env_labels for g in s.scalars(others)):
            raise DefinitionError(
                Problem(
                    "that is the last admin grant over every environment: grant admin to someone "
                    "else first, or the store would have no administrator",
                    "command line",
                    None,
                    "GRANT",
                )
            )
    s.delete(row)
    audit.append(s, now, by, "grant.remove", row.subject, before={"id": row.id, "role": row.role})


def all_grants(s: Session) -> list[Grant]:
    return [_grant(r) for r in s.scalars(select(GrantRow).order_by(GrantRow.id))]


# --- API tokens -----------------------------------------------------------------------------


def digest(token: str) -> str:
    # Tokens are 256 random bits: a plain hash is enough, no key stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    s: Session, user: str, lifetime: timedelta, description: str, by: str, now: datetime
) -> tuple[int, str]:
    """A new token for `user`: (its id, the token, which is never stored nor shown again)."""
    if s.get(UserRow, user) is None:
        raise NotFound(f"no user '{user}': `conveyor user add {user}` first")
    if not timedelta(0) < lifetime <= MAX_TOKEN_LIFETIME:
        raise DefinitionError(
            Problem(
                "a token lives more than 0 and at most 366 days", "command line", None, "--expires"
            )
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(
        user=user,
        digest=digest(token),
        description=description,
        created_at=now,
        expires_at=now + lifetime,
    )
    s.add(row)
    s.flush()
    audit.append(
        s,
        now,
        by,
        "token.create",
        f"user:{user}",
        after={"id": row.id, "expires": row.expires_at.isoformat()},
    )
    return row.id, token


def revoke_token(s: Session, token_id: int, by: str, now: datetime) -> None:
    row = s.get(TokenRow, token_id)
    if row is None:
        raise NotFound(f"no token {token_id} (see `conveyor token list`)")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.append(s, now, by, "token.revoke", f"user:{row.user}", after={"id": row.id})


def tokens(s: Session) -> list[TokenRow]:
    return list(s.scalars(select(TokenRow).order_by(TokenRow.id)))


def identify(s: Session, token: str, now: datetime) -> Identity:
    """The user a bearer token stands for; Forbidden for an unknown, expired or revoked one
    (one message for all three: a caller learns nothing about which tokens exist)."""
    row = s.scalar(select(TokenRow).where(TokenRow.digest == digest(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthenticated(
            "the token is unknown, expired or revoked: ask an admin for a new one"
        )
    return Identity(row.user, local=False)
