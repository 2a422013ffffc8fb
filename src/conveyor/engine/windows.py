"""Which windows govern promotions of a product to an environment, and what they say at a
given time (`conveyor windows`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from conveyor.engine import resources
from conveyor.model.policy import Target, merge
from conveyor.model.window import Decision, WindowDef, decide

_WINDOWS = TypeAdapter(list[WindowDef])


def windows_for(
    session: Session, environment: str, product: str | None
) -> list[tuple[str, WindowDef]]:
    """(where it is defined, window): the environment's, the product's, and those of the
    `window` gates of the policy the product gets there."""
    env = resources.get_current(session, "Environment", environment)
    found = [(f"Environment/{environment}", w) for w in env.spec.windows]
    if product is None:
        return found
    spec = resources.get_current(session, "Product", product).spec
    found += [(f"Product/{product}", w) for w in spec.windows]
    merged = merge(
        resources.policies(session), Target(product, environment, env.spec.type, env.labels)
    )
    for gate in merged.body.gates or []:
        if "window" in gate:
            where = merged.sources.get("gates", "a policy")
            found += [(where, w) for w in _WINDOWS.validate_python(gate["window"]["windows"])]
    return found


def windows_at(
    session: Session, environment: str, product: str | None, at: datetime
) -> tuple[list[tuple[str, WindowDef]], Decision]:
    found = windows_for(session, environment, product)
    return found, decide([w for _, w in found], at)
