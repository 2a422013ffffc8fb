"""Registry promotion: copy a 5-layer ~100 MB image between two loopback registries,
Conveyor against `skopeo copy`, alternating, each run into an empty destination registry
(so neither can turn the copy into a mount); then a same-registry promotion and a
re-promotion of what is already there. Goal: cross-registry <= 1.0x skopeo's median,
same registry 0 blob bytes moved. Conveyor's peak Python memory shows layers are streamed.

    .venv/bin/python bench/registry.py [--runs 7] [--layer-mb 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

from conveyor.oci.copy import CopyReport, copy_image
from conveyor.oci.local import make_image, registry
from conveyor.oci.reference import parse

REPO, TAG = "fast-feedback/web", "1.0.0"


def skopeo(source: str, dest: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            f"docker://{source}",
            f"docker://{dest}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.perf_counter() - start


def conveyor(source: str, dest: str) -> tuple[float, CopyReport]:
    start = time.perf_counter()
    report = copy_image(parse(source), parse(dest), insecure=True)
    return time.perf_counter() - start, report


def peak_memory(source: str, dest: str) -> int:
    """Python's peak allocation during one more copy, traced apart: tracing slows it."""
    tracemalloc.start()
    copy_image(parse(source), parse(dest), insecure=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--layer-mb", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-registry-") as tmp:
        root = Path(tmp)
        with registry(root / "source") as src:
            digest = make_image(
                src, REPO, TAG, layers=5, layer_size=args.layer_mb << 20, workdir=root
            )
            size_mb = 5 * args.layer_mb
            source = f"{src}/{REPO}@{digest}"
            ours: list[float] = []
            theirs: list[float] = []
            moved = 0
            for run in range(args.runs):  # alternate, each into a fresh registry
                with registry(root / f"skopeo-{run}") as dst:
                    theirs.append(skopeo(source, f"{dst}/prod/web:{TAG}"))
                with registry(root / f"conveyor-{run}") as dst:
                    took, report = conveyor(source, f"{dst}/prod/web:{TAG}")
                    ours.append(took)
                    moved = report.bytes_moved
            with registry(root / "traced") as dst:
                peak = peak_memory(source, f"{dst}/prod/web:{TAG}")
            _, same = conveyor(source, f"{src}/extended-test/web:{TAG}")
            _, present = conveyor(source, f"{src}/extended-test/web:{TAG}")
    c, s = statistics.median(ours), statistics.median(theirs)
    print(f"image: 5 layers, {size_mb} MB; cross-registry runs: {args.runs} each")
    print(f"skopeo copy: median {s:.3f} s {sorted(round(x, 3) for x in theirs)}")
    print(
        f"conveyor:    median {c:.3f} s {sorted(round(x, 3) for x in ours)}, "
        f"{moved} bytes moved, peak Python memory {peak / 2**20:.1f} MiB"
    )
    print(f"same registry: {same.bytes_moved} bytes moved, {same.blobs_mounted} blobs mounted")
    print(f"already present: {present.bytes_moved} bytes moved, {present.manifests} manifests")
    print(
        f"RESULT cross_ratio={c / s:.3f} conveyor_s={c:.3f} skopeo_s={s:.3f} "
        f"same_registry_bytes={same.bytes_moved} present_bytes={present.bytes_moved}"
    )


if __name__ == "__main__":
    main()
