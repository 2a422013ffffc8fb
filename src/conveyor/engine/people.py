"""Users, groups, grants and API tokens: the admin's side of the service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from conveyor.engine import access, jwtauth, passwords, resources
from conveyor.engine.servicebase import ServiceBase
from conveyor.errors import Forbidden, Unauthenticated
from conveyor.model.access import Grant, Identity, Need, Role, Scope, permits
from conveyor.store.tables import TokenRow


class People(ServiceBase):
    _verifier: jwtauth.Verifier | None = None

    def claim(self) -> str | None:
        """Become the admin of a store nobody administers yet; your name if you did."""
        with self.store.session() as s:
            claimed = access.claim_if_unowned(s, self.identity, self.clock.now())
        return self.identity.user if claimed else None

    def may_look(self, environment: str | None = None) -> None:
        """Reads through the server need a role, any role (each role may look): over some
        environment, or over `environment` for what concerns it alone. Forbidden otherwise.
        Acting as someone else needs admin."""
        with self.store.session() as s:
            if self.identity.real:
                access.may_act_as(s, Identity(self.identity.real), self.clock.now())
            grants = access.grants_of(s, self.identity)
            if not grants:
                raise Forbidden(
                    f"{self.identity.user} may not look: that needs a role (viewer at least) "
                    f"over some environment (an admin grants it: `conveyor grant viewer --user "
                    f"{self.identity.user}`)"
                )
            if environment is not None and not _covered(s, grants)(environment):
                raise Forbidden(
                    f"{self.identity.user} may not look at {environment}: that needs a role "
                    f"over it (`conveyor grant viewer --user {self.identity.user} --env "
                    f"{environment}`)"
                )

    def looks_at(self) -> Callable[[str], bool]:
        """Which environments the caller may look at: those a grant of theirs covers."""
        with self.store.read() as s:
            return _covered(s, access.grants_of(s, self.identity))

    def allows(self, role: Role, action: str) -> Callable[[str | None], bool]:
        """Whether the caller holds `role` over an environment (None: over every one), its
        labels counted as the service's checks count them. Read once, asked for each of a
        page's buttons; the service checks again when one is pressed."""
        with self.store.read() as s:
            grants = access.grants_of(s, self.identity)
            labels = {name: env for name, (_, env) in resources.environments(s).items()}

        def allowed(environment: str | None) -> bool:
            env_labels = labels.get(environment, {}) if environment else {}
            return permits(grants, Need(role, action, environment, env_labels))

        return allowed

    def whoami(self) -> tuple[Identity, list[str], list[Grant]]:
        with self.store.session() as s:
            return (
                self.identity,
                access.groups_of(s, self.identity.user),
                access.grants_of(s, self.identity),
            )

    def add_user(self, name: str, groups: list[str]) -> None:
        with self._write(Role.ADMIN, "add users") as s:
            access.add_user(s, name, groups, self.actor, self.clock.now())

    def remove_user(self, name: str) -> None:
        with self._write(Role.ADMIN, "remove users") as s:
            access.remove_user(s, name, self.actor, self.clock.now())

    def set_password(self, user: str, password: str) -> None:
        """Your own password, or (admins) anyone's."""
        with self._write(None, "set passwords") as s:
            if user != self.identity.user or self.identity.real:
                self._allow(s, Role.ADMIN, "set other users' passwords")
            passwords.set_password(s, user, password, self.actor, self.clock.now())

    def open_session(self, user: str, password: str) -> str:
        """Log in with a password: a token for the browser, good for 12 hours."""
        with self.store.session() as s:
            return passwords.open_session(s, user, password, self.clock.now())

    def close_session(self, token: str) -> None:
        with self.store.session() as s:
            passwords.close_session(s, token, self.clock.now())

    def users(self) -> list[tuple[str, list[str]]]:
        with self.store.read() as s:
            return access.users(s)

    def grant(self, subject: str, role: Role, scope: Scope) -> int:
        with self._write(Role.ADMIN, "grant roles") as s:
            return access.grant(s, subject, role, scope, self.actor, self.clock.now())

    def revoke(self, grant_id: int) -> None:
        with self._write(Role.ADMIN, "revoke roles") as s:
            access.revoke(s, grant_id, self.actor, self.clock.now())

    def grants(self) -> list[Grant]:
        with self.store.read() as s:
            return access.all_grants(s)

    def create_token(
        self, user: str, lifetime: timedelta, description: str = ""
    ) -> tuple[int, str]:
        with self._write(Role.ADMIN, "create tokens") as s:
            return access.create_token(s, user, lifetime, description, self.actor, self.clock.now())

    def revoke_token(self, token_id: int) -> None:
        with self._write(Role.ADMIN, "revoke tokens") as s:
            access.revoke_token(s, token_id, self.actor, self.clock.now())

    def tokens(self) -> list[TokenRow]:
        with self.store.read() as s:
            return access.tokens(s)

    def identify(self, token: str) -> Identity:
        """Who a bearer token stands for (the server asks for each request): a Conveyor API
        token (`cvt_...`), else an OIDC JWT from an issuer in CONVEYOR_OIDC_CONFIG."""
        if not token.startswith(access.TOKEN_PREFIX):
            verifier = self.oidc()
            if verifier is None:
                raise Unauthenticated("the token is not a Conveyor API token (cvt_...)")
            return verifier.identify(token)
        with self.store.session() as s:
            return access.identify(s, token, self.clock.now())

    def oidc(self) -> jwtauth.Verifier | None:
        """The OIDC issuers this server trusts (CONVEYOR_OIDC_CONFIG), None if none; their
        keys are kept between requests."""
        if self._verifier is None:
            issuers = jwtauth.issuers_from_env()
            if issuers:
                self._verifier = jwtauth.Verifier(issuers, self.clock)
        return self._verifier


def _covered(s: Session, grants: list[Grant]) -> Callable[[str], bool]:
    labels = {name: env_labels for name, (_, env_labels) in resources.environments(s).items()}
    return lambda env: any(g.scope.covers(env, labels.get(env, {})) for g in grants)
