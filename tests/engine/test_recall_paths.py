"""The rarer paths of recall and rollback, through the engine."""

from __future__ import annotations

import time

from conveyor.engine.service import Conveyor
from tests.conftest import BASE, apply_yaml, digest

# Every environment writes the version it runs to ENV.txt; prod waits for a file
# go-VERSION first when one named hold-VERSION exists (a workflow caught mid-way).
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
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            timeout: 20s
            with:
              args:
                - sh
                - -c
                - >-
                  if [ "$0" = prod ] && [ -e "hold-$1" ]; then n=0;
                  while [ ! -e "go-$1" ] && [ $n -lt 500 ];
                  do sleep 0.02; n=$((n+1)); done; fi; echo "$1" > "$0.txt"
                - "${{ environment.name }}"
                - "${{ release.version }}"
"""


def ship(cv: Conveyor, version: str) -> None:
    cv.create_release("shop", version, {"web": f"registry.local/web@{digest(len(version))}"})
    cv.trigger("main", f"shop@{version}")


def runs(cv: Conveyor, env: str) -> str:
    return (cv.workdir / f"{env}.txt").read_text().strip()


def states(cv: Conveyor, version: str) -> dict[str, str]:
    return {
        f"{n.environment}{' (rollback)' if n.rollback else ''}": n.state
        for n in cv.show(f"shop@{version}").nodes
    }


def test_a_recall_mid_workflow_terminates_it_and_rolls_that_environment_back(
    cv: Conveyor,
) -> None:
    apply_yaml(cv, BASE + DEFS)
    ship(cv, "1.0.0")
    cv.run_until_idle()
    (cv.workdir / "hold-1.1.0").touch()
    ship(cv, "1.1.0")
    deadline = time.monotonic() + 10
    while states(cv, "1.1.0")["prod"] != "running":
        assert time.monotonic() < deadline, states(cv, "1.1.0")
        cv.engine.run_pass()
        time.sleep(0.01)

    assert cv.recall("shop@1.1.0", "bad build")
    (cv.workdir / "go-1.1.0").touch()
    cv.run_until_idle()
    assert states(cv, "1.1.0") == {"dev": "recalled", "prod": "terminated"}
    assert states(cv, "1.0.0") == {
        "dev": "succeeded",
        "prod": "succeeded",
        "dev (rollback)": "succeeded",
        "prod (rollback)": "succeeded",
    }
    assert runs(cv, "dev") == "1.0.0" and runs(cv, "prod") == "1.0.0"


def test_a_recall_of_a_release_already_replaced_starts_no_rollback(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        ship(cv, version)
        cv.run_until_idle()
    assert cv.recall("shop@1.1.0", "bad build")
    cv.run_until_idle()
    assert all("rollback" not in env for v in ("1.0.0", "1.2.0") for env in states(cv, v))
    assert runs(cv, "dev") == "1.2.0" and runs(cv, "prod") == "1.2.0"
    assert cv.show("shop@1.2.0").status == "succeeded"


def test_a_rollback_to_a_middle_release_recalls_only_the_newer_ones(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        ship(cv, version)
        cv.run_until_idle()
    cv.rollback("prod", "1.1.0")
    cv.run_until_idle()
    assert runs(cv, "prod") == "1.1.0"
    assert states(cv, "1.2.0") == {"dev": "succeeded", "prod": "recalled"}
    assert states(cv, "1.1.0")["prod (rollback)"] == "succeeded"
    assert states(cv, "1.0.0") == {"dev": "succeeded", "prod": "succeeded"}
