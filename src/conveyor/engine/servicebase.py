"""What every operation of the service shares: the store, the clock, who acts, and the
unit of work that checks their role and wakes engines once it commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from conveyor.clock import Clock, SystemClock
from conveyor.engine import access, notify, resources, wakeup
from conveyor.engine.reconciler import Engine
from conveyor.engine.registry import Registry, default_registry
from conveyor.model.access import Identity, Role
from conveyor.store.db import Store


class ServiceBase:
    """The state every operation reads; `Conveyor` adds the operations."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        registry: Registry | None = None,
        actor: str | Identity = "anonymous",
        workdir: Path | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.registry = registry or default_registry()
        self.identity = actor if isinstance(actor, Identity) else Identity(actor)
        self.actor = self.identity.recorded
        self.workdir = workdir or Path.cwd()
        self._engine: Engine | None = None
        self._wake_path = wakeup.path_for(store.engine.url)
        self._notify_sql = wakeup.notify_sql(store.engine.url)
        notify.install()

    @contextmanager
    def _write(
        self, role: Role | None, action: str, environment: str | None = None
    ) -> Iterator[Session]:
        """A unit of work that changes state, allowed to the caller if they hold `role` over
        `environment` (None: every environment); once committed, engines are woken. With
        role None, the method checks access itself (`_allow`)."""
        with self.store.session() as session:
            if self.identity.real:
                access.may_act_as(session, Identity(self.identity.real), self.clock.now())
            if role is not None:
                self._allow(session, role, action, environment)
            yield session
            if self._notify_sql is not None:  # PostgreSQL: delivered at commit, to every engine
                session.execute(text(self._notify_sql))
        wakeup.notify(self._wake_path)
        if self._engine is not None:
            self._engine.wake.set()

    def _allow(self, s: Session, role: Role, action: str, environment: str | None = None) -> None:
        labels = resources.environments(s).get(environment, (None, {}))[1] if environment else {}
        access.authorize(s, self.identity, role, action, self.clock.now(), environment, labels)
