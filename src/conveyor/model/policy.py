"""Which policies apply to a node, and how they merge (ascending priority, inline last)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.model.definitions import POLICY_FIELDS, Hooks, PolicyBody, PolicySpec


@dataclass(frozen=True)
class Target:
    """The product and environment a policy is matched against."""

    product: str
    environment: str
    type: str
    labels: Mapping[str, str] = field(default_factory=dict)


def matches(spec: PolicySpec, target: Target) -> bool:
    sel = spec.selector
    if sel.products is not None and target.product not in sel.products:
        return False
    env = sel.environments
    if env is None:
        return True
    if env.names is not None and target.environment not in env.names:
        return False
    if env.types is not None and target.type not in env.types:
        return False
    return env.labels is None or all(target.labels.get(k) == v for k, v in env.labels.items())


@dataclass(frozen=True)
class MergedPolicy:
    body: PolicyBody
    sources: dict[str, str]  # field -> where it came from ("PromotionPolicy/production")
    applied: list[str]  # every policy that matched, in merge order

    @property
    def hooks(self) -> Hooks:
        return self.body.hooks or Hooks()

    def snapshot(self, **extra: object) -> dict[str, object]:
        """What a promotion keeps of its policy: the body as JSON and where it came from."""
        body = self.body.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {"body": body, "sources": self.sources, "applied": self.applied, **extra}


def merge(
    policies: Mapping[str, PolicySpec],
    target: Target,
    inline: PolicyBody | None = None,
    inline_source: str = "flow node",
) -> MergedPolicy:
    """Later (higher priority) policies win per field; a node's inline policy wins over all."""
    chosen = sorted(
        ((name, spec) for name, spec in policies.items() if matches(spec, target)),
        key=lambda item: (item[1].priority, item[0]),
    )
    layers: list[tuple[str, PolicyBody]] = [(f"PromotionPolicy/{n}", s) for n, s in chosen]
    if inline is not None:
        layers.append((inline_source, inline))
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for source, body in layers:
        for name in POLICY_FIELDS:
            value = getattr(body, name)
            if value is not None:
                values[name] = value
                sources[name] = source
    return MergedPolicy(PolicyBody.model_validate(values), sources, [s for s, _ in layers])
