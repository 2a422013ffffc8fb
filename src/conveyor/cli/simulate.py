"""`conveyor simulate`: forecast a release's promotions from a recorded health history.

Reading the history file (CSV or JSON lines) and drawing the forecast live here; the replay
is `conveyor.engine.simulate`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import dump, out, pairs, state_of, text_or_data, usage
from conveyor.cli.health import parse_at
from conveyor.errors import DefinitionError, Problem
from conveyor.model.duration import format_duration, parse_duration

if TYPE_CHECKING:
    from conveyor.engine.simulate import EnvironmentForecast, Forecast, HistoryReport

# As engine/simulate.py's DEFAULT_SPAN and MAX_PROBLEMS (a test checks they agree): not
# imported from there, which would load the engine for `conveyor --help`.
DEFAULT_SPAN = "14d"
MAX_PROBLEMS = 20
FIELDS = ("time", "environment", "entity", "node", "live", "state", "version")
_TEXT_FIELDS = ("environment", "entity", "node", "version")
_EXAMPLE = "2026-01-05T09:00:00Z,qa,cluster-a,node-1,true,HEALTHY,1.2.3"


def simulate(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="PRODUCT@VERSION; need not exist yet.")],
    flow: Annotated[
        str | None,
        typer.Option("--flow", help="Flow to trigger it on, if it is not running yet."),
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            help=f"Health reports, CSV (header {','.join(FIELDS)}) or JSON lines.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="ISO 8601 time with an offset. Default: the first report, else now."
        ),
    ] = None,
    span: Annotated[
        str,
        typer.Option("--for", help="How long to simulate, at most 31d."),
    ] = DEFAULT_SPAN,
    label: Annotated[
        list[str], typer.Option("--label", help="KEY=VALUE set on the release in the simulation.")
    ] = [],  # noqa: B006
    output: Annotated[str, typer.Option("-o", "--output", help="text, json or yaml")] = "text",
) -> None:
    """Forecast when each environment would be promoted, held or recalled, and why:
    the release replayed with its health history on a copy of the store, every action
    simulated (nothing outside happens, the store is not changed).

    \b
    Example:
      conveyor simulate shop@1.3.0 --flow main --history health.csv --for 7d
    """
    from conveyor.engine.simulate import simulate as replay

    text_or_data(output)
    try:
        duration = parse_duration(span)
    except ValueError as exc:
        raise usage(str(exc), "--for") from None
    state = state_of(ctx)
    state.database()
    reports = load_history(history) if history is not None else []
    forecast = replay(
        state.url,
        release,
        reports,
        flow=flow,
        start=parse_at(start, "--start"),
        span=duration,
        labels=pairs(label, "--label"),
        actor=state.identity().recorded,
    )
    if output != "text":
        dump(as_json(forecast), output)
        return
    for line in as_text(forecast, history, len(reports)):
        out.print(line, markup=False, highlight=False)


# --- reading the history -------------------------------------------------------------------


def load_history(path: Path) -> list[HistoryReport]:
    """Every report in a CSV file (header `time,environment,entity,node,live,state,version`)
    or a JSON-lines file (objects with those keys); all problems, each with its line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(f"cannot read the history: {exc}", name, None, "--history") from None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    rows = _json_lines(text, name) if first.startswith("{") else _csv_rows(text, name)
    reports: list[HistoryReport] = []
    problems: list[Problem] = []
    for line, values in rows:
        try:
            reports.append(_report(values, name, line))
        except DefinitionError as exc:
            problems += exc.problems
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem("more problems not shown: fix these first", name))
            break
    if problems:
        raise DefinitionError(problems)
    return reports


