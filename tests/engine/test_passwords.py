"""Local users' passwords: argon2id hashes, set by the user or an admin, that open 12-hour
browser sessions; a wrong name and a wrong password are refused alike (issue 12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, Forbidden, Unauthenticated
from conveyor.model.access import Identity
from conveyor.store.tables import AuditRow, UserRow
from tests.engine.test_access import admin, as_user  # noqa: F401 (admin is a fixture)

SECRET = "correct horse battery"


def test_a_password_opens_a_session_the_logout_closes(
    admin: Conveyor,  # noqa: F811
    clock: ManualClock,
) -> None:
    admin.add_user("ada", ["sre"])
    ada = as_user(admin, "ada")
    ada.set_password("ada", SECRET)  # her own
    with admin.store.session() as s:
        stored = s.get(UserRow, "ada")
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$") and SECRET not in stored.password_hash
        trail = [(e.action, str(e.after)) for e in s.scalars(select(AuditRow))]
    assert ("user.password", "None") in trail and not any(SECRET in t for _, t in trail)

    token = admin.open_session("ada", SECRET)
    assert admin.identify(token) == Identity("ada", local=False)
    clock.advance(timedelta(hours=12, seconds=1))
    with pytest.raises(Unauthenticated, match="expired"):
        admin.identify(token)
    again = admin.open_session("ada", SECRET)
    admin.close_session(again)
    with pytest.raises(Unauthenticated):
        admin.identify(again)


def test_a_wrong_name_and_a_wrong_password_say_the_same(admin: Conveyor) -> None:  # noqa: F811
    admin.add_user("ada", [])
    admin.add_user("bo", [])  # no password: tokens and OIDC only
    admin.set_password("ada", SECRET)
    said = set()
    for user, password in [("ada", "wrong password!"), ("nobody", SECRET), ("bo", SECRET)]:
        with pytest.raises(Unauthenticated) as refused:
            admin.open_session(user, password)
        said.add(str(refused.value))
    assert said == {"wrong user name or password"}


def test_only_an_admin_sets_someone_elses_and_short_ones_are_refused(
    admin: Conveyor,  # noqa: F811
) -> None:
    admin.add_user("ada", [])
    admin.add_user("bo", [])
    with pytest.raises(Forbidden, match="admin"):
        as_user(admin, "bo").set_password("ada", SECRET)
    with pytest.raises(DefinitionError, match="12 to 1024 characters"):
        admin.set_password("ada", "short")
    admin.set_password("ada", SECRET)  # an admin may
    assert admin.identify(admin.open_session("ada", SECRET)).user == "ada"


def test_closing_a_session_leaves_api_tokens_alone(admin: Conveyor) -> None:  # noqa: F811
    admin.add_user("ci", [])
    _, token = admin.create_token("ci", timedelta(days=1), "pipeline")
    admin.close_session(token)
    assert admin.identify(token).user == "ci"
