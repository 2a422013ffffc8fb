"""`conveyor init | apply | get | delete | schema | flow show | policy explain`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import check_output, cv_of, dump, out, state_of, stdin, text, usage
from conveyor.model.kinds import KIND_NAMES, canonical_kind

if TYPE_CHECKING:
    from conveyor.store.peek import StoredDefinition

flow_app = typer.Typer(help="Look at promotion flows.", no_args_is_help=True)
policy_app = typer.Typer(help="Look at promotion policies.", no_args_is_help=True)


def init(ctx: typer.Context) -> None:
    """Create the database (at --db, $CONVEYOR_DATABASE_URL or ./conveyor.db); its first
    user becomes its admin.

    \b
    Example:
      conveyor --db /var/lib/conveyor/conveyor.db init
    """
    state = state_of(ctx)
    claimed = state.cv(create=True).claim()
    out.print(f"database ready: {state.url}", markup=False, highlight=False)
    if claimed:
        out.print(
            f"{claimed} is its admin (`conveyor grant ROLE --user NAME` gives others roles)",
            markup=False,
            highlight=False,
        )


def apply(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Option(
            "-f", "--file", metavar="FILE", help="A YAML file or directory; - reads stdin."
        ),
    ],
) -> None:
    """Apply definitions: all of them, or none if any is invalid.

    \b
    Examples:
      conveyor apply -f conveyor/
      helm template . | conveyor apply -f -
    """
    from conveyor.spec.loader import load_paths, load_text

    docs = []
    if "-" in files:
        docs.extend(load_text(stdin().read(), "<stdin>"))
    docs.extend(load_paths([f for f in files if f != "-"]))
    for d, what in cv_of(ctx, create=True).apply(docs=docs):
        out.print(f"{d.ref} {what}", markup=False, highlight=False)


def get(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="product, env, flow, policy (singular or plural, or the kind's name), or all",
        ),
    ],
    name: Annotated[str | None, typer.Argument(metavar="NAME")] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", help="table, wide, yaml or json")
    ] = "table",
) -> None:
    """List definitions, or show one. `-o yaml` prints documents that apply back unchanged
    (what the store adds is under `status:`, which apply ignores).

    \b
    Examples:
      conveyor get flows
      conveyor get all -o wide
      conveyor get env prod -o yaml > prod.yaml
    """
    check_output(output, ("table", "wide", "yaml", "json"))
    kinds = KIND_NAMES if kind == "all" else (canonical_kind(kind),)
    items = [d for k in kinds for d in _current(ctx, k) if name is None or d.name == name]
    if name is not None and not items:
        from conveyor.errors import NotFound

        raise NotFound(f"{kinds[0]}/{name} does not exist (see `conveyor get {kind}`)")
    if output in ("table", "wide"):
        _table(items, wide=output == "wide")
        return
    docs = [_with_status(d) for d in items]
    dump(docs[0] if name else docs, output, documents=not name)


def _current(ctx: typer.Context, kind: str) -> list[StoredDefinition]:
    from conveyor.store import peek

    path = state_of(ctx).database()
    if path is not None:
        try:
            return peek.definitions(path, kind)
        except peek.NotAtHead:
            cv_of(ctx)  # brings the database to head
            return peek.definitions(path, kind)
    return [
        peek.StoredDefinition(c.kind, c.name, c.revision, c.document, c.applied_by, c.applied_at)
        for c in cv_of(ctx).get(kind)
    ]


def _summary(document: dict[str, Any]) -> str:
    spec = document.get("spec") or {}
    for field in ("version", "type", "priority"):
        if field in spec:
            return f"{field} {spec[field]}"
    return ""


def _table(items: list[StoredDefinition], wide: bool) -> None:
    from rich.table import Table

    from conveyor.jsonstyle import timestamp

    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ["kind", "name", "revision", "summary"]
    columns += ["applied by", "applied at"] if wide else []
    for col in columns:
        table.add_column(col)
    for d in items:
        row = [d.kind, d.name, str(d.revision), _summary(d.document)]
        row += [d.applied_by, timestamp(d.applied_at)] if wide else []
        table.add_row(*row)
    out.print(table)


def _with_status(d: StoredDefinition) -> dict[str, Any]:
    status = {"revision": d.revision, "appliedBy": d.applied_by, "appliedAt": d.applied_at}
    return {**{k: v for k, v in d.document.items() if k != "status"}, "status": status}


def delete(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(metavar="KIND")],
    name: Annotated[str, typer.Argument(metavar="NAME")],
) -> None:
    """Delete a definition (its revisions stay in the history).

    \b
    Example:
      conveyor delete policy qa-health
    """
    kind = canonical_kind(kind)
    cv_of(ctx).delete(kind, name)
    out.print(f"{kind}/{name} deleted", markup=False, highlight=False)


def schema(kind: Annotated[str | None, typer.Argument(metavar="KIND")] = None) -> None:
    """Print the JSON Schema of the definitions (of any kind, chosen by `kind:`), or of one
    kind, for editors: gates, actions' `with` and `verify` are typed.

    \b
    Example (VS Code with the YAML extension: first line of a definitions file):
      conveyor schema > conveyor.schema.json
      # yaml-language-server: $schema=conveyor.schema.json
    """
    from conveyor.engine.registry import default_registry
    from conveyor.spec.schema import all_kinds_schema, document_schema

    catalog = default_registry()
    if kind is None:
        dump(all_kinds_schema(catalog), "json")
    else:
        dump(document_schema(canonical_kind(kind), catalog), "json")


@flow_app.command("show")
def flow_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="FLOW")],
    fmt: Annotated[str, typer.Option("--format", help="text, mermaid or dot")] = "text",
) -> None:
    """Draw a flow's DAG.

    \b
    Example:
      conveyor flow show main --format mermaid
    """
    from conveyor.model.flowdraw import draw

    (flow,) = cv_of(ctx).get("PromotionFlow", name)
    try:
        drawing = draw(flow.spec, fmt, name=name)
    except ValueError as exc:
        raise usage(str(exc), "--format") from None
    text(drawing)


@policy_app.command("explain")
def policy_explain(
    ctx: typer.Context,
    product: Annotated[str, typer.Argument(metavar="PRODUCT")],
    environment: Annotated[str, typer.Argument(metavar="ENVIRONMENT")],
) -> None:
    """The policy a product gets in an environment, and where each field came from.

    \b
    Example:
      conveyor policy explain shop prod
    """
    merged = cv_of(ctx).explain(product, environment)
    out.print(f"policies applied, in order: {', '.join(merged.applied) or 'none'}")
    body = merged.body.model_dump(mode="json", by_alias=True, exclude_none=True)
    for field, value in body.items():
        out.print(f"\n[bold]{field}[/bold]  (from {merged.sources[field]})")
        dump(value, "yaml")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(apply)
    app.command()(get)
    app.command()(delete)
    app.command()(schema)
    app.add_typer(flow_app, name="flow")
    app.add_typer(policy_app, name="policy")
