"""Conveyor's operations in one place: what the CLI (and later the API) call.

Each method is one unit of work in the store, audited under the caller's name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from conveyor.engine import (
    access,
    approvals,
    auditsign,
    delivery,
    healthbatch,
    overview,
    recall,
    releases,
    resources,
    rollback,
    windows,
)
from conveyor.engine import health as health_reports
from conveyor.engine import revisions as history
from conveyor.engine.healthbatch import HealthReportIn
from conveyor.engine.people import People
from conveyor.engine.reconciler import Engine, PassOutcome
from conveyor.engine.view import ReleaseView, build
from conveyor.errors import DefinitionError, NotFound, Problem
from conveyor.health.timeline import EntityHealth, HealthState
from conveyor.model.access import Role
from conveyor.model.kinds import canonical_kind
from conveyor.model.policy import MergedPolicy, Target, merge
from conveyor.model.window import Decision, WindowDef
from conveyor.spec import Definition, SourceDoc, load_paths
from conveyor.store import audit, auditreplay
from conveyor.store.db import open_store
from conveyor.store.tables import AuditRow, OutboxRow, PromotionRow, ReleaseRow


class Conveyor(People):
    """Conveyor's operations, each one unit of work audited under the caller's name."""

    @classmethod
    def open(cls, url: str | None = None, **kwargs: Any) -> Conveyor:
        return cls(open_store(url), **kwargs)

    # --- definitions -------------------------------------------------------------------

    def apply(
        self, paths: list[str | Path] | None = None, docs: list[SourceDoc] | None = None
    ) -> list[tuple[Definition, str]]:
        docs = docs if docs is not None else load_paths(paths or [])
        with self._write(Role.ADMIN, "apply definitions") as s:
            return resources.apply(s, docs, self.registry, self.actor, self.clock.now())

    def get(self, kind: str, name: str | None = None) -> list[resources.Current]:
        kind = canonical_kind(kind)
        with self.store.read() as s:
            if name:
                return [resources.get_current(s, kind, name)]
            return resources.list_current(s, kind)

    def revisions(self, kind: str, name: str) -> list[history.Revision]:
        with self.store.read() as s:
            return history.revisions(s, canonical_kind(kind), name)

    def delete(self, kind: str, name: str) -> int:
        with self._write(Role.ADMIN, "delete definitions") as s:
            return resources.delete(s, canonical_kind(kind), name, self.actor, self.clock.now())

    def explain(self, product: str, environment: str) -> MergedPolicy:
        with self.store.read() as s:
            resources.get_current(s, "Product", product)
            env = resources.get_current(s, "Environment", environment)
            return merge(
                resources.policies(s), Target(product, environment, env.spec.type, env.labels)
            )

    # --- releases ----------------------------------------------------------------------

    def create_release(
        self,
        product: str,
        version: str,
        artifacts: dict[str, str],
        labels: dict[str, str] | None = None,
    ) -> ReleaseRow:
        with self._write(Role.PROMOTER, "create releases") as s:
            return releases.create(
                s, product, version, artifacts, labels or {}, self.actor, self.clock.now()
            )

    def trigger(self, flow: str, ref: str) -> ReleaseRow:
        with self._write(None, "trigger") as s:
            release = releases.find(s, ref)
            for env in releases.entry_environments(s, flow):
                self._allow(s, Role.PROMOTER, f"trigger flow {flow}", env)
            return releases.trigger(s, flow, release, self.actor, self.clock.now())

    def label(self, ref: str, labels: dict[str, str], remove: list[str] | None = None) -> None:
        with self._write(Role.PROMOTER, "label releases") as s:
            releases.set_labels(
                s, releases.find(s, ref), labels, remove or [], self.actor, self.clock.now()
            )

    def retry(self, ref: str) -> list[str]:
        with self._write(Role.PROMOTER, "retry releases") as s:
            return releases.retry(s, releases.find(s, ref), self.actor, self.clock.now())

    def terminate(self, ref: str) -> None:
        with self._write(Role.PROMOTER, "terminate releases") as s:
            releases.terminate(s, releases.find(s, ref), self.actor, self.clock.now())

    def recall(self, ref: str, reason: str) -> bool:
        """Recall a release everywhere; False when it was recalled already."""
        if not reason.strip():
            raise DefinitionError(
                Problem("a recall needs a reason: say why", "command line", None, "--reason")
            )
        with self._write(Role.PROMOTER, "recall releases") as s:
            return recall.recall(s, releases.find(s, ref), reason, self.actor, self.clock.now())

    def rollback(self, environment: str, to: str, revert: bool = False) -> PromotionRow:
        with self._write(Role.PROMOTER, "roll back", environment) as s:
            return rollback.rollback(s, environment, to, revert, self.actor, self.clock.now())

    def show(self, ref: str) -> ReleaseView:
        with self.store.read() as s:
            return build(s, releases.find(s, ref), self.clock.now())

    def list_releases(self, product: str | None = None) -> list[ReleaseRow]:
        with self.store.read() as s:
            q = select(ReleaseRow).order_by(ReleaseRow.id)
            if product:
                q = q.where(ReleaseRow.product == product)
            return list(s.scalars(q))

    # --- people's decisions -----------------------------------------------------------------

    def approve(self, promotion: str, comment: str = "") -> None:
        self._decide(promotion, "approve", comment)

    def reject(self, promotion: str, comment: str = "") -> None:
        """End the promotion `rejected`; the promotions after it in the flow are skipped."""
        self._decide(promotion, "reject", comment)

    def _decide(self, ref: str, verdict: str, comment: str) -> None:
        with self._write(None, verdict) as s:
            release, promotion = approvals.find(s, ref)
            self._allow(s, Role.APPROVER, f"{verdict} promotions", promotion.environment)
            groups = sorted(set(access.groups_of(s, self.identity.user)) | self.identity.groups)
            who = approvals.Decider(self.identity, groups)
            approvals.record_decision(
                s, release, promotion, who, verdict, comment, self.clock.now()
            )

    def override_window(self, ref: str, reason: str) -> None:
        """Let one promotion through its closed windows (those with manualOverride)."""
        if not reason.strip():
            raise DefinitionError(
                Problem("an override needs a reason: say why", "command line", None, "--reason")
            )
        with self._write(None, "override windows") as s:
            release, promotion = approvals.find(s, ref)
            self._allow(s, Role.ADMIN, "override windows", promotion.environment)
            approvals.override_window(
                s, release, promotion, self.identity, reason, self.clock.now()
            )

    def approvals(self) -> list[tuple[str, str, str]]:
        """What waits for the caller's approval: (promotion, what it waits for, since)."""
        with self.store.session() as s:
            groups = sorted(set(access.groups_of(s, self.identity.user)) | self.identity.groups)
            return approvals.waiting_for(s, self.identity, groups)

    # --- health --------------------------------------------------------------------------

    def report_health(
        self,
        environment: str,
        entity: str,
        node: str,
        live: bool,
        state: str | HealthState | None,
        version: str,
        at: datetime | None = None,
    ) -> bool:
        """Record a node's health report (at `at`, default now); False if already recorded."""
        now = self.clock.now()
        with self._write(Role.REPORTER, "report health", environment) as s:
            return health_reports.record(
                s, environment, entity, node, at or now, live, state, version, now
            )

    def report_health_batch(self, reports: list[HealthReportIn]) -> int:
        """Record many reports in one unit of work, all or none (a bad one names its index);
        how many were new. The caller needs the reporter role over each environment."""
        now = self.clock.now()
        with self._write(None, "report health") as s:
            specs = {}
            for environment in sorted({r.environment for r in reports}):
                self._allow(s, Role.REPORTER, "report health", environment)
                specs[environment] = health_reports.current_environment(s, environment)
            return healthbatch.record_many(s, reports, specs, now)

    def health(
        self,
        environment: str,
        product: str,
        version: str,
        entity: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, EntityHealth]:
        """Each entity's health over the soak of `product@version` until `at` (default now)."""
        with self.store.session() as s:
            return health_reports.show(
                s, environment, product, version, at or self.clock.now(), entity
            )

    def running(self, environment: str) -> str:
        """PRODUCT@VERSION of the release that last succeeded in `environment`."""
        with self.store.read() as s:
            resources.get_current(s, "Environment", environment)
            release = rollback.current_release(s, environment)
        if release is None:
            raise NotFound(
                f"no release has succeeded in {environment} yet: name one with --release"
            )
        return f"{release.product}@{release.version}"

    def where_is(self, name: str) -> tuple[str, str | None]:
        """(environment, entity) for `health show NAME`: an environment's name, else an
        entity's, when exactly one environment has an entity of that name."""
        with self.store.read() as s:
            if name in resources.environments(s):
                return name, None
            places = health_reports.environments_of(s, name)
        if len(places) == 1:
            return places[0], name
        if not places:
            raise NotFound(f"no environment or entity is named '{name}' (see `conveyor get envs`)")
        raise DefinitionError(
            Problem(
                f"entity '{name}' is in {', '.join(places)}: say which, e.g. "
                f"`health show {places[0]} --entity {name}`",
                "command line",
                None,
                "ENVIRONMENT|ENTITY",
            )
        )

    # --- the engine and the audit trail ------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.store, self.clock, self.registry, self.workdir)
        return self._engine

    def run_until_idle(self) -> PassOutcome:
        """Passes until nothing can move, then one delivery of the notifications due."""
        outcome = self.engine.run_until_idle()
        delivery.deliver_due(self.store, self.clock)
        return outcome

    def status(self, product: str | None = None) -> list[overview.EnvironmentStatus]:
        with self.store.read() as s:
            return overview.status(s, product)

    def audit_log(
        self,
        release: str | None = None,
        environment: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        with self.store.session() as s:
            return audit.events(s, release, environment, actor, since, limit)

    def windows(
        self, environment: str, product: str | None = None, at: datetime | None = None
    ) -> tuple[list[tuple[str, WindowDef]], Decision]:
        """The windows that govern `product`'s promotions to `environment` and whether one
        may start at `at` (default now); without a product, the environment's alone."""
        with self.store.read() as s:
            if product is None:
                names = sorted(resources.products(s))
                product = names[0] if len(names) == 1 else None
            return windows.windows_at(s, environment, product, at or self.clock.now())

    def metrics(self, with_process: bool = False) -> str:
        """The Prometheus text exposition of what the store holds now (`with_process`: and
        this process's engine passes)."""
        from conveyor.engine import metrics  # prometheus_client: a tenth of a second

        with self.store.session() as s:
            return metrics.exposition(s, self.clock.now(), with_process)

    def notifications(self, undelivered: bool = False, limit: int = 50) -> list[OutboxRow]:
        """The newest `limit` notifications (only those not delivered: `undelivered`)."""
        q = select(OutboxRow)
        if undelivered:
            q = q.where(OutboxRow.delivered_at.is_(None))
        with self.store.read() as s:
            return list(s.scalars(q.order_by(OutboxRow.id.desc()).limit(limit)))[::-1]

    def verify_audit(self) -> tuple[int, list[str]]:
        """The hash chain, then each release's status and labels against its events."""
        with self.store.session() as s:
            count, problems = audit.verify(s)
            problems += auditreplay.disagreements(s)
            if problems:  # for the notification sinks: the trail itself cannot be trusted
                after = {"problems": len(problems), "first": problems[0]}
                audit.append(
                    s, self.clock.now(), self.actor, "audit.verify-failed", "audit", None, after
                )
            return count, problems

    def close(self) -> None:
        """Hand back the engine, sign what this process added to the audit trail, close."""
        if self._engine is not None:
            self._engine.close()
        auditsign.Signer(self.store, self.clock).sign_quietly()
        self.store.close()
