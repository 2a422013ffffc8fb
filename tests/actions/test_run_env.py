"""A `run` task gets an explicit environment (issue 11): PATH, HOME, locale, time zone and
temporary directory from the engine, the names it lists in `passEnv`, and its own `env`;
nothing else of the engine's (the database URL, other tasks' tokens)."""

from __future__ import annotations

import pytest

from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml, dump_store

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec: {version: "1.00", product: shop, triggerEnvironment: dev}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: show
            uses: run
            with:
              passEnv: [DEPLOY_REGION]
              env: {OWN: mine}
              args:
                - sh
                - -c
                - >-
                  echo "db=${CONVEYOR_DATABASE_URL:-unset} token=${OTHER_TOKEN:-unset}
                  region=${DEPLOY_REGION:-unset} own=$OWN path=${PATH:+set} home=${HOME:+set}"
"""


def test_a_task_sees_only_what_it_is_given(cv: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://u:p@db/conveyor")
    monkeypatch.setenv("OTHER_TOKEN", "s3cr3t")
    monkeypatch.setenv("DEPLOY_REGION", "eu-west-1")
    monkeypatch.setenv("HOME", "/home/engine")  # inherited by name, whatever CI sets
    apply_yaml(cv, BASE + DEFS)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    (task,) = cv.show("shop@1.0.0").nodes[0].tasks
    assert task.status == "succeeded", task
    assert task.output.strip() == (
        "db=unset token=unset region=eu-west-1 own=mine path=set home=set"
    )


def test_pass_env_names_are_checked_at_apply(cv: Conveyor) -> None:
    from conveyor.errors import DefinitionError

    with pytest.raises(DefinitionError, match="passEnv"):
        apply_yaml(cv, BASE + DEFS.replace("passEnv: [DEPLOY_REGION]", "passEnv: ['A B']"))


def test_declared_secrets_never_reach_the_stored_output(
    cv: Conveyor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    secret = "tok-3f9a-secret/value"
    monkeypatch.setenv("DEPLOY_TOKEN", secret)
    monkeypatch.setenv("CONVEYOR_SECRET_ENV", "DEPLOY_TOKEN")
    printing = DEFS.replace("passEnv: [DEPLOY_REGION]", "passEnv: [DEPLOY_TOKEN]").replace(
        'echo "db=', 'echo "$DEPLOY_TOKEN $(printf %s "$DEPLOY_TOKEN" | base64) db='
    )
    apply_yaml(cv, BASE + printing)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    (task,) = cv.show("shop@1.0.0").nodes[0].tasks
    assert task.status == "succeeded", task
    assert task.output.startswith("*** *** db=unset")
    dump = dump_store(cv)
    assert "shop" in dump  # the dump holds the store's rows
    for form in (secret, base64.b64encode(secret.encode()).decode()):
        assert form not in dump
