"""Round-trip YAML edits: the file comes back byte for byte, an edit touches its lines only."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.actions import yamledit
from conveyor.actions.yamledit import Layout, dump, layout_of, load, parse_path, set_path

COMMENTS_AND_QUOTES = """\
# Overlay for production: keep this header.
apiVersion: kustomize.config.k8s.io/v1beta1   # aligned comment
kind: Kustomization

resources:
- ../../base
- 'service.yaml'
images:
- name: web
  newTag: "1.2.3"  # bumped by
- name: worker
  newName: 'registry.local/worker'
  newTag: v7

# generators below
configMapGenerator:
- name: settings
  literals: ["A=1", 'B=2']
"""

FOUR_SPACES = """\
image:
    repository: registry.local/web
    tag: "1.0.0"
    pullPolicy: IfNotPresent
resources:
    limits:
        cpu: 500m
        memory: 256Mi
ingress:
    hosts:
      - host: shop.example.com
        paths:
          - /
      - host: www.example.com
        paths:
          - /
"""

OFFSET_TWO = """\
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          image: registry.local/web:1.0.0
          args:
            - --port=8080
            - --verbose
        - name: sidecar
          image: registry.local/proxy:2.1
"""

FLOW_AND_DRIFT = """\
---
labels: { app: web, tier: "frontend" }
ports: [80, 443]
replicas:   3
empty:
nothing: ~
url: http://a.example.com/a/very/long/path/that/goes/on/and/on/and/on/well/past/eighty/columns/x
script: |
  echo one
  echo two
tags: {}
"""

MIXED_LISTS = """\
resources:
- base
- extra
images:
  - name: web
    newTag: "1"
  - name: db
    newTag: "2"
