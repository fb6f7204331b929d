"""Which artifact store the settings describe: the local folder (`clipper/store/local.py`), or the S3-compatible
store with that folder as each host's cache (`clipper/store/s3.py`). Kept apart from both so that neither
imports the other's module back (the S3 store builds on the local one)."""

from __future__ import annotations

from clipper.config import Settings
from clipper.store.local import ArtifactStore


def open_store(settings: Settings) -> ArtifactStore:
    if not settings.storage_url:
        return ArtifactStore(settings.storage_dir)
    from clipper.store.s3 import S3ArtifactStore  # boto3 is imported only where it is used

    return S3ArtifactStore.from_settings(settings)
