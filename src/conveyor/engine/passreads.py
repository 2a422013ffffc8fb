"""What a pass reads, once: the releases due with their promotions, task runs and gate
results loaded together, definitions, parsed plans and flows, who holds which environment,
and which versions were triggered and deployed where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import resources
from conveyor.engine.context import flow_spec, policy_body, policy_from
from conveyor.engine.parsed import FlowParts, Parsed
from conveyor.model.definitions import EnvironmentSpec
from conveyor.model.flow import build_graph
from conveyor.model.plan import Plan, build_plan, release_plan
from conveyor.model.states import PromotionState, ReleaseStatus
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow, TaskRunRow

CHUNK = 500  # ids per IN (...) list


class PassReads:
    """Mixed into PassContext, which holds these attributes."""

    session: Session
    now: datetime
    parsed: Parsed
    _task_rows: dict[int, dict[tuple[str, int, str, str], TaskRunRow]]
    _promotions: dict[int, list[PromotionRow]]
    _gate_rows: dict[tuple[int, int, str], list[GateResultRow]]
    _gates_read: set[int]
    _deployed: dict[tuple[str, str], list[str]]
    _deployed_read: set[str]
    _versions: dict[str, list[str]]
    _holders: dict[str, list[tuple[PromotionRow, ReleaseRow]]] | None
    _environments: dict[str, tuple[EnvironmentSpec, dict[str, str]]] | None

    def preload(self, releases: list[ReleaseRow]) -> None:
        """Read the promotions, task runs and current gate results of the releases due, in
        a fixed number of queries (chunked), instead of a few per release."""
        ids = [r.id for r in releases]
        for chunk in (ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)):
            for release_id in chunk:
                self._promotions[release_id] = []
                self._task_rows[release_id] = {}
            promotions = self.session.scalars(
                select(PromotionRow)
                .where(PromotionRow.release_id.in_(chunk))
                .order_by(PromotionRow.id)
            )
            for p in promotions:
                self._promotions[p.release_id].append(p)
                self._gates_read.add(p.id)
            self.parse_plans([p.id for r in chunk for p in self._promotions[r]])
            for row in self.session.scalars(
                select(TaskRunRow).where(TaskRunRow.release_id.in_(chunk))
            ):
                key = (row.scope, row.generation, row.stage, row.task)
                self._task_rows[row.release_id][key] = row
            for g in self.session.scalars(
                select(GateResultRow)
                .join(PromotionRow, GateResultRow.promotion_id == PromotionRow.id)
                .where(
                    PromotionRow.release_id.in_(chunk),
                    GateResultRow.generation == PromotionRow.generation,
                )
            ):
                self._gate_rows.setdefault((g.promotion_id, g.generation, g.stage), []).append(g)
        self._read_versions({r.product for r in releases})

    def _read_versions(self, products: set[str]) -> None:
        """For the products of the releases due: the versions ever triggered, and which
        succeeded where (for "never an older release over a newer one"), in two queries."""
        if not products:
            return
        with self.session.no_autoflush:
            for product in products:
                self._versions[product] = []
            triggered = select(ReleaseRow.product, ReleaseRow.version).where(
                ReleaseRow.product.in_(products), ReleaseRow.status != ReleaseStatus.CREATED
            )
            for product, version in self.session.execute(triggered):
                self._versions[product].append(version)
            succeeded = (
                select(ReleaseRow.product, PromotionRow.environment, ReleaseRow.version)
                .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
                .where(
                    ReleaseRow.product.in_(products),
                    PromotionRow.state == PromotionState.SUCCEEDED,
                )
            )
            for product, environment, version in self.session.execute(succeeded):
                self._deployed.setdefault((product, environment), []).append(version)
            self._deployed_read.update(products)

    def parse_plans(self, ids: list[int]) -> None:
        """Parse the plans not parsed yet, their policies read in one query (the column is
        deferred: most passes need none)."""
        missing = [i for i in ids if i not in self.parsed.plans]
        if missing:
            with self.session.no_autoflush:
                rows = self.session.execute(
                    select(PromotionRow.id, PromotionRow.policy).where(PromotionRow.id.in_(missing))
                )
                for pid, policy in rows:
                    self.parsed.plans[pid] = build_plan(policy_from(policy))

    def promotions(self, release: ReleaseRow) -> list[PromotionRow]:
        found = self._promotions.get(release.id)
        if found is None:
            found = self._promotions[release.id] = list(
                self.session.scalars(
                    select(PromotionRow)
                    .where(PromotionRow.release_id == release.id)
                    .order_by(PromotionRow.id)
                )
            )
        return found

    def gate_rows(self, p: PromotionRow, stage: str) -> list[GateResultRow]:
        """The stored results of a promotion's gates at `stage` in its current generation."""
        key = (p.id, p.generation, stage)
        if key not in self._gate_rows and p.id in self._gates_read:
            self._gate_rows[key] = []  # read with the release: it has none yet
        if key not in self._gate_rows:
            self._gate_rows[key] = list(
                self.session.scalars(
                    select(GateResultRow).where(
                        GateResultRow.promotion_id == p.id,
                        GateResultRow.generation == p.generation,
                        GateResultRow.stage == stage,
                    )
                )
            )
        return self._gate_rows[key]

    @property
    def environments(self) -> dict[str, tuple[EnvironmentSpec, dict[str, str]]]:
        """The environments as defined now, read once per pass."""
        if self._environments is None:
            self._environments = resources.environments(self.session)
        return self._environments

    def plan(self, p: PromotionRow) -> Plan:
        """A promotion's plan, parsed once (its policy never changes)."""
        plan = self.parsed.plans.get(p.id)
        if plan is None:
            plan = self.parsed.plans[p.id] = build_plan(policy_body(p))
        return plan

    def flow(self, release: ReleaseRow) -> FlowParts:
        """A release's flow (as triggered), its graph and hooks, parsed once per revision."""
        key = (release.flow, release.flow_revision)
        parts = self.parsed.flows.get(key)
        if parts is None:
            spec = flow_spec(release)
            graph, _ = build_graph(spec)
            parts = self.parsed.flows[key] = FlowParts(spec, graph, *release_plan(spec.hooks))
        return parts

    def triggered_versions(self, product: str) -> list[str]:
        """Versions of a product that were ever sent down a flow, read once per pass."""
        versions = self._versions.get(product)
        if versions is None:
            with self.session.no_autoflush:
                versions = self._versions[product] = list(
                    self.session.scalars(
                        select(ReleaseRow.version).where(
                            ReleaseRow.product == product,
                            ReleaseRow.status != ReleaseStatus.CREATED,
                        )
                    )
                )
        return versions

    def deployed_versions(self, product: str, environment: str) -> list[str]:
        """Versions of `product` that succeeded in `environment`: read once per pass for
        each pair, and kept up to date as the pass's promotions succeed or are recalled."""
        key = (product, environment)
        versions = self._deployed.get(key)
        if versions is None and product in self._deployed_read:
            versions = self._deployed[key] = []  # read with the product: none there yet
        if versions is None:
            with self.session.no_autoflush:
                versions = self._deployed[key] = list(
                    self.session.scalars(
                        select(ReleaseRow.version)
                        .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
                        .where(
                            PromotionRow.environment == environment,
                            PromotionRow.state == PromotionState.SUCCEEDED,
                            ReleaseRow.product == product,
                        )
                    )
                )
        return versions

    def _task_index(self, release_id: int) -> dict[tuple[str, int, str, str], TaskRunRow]:
        """A release's task rows, read once per pass: only the pass writes them."""
        index = self._task_rows.get(release_id)
        if index is None:
            rows = self.session.scalars(
                select(TaskRunRow).where(TaskRunRow.release_id == release_id)
            )
            index = {(r.scope, r.generation, r.stage, r.task): r for r in rows}
            self._task_rows[release_id] = index
        return index

    def holders(self, environment: str) -> list[tuple[PromotionRow, ReleaseRow]]:
        """The promotions deploying to an environment now (running or verifying)."""
        if self._holders is None:
            self._holders = {}
            for p, r in self.session.execute(_HOLDERS).all():
                self._holders.setdefault(p.environment, []).append((p, r))
        return self._holders.setdefault(environment, [])

    def reread_holders(self, environment: str) -> None:
        """Another engine may have claimed `environment` since the pass read it."""
        holders = self.holders(environment)
        q = _HOLDERS.where(PromotionRow.environment == environment)
        holders[:] = [(p, r) for p, r in self.session.execute(q).all()]


_HOLDERS = (
    select(PromotionRow, ReleaseRow)
    .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
    .where(PromotionRow.state.in_([PromotionState.RUNNING, PromotionState.VERIFYING]))
)
