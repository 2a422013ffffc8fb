"""The kinds of definition and the names people type for them (`get flows`, `get env`).

Apart from the models in definitions.py so that the CLI can name kinds without importing
pydantic (start-up time)."""

from __future__ import annotations

from conveyor.errors import DefinitionError, Problem

KIND_NAMES = ("Product", "Environment", "PromotionFlow", "PromotionPolicy", "NotificationSink")
ALIASES = {
    "product": "Product",
    "products": "Product",
    "environment": "Environment",
    "environments": "Environment",
    "env": "Environment",
    "envs": "Environment",
    "flow": "PromotionFlow",
    "flows": "PromotionFlow",
    "promotionflow": "PromotionFlow",
    "promotionflows": "PromotionFlow",
    "policy": "PromotionPolicy",
    "policies": "PromotionPolicy",
    "promotionpolicy": "PromotionPolicy",
    "promotionpolicies": "PromotionPolicy",
    "sink": "NotificationSink",
    "sinks": "NotificationSink",
    "notificationsink": "NotificationSink",
    "notificationsinks": "NotificationSink",
}


def canonical_kind(text: str) -> str:
    if text in KIND_NAMES:
        return text
    kind = ALIASES.get(text.lower())
    if kind is None:
        raise DefinitionError(
            Problem(
                f"unknown kind '{text}': use one of {', '.join(KIND_NAMES)}, or all",
                "command line",
                None,
                "kind",
            )
        )
    return kind
