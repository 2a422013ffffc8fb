"""`registry.copy`: promote an image by copying it, by digest, from one registry or stage
path to another (seed 003). What was tested is what is promoted: the source is the digest
pinned in the release; only what the destination lacks is moved."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import Field, model_validator

from conveyor.actions.base import ActionContext, ActionResult, ActionSettings, rendered_settings
from conveyor.errors import TerminalError
from conveyor.oci import auth, reference
from conveyor.oci.copy import copy_image


class RegistryCopySettings(ActionSettings):
    artifact: str | None = Field(
        None, description="Copy this release artifact (its repository and pinned digest)"
    )
    source: str | None = Field(None, description="Or an image reference, pinned by digest")
    destination: str = Field(description="registry/path/name:tag to write")
    sourceAuthEnv: str | None = Field(
        None, description="Variable holding the source's auth override (USER:PASSWORD, ...)"
    )
    destAuthEnv: str | None = Field(None, description="The same for the destination")
    insecure: bool = Field(False, description="Allow plain http (loopback registries)")
    force: bool = Field(False, description="Move a destination tag that points elsewhere")
    concurrency: int = Field(4, ge=1, le=32)

    @model_validator(mode="after")
    def _one_source(self) -> RegistryCopySettings:
        if (self.artifact is None) == (self.source is None):
            raise ValueError("give `artifact` (a release artifact's name) or `source`, not both")
        return self


class RegistryCopyAction:
    name: ClassVar[str] = "registry.copy"
    Settings: ClassVar[type[ActionSettings]] = RegistryCopySettings

    def run(self, ctx: ActionContext) -> ActionResult:
        s = rendered_settings(RegistryCopySettings, ctx)
        source_text = s.source or _artifact_ref(ctx, s.artifact or "")
        try:
            source, dest = reference.parse(source_text), reference.parse(s.destination)
        except ValueError as exc:
            raise TerminalError(str(exc)) from None
        if source.digest is None:
            raise TerminalError(f"{source_text} is not pinned: copy by digest (name@sha256:...)")
        if dest.tag is None:
            raise TerminalError(f"{s.destination} names no tag to write")
        report = copy_image(
            source,
            dest,
            source_auth=_auth(s.sourceAuthEnv, source.registry),
            dest_auth=_auth(s.destAuthEnv, dest.registry),
            insecure=s.insecure,
            force=s.force,
            concurrency=s.concurrency,
            cancel=ctx.cancel,
            timeout=ctx.timeout_s,
        )
        summary = (
            f"{report.digest} to {dest}: {report.bytes_moved} bytes moved, "
            f"{report.blobs_copied} blobs copied, {report.blobs_mounted} mounted, "
            f"{report.blobs_present} already there"
        )
        return ActionResult(True, f"copied {summary}", summary)


def _artifact_ref(ctx: ActionContext, name: str) -> str:
    artifact = ctx.template.get("artifacts", {}).get(name)
    if artifact is None:
        raise TerminalError(f"the release has no artifact '{name}'")
    ref = str(artifact.get("ref", ""))
    if "@" not in ref and artifact.get("repository"):
        ref = f"{artifact['repository']}@{artifact.get('digest')}"
    return ref


def _auth(variable: str | None, registry: str) -> auth.Credentials | None:
    if variable:
        value = os.environ.get(variable)
        if not value:
            raise TerminalError(f"environment variable {variable} is not set")
        try:
            return auth.from_override(value, registry=registry)
        except ValueError as exc:  # says what is wrong with it, never the secret itself
            raise TerminalError(f"{variable}: {exc}") from None
    return auth.from_docker_config(registry)
