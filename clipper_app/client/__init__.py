"""clipper's Python client: submit, follow, steer and read jobs and batches from another service.

    from clipper_app.client import ClipperClient
    clipper = await ClipperClient.connect()        # settings from the environment (TEMPORAL_ADDRESS, ...)
    job = await clipper.submit("https://example.com/episode.mp3")
    await clipper.result(job.job_id)               # JobFailed if it failed
    quotes = await clipper.quotes(job.job_id)      # models, through the configured store

See docs/api.md.
"""

from clipper.errors import ArchiveInvalid, JobExists  # export_job / import_job (clipper_app/client/transfer.py)
# The models the client's reads return, importable from here: a caller needs no import of the store's modules.
from clipper.job.versions import ArtifactVersion
from clipper.search import Hit, Reindexed
from clipper.store.archive import ArchiveSummary
from clipper.store.refs import ArtifactRef
from clipper_app.client.common import (
    ArtifactNotFound, BatchFailed, JobCancelled, JobClosed, JobFailed, JobNotFinished, JobNotFound, Submitted, connect,
    ensure_search_attributes,
)
from clipper_app.client.delete import Deleted, JobStillRunning
from clipper_app.client.files import JobFiles, ReportNotFound, clip_names
from clipper_app.client.history import AuditEntry, audit_log
from clipper_app.client.jobs import ClipperClient
from clipper_app.client.listing import JobSummary
from clipper_app.client.remote import ApiError, ApiUnavailable, RemoteClipperClient
from clipper_app.client.search import Searcher
from clipper_app.client.unavailable import SERVER_ERRORS, TemporalUnavailable, unavailable

__all__ = [
    "ArtifactNotFound", "AuditEntry", "BatchFailed", "ClipperClient", "JobCancelled", "JobClosed", "JobFailed",
    "JobNotFinished", "JobNotFound", "JobSummary", "Submitted", "audit_log", "connect", "ensure_search_attributes",
    "ArchiveInvalid", "JobExists", "ArchiveSummary", "ArtifactRef", "ArtifactVersion", "JobFiles", "ReportNotFound",
    "SERVER_ERRORS", "TemporalUnavailable", "clip_names", "unavailable", "Deleted", "JobStillRunning",
    "ApiError", "ApiUnavailable", "RemoteClipperClient", "Hit", "Reindexed", "Searcher",
]
