"""The client for a machine that has neither the Temporal server nor the artifact store: the REST API of
`clipper web`, over HTTP, with the methods a user of `ClipperClient` reaches for most and the same answers.

    async with ClipperClient.over_http("http://clipper.internal:8080", token=TOKEN) as clipper:
        job = await clipper.submit("https://example.com/episode.mp3")
        await clipper.result(job.job_id)                 # JobFailed / JobCancelled, as ClipperClient raises
        quotes = await clipper.quotes(job.job_id)        # the same models, read through /api/jobs/{id}/artifacts

The same models come back (`JobStatus`, `JobSummary`, `JobResult`, `QuoteSet`, …) and the same typed errors are
raised: a problem's `error` (clipper_app/web/problems.py) names the error class (`JobNotFound`, `JobClosed`,
`InvalidRequest`, …; `clipper.errors.error_class`), with the problem's `detail` as its message. A problem whose
name this process does not know is an `ApiError` carrying that name and the HTTP status; a server that cannot be
reached is `ApiUnavailable`. Every artifact read is checked against its ETag, the sha256 the job recorded
(`CorruptArtifact` if the bytes differ). `result` waits by asking the job's status every `poll_s` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr, TypeAdapter

from clipper.errors import ClipperError, CorruptArtifact, error_class
from clipper.follow.model import FollowInfo
from clipper.job.request import JobOptions, JobResult, MediaInfo
from clipper.job.status import FINISHED, PRIORITY_DEFAULT, JobState, JobStatus, check_priority
from clipper.job.versions import ArtifactVersion
from clipper.search.query import Hit
from clipper.store.refs import ArtifactRef
from clipper_app.client.common import JobCancelled, JobFailed, Submitted
from clipper_app.client.delete import DELETE_WAIT_S
from clipper_app.client.listing import JobSummary
from clipper_app.client.typed import TypedOutputs

CHUNK = 1 << 16


class ApiError(ClipperError):
    """The REST API refused with a problem this client has no class for (e.g. `Unauthorized`: a missing or wrong
    token; `UnknownHost`: the server does not answer to the host name used, see CLIPPER_WEB_HOSTS). `error` is the
    problem's name, `status` the HTTP status."""

    def __init__(self, message: str, error: str = "ApiError", status: int = 0) -> None:
        super().__init__(message)
        self.error, self.status = error, status

    @property
    def type_name(self) -> str:
        return self.error


class ApiUnavailable(ClipperError):
    """The clipper web server could not be reached (refused, timed out, reset, DNS): check its address and that
    `clipper web` runs there, then try again."""

    non_retryable = False


