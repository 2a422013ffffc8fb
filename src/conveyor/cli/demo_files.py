"""The quick start's definitions (seed 000's scenario in Conveyor's words) and its repository
(seed 004's directory-based layout: a Kustomize base and one overlay per environment)."""

from __future__ import annotations

APPS = ("web", "api", "worker")
OVERLAYS = "apps/web-app/overlays"
ENVIRONMENTS = {
    "dev": ("non-production", "dev", ""),
    "qa": ("non-production", "qa", ""),
    "prod": ("production", "prod", "us"),
    "prod-eu": ("production", "prod", "eu"),
    "prod-asia": ("production", "prod", "asia"),
}

PRODUCT = """\
apiVersion: conveyor.dev/v1
kind: Product
metadata:
  name: demo-trioapp
spec:
  description: Three applications released together.
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
"""

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
            )
        )
    return "---\n".join(docs)


def policies_yaml() -> str:
    return POLICIES.format(tasks="".join(TASK.format(app=a) for a in APPS))


def repository_files() -> dict[str, str]:
    files = {
        "apps/web-app/base/kustomization.yaml": BASE_KUSTOMIZATION,
        "apps/web-app/base/deployment.yaml": DEPLOYMENT,
    }
    for env in ENVIRONMENTS:
        files[f"{OVERLAYS}/{env}/kustomization.yaml"] = OVERLAY.format(env=env)
    return files
