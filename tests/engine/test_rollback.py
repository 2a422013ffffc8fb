"""`conveyor rollback ENV --to VERSION`: the environment's workflow with the older release."""

from __future__ import annotations

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import Conflict
from tests.conftest import BASE, apply_yaml, digest

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: prod, dependsOn: [dev]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  gates:
    - releaseLabel: {key: approved}
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with:
              args: [sh, -c, 'echo "$1" > "$0.txt"', "${{ environment.name }}",
                     "${{ release.version }}"]
"""


def ship(cv: Conveyor, version: str) -> None:
    cv.create_release(
        "shop", version, {"web": f"registry.local/web@{digest(len(version))}"}, {"approved": "yes"}
    )
    cv.trigger("main", f"shop@{version}")
    cv.run_until_idle()
    assert cv.show(f"shop@{version}").status == "succeeded"


def test_rollback_runs_the_workflow_with_the_older_release(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    ship(cv, "1.0.0")
    ship(cv, "1.1.0")
    prod = cv.workdir / "prod.txt"
    assert prod.read_text().strip() == "1.1.0"

    cv.rollback("prod", "1.0.0")
    cv.run_until_idle()

    assert prod.read_text().strip() == "1.0.0"
    assert (cv.workdir / "dev.txt").read_text().strip() == "1.1.0"  # only prod moved
    old = {n.node: n for n in cv.show("shop@1.0.0").nodes}
    assert old["rollback-1"].state == "succeeded" and old["rollback-1"].environment == "prod"
    new = {n.environment: n.state for n in cv.show("shop@1.1.0").nodes}
    assert new == {"dev": "succeeded", "prod": "recalled"}
    assert cv.show("shop@1.0.0").status == "succeeded"  # a rollback leaves the release's status

    # And forward again: 1.1.0 is no longer deployed in prod, so 1.0.0 is current there.
    with pytest.raises(Conflict, match="already"):
        cv.rollback("prod", "shop@1.0.0")


def test_rollback_refuses_a_release_never_deployed_there(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    ship(cv, "1.0.0")
    cv.create_release("shop", "0.9.0", {"web": f"registry.local/web@{digest(9)}"})
    with pytest.raises(Conflict, match="never deployed"):
        cv.rollback("prod", "0.9.0")
    with pytest.raises(Conflict, match="already"):
        cv.rollback("prod", "1.0.0")
