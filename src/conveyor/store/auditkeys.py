"""The audit trail's keys, kept outside the database.

Someone who can write to the database could rewrite the whole hash chain with Conveyor's own
digest function. Two keys stop that: the chain is an HMAC keyed with `chain.key`, and signed
checkpoints (store/checkpoints.py) are written with `signing.pem`, both in a directory beside
the database, never in it: `<database>.audit/` for a SQLite file, `$CONVEYOR_AUDIT_DIR` for
any database. Back the directory up apart from the database: it proves the trail.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import AuditBroken
from conveyor.store.url import sqlite_file

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CHAIN_KEY = "chain.key"
SIGNING_KEY = "signing.pem"
PUBLIC_KEY = "signing.pub"
# Where a session finds its store's keys (Session.info).
AUDIT_KEYS = "conveyor.audit.keys"


def audit_dir(url: str) -> Path | None:
    """Where a database's audit keys and checkpoints live (None: an in-memory database,
    whose keys live in memory too)."""
    configured = os.environ.get("CONVEYOR_AUDIT_DIR")
    if configured:
        return Path(configured)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        return None if path is None else path.with_name(path.name + ".audit")
    # A server database has no file to sit beside: the operator's state directory.
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "conveyor" / "audit"


class AuditKeys:
    """A store's keys, read on first use: most commands never append to the trail, and the
    signing key's library is not worth importing for them."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._chain: bytes | None = None
        self._signing: Ed25519PrivateKey | None = None

    def chain(self, create: bool) -> bytes:
        """The HMAC key of the chain. `create` only for a trail with no events yet: a key
        made for a trail that has events would call every one of them forged."""
        if self._chain is None:
            if self.directory is None:
                self._chain = secrets.token_bytes(32)
            else:
                if create and not (self.directory / CHAIN_KEY).exists():
                    self._create()
                try:
                    self._chain = bytes.fromhex((self.directory / CHAIN_KEY).read_text().strip())
                except FileNotFoundError:
                    raise self.missing() from None
                except ValueError:
                    raise AuditBroken(f"{self.directory / CHAIN_KEY} is not a key") from None
        return self._chain

    def signing(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self._signing is None:
            if self.directory is None:
                self._signing = Ed25519PrivateKey.generate()
                return self._signing
            path = self.directory / SIGNING_KEY
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except FileNotFoundError:
                raise self.missing() from None
            except ValueError:
                raise AuditBroken(f"{path} is not a PEM private key") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise AuditBroken(f"{path} is not an Ed25519 private key")
            self._signing = key
            # The public half, to copy to wherever checkpoints are checked.
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            _write_once(self.directory / PUBLIC_KEY, public, mode=0o644)
        return self._signing

    def missing(self) -> AuditBroken:
        return AuditBroken(
            f"the audit trail's keys are missing from {self.directory}: restore that directory "
            "from your backup (a new key cannot extend a chain made with the old one), or "
            "point CONVEYOR_AUDIT_DIR at where it is"
        )

    def _create(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        assert self.directory is not None
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        signing = Ed25519PrivateKey.generate()
        pem = signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # The signing key first: whoever finds the chain key finds both.
        _write_once(self.directory / SIGNING_KEY, pem)
        _write_once(self.directory / CHAIN_KEY, secrets.token_hex(32).encode())


def _write_once(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write `path` whole, unless it exists: a reader never sees half a key, and of two
    processes creating keys at once, the first one's stay."""
    if path.exists():
        return
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
