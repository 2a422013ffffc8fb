"""Who may do what: every write checks a role over a scope; refusals name both."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, DefinitionError, Forbidden, Unauthenticated
from conveyor.model.access import Identity, Role, Scope
from conveyor.store.tables import AuditRow, TokenRow
from tests.conftest import BASE, DIGEST, apply_yaml

FLOW = """
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
"""

WEB = {"web": f"registry.local/web@{DIGEST}"}


@pytest.fixture
def admin(cv: Conveyor) -> Conveyor:
    apply_yaml(cv, BASE + "---" + FLOW)  # the first writer claims the new store: admin
    return cv


def as_user(admin: Conveyor, name: str, groups: frozenset[str] = frozenset()) -> Conveyor:
    return Conveyor(admin.store, admin.clock, admin.registry, Identity(name, groups, local=False))


# Each write, what it needs (role, environment or None for every environment), and a call.
Write = Callable[[Conveyor, int], object]
WRITES: dict[str, tuple[Role, str | None, Write]] = {
    "apply": (Role.ADMIN, None, lambda c, _: apply_yaml(c, BASE)),
    "create": (Role.PROMOTER, None, lambda c, n: c.create_release("shop", f"1.0.{n}", WEB)),
    "trigger dev": (Role.PROMOTER, "dev", lambda c, n: c.trigger("main", f"shop@0.0.{n}")),
    "label": (Role.PROMOTER, None, lambda c, n: c.label(f"shop@0.0.{n}", {"k": "v"})),
    "roll back prod": (Role.PROMOTER, "prod", lambda c, _: c.rollback("prod", "shop@0.0.0")),
    "report qa": (
        Role.REPORTER,
        "qa",
        lambda c, _: c.report_health("qa", "e", "n1", True, "HEALTHY", "0.0.0"),
    ),
    "add user": (Role.ADMIN, None, lambda c, n: c.add_user(f"u{n}", [])),
    "grant": (Role.ADMIN, None, lambda c, _: c.grant("user:x", Role.VIEWER, Scope())),
}

SCOPES = {
    "everywhere": Scope(),
    "dev": Scope(("dev",)),
    "qa": Scope(("qa",)),
    "tier=prod": Scope(labels=(("tier", "prod"),)),
}
SCOPE_COVERS = {
    "everywhere": {None, "dev", "qa", "prod"},
    "dev": {"dev"},
    "qa": {"qa"},
    "tier=prod": {"prod"},
}
IMPLIED = {
    Role.ADMIN: set(Role),
    Role.PROMOTER: {Role.PROMOTER},
    Role.APPROVER: set(),
    Role.REPORTER: {Role.REPORTER},
    Role.VIEWER: set(),
}


@pytest.mark.parametrize("scope", sorted(SCOPES))
@pytest.mark.parametrize("role", [r for r in Role])
def test_role_action_scope_matrix(admin: Conveyor, role: Role, scope: str) -> None:
    for n in range(len(WRITES)):
        admin.create_release("shop", f"0.0.{n}", WEB)
    admin.add_user("alice", [])
    grant = admin.grant("user:alice", role, SCOPES[scope])
    alice = as_user(admin, "alice")
    for n, (name, (needs, env, call)) in enumerate(WRITES.items()):
        allowed = needs in IMPLIED[role] and env in SCOPE_COVERS[scope]
        if allowed:
            try:
                call(alice, n)
            except Forbidden as exc:
                pytest.fail(f"{role} over {scope} refused {name}: {exc}")
            except ConveyorError:  # allowed: the write itself may not apply here (a conflict)
                pass
            continue
        with pytest.raises(Forbidden) as refused:
            call(alice, n)
        where = f"environment {env}" if env else "every environment"
        assert "alice may not" in str(refused.value)
        assert f"the role {needs} over {where}" in str(refused.value), name
    assert grant > 1


def test_a_group_grant_counts_for_its_members_from_the_store_and_from_the_login(
    admin: Conveyor,
) -> None:
    admin.grant("group:releasers", Role.PROMOTER, Scope())
    admin.add_user("bob", ["releasers"])
    as_user(admin, "bob").create_release("shop", "1.0.0", WEB)
    as_user(admin, "carol", frozenset({"releasers"})).create_release("shop", "1.0.1", WEB)
    with pytest.raises(Forbidden, match="dave may not create releases"):
        as_user(admin, "dave").create_release("shop", "1.0.2", WEB)


def test_acting_as_another_user_is_for_admins_and_is_recorded_as_both(admin: Conveyor) -> None:
    admin.add_user("alice", [])
    admin.grant("user:alice", Role.PROMOTER, Scope())
    impersonated = Identity("alice", real="tester")
    Conveyor(admin.store, admin.clock, admin.registry, impersonated).create_release(
        "shop", "1.0.0", WEB
    )
    with admin.store.session() as s:
        last = s.scalars(select(AuditRow).order_by(AuditRow.id.desc())).first()
        assert last is not None and last.actor == "tester as alice"
    # alice is no admin: she cannot act as anyone
    with pytest.raises(Forbidden, match="alice may not act as another user"):
        Conveyor(admin.store, admin.clock, admin.registry, Identity("bob", real="alice")).label(
            "shop@1.0.0", {"k": "v"}
        )
    # acting as alice gives alice's roles, not the admin's
    with pytest.raises(Forbidden, match="alice may not apply definitions"):
        apply_yaml(Conveyor(admin.store, admin.clock, admin.registry, impersonated), BASE)


def test_a_new_store_is_claimed_by_its_first_local_writer_only(cv: Conveyor) -> None:
    remote = Conveyor(cv.store, cv.clock, cv.registry, Identity("mallory", local=False))
    with pytest.raises(Forbidden, match="mallory may not apply"):
        apply_yaml(remote, BASE)
    apply_yaml(cv, BASE)
    assert [(g.subject, g.role) for g in cv.grants()] == [("user:tester", Role.ADMIN)]
    with pytest.raises(Forbidden):
        apply_yaml(Conveyor(cv.store, cv.clock, cv.registry, "local:other"), BASE)


def test_the_last_admin_over_everything_cannot_be_revoked(admin: Conveyor) -> None:
    (only,) = admin.grants()
    with pytest.raises(DefinitionError, match="last admin grant"):
        admin.revoke(only.id)
    admin.add_user("root2", [])
    second = admin.grant("user:root2", Role.ADMIN, Scope())
    admin.revoke(only.id)
    assert [g.id for g in admin.grants()] == [second]


def test_tokens_are_shown_once_stored_hashed_and_expire_or_are_revoked(
    admin: Conveyor, clock: ManualClock
) -> None:
    admin.add_user("ci", [])
    token_id, token = admin.create_token("ci", timedelta(days=1), "pipeline")
    assert admin.identify(token) == Identity("ci", local=False)
    with admin.store.session() as s:
        dumped = "\n".join(str(r) for r in s.execute(select(AuditRow.after, AuditRow.before)))
    assert token not in dumped
    with admin.store.session() as s:
        stored = [(r.digest, r.description) for r in s.scalars(select(TokenRow))]
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), "pipeline")]
    with pytest.raises(Unauthenticated, match="unknown, expired or revoked"):
        admin.identify(token + "x")
    clock.advance(timedelta(days=1))
    with pytest.raises(Unauthenticated, match="unknown, expired or revoked"):
        admin.identify(token)
    _, second = admin.create_token("ci", timedelta(days=30))
    admin.revoke_token(token_id + 1)
    with pytest.raises(Unauthenticated):
        admin.identify(second)
    with pytest.raises(DefinitionError, match="at most 366 days"):
        admin.create_token("ci", timedelta(days=400))


def test_an_oidc_token_is_identified_with_its_groups_and_their_grants(
    admin: Conveyor, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The issuer publishes its keys on loopback; the token's groups meet the store's grants."""
    from tests.engine.test_jwtauth import RSA_KEY, jwk
    from tests.httpserver import Server

    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        keys = server.route("/keys", 200, {"keys": [jwk(RSA_KEY, "k1", "RS256")]})
        issuer = server.url("")
        config = tmp_path / "oidc.yaml"
        config.write_text(
            f"issuers:\n  - {{issuer: '{issuer}', audience: conveyor, jwksUri: '{keys}'}}\n"
        )
        monkeypatch.setenv("CONVEYOR_OIDC_CONFIG", str(config))
        claims = {
            "iss": issuer,
            "aud": "conveyor",
            "sub": "ada",
            "groups": ["release-managers"],
            "exp": int((clock.now() + timedelta(minutes=5)).timestamp()),
        }
        token = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
        admin.grant("group:release-managers", Role.APPROVER, Scope())
        who = admin.identify(token)
        assert (who.user, who.groups, who.local) == ("oidc:ada", {"release-managers"}, False)
        ada = Conveyor(admin.store, clock, actor=who)
        assert [g.role for g in ada.whoami()[2]] == [Role.APPROVER]
        tampered = token[:-6] + ("A" * 6 if not token.endswith("A" * 6) else "B" * 6)
        with pytest.raises(Unauthenticated, match="signature is not valid"):
            admin.identify(tampered)
    finally:
        server.shutdown()
        server.server_close()


def test_groups_are_names_and_each_counts_once(admin: Conveyor) -> None:
    admin.add_user("ada", ["sre", "sre", "qa-leads"])
    assert ("ada", ["qa-leads", "sre"]) in [(n, sorted(g)) for n, g in admin.users()]
    with pytest.raises(DefinitionError, match="is not a group name"):
        admin.add_user("bo", ["", "sre"])
    assert "bo" not in {n for n, _ in admin.users()}


def test_allows_counts_environment_labels_as_the_checks_do(admin: Conveyor) -> None:
    """What the pages ask before showing a button: a grant by labels covers prod."""
    admin.add_user("ada", ["release-managers"])
    admin.grant("group:release-managers", Role.APPROVER, Scope(labels=(("tier", "prod"),)))
    approves = as_user(admin, "ada").allows(Role.APPROVER, "approve")
    assert [approves(e) for e in ("prod", "qa", None)] == [True, False, False]
    assert admin.allows(Role.ADMIN, "anything")(None) is True
