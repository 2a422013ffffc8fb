"""What the `conveyor simulate` tests apply and replay: definitions, health histories
(hand-computed outcomes in their comments), and helpers to read forecasts and stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.store.db import open_store
from tests.conftest import ME

HEADER = "time,environment,entity,node,live,state,version\n"
STEADY = HEADER + "2026-01-05T09:00:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"

# dev -> qa -> prod, with prod's definition (shared by DEFS and TIMED).
FLOW = """\
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
"""
PROD_AND_FLOW = (
    """\
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod}
spec: {type: production}
---
"""
    + FLOW
    + "---\n"
)

# dev -> qa -> prod; prod's canary reads qa's one entity. Every deployment appends a line to
# touched.txt (an absolute path), so a task that really ran would show.
DEFS = (
    """\
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  artifacts:
    - {name: web, type: image, repository: registry.local/web}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: dev}
spec: {type: non-production}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa}
spec:
  type: non-production
  entities: [{name: cluster-a}]
"""
    + PROD_AND_FLOW
    + """\
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
            with: {args: [sh, -c, 'echo "$1" >> "$0"', "TOUCHED", "${{ environment.name }}"]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: production}
spec:
  priority: 10
  selector:
    environments: {types: [production]}
  gates:
    - canary:
        entities: {environments: [qa]}
        promoteWhenHealthy: {entities: 1, soak: 2h}
        recallWhenUnhealthy: {entities: 1, soak: 1h}
"""
)

# qa's entity runs 1.0.0 from Monday 09:00, with a 10-minute WARNING (neither healthy nor
# unhealthy). Promote needs soak >= 2h and healthy/soak >= 0.95; healthy = soak - 10m, so
# (x - 10m) / x >= 0.95  <=>  x >= 200m = 3h20m: prod is promoted at 12:20.
HEALTHY = HEADER + (
    "2026-01-05T09:00:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
    "2026-01-05T09:30:00Z,qa,cluster-a,n1,true,WARNING,1.0.0\n"
    "2026-01-05T09:40:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
    "2026-01-05T11:00:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
    "2026-01-05T13:00:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
)

# Two ERROR stretches. The first (2m) is under 5% once the soak reaches the recall's 1h
# (2/60). In the second, from 10:30 (soak 90m, unhealthy 2m), recall needs
# (2m + y) / (90m + y) > 0.05  <=>  y > 150s / 0.95 = 157.894736...s: 10:32:37.894737.
ERRORS = HEADER + (
    "2026-01-05T09:00:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
    "2026-01-05T09:10:00Z,qa,cluster-a,n1,true,ERROR,1.0.0\n"
    "2026-01-05T09:12:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
    "2026-01-05T10:30:00Z,qa,cluster-a,n1,true,ERROR,1.0.0\n"
    "2026-01-05T10:40:00Z,qa,cluster-a,n1,true,HEALTHY,1.0.0\n"
)
RECALL = (
    "canary: 1 of 1 entities in qa unhealthy for 1h or more (qa/cluster-a; over 5% of their "
    "soak); recall at 1"
)


TIMED = (
    """\
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec: {}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: dev}
spec: {}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa}
spec: {}
"""
    + PROD_AND_FLOW
    + """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: dev}
spec:
  selector: {environments: {names: [dev]}}
  gates: [{timed: {duration: 30m}}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{timed: {duration: 3h}}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: prod}
spec:
  selector: {environments: {names: [prod]}}
  gates: [{timed: {in: qa, duration: 2d}}]
"""
)


def history(tmp_path: Path, text: str, name: str = "history.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def lines(text: str) -> dict[str, str]:
    """Each environment's forecast line, by environment."""
    return {
        line.split()[0]: " ".join(line.split()[1:])
        for line in text.splitlines()
        if line.startswith("  ")
    }


def real_store(tmp_path: Path, clock: ManualClock) -> Conveyor:
    return Conveyor(
        open_store(f"sqlite:///{tmp_path / 'conveyor.db'}"),
        clock=clock,
        actor=ME,
        workdir=tmp_path,
    )


def snapshot(db: Path) -> list[str]:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())
