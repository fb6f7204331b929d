"""The reference to an artifact: what travels through workflow history instead of the file itself."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ArtifactRef(BaseModel):
    """A file in the job's folder, identified by its path relative to the job folder and its checksum."""

    name: str
    sha256: str
    size: int
    stage: str
    created_at: datetime
    content_type: str | None = None
