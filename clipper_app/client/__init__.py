"""clipper's Python client: submit, follow, steer and read jobs and batches from another service.

    from client import ClipperClient
    clipper = await ClipperClient.connect()        # settings from the environment (TEMPORAL_ADDRESS, ...)
    job = await clipper.submit("https://example.com/episode.mp3")
    await clipper.result(job.job_id)               # JobFailed if it failed
    quotes = await clipper.quotes(job.job_id)      # models, through the configured store

See docs/api.md.
"""

from clipper.errors import ArchiveInvalid, JobExists  # export_job / import_job (clipper_app/client/transfer.py)
from clipper_app.client.common import (
    ArtifactNotFound, BatchFailed, JobCancelled, JobClosed, JobFailed, JobNotFinished, JobNotFound, Submitted, connect,
    ensure_search_attributes,
)
from clipper_app.client.history import AuditEntry, audit_log
from clipper_app.client.jobs import ClipperClient
from clipper_app.client.listing import JobSummary

__all__ = [
    "ArtifactNotFound", "AuditEntry", "BatchFailed", "ClipperClient", "JobCancelled", "JobClosed", "JobFailed",
    "JobNotFinished", "JobNotFound", "JobSummary", "Submitted", "audit_log", "connect", "ensure_search_attributes",
    "ArchiveInvalid", "JobExists",
]
