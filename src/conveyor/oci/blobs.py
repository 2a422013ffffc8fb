"""Moving one blob: skip it when the destination has it, mount it when the source is
another repository of the same registry, else stream it from source to destination.

Streaming: the source GET is read in chunks straight into the body of the upload PUT
(`POST .../blobs/uploads/` then `PUT <location>?digest=`, the monolithic upload that
distribution 2.8 and every registry accept), with Content-Length set from the descriptor,
so no layer is ever held in memory. The bytes are hashed on the way; the last chunk is
held back until the digest matches, so a corrupt blob is never completed at the
destination (and the registry checks the digest again on its side).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Literal

import httpx

from conveyor.oci.errors import TransferFailed
from conveyor.oci.manifest import Descriptor
from conveyor.oci.retry import Retryable, with_retries
from conveyor.oci.session import Session

CHUNK = 1024 * 1024
Outcome = Literal["copied", "mounted", "present"]
Progress = Callable[[str, int, int], None]


class BlobMover:
    def __init__(
        self,
        source: Session,
        source_repository: str,
        dest: Session,
        dest_repository: str,
        progress: Progress | None = None,
    ) -> None:
        self._src, self._src_repo = source, source_repository
        self._dst, self._dst_repo = dest, dest_repository
        self._progress = progress
        # a mount is only possible inside one registry, and pointless within one repository
        self._mount = source.registry == dest.registry and source_repository != dest_repository
        self._pull = f"repository:{source_repository}:pull"
        # separate hints for reading and writing the destination: a pull-only token must
        # never replace the push token an upload started with
        self._dst_pull = f"repository:{dest_repository}:pull"
        self._dst_push = f"repository:{dest_repository}:pull,push"
        self._mount_push = f"{self._dst_push} {self._pull}"

    def move(self, blob: Descriptor) -> tuple[Outcome, int]:
        """(what happened, bytes uploaded); retried as a whole, since a streamed body
        cannot be replayed: each attempt starts a new upload from a new source GET."""
        what = f"blob {blob.digest} to {self._dst.registry}/{self._dst_repo}"
        streamed = False

        def attempt() -> tuple[Outcome, int]:
            nonlocal streamed
            if self._exists(blob, what):
                self._report(blob, blob.size)
                # present after our own failed-looking attempt: the bytes did move
                return ("copied", blob.size) if streamed else ("present", 0)
            if self._mount:
                mount = {"mount": blob.digest, "from": self._src_repo}
                response = self._start(what, self._mount_push, mount)
                if response.status_code == 201:
                    response.close()
                    self._report(blob, blob.size)
                    return "mounted", 0
                # 202: the registry declined to mount (blob unknown there, or no access)
                # and opened an ordinary upload instead
                hint = self._mount_push
            else:
                response = self._start(what, self._dst_push, {})
                hint = self._dst_push
            self._dst.expect(response, what, ok=(202,))
            location = response.headers.get("Location")
            if not location:
                raise TransferFailed(f"{what}: the registry opened an upload without a Location")
            streamed = True
            self._stream(blob, response.url.join(location), hint, what)
            return "copied", blob.size

        return with_retries(attempt, self._dst.halt, what)

    def _report(self, blob: Descriptor, done: int) -> None:
        if self._progress is not None:
            self._progress(blob.digest, done, blob.size)

    def _exists(self, blob: Descriptor, what: str) -> bool:
        url = self._dst.url(f"/v2/{self._dst_repo}/blobs/{blob.digest}")
        response = self._dst.send("HEAD", url, hint=self._dst_pull, what=what, follow=True)
        if response.status_code == 404:
            return False
        self._dst.expect(response, what)
        return True

    def _start(self, what: str, hint: str, params: dict[str, str]) -> httpx.Response:
        url = httpx.URL(self._dst.url(f"/v2/{self._dst_repo}/blobs/uploads/"), params=params)
        return self._dst.send("POST", str(url), hint=hint, what=what)

    def _stream(self, blob: Descriptor, upload: httpx.URL, hint: str, what: str) -> None:
        src_url = self._src.url(f"/v2/{self._src_repo}/blobs/{blob.digest}")
        source = self._src.send(
            "GET", src_url, hint=self._pull, what=what, stream=True, follow=True
        )
        try:
            self._src.expect(source, f"{what}: reading the source")
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(blob.size),
            }
            target = upload.copy_merge_params({"digest": blob.digest})
            response = self._dst.send(
                "PUT",
                str(target),
                hint=hint,
                what=what,
                headers=headers,
                content=self._body(source, blob),
            )
        finally:
            source.close()
        if response.status_code == 404:
            response.close()
            raise Retryable("the upload session vanished")
        self._dst.expect(response, what, ok=(201,))

    def _body(self, source: httpx.Response, blob: Descriptor) -> Iterator[bytes]:
        algorithm = blob.digest.split(":", 1)[0]
        hasher = hashlib.new(algorithm)
        done = 0
        self._report(blob, 0)
        for chunk in source.iter_raw(CHUNK):
            self._dst.halt.check()
            done += len(chunk)
            if done > blob.size:
                raise Retryable(f"the source sent more than the declared {blob.size} bytes")
            hasher.update(chunk)
            if done == blob.size:
                _verify(blob, hasher)  # before the last chunk leaves
            yield chunk
            self._report(blob, done)
        if done < blob.size:
            raise Retryable(f"the source ended after {done} of {blob.size} bytes")
        if blob.size == 0:
            _verify(blob, hasher)


def _verify(blob: Descriptor, hasher: hashlib._Hash) -> None:
    actual = f"{hasher.name}:{hasher.hexdigest()}"
    if actual != blob.digest:
        raise Retryable(f"digest mismatch: expected {blob.digest}, received {actual}")