def _csv_rows(text: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [f.strip() for f in reader.fieldnames or []]
    wrong = [f"missing {f}" for f in FIELDS if f not in header]
    wrong += [f"unknown {f}" for f in header if f not in FIELDS]
    if wrong:
        raise _bad(
            f"the first line must be the header {','.join(FIELDS)} ({', '.join(wrong)}); "
            f"a row then reads like {_EXAMPLE}",
            name,
            1,
            "header",
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise _bad(
                f"{len(FIELDS)} values are needed ({','.join(FIELDS)}), e.g. {_EXAMPLE}",
                name,
                reader.line_num,
                "line",
            )
        rows.append((reader.line_num, dict(row)))
    return rows


def _json_lines(text: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(
                f"not JSON ({exc.msg}): write one object a line", name, number, "line"
            ) from None
        if not isinstance(value, dict):
            raise _bad(f"a line holds one object with keys {', '.join(FIELDS)}", name, number)
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise _bad(f"unknown key: use {', '.join(FIELDS)}", name, number, unknown[0])
        rows.append((number, {"state": None, **value}))
    return rows


def _bad(message: str, name: str, line: int | None, field: str = "") -> DefinitionError:
    return DefinitionError(Problem(message, name, line, field))


def _report(values: dict[str, Any], name: str, line: int) -> HistoryReport:
    def problem(message: str, field: str) -> DefinitionError:
        return _bad(message, name, line, field)

    for key in _TEXT_FIELDS:
        if not isinstance(values.get(key), str) or not values[key].strip():
            raise problem(f"{key} must be given, as text: a row reads like {_EXAMPLE}", key)
    when = values.get("time")
    if not isinstance(when, str):
        raise problem("time must be given, as text such as 2026-01-05T09:00:00Z", "time")
    try:
        time = datetime.fromisoformat(when.strip())
    except ValueError:
        raise problem(
            f"'{when}' is not an ISO 8601 time: write e.g. 2026-01-05T09:00:00Z", "time"
        ) from None
    if time.tzinfo is None:
        raise problem(f"'{when}' has no timezone: add an offset, e.g. {when}Z", "time")
    live = values.get("live")
    if isinstance(live, str) and live.strip().lower() in ("true", "false"):
        live = live.strip().lower() == "true"
    if not isinstance(live, bool):
        raise problem(f"live must be true or false, not '{live}'", "live")
    state = values.get("state")
    if state is not None and not isinstance(state, str):
        raise problem("state must be a health state's name, or empty for none", "state")
    from conveyor.engine.simulate import HistoryReport

    return HistoryReport(
        time.astimezone(UTC),
        values["environment"].strip(),
        values["entity"].strip(),
        values["node"].strip(),
        live,
        (state.strip() or None) if state else None,
        values["version"].strip(),
        name,
        line,
    )


# --- drawing the forecast ------------------------------------------------------------------


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC" if at.second else "%Y-%m-%d %H:%M UTC")


def _when(at: datetime, start: datetime) -> str:
    # A release that had already moved before the simulated start keeps its real times.
    after = "before the start" if at < start else f"+{format_duration(at - start)}"
    return f"{_stamp(at)} ({after})"


def environment_text(e: EnvironmentForecast, start: datetime) -> str:
    at = _when(e.at, start) if e.at else ""
    if e.outcome == "held":
        text = f"held since {at}: {e.reason}"
    elif e.reason.startswith("recalled: ") and e.held_reason:  # stopped while it waited
        text = f"{e.outcome} {at}: the release was recalled; held until then: {e.held_reason}"
    else:
        text = f"{e.outcome} {at}".strip() + (f": {e.reason}" if e.reason else "")
    if e.rolled_back_to:
        done = _when(e.rolled_back_at, start) if e.rolled_back_at else "(not finished)"
        text += f"; rolled back to {e.rolled_back_to} {done}"
    return text


def as_text(f: Forecast, history: Path | None = None, total: int = 0) -> list[str]:
    source = f"{f.reports} of {total} health reports from {history}" if history else "no history"
    lines = [
        f"Simulated {f.product}@{f.version} on flow {f.flow} from {_stamp(f.start)} "
        f"for {format_duration(f.span)}: {source}; every action simulated.",
        "",
    ]
    width = max((len(e.environment) for e in f.environments), default=0) + 2
    lines += [
        f"  {e.environment.ljust(width)}{environment_text(e, f.start)}" for e in f.environments
    ]
    lines.append("")
    status = f"release {f.product}@{f.version}: {f.status}"
    if f.finished_at is not None:
        status += f" {_when(f.finished_at, f.start)}"
    if f.message and f.status != "succeeded":
        status += f": {f.message}"
    if f.stopped != "release finished":
        status += f" (stopped at {_when(f.end, f.start)}: {f.stopped})"
    return [*lines, status]


def as_json(f: Forecast) -> dict[str, Any]:
    from conveyor.jsonstyle import timestamp

    def when(at: datetime | None) -> str | None:
        return timestamp(at) if at else None

    def after(at: datetime | None) -> float | None:
        return (at - f.start).total_seconds() if at else None

    return {
        "release": f"{f.product}@{f.version}",
        "flow": f.flow,
        "start": when(f.start),
        "end": when(f.end),
        "forSeconds": f.span.total_seconds(),
        "stopped": f.stopped,
        "status": f.status,
        "message": f.message,
        "finishedAt": when(f.finished_at),
        "reports": f.reports,
        "environments": [
            {
                "environment": e.environment,
                "node": e.node,
                "outcome": e.outcome,
                "at": when(e.at),
                "afterSeconds": after(e.at),
                "reason": e.reason,
                "startedAt": when(e.started_at),
                "deployedAt": when(e.deployed_at),
                "heldReason": e.held_reason,
                "rolledBackTo": e.rolled_back_to,
                "rolledBackAt": when(e.rolled_back_at),
            }
            for e in f.environments
        ],
    }
