"""Moving a finished job between deployments (`clipper export` / `clipper import`). A part of `ClipperClient`.

Export reads what the job's deployment knows of it — its result and event history from Temporal, its manifest and
files from the store (an S3 store fetches them) — and writes one checked tar (clipper/store/archive.py). Import checks
the tar completely before it writes anything, refuses a job id this deployment already has, puts the files into
its store (clipper/store/import_claim.py), then registers the job as an `ImportedJob` workflow with the job's id
(workflows/imported_job.py). If anything fails once the first file is written, everything written is removed
before the error is raised: an import is whole or absent.

Only a job that finished done moves this way. Running jobs move with their server: docs/backup.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from clipper.errors import ArchiveInvalid, ImportNotRegistered, InvalidRequest, JobExists
from clipper.job.request import JobRequest, JobResult
from clipper.store.archive import (
    ArchiveSummary, ExportInfo, ExportSource, ImportedJobInput, exportable, read_archive, write_archive,
)
from clipper.store.import_claim import ImportClaim, staging_dir
from clipper.store.local import ArtifactStore
from clipper_app.client.common import (
    ArtifactNotFound, ClientBase, JobNotFinished, JobNotFound, ensure_search_attributes,
)
from clipper_app.client.history import AuditEntry, imported_audit_log, imported_from
from workflows import search_attributes as sa
from workflows.imported_job import IMPORTED_TYPE, ImportedJob, start_attributes

JOB_TYPES = ("MediaJob", IMPORTED_TYPE)


class TransferMethods(ClientBase):
    store: ArtifactStore  # OutputMethods' (the configured store)
    index_quietly: Any  # SearchMethods'

    # --- export ---

    async def export_job(self, job_id: str, out: str | Path) -> ArchiveSummary:
        """Write the finished job `job_id` as one tar at `out` (atomically). A job that is not done is a
        `JobNotFinished` saying what to do; a store that lacks the job's files an `ArtifactNotFound`."""
        desc = await self.describe(job_id)
        if desc.workflow_type not in JOB_TYPES:
            raise InvalidRequest(f"{job_id} is a {desc.workflow_type}, not a job: export its jobs one by one")
        if desc.status != WorkflowExecutionStatus.COMPLETED:
            state = desc.typed_search_attributes.get(sa.CLIPPER_STATE) if desc.close_time is None else None
            raise JobNotFinished(_not_done(job_id, state or (desc.status.name.lower() if desc.status else "unknown"),
                                           running=desc.close_time is None))
        handle = self.handle(job_id, result_type=JobResult)
        with self.translating(job_id):
            result: JobResult = await handle.result()
            history = await handle.fetch_history()
        original, request = await self._original(job_id, history)
        manifest = exportable(await asyncio.to_thread(self.store.read_manifest, job_id))
        missing = sorted(set(result.artifacts) - set(manifest.artifacts))
        if missing:
            raise ArtifactNotFound(
                f"the store {self.store.uri(job_id)} has no {missing[0]} of {job_id} ({len(missing)} missing): run "
                "the export where the job's store is (the workers' CLIPPER_STORAGE_DIR or CLIPPER_STORAGE_URL)")
        source = ExportSource(namespace=self.settings.temporal_namespace, address=_no_credentials(
            self.settings.temporal_address), task_queue=desc.task_queue, store=self.store.uri(job_id))
        came = imported_from(history, self.client.data_converter.payload_converter)
        if came is not None:  # exported again: where it first ran
            source = ImportedJobInput.model_validate(came).source
        info = ExportInfo(job_id=job_id, exported_at=datetime.now(timezone.utc), request=request,
                          status=result.status, result=result, source=source)
        size = await asyncio.to_thread(write_archive, Path(out), info, original, self.store, manifest)
        return ArchiveSummary(job_id=job_id, path=str(out), artifacts=len(manifest.artifacts), size=size,
                              source=source, exported_at=info.exported_at)

    async def _original(self, job_id: str, history: WorkflowHistory) -> tuple[bytes, JobRequest]:
        """The history (as JSON) of the run that did the work, and its request: the job's own, or for an imported
        job the archived one, byte for byte as it was exported (verified against its sha256)."""
        converter = self.client.data_converter.payload_converter
        came = imported_from(history, converter)
        if came is None:
            started = history.events[0].workflow_execution_started_event_attributes
            request = converter.from_payloads(list(started.input.payloads), [JobRequest])[0]
            return history.to_json().encode(), request
        imported = ImportedJobInput.model_validate(came)
        path = await asyncio.to_thread(self.store.verify, job_id, imported.history)
        return await asyncio.to_thread(path.read_bytes), imported.request

    async def imported_audit(self, job_id: str, history: WorkflowHistory) -> list[AuditEntry]:
        """An imported job's audit log: the original run's, then when and from where it was imported."""
        original, _ = await self._original(job_id, history)
        return imported_audit_log(WorkflowHistory.from_json(job_id, original.decode("utf-8")), history,
                                  self.client.data_converter.payload_converter)

    # --- import ---

    async def import_job(self, path: str | Path) -> ArchiveSummary:
        """Check the archive at `path`, store its files and register its job here. `ArchiveInvalid` (nothing
        written) for an archive that is damaged, truncated, edited or not an export; `JobExists` (nothing changed)
        for a job id this deployment already has."""
        staging = staging_dir(self.store, uuid.uuid4().hex)
        try:
            archive = await asyncio.to_thread(read_archive, Path(path), staging)
            job_id = archive.job_id
            try:
                WorkflowHistory.from_json(job_id, archive.history.decode("utf-8"))
            except Exception as err:  # noqa: BLE001 - any parse failure means the same: not a history
                raise ArchiveInvalid(f"{Path(path).name}: history.json is not a workflow history ({err})") from None
            if await self._known(job_id):
                raise JobExists(f"{job_id} already exists on {self.settings.temporal_address} (namespace "
                                f"{self.settings.temporal_namespace}): nothing imported")
            await ensure_search_attributes(self.client, self.settings.temporal_namespace)
            claim = await asyncio.to_thread(ImportClaim, self.store, job_id)
            try:
                history_ref = await asyncio.to_thread(claim.store_archive, archive)
                await self._register(archive.info, history_ref)
            except BaseException:
                claim.discard()  # at once, even when cancelled: nothing half-imported stays behind
                raise
            claim.done()
            await self.index_quietly(job_id)  # SearchMethods': its words are found like any job's
        finally:
            await asyncio.to_thread(_remove_staging, staging)
        return ArchiveSummary(job_id=job_id, path=str(path), artifacts=len(archive.manifest.artifacts),
                              size=archive.size, source=archive.info.source, exported_at=archive.info.exported_at)

    async def _known(self, job_id: str) -> bool:
        """Whether a workflow by this id exists here, in any state (a failed or cancelled run has files too)."""
        try:
            await self.describe(job_id)
        except JobNotFound:
            return False
        return True

    async def _register(self, info: ExportInfo, history_ref) -> None:
        job = ImportedJobInput(job_id=info.job_id, request=info.request, result=info.result, history=history_ref,
                               source=info.source, exported_at=info.exported_at)
        try:
            await self.client.start_workflow(
                ImportedJob.run, job, id=info.job_id, task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=start_attributes(info.result.status),
                static_summary=info.status.url[:200],
                static_details=f"clipper job for {info.status.url}, imported from namespace "
                               f"{info.source.namespace} at {info.source.address}")
        except WorkflowAlreadyStartedError:
            raise JobExists(f"{info.job_id} was registered here by someone else meanwhile: nothing imported") from None
        except RPCError as err:
            raise ImportNotRegistered(f"the server at {_no_credentials(self.settings.temporal_address)} refused to "
                                      f"register {info.job_id}: {err.message}; nothing imported (its files were "
                                      "removed again)") from None


def _not_done(job_id: str, state: str, running: bool) -> str:
    if running:
        return (f"{job_id} is {state}: only a job that finished done can be exported; wait for it (`clipper watch "
                f"{job_id}`), or move running jobs with their server: back up and restore the Temporal "
                "persistence and the store (docs/backup.md)")
    return f"{job_id} ended {state}: only a job that finished done can be exported; submit its URL again"


def _remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # the last import out leaves no empty `.imports/`


def _no_credentials(address: str) -> str:
    """host:port as configured, without a `user:password@` some set-ups put in front."""
    return address.rpartition("@")[2]
