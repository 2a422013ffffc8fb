"""`git.kustomize-set-image`: what `kustomize edit set image` does to an overlay, committed.

The matching `images:` entry gets the fields given; a field not given (or given as `"*"`)
keeps its value, except that a digest replaces a `newTag` and a tag a `digest`, as in
kustomize. So an overlay's `newName` survives a task that sets only the digest.
Unlike the CLI, nothing else in the file moves: other entries keep their order, the file
its comments and layout; a missing entry is added last, a missing `images:` at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from conveyor.actions import yamledit
from conveyor.actions.base import ActionContext, ActionResult, ActionSettings
from conveyor.actions.git_yaml_set import edit_yaml
from conveyor.actions.gitrepo import (
    GitSettings,
    check_relative,
    commit_and_push,
    inside,
    member_settings,
)
from conveyor.errors import TerminalError
from conveyor.oci.reference import DIGEST

FIELDS = ("newName", "newTag", "digest")  # in the order a new entry lists them
KEEP = "*"  # kustomize's "keep what the entry has"
FILENAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")  # as kustomize


class KustomizeSetImageSettings(GitSettings):
    path: str = Field(min_length=1, description="Directory holding kustomization.yaml")
    image: str = Field(min_length=1, description="The `name` of the images: entry")
    newName: str | None = Field(None, min_length=1, description='"*" keeps the current one')
    newTag: str | None = Field(None, min_length=1, description='"*" keeps the current one')
    digest: str | None = Field(None, min_length=1, description='sha256:...; "*" keeps it')

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_relative(value)

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value and "${{" not in value and value != KEEP and not DIGEST.match(value):
            raise ValueError(f"'{value}' is not a digest: write sha256:<64 hex digits>")
        return value

    @model_validator(mode="after")
    def _something(self) -> KustomizeSetImageSettings:
        if self.newName is None and self.newTag is None and self.digest is None:
            raise ValueError("give at least one of newName, newTag, digest")
        return self


class KustomizeSetImageAction:
    name: ClassVar[str] = "git.kustomize-set-image"
    Settings: ClassVar[type[ActionSettings]] = KustomizeSetImageSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        settings = member_settings(KustomizeSetImageSettings, ctx)
        wanted = {f: getattr(settings, f) for f in FIELDS}
        shown = ", ".join(f"{k}={v}" for k, v in wanted.items() if v is not None)

        def edit(root: Path) -> list[str]:
            file = kustomization(root, settings.path)
            return [edit_yaml(root, file, lambda doc: set_image(doc, settings.image, wanted))]

        return commit_and_push(ctx, settings, edit, f"set image {settings.image} ({shown})")


def kustomization(root: Path, path: str) -> Path:
    """The one kustomization file in `path`, as kustomize finds it."""
    directory = inside(root, path)
    found = [inside(root, f"{path}/{n}") for n in FILENAMES if (directory / n).is_file()]
    if len(found) != 1:
        what = "no kustomization file" if not found else "more than one kustomization file"
        raise TerminalError(f"{what} in '{path}' (looked for {', '.join(FILENAMES)})")
    return found[0]


def set_image(doc: CommentedMap, image: str, wanted: dict[str, str | None]) -> bool:
    """Make the `images:` entry named `image` hold exactly `wanted`; True if it changed."""
    images = doc.get("images")
    if images is None:
        images = CommentedSeq()
        yamledit.put(doc, "images", images)
        images = doc["images"]
    if not isinstance(images, CommentedSeq):
        raise ValueError("'images' is not a list")
    entries = [e for e in images if isinstance(e, CommentedMap) and e.get("name") == image]
    if len(entries) > 1:
        raise ValueError(f"'images' has {len(entries)} entries named '{image}'; keep one")
    if not entries:
        entry = CommentedMap(name=image)
        if images and isinstance(images[-1], CommentedMap) and images[-1].fa.flow_style():
            entry.fa.set_flow_style()  # as the entries around it are written
        if not images:
            images.fa.set_block_style()  # `images: []` becomes a list written in full
        fill(entry, wanted)
        yamledit.append(images, entry)
        return True
    return fill(entries[0], wanted)


def fill(entry: CommentedMap, wanted: dict[str, str | None]) -> bool:
    """Set what is given. Unlike `kustomize edit set image`, a field not given is kept
    (an overlay's `newName` survives a task that sets only `digest`), except that a
    digest replaces a tag and a tag a digest, as in kustomize."""
    changed = False
    given = {k: v for k, v in wanted.items() if v is not None and v != KEEP}
    drop = {"digest"} if "newTag" in given and "digest" not in given else set()
    drop |= {"newTag"} if "digest" in given and "newTag" not in given else set()
    for key in FIELDS:
        if key in given:
            changed |= yamledit.put(entry, key, given[key])
        elif key in drop:
            changed |= yamledit.drop(entry, key)
    return changed
