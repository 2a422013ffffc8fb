from __future__ import annotations

from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml

FLOW = """
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
    - {name: prod-eu, dependsOn: [qa]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with: {args: [sh, -c, 'echo "$0" >> log.txt', "${{ environment.name }}"]}
"""


def test_smoke(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + "---" + FLOW)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    view = cv.show("shop@1.0.0")
    assert view.status == "succeeded", view
    assert {n.environment: n.state for n in view.nodes} == {
        "dev": "succeeded",
        "qa": "succeeded",
        "prod": "succeeded",
        "prod-eu": "succeeded",
    }
    lines = (cv.workdir / "log.txt").read_text().split()
    assert lines[:2] == ["dev", "qa"] and sorted(lines[2:]) == ["prod", "prod-eu"]
