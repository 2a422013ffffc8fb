"""`conveyor health`: report node health, and see how a release's soak is going."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import cv_of, dump, out, text_or_data, usage
from conveyor.jsonstyle import health_doc, verdict
from conveyor.model.healthstate import HealthState

if TYPE_CHECKING:
    from conveyor.health.timeline import EntityHealth

STATES = tuple(s.value for s in HealthState)

health_app = typer.Typer(help="Health reports and release soak health.", no_args_is_help=True)

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at", help="ISO 8601 time with an offset, e.g. 2026-01-05T09:00:00Z. Default now."
    ),
]


def parse_at(text: str | None, option: str = "--at") -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise usage(f"'{text}' is not an ISO 8601 time", option) from None
    if value.tzinfo is None:
        raise usage(
            f"'{text}' has no timezone: add an offset, e.g. {text}Z or {text}+02:00", option
        )
    return value


@health_app.command("report")
def report(
    ctx: typer.Context,
    first: Annotated[
        str,
        typer.Argument(
            metavar="ENVIRONMENT",
            help="The entity's environment; or the entity alone, when only one has it.",
        ),
    ],
    node: Annotated[str, typer.Option("--node", help="The node reporting.")],
    version: Annotated[str, typer.Option("--version", help="The version the node runs.")],
    second: Annotated[
        str | None, typer.Argument(metavar="ENTITY", help="The entity.", show_default=False)
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help=f"One of {', '.join(STATES)}; omit for a liveness-only report."
        ),
    ] = None,
    not_live: Annotated[
        bool, typer.Option("--not-live", help="The node is not live (not serving).")
    ] = False,
    at: AtOption = None,
) -> None:
    """Record one health report of a node of an entity in an environment.

    \b
    Example:
      conveyor health report qa shop-qa --node pod-1 --version 1.2.3 --state HEALTHY
    """
    cv = cv_of(ctx)
    if second is not None:
        environment, entity = first, second
    else:
        environment, named = cv.where_is(first)
        if named is None:
            raise usage(
                f"'{first}' is an environment: name the entity too, "
                f"`health report {first} ENTITY ...`",
                "ENTITY",
            )
        entity = named
    stored = cv.report_health(environment, entity, node, not not_live, state, version, parse_at(at))
    what = "recorded" if stored else "already recorded"
    out.print(f"health report of {entity}/{node} in {environment} {what}", markup=False)


def as_text(health: EntityHealth, healthy: float, unhealthy: float) -> str:
    from conveyor.model.duration import format_duration

    return (
        f"{health.entity}: {verdict(health)}"
        f"  soak {format_duration(health.soak)}"
        f"  healthy {format_duration(health.healthy)} ({health.healthy_ratio:.1%}, need"
        f" >= {healthy:.1%})"
        f"  unhealthy {format_duration(health.unhealthy)} ({health.unhealthy_ratio:.1%},"
        f" limit {unhealthy:.1%})"
    )


@health_app.command("show")
def show(
    ctx: typer.Context,
    place: Annotated[
        str, typer.Argument(metavar="ENVIRONMENT|ENTITY", help="An environment, or an entity.")
    ],
    release: Annotated[
        str | None,
        typer.Option("--release", help="PRODUCT@VERSION. Default: what runs there now."),
    ] = None,
    entity: Annotated[str | None, typer.Option("--entity", help="Only this entity.")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text, json or yaml")] = "text",
    at: AtOption = None,
) -> None:
    """Per entity: soak time, healthy and unhealthy time and ratios, and the verdict.

    \b
    Example:
      conveyor health show qa --release shop@1.2.3 -o json
    """
    from conveyor.engine.releases import parse_ref
    from conveyor.model.definitions import ProductSpec

    text_or_data(output)
    cv = cv_of(ctx)
    environment, named = cv.where_is(place)
    product, version = parse_ref(release or cv.running(environment))
    if named is not None and entity not in (None, named):
        raise usage(f"'{place}' is an entity: leave --entity out", "--entity")
    entity = entity or named
    results = cv.health(environment, product, version, entity, parse_at(at))
    (current,) = cv.get("Product", product)
    assert isinstance(current.spec, ProductSpec)
    healthy = current.spec.rolloutCriteria.healthyThreshold
    unhealthy = current.spec.rolloutCriteria.unhealthyThreshold
    ordered = [results[name] for name in sorted(results)]
    if output != "text":
        dump([health_doc(h, healthy, unhealthy) for h in ordered], output)
        return
    if not ordered:
        out.print(f"no health reports in {environment} yet", markup=False)
    for h in ordered:
        out.print(as_text(h, healthy, unhealthy), markup=False, highlight=False)


@health_app.command("probe")
def probe(ctx: typer.Context) -> None:
    """Run every environment's health probes once now and store what they answer (the
    engine, `conveyor engine`, runs them on their intervals).

    \b
    Example:
      conveyor health probe
    """
    statuses = cv_of(ctx).engine.probe_due()
    if not statuses:
        out.print("no probes are defined (spec.health.probes of an Environment)", markup=False)
    for s in statuses:
        out.print(
            f"{s.environment}/{s.entity}/{s.node} {s.url}: {s.message}",
            markup=False,
            highlight=False,
        )
