"""The quick start's definitions (seed 000's scenario in Conveyor's words) and its script."""

from __future__ import annotations

APPS = ("web", "api", "worker")
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
    overlay: overlays/{name}
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
  priority: 0                 # every environment: write the three images, then check them
  workflow:
    steps:
      - name: deploy          # the three applications in parallel
        tasks:
{tasks}
  verify:
    - name: smoke
      uses: run
      with:
        args: [sh, ./smoke.sh, "${{{{ environment.settings.overlay }}}}",
               "${{{{ release.version }}}}"]
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
            uses: run
            retries: 2
            with:
              args: [sh, ./promote.sh, gitops.git, "${{{{ environment.settings.overlay }}}}",
                     {app}, "${{{{ artifacts.{app}.ref }}}}", "${{{{ release.version }}}}"]
"""

# Clone, write, commit, push; on a lost race (parallel environments push to one repository)
# rebase and push again. Writing the same image twice changes nothing: idempotent.
PROMOTE_SH = """\
#!/bin/sh
set -eu
repo=$1 overlay=$2 app=$3 image=$4 version=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work"
cd "$work"
file="$overlay/$app.image"
if [ -f "$file" ] && [ "$(cat "$file")" = "$image" ]; then
  echo "$app is already $image in $overlay"
  exit 0
fi
mkdir -p "$overlay"
printf '%s\\n' "$image" > "$file"
git add "$file"
git -c user.name=conveyor -c user.email=conveyor@localhost \\
  commit -qm "promote $app $version to $overlay"
i=0
while [ $i -lt 30 ]; do
  if git push -q origin HEAD:main 2>/dev/null; then
    echo "promoted $app $version to $overlay: $image"
    exit 0
  fi
  git pull -q --rebase origin main
  i=$((i + 1))
done
echo "could not push $app to $overlay after 30 tries" >&2
exit 1
"""

SMOKE_SH = """\
#!/bin/sh
# The environment's directory in the repository holds all three images.
set -eu
overlay=$1 version=$2
for app in web api worker; do
  git --git-dir=gitops.git show "main:$overlay/$app.image" >/dev/null
done
echo "smoke ok: $overlay has web, api and worker of $version"
"""


def environments_yaml() -> str:
    docs = []
    for name, (kind, tier, region) in ENVIRONMENTS.items():
        docs.append(
            ENVIRONMENT.format(
                name=name, tier=tier, type=kind, region=f", region: {region}" if region else ""
            )
        )
    return "---\n".join(docs)


def policies_yaml() -> str:
    return POLICIES.format(tasks="".join(TASK.format(app=a) for a in APPS))
