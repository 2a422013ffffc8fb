"""`git.yaml-set`: set keys in a YAML file (Helm values, any manifest) and commit.

`set` maps paths (`image.tag`, `spec.template.spec.containers[0].image`,
`metadata.annotations."example.com/rev"`) to values. Values may be templates; paths are
literal, so they are checked when the definition is applied. A value keeps the type
given: `"1.10"` stays a string, `3` a number. Comments, order, quotes and indentation of
the file stay as they were; missing mappings on a path are created, list items are not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator
from ruamel.yaml.comments import CommentedMap

from conveyor.actions import yamledit
from conveyor.actions.base import ActionContext, ActionResult, ActionSettings
from conveyor.actions.gitrepo import (
    GitSettings,
    check_relative,
    commit_and_push,
    inside,
    member_settings,
)
from conveyor.errors import TerminalError


class YamlSetSettings(GitSettings):
    file: str = Field(min_length=1, description="The YAML file, relative to the repository")
    set: dict[str, Any] = Field(min_length=1, description="path -> value, e.g. image.tag")

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        return check_relative(value)

    @field_validator("set")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            yamledit.parse_path(path)  # its ValueError says where the path is wrong
        return value


class YamlSetAction:
    name: ClassVar[str] = "git.yaml-set"
    Settings: ClassVar[type[ActionSettings]] = YamlSetSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        settings = member_settings(YamlSetSettings, ctx)

        def edit(root: Path) -> list[str]:
            file = inside(root, settings.file)
            if not file.is_file():
                raise TerminalError(f"{settings.file} does not exist in the repository")
            return [edit_yaml(root, file, lambda doc: set_all(doc, settings.set))]

        keys = ", ".join(settings.set)
        return commit_and_push(ctx, settings, edit, f"set {keys} in {settings.file}")


def set_all(doc: CommentedMap, values: dict[str, Any]) -> bool:
    changed = False
    for path, value in values.items():
        try:
            changed |= yamledit.set_path(doc, path, value)
        except ValueError as exc:
            raise ValueError(f"cannot set {path}: {exc}") from None
    return changed


def edit_yaml(root: Path, file: Path, change: Callable[[CommentedMap], bool]) -> str:
    """Apply `change` to a YAML file in the working copy; its path relative to `root`.

    Bytes in, bytes out: a CRLF file stays CRLF, and a file `change` leaves saying the
    same is not written at all.
    """
    rel = file.relative_to(root.resolve()).as_posix()
    try:
        text = file.read_bytes().decode("utf-8")
        doc = yamledit.load(text)
        new = yamledit.dump(doc) if change(doc) else text
    except (UnicodeDecodeError, ValueError) as exc:
        raise TerminalError(f"{rel}: {exc}") from None
    if new != text:
        file.write_bytes(new.encode("utf-8"))
    return rel
