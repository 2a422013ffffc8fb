"""`conveyor p2p promote`: seed 003's command. Each flag defaults to its environment
variable, so a pipeline that sets them calls it with the image alone."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import err, out, usage
from conveyor.errors import DefinitionError, Problem

if TYPE_CHECKING:
    from conveyor.oci import auth

p2p_app = typer.Typer(
    help="Path to production: promote images between registries.", no_args_is_help=True
)


def _flag(help_text: str, *variables: str) -> Any:
    return typer.Option(envvar=list(variables), show_envvar=True, help=help_text)


@p2p_app.command("promote")
def promote(
    image: Annotated[str, typer.Argument(help="IMAGE:TAG, e.g. web:1.2.3")],
    source_registry: Annotated[
        str | None,
        _flag("required, defaults to environment variable: SOURCE_REGISTRY", "SOURCE_REGISTRY"),
    ] = None,
    source_stage: Annotated[
        str | None,
        _flag("required, defaults to environment variable: SOURCE_STAGE", "SOURCE_STAGE"),
    ] = None,
    dest_registry: Annotated[
        str | None,
        _flag(
            "required, defaults to environment variable: DEST_REGISTRY (or REGISTRY)",
            "DEST_REGISTRY",
            "REGISTRY",
        ),
    ] = None,
    dest_stage: Annotated[
        str | None, _flag("required, defaults to environment variable: DEST_STAGE", "DEST_STAGE")
    ] = None,
    source_auth_override: Annotated[
        str | None,
        _flag(
            "optional, defaults to environment variable: SOURCE_AUTH_OVERRIDE",
            "SOURCE_AUTH_OVERRIDE",
        ),
    ] = None,
    dest_auth_override: Annotated[
        str | None,
        _flag(
            "optional, defaults to environment variable: DEST_AUTH_OVERRIDE", "DEST_AUTH_OVERRIDE"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Move a destination tag that points elsewhere.")
    ] = False,
    insecure: Annotated[bool, typer.Option(help="Allow plain http (loopback registries).")] = False,
) -> None:
    """Promotes an image from the source registry and stage to the destination, by digest.

    \b
    Example:
      SOURCE_REGISTRY=registry.dev.example.com SOURCE_STAGE=dev \\
      DEST_REGISTRY=registry.example.com DEST_STAGE=prod conveyor p2p promote web:1.2.3
    """
    from conveyor.oci import auth, reference
    from conveyor.oci.copy import copy_image

    given = {
        ("--source-registry", "SOURCE_REGISTRY"): source_registry,
        ("--source-stage", "SOURCE_STAGE"): source_stage,
        ("--dest-registry", "DEST_REGISTRY (or REGISTRY)"): dest_registry,
        ("--dest-stage", "DEST_STAGE"): dest_stage,
    }
    missing = [
        Problem(f"{flag} is required: give it, or set {variable}", "command line", None, flag)
        for (flag, variable), value in given.items()
        if not value
    ]
    if missing:
        raise DefinitionError(missing)
    name, sep, tag = image.rpartition(":")
    if not sep or not name or not tag or "/" in tag:
        raise usage(f"'{image}' is not IMAGE:TAG", "image")
    try:
        source = reference.parse(f"{source_registry}/{_path(source_stage, name)}:{tag}")
        dest = reference.parse(f"{dest_registry}/{_path(dest_stage, name)}:{tag}")
    except ValueError as exc:
        raise usage(str(exc), "image") from None
    source_auth = _override(
        source_auth_override, source.registry, "--source-auth-override", "SOURCE_AUTH_OVERRIDE"
    )
    dest_auth = _override(
        dest_auth_override, dest.registry, "--dest-auth-override", "DEST_AUTH_OVERRIDE"
    )
    progress = _Progress() if sys.stderr.isatty() else None
    report = copy_image(
        source,
        dest,
        source_auth=source_auth or auth.from_docker_config(source.registry),
        dest_auth=dest_auth or auth.from_docker_config(dest.registry),
        insecure=insecure,
        force=force,
        progress=progress.update if progress else _plain,
    )
    if progress:
        progress.close()
    out.print(
        f"promoted {report.digest} to {dest}: {report.bytes_moved} bytes moved, "
        f"{report.blobs_copied} blobs copied, {report.blobs_mounted} mounted, "
        f"{report.blobs_present} already there",
        markup=False,
        highlight=False,
    )


def _override(
    value: str | None, registry: str, flag: str, variable: str
) -> auth.Credentials | None:
    from conveyor.oci import auth

    try:
        return auth.from_override(value, registry=registry)
    except ValueError as exc:  # the message describes the form, never the secret
        raise usage(f"{flag} ({variable}): {exc}", flag) from None


def _path(stage: str | None, name: str) -> str:
    return f"{stage.strip('/')}/{name}" if stage and stage.strip("/") else name


def _plain(what: str, done: int, total: int) -> None:
    if done >= total:  # one line a blob, when it is done: readable in CI logs
        err.print(f"{what}: {total} bytes", markup=False, highlight=False)


class _Progress:
    """A bar per blob on a terminal."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self._bar = Progress(console=err, transient=True)
        self._tasks: dict[str, int] = {}
        self._bar.start()

    def update(self, what: str, done: int, total: int) -> None:
        if what not in self._tasks:
            self._tasks[what] = self._bar.add_task(what[:40], total=total or None)
        self._bar.update(self._tasks[what], completed=done)  # type: ignore[arg-type]

    def close(self) -> None:
        self._bar.stop()
