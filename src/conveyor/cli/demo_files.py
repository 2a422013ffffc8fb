"""The quick start's definitions (seed 000's scenario in Conveyor's words) and its repository
(seed 004's directory-based layout: a Kustomize base and one overlay per environment)."""

from __future__ import annotations

import json

APPS = ("web", "api", "worker")
OVERLAYS = "apps/web-app/overlays"
ENVIRONMENTS = {
    "dev": ("non-production", "dev", ""),
    "qa": ("non-production", "qa", ""),
    "prod": ("production", "prod", "us"),
    "prod-eu": ("production", "prod", "eu"),
    "prod-asia": ("production", "prod", "asia"),
}
# qa's running instance: it reports its health, and prod's canary gate reads it.
QA_ENTITY = "trioapp-qa"

PRODUCT = """\
apiVersion: conveyor.dev/v1
kind: Product
metadata:
  name: demo-trioapp
spec:
  description: Three applications released together.
  # Health counts weekday time only by default; the demo must run on a Saturday too.
  rolloutCriteria: {weekendDays: []}
  # The maintenance window (seed 001): promotions start only while it is open. Every day,
  # all day, so that the demo runs at any hour; a team would narrow it, e.g. schedule
  # "0 22 * * 1-5", duration 4h, timeZone Europe/Berlin.
  windows:
    - {kind: allow, schedule: "0 0 * * *", duration: 1d}
  artifacts:
    - {name: web, type: image, repository: registry.local/demo-trioapp/web}
    - {name: api, type: image, repository: registry.local/demo-trioapp/api}
    - {name: worker, type: image, repository: registry.local/demo-trioapp/worker}
"""

ENVIRONMENT = """\
apiVersion: conveyor.dev/v1
kind: Environment
metadata:
  name: {name}
  labels: {{tier: {tier}{region}}}
spec:
  type: {type}
  settings:
    overlay: {overlays}/{name}
{entities}"""

FLOW = """\
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata:
  name: multi-env-parallel-promotion
spec:
  version: "1.00"
  product: demo-trioapp
  triggerEnvironment: dev
  environments:               # nodes sharing dependsOn run in parallel
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
    - {name: prod-eu, dependsOn: [qa]}
    - {name: prod-asia, dependsOn: [qa]}
  concurrency: {mode: queue, limit: 50}
"""

POLICIES = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata:
  name: deploy-everywhere
spec:
  priority: 0                 # every environment: set the three images in its overlay
  workflow:
    steps:
      - name: deploy          # in parallel; `batch` makes the three edits one commit
        tasks:
{tasks}
  verify:
    - name: smoke
      uses: run
      with:
        args: [sh, ./smoke.sh, "${{{{ environment.settings.overlay }}}}",
               "${{{{ artifacts.web.digest }}}}", "${{{{ artifacts.api.digest }}}}",
               "${{{{ artifacts.worker.digest }}}}"]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata:
  name: production
spec:
  priority: 10                # production environments also need QA's word and a soak in qa
  selector:
    environments: {{types: [production]}}
  gates:
    - releaseLabel: {{key: qa-signoff, values: [passed]}}
    - timed: {{in: qa, duration: 2s}}
    - canary:                 # qa's entity healthy for 1s promotes; any ERROR recalls
        entities: {{environments: [qa]}}
        promoteWhenHealthy: {{entities: 1, soak: 1s}}
        recallWhenUnhealthy: {{entities: 1, soak: 0s}}
    - approval:               # and a release manager's yes (not the one who made the release)
        require: [{{group: release-managers}}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata:
  name: qa-health
spec:
  priority: 5                 # once deployed, qa reports its entity healthy (a probe would)
  selector:
    environments: {{names: [qa]}}
  hooks:
    onSuccess:
      - name: report-health
        uses: run
        with:
          args: {report}
"""

TASK = """\
          - name: {app}
            uses: git.kustomize-set-image
            with:
              repo: gitops.git
              batch: true
              path: "${{{{ environment.settings.overlay }}}}"
              image: {app}
              newName: "${{{{ artifacts.{app}.repository }}}}"
              digest: "${{{{ artifacts.{app}.digest }}}}"
"""

BASE_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-app
spec:
  template:
    spec:
      containers:
        - {name: web, image: web}
        - {name: api, image: api}
        - {name: worker, image: worker}
"""

OVERLAY = """\
# {env}: what runs there. Conveyor edits the images below; keep your own changes elsewhere.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: web
    newTag: "0.9.0"
  - name: api
    newTag: "0.9.0"
  - name: worker
    newTag: "0.9.0"
"""

# The environment's overlay names all three images by the release's digests.
SMOKE_SH = """\
#!/bin/sh
set -eu
overlay=$1
shift
file=$(git --git-dir=gitops.git show "main:$overlay/kustomization.yaml")
for digest in "$@"; do
  if ! printf '%s\\n' "$file" | grep -q -- "digest: $digest"; then
    echo "$overlay lacks $digest"
    exit 1
  fi
done
echo "smoke ok: $overlay runs $# images of this release"
"""


# A recorded health history for `conveyor simulate`: qa's entity runs 3.0.0 healthy, then
# 3.1.0 arrives failing (ERROR for half an hour) before it recovers.
HEALTH_HISTORY = f"""\
time,environment,entity,node,live,state,version
2026-01-05T09:00:00Z,qa,{QA_ENTITY},pod-1,true,HEALTHY,3.0.0
2026-01-05T10:00:00Z,qa,{QA_ENTITY},pod-1,true,HEALTHY,3.0.0
2026-01-05T11:00:00Z,qa,{QA_ENTITY},pod-1,true,ERROR,3.1.0
2026-01-05T11:15:00Z,qa,{QA_ENTITY},pod-1,true,ERROR,3.1.0
2026-01-05T11:30:00Z,qa,{QA_ENTITY},pod-1,true,HEALTHY,3.1.0
"""


def environments_yaml() -> str:
    docs = []
    for name, (kind, tier, region) in ENVIRONMENTS.items():
        docs.append(
            ENVIRONMENT.format(
                name=name,
                tier=tier,
                type=kind,
                region=f", region: {region}" if region else "",
                overlays=OVERLAYS,
                entities=f"  entities:\n    - {{name: {QA_ENTITY}}}\n" if name == "qa" else "",
            )
        )
    return "---\n".join(docs)


def policies_yaml(conveyor: list[str]) -> str:
    """`conveyor` is the command line that reaches the demo's database (`... --db DB`)."""
    report = [
        *conveyor,
        *("health", "report", "qa", QA_ENTITY, "--node", "pod-1", "--state", "HEALTHY"),
        *("--version", "${{ release.version }}"),
    ]
    # JSON strings are YAML flow scalars: paths with spaces or colons stay one argument.
    return POLICIES.format(
        tasks="".join(TASK.format(app=a) for a in APPS), report=json.dumps(report)
    )


def repository_files() -> dict[str, str]:
    files = {
        "apps/web-app/base/kustomization.yaml": BASE_KUSTOMIZATION,
        "apps/web-app/base/deployment.yaml": DEPLOYMENT,
    }
    for env in ENVIRONMENTS:
        files[f"{OVERLAYS}/{env}/kustomization.yaml"] = OVERLAY.format(env=env)
    return files
