"""Real OCI registries for tests (the helpers live in the package, for benches and the demo)."""

from conveyor.oci.local import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    SkopeoError,
    blobs_on_disk,
    inspect_digest,
    inspect_raw,
    make_image,
    registry,
)

__all__ = [
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "SkopeoError",
    "blobs_on_disk",
    "inspect_digest",
    "inspect_raw",
    "make_image",
    "registry",
]
