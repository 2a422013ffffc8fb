"""copy_image: promote an image (or a multi-platform index) from one repository to
another, by digest, moving only what the destination lacks.

Order matters for safety: the source is resolved and verified first, the destination tag
is checked (tags are immutable unless forced), every blob is confirmed present (copied,
mounted or already there), child manifests are written by digest, and only then is the
top-level manifest written under the tag. A copy that fails or is cancelled part-way
therefore never leaves a tag pointing at an incomplete image.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from conveyor.oci import manifest
from conveyor.oci.auth import Credentials
from conveyor.oci.blobs import BlobMover
from conveyor.oci.errors import TagConflict
from conveyor.oci.manifest import Descriptor, Manifest
from conveyor.oci.reference import ImageRef
from conveyor.oci.retry import Halt
from conveyor.oci.session import Session

log = logging.getLogger(__name__)

# the longest any one network wait may take, whatever the copy's overall timeout
MAX_NETWORK_WAIT = 60.0


@dataclass(frozen=True)
class CopyReport:
    digest: str  # the top-level manifest digest copied
    bytes_moved: int  # blob bytes uploaded to the destination (0 when mounted or present)
    blobs_copied: int
    blobs_mounted: int
    blobs_present: int
    manifests: int  # manifests written (0 when the tag already pointed there)


def copy_image(
    source: ImageRef,
    dest: ImageRef,
    *,
    source_auth: Credentials | None = None,
    dest_auth: Credentials | None = None,
    insecure: bool = False,
    force: bool = False,
    concurrency: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 300.0,
) -> CopyReport:
    """Copy `source` (exactly `source.digest` when set, else what `source.tag` names now)
    to `dest` (under `dest.tag`; without a tag, by digest only).

    `timeout` bounds the whole copy in seconds (each network wait is also bounded, by
    the smaller of it and 60 s); `cancel` stops it promptly. `progress(digest, done,
    total)` is called per blob from worker threads. Raises AuthRefused, ImageNotFound,
    TagConflict, TransferFailed, RegistryProtocolError or CopyCancelled; ValueError for
    arguments that can never work.
    """
    if source.digest is None and source.tag is None:
        raise ValueError(f"source {source} names neither a tag nor a digest")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    halt = Halt(cancel, timeout)
    wait = min(timeout, MAX_NETWORK_WAIT)
    # a source GET and a destination PUT per worker, plus manifests and token requests
    pool = concurrency + 2
    with (
        Session(
            source.registry, source_auth, insecure=insecure, timeout=wait, halt=halt, pool=pool
        ) as src,
        Session(
            dest.registry, dest_auth, insecure=insecure, timeout=wait, halt=halt, pool=pool
        ) as dst,
    ):
        copier = _Copy(source, dest, src, dst, halt, concurrency, progress)
        return copier.run(force)


class _Copy:
    def __init__(
        self,
        source: ImageRef,
        dest: ImageRef,
        src: Session,
        dst: Session,
        halt: Halt,
        concurrency: int,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        self.source, self.dest, self.src, self.dst = source, dest, src, dst
        self.halt = halt
        self.concurrency = concurrency
        self.mover = BlobMover(src, source.repository, dst, dest.repository, progress)
        self.src_pull = f"repository:{source.repository}:pull"
        self.dst_pull = f"repository:{dest.repository}:pull"
        self.dst_push = f"repository:{dest.repository}:pull,push"
        self.where = f"{dest.registry}/{dest.repository}"

    def run(self, force: bool) -> CopyReport:
        s, d = self.source, self.dest
        ref = s.digest or s.tag or ""
        top = manifest.fetch(
            self.src, s.repository, ref, hint=self.src_pull, what=f"reading {s}", expect=s.digest
        )
        if d.digest is not None and d.digest != top.digest:
            raise TagConflict(f"{d} pins {d.digest}, but {s} is {top.digest}")
        done = CopyReport(top.digest, 0, 0, 0, 0, 0)
        if d.tag is not None:
            what = f"reading {self.where}:{d.tag}"
            current = manifest.head(self.dst, d.repository, d.tag, hint=self.dst_pull, what=what)
            if current == top.digest:
                log.info("%s already points at %s: nothing to copy", d, top.digest)
                return done
            if current is not None and not force:
                raise TagConflict(
                    f"{self.where}:{d.tag} points at {current}, not {top.digest}: "
                    "tags are immutable (force=True moves it)"
                )
        if self._dest_has(top.digest):
            # the registry accepted this manifest before, so everything it needs is there
            if d.tag is None:
                return done
            writes = [top]
            blobs: dict[str, Descriptor] = {}
        else:
            writes, blobs = self._walk(top)
        counts, moved = self._move(blobs)
        self.halt.check()
        for child in writes[:-1]:
            manifest.put(self.dst, d.repository, child.digest, child, hint=self.dst_push)
        manifest.put(self.dst, d.repository, d.tag or top.digest, top, hint=self.dst_push)
        log.info("copied %s to %s: %d bytes, %s", top.digest, d, moved, counts)
        return CopyReport(
            top.digest,
            moved,
            counts["copied"],
            counts["mounted"],
            counts["present"],
            len(writes),
        )

    def _dest_has(self, digest: str) -> bool:
        what = f"reading {self.where}@{digest}"
        return (
            manifest.head(self.dst, self.dest.repository, digest, hint=self.dst_pull, what=what)
            is not None
        )

    def _walk(self, top: Manifest) -> tuple[list[Manifest], dict[str, Descriptor]]:
        """Manifests to write, children before the index that lists them, and the blobs
        they need; children the destination already has are skipped with their blobs."""
        order: list[Manifest] = []
        blobs: dict[str, Descriptor] = {}
        seen: set[str] = set()

        def visit(m: Manifest) -> None:
            for child in m.children:
                if child.digest in seen or self._dest_has(child.digest):
                    continue
                seen.add(child.digest)
                what = f"reading {self.source.registry}/{self.source.repository}@{child.digest}"
                visit(
                    manifest.fetch(
                        self.src,
                        self.source.repository,
                        child.digest,
                        hint=self.src_pull,
                        what=what,
                        expect=child.digest,
                    )
                )
            for blob in m.blobs:
                blobs.setdefault(blob.digest, blob)
            order.append(m)

        visit(top)
        return order, blobs

    def _move(self, blobs: dict[str, Descriptor]) -> tuple[dict[str, int], int]:
        counts = {"copied": 0, "mounted": 0, "present": 0}
        moved = 0
        if not blobs:
            return counts, moved
        # largest first: the long transfers start early and the small ones fill the gaps
        queue = sorted(blobs.values(), key=lambda b: b.size, reverse=True)
        workers = min(self.concurrency, len(queue))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oci-copy") as pool:
            futures = [pool.submit(self.mover.move, blob) for blob in queue]
            try:
                for future in as_completed(futures):
                    outcome, size = future.result()
                    counts[outcome] += 1
                    moved += size
            except BaseException:
                # the first failure is the one reported; the rest stop at their next chunk
                self.halt.abort()
                for future in futures:
                    future.cancel()
                raise
        return counts, moved
