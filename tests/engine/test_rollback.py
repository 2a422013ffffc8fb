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


def test_rollback_with_revert_reverts_the_promotion_commit(cv: Conveyor) -> None:
    from tests.gitrepos import bare_repo, git, show

    overlay = "images:\n  - name: web\n    newTag: '0.1'\n"
    bare = bare_repo(
        cv.workdir, "ops", {f"overlays/{e}/kustomization.yaml": overlay for e in ("dev", "prod")}
    )
    policy = f"""
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {{name: main}}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {{name: prod, dependsOn: [dev]}}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {{name: all}}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: overlay
            uses: git.kustomize-set-image
            with:
              repo: "file://{bare}"
              path: "overlays/${{{{ environment.name }}}}"
              image: web
              digest: "${{{{ artifacts.web.digest }}}}"
"""
    apply_yaml(cv, BASE + policy)
    old, new = digest(5), digest(6)
    for version, image in (("1.0.0", old), ("1.1.0", new)):
        cv.create_release("shop", version, {"web": f"registry.local/web@{image}"})
        cv.trigger("main", f"shop@{version}")
        cv.run_until_idle()
        assert cv.show(f"shop@{version}").status == "succeeded"
    prod = "overlays/prod/kustomization.yaml"
    assert new in show(bare, "main", prod)

    cv.rollback("prod", "1.0.0", revert=True)
    cv.run_until_idle()

    assert old in show(bare, "main", prod) and new not in show(bare, "main", prod)
    assert new in show(bare, "main", "overlays/dev/kustomization.yaml")  # dev keeps 1.1.0
    body = git(bare, "log", "-1", "--format=%B", "main")
    assert body.startswith('Revert "Promote shop 1.1.0 to prod"')
    assert "Conveyor-Revert-Of:" in body
    states = {n.environment: n.state for n in cv.show("shop@1.1.0").nodes}
    assert states == {"dev": "succeeded", "prod": "recalled"}


def test_revert_needs_a_workflow_that_commits(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + DEFS)
    ship(cv, "1.0.0")
    ship(cv, "1.1.0")
    with pytest.raises(Conflict, match="--revert needs a workflow that commits"):
        cv.rollback("prod", "1.0.0", revert=True)


ROLLBACK_NAMED = """
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: rollback-eu, labels: {region: eu}}
spec: {type: production}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: eu}
spec:
  priority: 10
  selector: {environments: {labels: {region: eu}}}
  gates:
    - releaseLabel: {key: eu}
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: rollback-eu, dependsOn: [dev]}
"""


def test_an_environment_named_rollback_is_an_ordinary_node(cv: Conveyor) -> None:
    """A rollback is marked by a column, not guessed from a name: an environment called
    rollback-eu is listed once, keeps the never-older rule and recalls nothing."""
    apply_yaml(cv, BASE + "---" + DEFS.split("---", 2)[2] + ROLLBACK_NAMED)
    web = {"web": f"registry.local/web@{digest(9)}"}
    cv.create_release("shop", "1.0.0", web, {"approved": "y"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()  # 1.0.0 waits for the label `eu` before rollback-eu
    cv.create_release("shop", "2.0.0", web, {"approved": "y", "eu": "y"})
    cv.trigger("main", "shop@2.0.0")
    cv.run_until_idle()
    view = cv.show("shop@2.0.0")
    assert view.status == "succeeded"
    assert [(n.environment, n.rollback) for n in view.nodes] == [
        ("dev", False),
        ("rollback-eu", False),
    ]
    cv.label("shop@1.0.0", {"eu": "y"})
    cv.run_until_idle()
    old = {n.environment: n.state for n in cv.show("shop@1.0.0").nodes}
    assert old["rollback-eu"] == "superseded"  # never an older release over a newer one
    assert {n.environment: n.state for n in cv.show("shop@2.0.0").nodes} == {
        "dev": "succeeded",
        "rollback-eu": "succeeded",
    }
    assert (cv.workdir / "rollback-eu.txt").read_text().strip() == "2.0.0"
