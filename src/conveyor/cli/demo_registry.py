"""`conveyor demo --registry`: seed 003's path to production. An image built into the
fast-feedback stage is promoted by copying it, by digest, to extended-test (same registry:
a mount, no bytes moved) and then to prod (another registry: only what it lacks), each
step checked by a test of what arrived."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from conveyor.cli.common import login
from conveyor.cli.render import release_view
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError
from conveyor.oci.local import make_image, registry
from conveyor.spec import load_text
from conveyor.store.db import open_store

DEFINITIONS = """\
apiVersion: conveyor.dev/v1
kind: Product
metadata: {{name: p2p-web}}
spec:
  artifacts: [{{name: web, type: image, repository: "{dev}/fast-feedback/web"}}]
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {{name: fast-feedback}}
spec: {{settings: {{image: "{dev}/fast-feedback/web"}}}}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {{name: extended-test}}
spec: {{settings: {{image: "{dev}/extended-test/web"}}}}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {{name: prod}}
spec: {{type: production, settings: {{image: "{prod}/prod/web"}}}}
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {{name: path-to-production}}
spec:
  version: "1.00"
  product: p2p-web
  triggerEnvironment: fast-feedback    # where the image was built: nothing to copy there
  environments:
    - {{name: extended-test, dependsOn: [fast-feedback]}}
    - {{name: prod, dependsOn: [extended-test]}}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {{name: promote-by-copy}}
spec:
  selector: {{environments: {{names: [extended-test, prod]}}}}
  workflow:
    steps:
      - name: promote
        tasks:
          - name: copy
            uses: registry.copy
            with:
              artifact: web
              destination: "${{{{ environment.settings.image }}}}:${{{{ release.version }}}}"
              insecure: true
  verify:                 # test-based promotion: what arrived is what was built
    - name: functional
      uses: run
      with:
        args: [sh, ./check.sh, "${{{{ environment.settings.image }}}}:${{{{ release.version }}}}",
               "${{{{ artifacts.web.digest }}}}"]
"""

CHECK_SH = """\
#!/bin/sh
set -eu
got=$(skopeo inspect --tls-verify=false --no-creds --format '{{.Digest}}' "docker://$1")
[ "$got" = "$2" ] || { echo "$1 is $got, expected $2"; exit 1; }
echo "functional test ok: $1 is $2"
"""


def run_registry_demo(directory: Path | None, out: Console) -> None:
    root = (directory or Path(tempfile.mkdtemp(prefix="conveyor-p2p-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    out.print(f"[bold]Conveyor path to production[/bold] (seed 003) in {root}\n")
    with registry(root / "registry-dev") as dev, registry(root / "registry-prod") as prod:
        out.print(
            f"  registries on loopback: dev {dev} (fast-feedback, extended-test), prod {prod}"
        )
        digest = make_image(
            dev, "fast-feedback/web", "1.0.0", layers=3, layer_size=2 << 20, workdir=root
        )
        out.print(f"  built web:1.0.0 into {dev}/fast-feedback/web: {digest}\n")
        (root / "check.sh").write_text(CHECK_SH)
        cv = Conveyor(
            open_store(f"sqlite:///{root / 'conveyor.db'}"), actor=f"local:{login()}", workdir=root
        )
        try:
            cv.apply(docs=load_text(DEFINITIONS.format(dev=dev, prod=prod), "p2p.yaml"))
            cv.create_release("p2p-web", "1.0.0", {"web": f"{dev}/fast-feedback/web@{digest}"})
            cv.trigger("path-to-production", "p2p-web@1.0.0")
            cv.run_until_idle()
            view = cv.show("p2p-web@1.0.0")
            out.print(release_view(view, cv.clock.now(), width=out.width))
            out.print("")
            for node in view.nodes:
                for task in node.tasks:
                    out.print(
                        f"  {node.environment} {task.task}: {task.output.strip()}",
                        markup=False,
                        highlight=False,
                    )
        finally:
            cv.close()
    if view.status != "succeeded":
        raise ConveyorError(f"the demo release ended {view.status}: {view.message}")