def problem_error(response: httpx.Response) -> ClipperError:
    """A problem answer as the typed error it names (the class the server raised, where this process has it)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    name = body.get("error") if isinstance(body, dict) else None
    detail = (body.get("detail") if isinstance(body, dict) else None) or response.text[:200] or response.reason_phrase
    cls = error_class(name) if name else None
    if cls is not None and cls is not ClipperError:
        try:
            return cls(detail)
        except TypeError:  # a class with other arguments: keep its name and the message
            pass
    return ApiError(detail, name or f"HTTP{response.status_code}", response.status_code)


class RemoteClipperClient(TypedOutputs):
    """`ClipperClient`'s everyday methods over the REST API: base URL and (when the server has one) its token."""

    def __init__(self, base_url: str, token: str | SecretStr | None = None, *, timeout_s: float = 30.0,
                 poll_s: float = 1.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = SecretStr(token) if isinstance(token, str) else token  # never in a repr or a log
        self.poll_s, self.timeout_s = poll_s, timeout_s
        headers = {"Accept": "application/json"}
        if self._token is not None and self._token.get_secret_value():
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                      follow_redirects=False)

    def __repr__(self) -> str:
        return f"RemoteClipperClient({self.base_url!r})"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> RemoteClipperClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- HTTP ---

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise ApiUnavailable(f"could not reach clipper web at {self.base_url} ({type(err).__name__}); is it "
                                 "running there?") from None
        if response.status_code >= 400:
            raise problem_error(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._call(method, path, **kwargs)).json()

    @staticmethod
    def _job(job_id: str, tail: str = "") -> str:
        return f"/api/jobs/{quote(job_id, safe='')}{tail}"

    # --- jobs ---

    async def submit(self, url: str, options: JobOptions | None = None, priority: int = PRIORITY_DEFAULT,
                     callback_url: str | None = None) -> Submitted:
        """As `ClipperClient.submit`; the server checks the URL, options and priority (`UnsupportedUrl`,
        `InvalidRequest`, …). `webhook_secret` is set when the job's webhooks are signed with its own secret."""
        check_priority(priority)
        body: dict[str, Any] = {"url": url, "priority": priority}
        if options is not None:
            body["options"] = options.model_dump(mode="json", exclude_unset=True)
        if callback_url:
            body["callback_url"] = callback_url
        data = await self._json("POST", "/api/jobs", json=body)
        return Submitted(job_id=data["job_id"], existing=data["existing"], webhook_secret=data.get("webhook_secret"))

    async def status(self, job_id: str) -> JobStatus:
        return JobStatus.model_validate(await self._json("GET", self._job(job_id)))

    async def exists(self, job_id: str) -> bool:
        try:
            await self.status(job_id)
        except ClipperError as err:
            if err.type_name == "JobNotFound":
                return False
            raise
        return True

    async def list_jobs(self, state: str | None = None, stage: str | None = None, source: str | None = None,
                        limit: int = 50) -> list[JobSummary]:
        params = {k: v for k, v in (("state", state), ("stage", stage), ("source", source)) if v}
        rows = await self._json("GET", "/api/jobs", params={**params, "limit": limit})
        return TypeAdapter(list[JobSummary]).validate_python(rows)

    async def result(self, job_id: str) -> JobResult:
        """Waits for the job's end, like `ClipperClient.result`: the `JobResult` once done; `JobFailed` once it
        has failed for good (a job waiting for a manual retry has not ended); `JobCancelled`."""
        while True:
            status = await self.status(job_id)
            if status.state in FINISHED and status.waiting_since is None:
                break
            await asyncio.sleep(self.poll_s)
        if status.state == JobState.cancelled:
            raise JobCancelled(f"{job_id} was cancelled")
        if status.state == JobState.failed:
            error = status.error
            stage = status.current_stage or next((s.name for s in status.stages if s.state == "failed"), None)
            raise JobFailed(job_id, stage, error.type if error else "JobFailed",
                            error.message if error else "no error recorded")
        return await self._result(job_id, status)

    wait = result

    async def artifacts(self, job_id: str) -> JobResult:
        """The finished job's result: media info and every artifact's reference (`JobNotFinished` before)."""
        return await self._result(job_id, await self.status(job_id))

    async def _result(self, job_id: str, status: JobStatus) -> JobResult:
        refs = {ref.name: ref for ref in await self.artifact_refs(job_id)}
        info = MediaInfo.model_validate_json(await self.artifact_bytes(job_id, "media.json")) \
            if "media.json" in refs else None
        return JobResult(job_id=job_id, state=status.state, info=info, artifacts=refs, status=status)

    async def artifact_refs(self, job_id: str) -> list[ArtifactRef]:
        """The job's artifacts so far (name, sha256, size, stage): a running job's finished stages, all once done."""
        return TypeAdapter(list[ArtifactRef]).validate_python(await self._json("GET", self._job(job_id, "/artifacts")))

    async def versions(self, job_id: str) -> list[ArtifactVersion]:
        versions = await self._json("GET", self._job(job_id, "/versions"))
        return TypeAdapter(list[ArtifactVersion]).validate_python(versions)

    # --- control ---

    async def pause(self, job_id: str, now: bool = False) -> None:
        await self._call("POST", self._job(job_id, "/pause"), json={"now": now})

    async def resume(self, job_id: str) -> None:
        await self._call("POST", self._job(job_id, "/resume"))

    async def cancel(self, job_id: str) -> None:
        await self._call("POST", self._job(job_id, "/cancel"))

    async def retry(self, job_id: str, options: dict[str, Any] | None = None) -> None:
        JobOptions().changed(options)  # InvalidRequest before anything is sent, as ClipperClient.retry
        await self._call("POST", self._job(job_id, "/retry"), json={"options": options or {}})

    async def abandon(self, job_id: str) -> None:
        await self._call("POST", self._job(job_id, "/abandon"))

    async def set_priority(self, job_id: str, priority: int) -> int:
        check_priority(priority)  # InvalidRequest outside 1-5, as ClipperClient.set_priority
        return (await self._json("PUT", self._job(job_id, "/priority"), json={"priority": priority}))["priority"]

    async def name_speakers(self, job_id: str, names: dict[str, str]) -> dict[str, str]:
        return await self._json("POST", self._job(job_id, "/speakers"), json=names)

    async def delete(self, job_id: str) -> None:
        """The job, its files and versions are removed (`DELETE /api/jobs/{id}`); refused while it runs. The
        server may wait up to `DELETE_WAIT_S` for a just-closed run's removal: this call waits longer than that."""
        await self._call("DELETE", self._job(job_id), timeout=max(self.timeout_s, DELETE_WAIT_S + 15))

    async def search(self, query: str, speaker: str | None = None, job_id: str | None = None,
                     since: timedelta | None = None, kind: str | None = None, limit: int | None = None) -> list[Hit]:
        """`ClipperClient.search` over `GET /api/search`: the same hits."""
        params = {k: v for k, v in (("q", query), ("speaker", speaker), ("job", job_id), ("kind", kind),
                                    ("limit", limit)) if v is not None}
        if since is not None:  # the finest unit the API takes it in (at most six digits)
            seconds = max(1, int(since.total_seconds()))
            unit, size = next((u, n) for u, n in (("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800))
                              if -(-seconds // n) <= 999_999 or u == "w")
            params["since"] = f"{min(999_999, -(-seconds // size))}{unit}"
        return TypeAdapter(list[Hit]).validate_python(await self._json("GET", "/api/search", params=params))

    # --- follows (`/api/follows`) ---

    async def follow(self, source: str, every_s: int | None = None, options: JobOptions | None = None,
                     priority: int = PRIORITY_DEFAULT, since: datetime | None = None, new_only: bool = False,
                     concurrency: int | None = None) -> Submitted:
        """As `ClipperClient.follow` (`POST /api/follows`): the follow's id in `job_id`."""
        body: dict[str, Any] = {"source": source, "priority": priority, "new_only": new_only}
        for key, value in (("every_s", every_s), ("concurrency", concurrency),
                           ("since", since.isoformat() if since else None)):
            if value is not None:
                body[key] = value
        if options is not None:
            body["options"] = options.model_dump(mode="json", exclude_unset=True)
        data = await self._json("POST", "/api/follows", json=body)
        return Submitted(job_id=data["follow_id"], existing=data["existing"])

    async def follows(self) -> list[FollowInfo]:
        return TypeAdapter(list[FollowInfo]).validate_python(await self._json("GET", "/api/follows"))

    async def follow_info(self, follow_id: str) -> FollowInfo:
        return FollowInfo.model_validate(await self._json("GET", self._follow(follow_id)))

    async def pause_follow(self, follow_id: str) -> FollowInfo:
        return FollowInfo.model_validate(await self._json("POST", self._follow(follow_id, "/pause")))

    async def resume_follow(self, follow_id: str) -> FollowInfo:
        return FollowInfo.model_validate(await self._json("POST", self._follow(follow_id, "/resume")))

    async def unfollow(self, follow_id: str) -> None:
        await self._call("DELETE", self._follow(follow_id))

    @staticmethod
    def _follow(follow_id: str, tail: str = "") -> str:
        return f"/api/follows/{quote(follow_id, safe='')}{tail}"

    # --- outputs, checked against the sha256 the job recorded (the ETag) ---

    async def artifact_bytes(self, job_id: str, name: str) -> bytes:
        response = await self._call("GET", self._job(job_id, "/artifacts/" + quote(name)))
        _check(job_id, name, response.headers.get("etag"), hashlib.sha256(response.content).hexdigest())
        return response.content

    async def download(self, job_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Streams the artifact into `dest` (a file, or a folder to put it in under its own name), checked, then
        renamed into place: a failed or corrupt download leaves nothing behind."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / Path(name).name
        part = dest.with_name(dest.name + ".part")
        digest = hashlib.sha256()
        try:
            async with self.http.stream("GET", self._job(job_id, "/artifacts/" + quote(name))) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise problem_error(response)
                with part.open("wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                _check(job_id, name, response.headers.get("etag"), digest.hexdigest())
            part.replace(dest)
        except httpx.TransportError as err:
            raise ApiUnavailable(f"the download of {name} from {self.base_url} broke off ({type(err).__name__}); "
                                 "try again") from None
        finally:
            part.unlink(missing_ok=True)
        return dest


def _check(job_id: str, name: str, etag: str | None, sha256: str) -> None:
    """The bytes are the ones the job recorded: the server's ETag is the manifest's sha256."""
    expected = (etag or "").strip().removeprefix("W/").strip('"')
    if expected != sha256:
        raise CorruptArtifact(f"{job_id}: {name} arrived with sha256 {sha256[:12]}…, but the job recorded "
                              f"{expected[:12] or 'none'}…; read it again", artifact=name)
