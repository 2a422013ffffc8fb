"""Who may do what: roles, their scopes, and the decision (pure; the store holds the grants).

A grant gives a role to a user or a group, over every environment or over those named or
carrying some labels. A write needs a role over the environment it touches (or over every
environment, for writes that reach all of them: definitions, users, labels on a release).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    PROMOTER = "promoter"  # create, trigger, label, retry, terminate, recall, roll back
    APPROVER = "approver"  # approve or reject promotions
    REPORTER = "reporter"  # report health
    ADMIN = "admin"  # definitions, users, grants, tokens, window overrides; and all above


# What each role also gives: an admin may do everything; every role may look.
_IMPLIES: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.PROMOTER: frozenset({Role.PROMOTER, Role.VIEWER}),
    Role.APPROVER: frozenset({Role.APPROVER, Role.VIEWER}),
    Role.REPORTER: frozenset({Role.REPORTER, Role.VIEWER}),
    Role.ADMIN: frozenset(Role),
}


@dataclass(frozen=True)
class Scope:
    """Environments by name, or by labels (all must match); neither: every environment."""

    names: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def everywhere(self) -> bool:
        return not self.names and not self.labels

    def covers(self, environment: str | None, env_labels: Mapping[str, str]) -> bool:
        if self.everywhere:
            return True
        if environment is None:  # a write that reaches every environment
            return False
        if self.names and environment not in self.names:
            return False
        return all(env_labels.get(k) == v for k, v in self.labels)

    def __str__(self) -> str:
        if self.everywhere:
            return "every environment"
        parts = []
        if self.names:
            parts.append("environment " + ", ".join(self.names))
        if self.labels:
            parts.append("environments labelled " + ",".join(f"{k}={v}" for k, v in self.labels))
        return " and ".join(parts)


@dataclass(frozen=True)
class Grant:
    subject: str  # "user:NAME" or "group:NAME"
    role: Role
    scope: Scope = Scope()
    id: int = 0


@dataclass(frozen=True)
class Identity:
    """Who acts. `real` is set when an admin acts as someone else (recorded as both)."""

    user: str
    groups: frozenset[str] = frozenset()  # from the token or the login, besides the store's
    real: str | None = None
    local: bool = True  # a local user may claim a store nobody administers yet

    @property
    def recorded(self) -> str:
        """The name the audit trail keeps."""
        return f"{self.real} as {self.user}" if self.real else self.user

    def subjects(self, store_groups: Iterable[str]) -> frozenset[str]:
        groups = self.groups | frozenset(store_groups)
        return frozenset({f"user:{self.user}"} | {f"group:{g}" for g in groups})


@dataclass(frozen=True)
class Need:
    """What a write needs: a role over an environment (None: over every environment)."""

    role: Role
    action: str
    environment: str | None = None
    env_labels: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"environment {self.environment}" if self.environment else "every environment"
        return f"role {self.role} over {where}"


def permits(grants: Iterable[Grant], need: Need) -> bool:
    return any(
        need.role in _IMPLIES[g.role] and g.scope.covers(need.environment, need.env_labels)
        for g in grants
    )


def refusal(identity: Identity, need: Need) -> str:
    return (
        f"{identity.user} may not {need.action}: that needs the {need} "
        f"(an admin grants it: `conveyor grant {need.role} --user {identity.user}"
        + (f" --env {need.environment}`)" if need.environment else "`)")
    )


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ValueError(
            f"unknown role '{text}': use one of {', '.join(r.value for r in Role)}"
        ) from None
