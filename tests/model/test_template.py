"""`${{ }}` templates: rendering, lookups, unknown names and apply-time shape checks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.model.template import (
    TemplateError,
    check_shape,
    lookup,
    references,
    render,
    render_tree,
    strings_in,
)

CONTEXT: dict[str, Any] = {
    "release": {"product": "shop", "version": "1.2.3", "labels": {"team": "web"}, "id": 7},
    "artifacts": {"web": {"name": "web", "digest": "sha256:abc", "version": ""}},
    "environment": {"name": "prod", "type": "production", "labels": {}, "settings": {}},
    "product": {"name": "shop"},
    "flow": {"name": "main", "version": None},
    "items": ["a", "b"],
}


# --- render and lookup -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ release.version }}", "1.2.3"),
        ("v${{release.version}}", "v1.2.3"),
        ("${{   release.product   }}@${{ release.version }}", "shop@1.2.3"),
        ("${{ artifacts.web.digest }}", "sha256:abc"),
        ("${{ release.labels.team }}-${{ environment.name }}", "web-prod"),
        ("${{ release.id }}", "7"),
        ("no templates here", "no templates here"),
        ("${ release.version }", "${ release.version }"),
        ("{{ release.version }}", "{{ release.version }}"),
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text, CONTEXT) == expected


def test_none_renders_as_empty_text() -> None:
    assert render("[${{ flow.version }}]", CONTEXT) == "[]"
    assert lookup(CONTEXT, "flow.version") == ""


def test_empty_string_value_is_kept_empty() -> None:
    assert lookup(CONTEXT, "artifacts.web.version") == ""


@pytest.mark.parametrize(
    "ref",
    [
        "release.nme",
        "relase.version",
        "artifacts.api.digest",
        "release.labels.owner",
        "release.version.major",
    ],
)
def test_unknown_name_is_an_error_never_empty(ref: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(f"x ${{{{ {ref} }}}} y", CONTEXT)
    assert ref in str(info.value)


def test_unknown_name_hint_lists_what_exists() -> None:
    with pytest.raises(TemplateError) as info:
        lookup(CONTEXT, "release.nme")
    message = str(info.value)
    for key in ("product", "version", "labels", "id"):
        assert key in message
    with pytest.raises(TemplateError) as info:
        lookup(CONTEXT, "relase.version")
    assert "release" in str(info.value) and "artifacts" in str(info.value)


@pytest.mark.parametrize("ref", ["release", "release.labels", "artifacts.web", "items"])
def test_group_is_not_a_value(ref: str) -> None:
    with pytest.raises(TemplateError) as info:
        lookup(CONTEXT, ref)
    assert "group" in str(info.value)
    with pytest.raises(TemplateError):
        render(f"${{{{ {ref} }}}}", CONTEXT)


def test_render_with_sub_transforms_each_value_not_the_text() -> None:
    seen: list[str] = []

    def sub(value: str) -> str:
        seen.append(value)
        return f"<{len(seen)}>"

    out = render("deploy ${{ release.product }} at ${{ release.version }};", CONTEXT, sub=sub)
    assert out == "deploy <1> at <2>;"
    assert seen == ["shop", "1.2.3"]


def test_sub_is_not_called_without_templates() -> None:
    def sub(value: str) -> str:
        raise AssertionError("no value to substitute")

    assert render("plain ${not} {{ a }}", CONTEXT, sub=sub) == "plain ${not} {{ a }}"


def test_values_are_not_rendered_again() -> None:
    context = {"release": {"labels": {"note": "${{ release.secret }}"}, "secret": "s3cr3t"}}
    assert render("${{ release.labels.note }}", context) == "${{ release.secret }}"


@given(st.text(max_size=40))
def test_any_value_is_substituted_verbatim(value: str) -> None:
    context = {"release": {"version": value}}
    assert render("a${{ release.version }}b", context) == f"a{value}b"


def test_render_tree() -> None:
    value = {
        "args": ["echo", "${{ release.version }}", 3, None],
        "env": {"WHERE": "${{ environment.name }}", "N": True},
        "plain": "text",
    }
    assert render_tree(value, CONTEXT) == {
        "args": ["echo", "1.2.3", 3, None],
        "env": {"WHERE": "prod", "N": True},
        "plain": "text",
    }
    with pytest.raises(TemplateError):
        render_tree({"a": ["${{ nope.x }}"]}, CONTEXT)


def test_references() -> None:
    assert references("a ${{ release.version }} b ${{x.y}} ${ z }") == ["release.version", "x.y"]
    assert references("none") == []


def test_strings_in() -> None:
    value = {"args": ["a", 1, {"b": "c"}], "env": {"K": "v"}, "n": 2}
    assert sorted(strings_in(value, ("with",)), key=str) == sorted(
        [
            (("with", "args", 0), "a"),
            (("with", "args", 2, "b"), "c"),
            (("with", "env", "K"), "v"),
        ],
        key=str,
    )
    assert strings_in(5) == []
    assert strings_in("x") == [((), "x")]


# --- apply-time shape checks -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "${{ release.version }}",
        "${{ release.labels.anything }}",
        "${{ artifacts.web.digest }} ${{ artifacts.api.ref }}",
        "${{ environment.settings.overlay }}",
        "${{ environment.labels.region }}",
        "${{ product.name }}/${{ flow.version }}",
        "no template at all",
    ],
)
def test_check_shape_accepts_names_that_can_resolve(text: str) -> None:
    check_shape(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("${{ release.nme }}", ["release.nme", "version"]),
        ("${{ relase.version }}", ["relase.version", "release"]),
        ("${{ artifacts.web.sha }}", ["artifacts.web.sha", "digest"]),
        ("${{ environment.region }}", ["environment.region", "labels"]),
    ],
)
def test_check_shape_refuses_unknown_names(text: str, words: list[str]) -> None:
    with pytest.raises(TemplateError) as info:
        check_shape(text)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("ref", ["release", "release.labels", "artifacts.web", "environment"])
def test_check_shape_refuses_groups(ref: str) -> None:
    with pytest.raises(TemplateError) as info:
        check_shape(f"${{{{ {ref} }}}}")
    assert "group" in str(info.value)


def test_check_shape_refuses_fields_of_values() -> None:
    with pytest.raises(TemplateError) as info:
        check_shape("${{ release.version.major }}")
    assert "major" in str(info.value)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "release..version",
        "1release.version",
        "release.ver sion",
        "release.version()",
        ".release",
    ],
)
def test_check_shape_refuses_what_is_not_a_name(ref: str) -> None:
    with pytest.raises(TemplateError):
        check_shape(f"${{{{ {ref} }}}}")


def test_check_shape_checks_every_reference() -> None:
    with pytest.raises(TemplateError) as info:
        check_shape("${{ release.version }} ${{ release.nme }}")
    assert "release.nme" in str(info.value)


def test_check_shape_with_a_custom_shape() -> None:
    known = {"step": {"output": None}}
    check_shape("${{ step.output }}", known)
    with pytest.raises(TemplateError):
        check_shape("${{ release.version }}", known)