patches:
- path: patch.yaml
"""

SAMPLES = {
    "comments-and-quotes": COMMENTS_AND_QUOTES,
    "four-spaces": FOUR_SPACES,
    "offset-two": OFFSET_TWO,
    "flow-and-drift": FLOW_AND_DRIFT,
    "mixed-lists": MIXED_LISTS,
    "crlf": COMMENTS_AND_QUOTES.replace("\n", "\r\n"),
    "no-final-newline": "a: 1\nb: [x, y]",
    "empty": "",
    "only-comments": "# nothing here yet\n",
    "comment-above-start": "# generated\n---\na: 1\n",
}


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_is_byte_for_byte(name: str) -> None:
    text = SAMPLES[name]
    assert dump(load(text)) == text


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), after
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


@pytest.mark.parametrize(
    ("name", "path", "value", "line_after"),
    [
        ("comments-and-quotes", "images[0].newTag", "1.2.4", '  newTag: "1.2.4"  # bumped by'),
        ("comments-and-quotes", "images[1].newName", "r/w", "  newName: 'r/w'"),
        ("four-spaces", "image.tag", "2.0.0", '    tag: "2.0.0"'),
        ("four-spaces", "ingress.hosts[1].paths[0]", "/www", "          - /www"),
        ("offset-two", "spec.template.spec.containers[1].image", "p:3", "          image: p:3"),
        ("offset-two", "spec.template.spec.containers[0].args[0]", "-p=9", "            - -p=9"),
        ("flow-and-drift", "replicas", 5, "replicas: 5"),
        ("flow-and-drift", "labels.tier", "backend", 'labels: {app: web, tier: "backend"}'),
        ("mixed-lists", "images[1].newTag", "3", '    newTag: "3"'),
        ("mixed-lists", "resources[1]", "more", "- more"),
    ],
)  # fmt: skip
def test_an_edit_changes_its_own_line_only(
    name: str, path: str, value: Any, line_after: str
) -> None:
    text = SAMPLES[name]
    doc = load(text)
    assert set_path(doc, path, value)
    out = dump(doc)
    ((_, new),) = changed_lines(text, out)
    assert new == line_after
    assert load(out) == doc


def test_crlf_stays_crlf() -> None:
    text = SAMPLES["crlf"]
    doc = load(text)
    set_path(doc, "images[1].newTag", "v8")
    out = dump(doc)
    assert out == text.replace("newTag: v7", "newTag: v8")


def test_a_new_key_goes_last_in_its_mapping_above_the_comments_that_follow() -> None:
    doc = load(COMMENTS_AND_QUOTES)
    set_path(doc, "images[1].digest", "sha256:" + "b" * 64)
    set_path(doc, "namespace", "shop")
    out = dump(doc).splitlines()
    assert out[out.index("  newTag: v7") + 1] == "  digest: sha256:" + "b" * 64
    assert out[out.index("  newTag: v7") + 3] == "# generators below"
    assert out[-1] == "namespace: shop"


def test_missing_mappings_are_created_with_the_files_indentation() -> None:
    doc = load(FOUR_SPACES)
    assert set_path(doc, 'podAnnotations."example.com/rev"', "abc")
    out = dump(doc)
    assert out == FOUR_SPACES + "podAnnotations:\n    example.com/rev: abc\n"
    assert set_path(doc, "resources.requests.cpu", "100m")
    assert "        memory: 256Mi\n    requests:\n        cpu: 100m\n" in dump(doc)


def test_a_trailing_block_scalar_keeps_the_comment_after_it_last() -> None:
    doc = load("a: 1\nscript: |\n  echo\n# the end\n")
    set_path(doc, "b", 2)
    assert dump(doc) == "a: 1\nscript: |\n  echo\nb: 2\n# the end\n"


def test_a_file_of_comments_only_keeps_them_above_what_is_added() -> None:
    doc = load("# image:\n#   tag: x\n")
    set_path(doc, "image.tag", "1.2.3")
    assert dump(doc) == "# image:\n#   tag: x\nimage:\n  tag: 1.2.3\n"


def test_values_keep_the_type_given() -> None:
    doc = load("a: x\nb: 1\nc: 'q'\nd: \"dq\"\n")
    for path, value in {"a": "1.10", "b": "2", "c": 3, "d": "true", "e": None, "f": [1]}.items():
        set_path(doc, path, value)
    again = load(dump(doc))
    assert again == {"a": "1.10", "b": "2", "c": 3, "d": "true", "e": None, "f": [1]}
    assert 'd: "true"' in dump(doc)  # double quotes stay double


def test_setting_what_is_already_there_changes_nothing() -> None:
    doc = load(COMMENTS_AND_QUOTES)
    assert not set_path(doc, "images[0].newTag", "1.2.3")
    assert not set_path(doc, "kind", "Kustomization")
    assert set_path(load("n: 5\n"), "n", "5")  # a string where a number was is a change
    assert dump(doc) == COMMENTS_AND_QUOTES


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("n: 1\n", True),  # Python has True == 1: YAML does not
        ("n: 1\n", "1"),
        ("n: {a: 1}\n", {"a": True}),
        ("n: [1, 2]\n", ["1", 2]),
        ("n: {a: [0]}\n", {"a": [False]}),
    ],
)
def test_a_change_of_kind_is_a_change_at_every_depth(text: str, value: Any) -> None:
    doc = load(text)
    assert set_path(doc, "n", value)
    assert load(dump(doc))["n"] == value and not set_path(doc, "n", value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("images[5].newTag", "x", r"'images' has 2 item\(s\): there is no \[5\]"),
        ("kind.sub", "x", "'kind' is a string, not a mapping"),
        ("images.name", "x", "'images' is a list, not a mapping"),
        ("resources[0][1]", "x", r"'resources\[0\]' is a string, not a list"),
        ("newList[0]", "x", "'newList' is missing or empty; lists are not created"),
        ("images", "web", "'images' is a list: give a list"),
        ("images[0]", "web", r"'images\[0\]' is a mapping: give a mapping"),
    ],
)
def test_paths_that_do_not_fit_are_clear_errors(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        set_path(load(COMMENTS_AND_QUOTES), path, value)


def test_path_syntax() -> None:
    assert parse_path("a.b[0].c") == ["a", "b", 0, "c"]
    assert parse_path('metadata.annotations."example.com/x"') == [
        "metadata",
        "annotations",
        "example.com/x",
    ]
    assert parse_path('"a\\"b".c') == ['a"b', "c"]
    assert parse_path("[2]") == [2]
    for bad in ["", "a..b", "a.", ".a", "a[x]", "a[1", 'a."b', "a[-1]"]:
        with pytest.raises(ValueError, match="path"):
            parse_path(bad)


def test_layout_detection() -> None:
    assert layout_of(COMMENTS_AND_QUOTES) == Layout(2, 2, 0)
    assert layout_of(FOUR_SPACES)[:3] == (4, 4, 2)
    assert layout_of(OFFSET_TWO)[:3] == (2, 4, 2)
    assert layout_of(FLOW_AND_DRIFT).start
    assert layout_of("a:\n  b: |\n    x:\n        y\n")[:3] == (2, 2, 0)  # not the scalar


def test_new_lists_follow_the_files_style() -> None:
    doc = load(OFFSET_TWO)
    set_path(doc, "spec.template.spec.volumes", [{"name": "data"}])
    assert dump(doc).endswith("      volumes:\n        - name: data\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "is a list, not a mapping"),
        ("a: [\n", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_what_cannot_be_edited(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(text)


def test_a_splice_that_would_change_the_data_falls_back_to_a_clean_dump() -> None:
    # The drift in `nested` is one run; an edit inside it rewrites that run, and the
    # document must still read back exactly as edited.
    text = "top: 1\nnested:\n      deep:\n        - a\n        - b\nother: { x: 1 }\n"
    doc = load(text)
    set_path(doc, "nested.deep[1]", "c")
    assert load(dump(doc)) == {"top": 1, "nested": {"deep": ["a", "c"]}, "other": {"x": 1}}
    assert yamledit.dump(load(text)) == text


def leaves(node: Any, parts: tuple[str | int, ...] = ()) -> list[tuple[Any, list[str | int]]]:
    """(parent, path) of every scalar in a document."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    out: list[tuple[Any, list[str | int]]] = []
    for key, value in items:
        if isinstance(value, dict | list):
            out += leaves(value, (*parts, key))
        else:
            out.append((node, [*parts, key]))
    return out


@pytest.mark.parametrize("name", SAMPLES)
def test_every_scalar_can_be_set_touching_its_own_line_only(name: str) -> None:
    text = SAMPLES[name].replace("\r\n", "\n")
    for parent, parts in leaves(load(text)):
        path = yamledit._show(parts)
        doc = load(text)
        set_path(doc, path, "NEW")
        out = dump(doc)
        assert load(out) == doc, path
        own_line = not parent.fa.flow_style() and "\n" not in str(parent[parts[-1]])
        if own_line:
            assert len(changed_lines(text, out)) == 1, (path, out)
