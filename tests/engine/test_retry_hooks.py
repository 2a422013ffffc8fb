"""A retried release that fails again runs its onFail hooks again."""

from __future__ import annotations

from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  hooks:
    onFail:
      - {name: page, uses: run, with: {args: [sh, -c, "echo release >> fail-hooks.txt"]}}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - {name: broken, uses: run, with: {args: [sh, -c, "exit 3"]}}
  hooks:
    onFail:
      - {name: cleanup, uses: run, with: {args: [sh, -c, "echo env >> fail-hooks.txt"]}}
"""


def test_on_fail_hooks_run_after_each_failure(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    hooks = cv.workdir / "fail-hooks.txt"
    assert sorted(hooks.read_text().split()) == ["env", "release"]
    assert cv.show("shop@1.0.0").status == "failed"

    assert cv.retry("shop@1.0.0") == ["dev"]
    cv.run_until_idle()
    assert cv.show("shop@1.0.0").status == "failed"
    assert sorted(hooks.read_text().split()) == ["env", "env", "release", "release"]
