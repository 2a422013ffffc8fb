"""Approvals: who said yes to a promotion, and whether that meets the rules (pure).

A rule asks for a number of approvals from a group or from a list of users; every rule
must be met. One person's approval counts for each rule they belong to (a release manager
who is also in security meets both "1 from release-managers" and "1 from security"), and
once only per rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Rule:
    count: int
    group: str | None = None
    users: tuple[str, ...] = ()

    def admits(self, user: str, groups: Iterable[str]) -> bool:
        if self.group is not None:
            return self.group in set(groups)
        return user in self.users

    @property
    def who(self) -> str:
        return f"group {self.group}" if self.group else "one of " + ", ".join(self.users)

    def __str__(self) -> str:
        return f"{self.count} from {self.who}"


@dataclass(frozen=True)
class Approval:
    user: str
    groups: tuple[str, ...]
    verdict: str  # approve | reject
    at: datetime
    comment: str = ""


@dataclass(frozen=True)
class Tally:
    met: bool
    summary: str  # "1/1 from group release-managers, 0/1 from group security"
    expires_at: datetime | None = None  # when the first counted approval stops counting


def tally(
    rules: Sequence[Rule],
    approvals: Iterable[Approval],
    now: datetime,
    expires_after: timedelta | None = None,
    excluded: frozenset[str] = frozenset(),
) -> Tally:
    """Count each rule's approvals: not from `excluded` people, not expired."""
    live = [
        a
        for a in approvals
        if a.verdict == "approve"
        and a.user not in excluded
        and (expires_after is None or a.at + expires_after > now)
    ]
    parts, met, counted = [], True, []
    for rule in rules:
        mine = [a for a in live if rule.admits(a.user, a.groups)]
        have = len({a.user for a in mine})
        met = met and have >= rule.count
        parts.append(f"{min(have, rule.count)}/{rule.count} from {rule.who}")
        counted += mine
    expiry = (
        min(a.at for a in counted) + expires_after if expires_after and counted and met else None
    )
    return Tally(met, ", ".join(parts), expiry)


def counts_for_some_rule(rules: Sequence[Rule], user: str, groups: Iterable[str]) -> bool:
    groups = list(groups)
    return any(rule.admits(user, groups) for rule in rules)


def acting(actor: str) -> str:
    """The user an audit trail's actor acted as: "local:root as alice" is alice. (An admin
    acting as someone is checked as that someone, as Kubernetes impersonation is; the trail
    shows both names.)"""
    return actor.rpartition(" as ")[2]
