"""S3-compatible artifact store (AWS S3, MinIO, R2, ...) for workers on several hosts.

The same interface as `ArtifactStore`, which it extends: the local folder stays each host's working cache,
because stages need real files (ffmpeg, the speech engine). The bucket is the truth:

- every `put_*` writes the file locally (atomically, as the local store does), uploads it with its sha256 as
  object metadata, then records its reference as an object of its own, `<job>/.refs/<name>.json`. Hosts that
  record artifacts of one job at the same moment never write the same object, so no entry is lost, and
  nothing needs a lock across hosts;
- `read_manifest` lists those references. `<job>/manifest.json` (in the bucket and in the cache) is a view of
  them rewritten after every record, for people and other tools; the store never reads it back;
- `verify` returns the local copy if it matches the reference's sha256; otherwise it downloads the object into
  the cache (temp file, fsync, rename) and checks it: missing or different is `CorruptArtifact`, as locally;
- receipts (`<job>/.receipts/<name>.json`) go to the bucket too, so a retry on another host reuses the work
  a dead worker finished.

Scratch (`.tmp/`: partial downloads, partial transcripts) stays on the host that wrote it: an attempt resumed
on another host starts its current piece (download, transcript segment run, clip) over.

An unreachable or failing store raises `StorageUnavailable`; a missing bucket or refused credentials
`StorageMisconfigured`. Credentials come from boto3's chain and never appear in a message.

Layout in the bucket mirrors the local root: `<prefix>/jobs/<job id>/<name>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import structlog
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError, ClientError, ConnectionError as EndpointUnreachable, CredentialRetrievalError, HTTPClientError,
    NoCredentialsError, PartialCredentialsError,
)
from pydantic import ValidationError

from clipper.config import AWS_SECRET_ENV, Settings
from clipper.errors import ClipperError, CorruptArtifact, StorageMisconfigured, StorageUnavailable
from clipper.store.files import atomic_write_bytes, fsync_dir, sha256_file, writing
from clipper.store.local import MANIFEST, RECEIPTS, ArtifactStore, Manifest
from clipper.store.refs import ArtifactRef

REFS = ".refs"  # <job>/.refs/<artifact name>.json: one ArtifactRef per object
NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
BAD_CREDENTIALS = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AllAccessDisabled", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed", "403",
})
TRANSIENT = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                       "ServiceUnavailable"})
VIEW_ROUNDS = 5  # rewrites of manifest.json while other hosts keep adding references under our feet
FETCH_THREADS = 8  # reference objects read at once when a listing shows new ones
CACHED_JOBS = 64  # jobs whose references stay parsed in memory, keyed by ETag
# Multipart above 64 MB (audio of long media, sources), a few parts at once: the hosts have few cores.
TRANSFER = TransferConfig(multipart_threshold=64 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4)


def s3_client(settings: Settings) -> tuple[Any, list[str]]:
    """A boto3 S3 client for the settings, and the secrets of the credentials it resolved (for scrubbing)."""
    config = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=16,
        # MinIO and most S3-compatible servers want the bucket in the path, not in the host name.
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
    )
    try:
        session = boto3.session.Session()
        client = session.client("s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region,
                                config=config)
    except (ValueError, BotoCoreError) as e:  # a malformed endpoint URL, an unknown AWS_PROFILE, ...
        raise StorageMisconfigured(f"cannot set up the artifact store {settings.storage_url}: {e}") from e
    credentials = session.get_credentials()  # already resolved by the client: no extra look-up
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    secrets = [frozen.secret_key, frozen.token] if frozen is not None else []
    return client, [s for s in secrets if s]


class S3ArtifactStore(ArtifactStore):
    def __init__(self, root: Path, bucket: str, client: Any, prefix: str = "", endpoint_url: str | None = None,
                 secrets: list[str] | None = None) -> None:
        """`root`: this host's cache folder; `client`: a boto3 S3 client; `secrets`: scrubbed from messages."""
        super().__init__(root)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.endpoint_url = endpoint_url
        self._secrets = [s for s in (secrets or []) if s]
        # Parsed reference objects per job, keyed by ETag: a listing then costs one request, plus one per new
        # or changed reference. Bounded, because a worker lives through many jobs.
        self._refs: OrderedDict[str, dict[str, tuple[str, ArtifactRef | None]]] = OrderedDict()
        self._refs_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3ArtifactStore:
        bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
        client, secrets = s3_client(settings)
        return cls(settings.storage_dir, bucket, client, prefix, settings.s3_endpoint_url, secrets)

    # --- names ---

    def _key(self, job_id: str, name: str = "") -> str:
        if name:
            self.path(job_id, name)  # rejects ids and names that would escape the job's folder
        else:
            self._job_path(job_id)
        return "/".join(part for part in (self.prefix, "jobs", job_id, name) if part)

    def _ref_key(self, job_id: str, name: str) -> str:
        self.path(job_id, name)
        return self._key(job_id, f"{REFS}/{name}.json")

    def _receipt_key(self, job_id: str, name: str) -> str:
        self._receipt_path(job_id, name)  # validates the name
        return self._key(job_id, f"{RECEIPTS}/{name}.json")

    def uri(self, job_id: str, name: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(job_id, name)}"

    def _where(self) -> str:
        root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{root} at {self.endpoint_url}" if self.endpoint_url else root

    def check(self) -> None:
        with self._s3_errors("opening the store"):
            self.client.head_bucket(Bucket=self.bucket)

    # --- writes: the local file first (the cache), then the object, then its reference ---

    def _list(self, job_id: str, ref: ArtifactRef) -> None:
        """Nothing to list locally: the references in the bucket are the manifest (see `_published`)."""

    def _published(self, job_id: str, ref: ArtifactRef) -> None:
        path = self.path(job_id, ref.name)
        extra: dict[str, Any] = {"Metadata": {"sha256": ref.sha256, "stage": ref.stage}}
        if ref.content_type:
            extra["ContentType"] = ref.content_type
        with self._s3_errors(f"uploading {ref.name}"):
            self.client.upload_file(str(path), self.bucket, self._key(job_id, ref.name), ExtraArgs=extra,
                                    Config=TRANSFER)
            # After the object: a reference never points at an object that is not there yet.
            self.client.put_object(Bucket=self.bucket, Key=self._ref_key(job_id, ref.name),
                                   Body=ref.model_dump_json().encode(), ContentType="application/json")
        self._write_view(job_id)

    def remove(self, job_id: str, names: list[str]) -> None:
        """References first (the manifest stops listing them), then the objects, this host's copies, the view."""
        self._delete([self._ref_key(job_id, n) for n in names], "removing artifacts")
        self._delete([self._key(job_id, n) for n in names], "removing artifacts")
        self._discard_files(job_id, names)
        self._write_view(job_id)

    def drop_shared(self, job_id: str) -> int:
        """Every object of the job in the bucket (a failed import's: clipper/store/import_claim.py; a deleted job's)."""
        keys: list[str] = []
        with self._s3_errors(f"listing the objects of {job_id}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                              Prefix=self._key(job_id) + "/"):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        self._delete(keys, f"removing the objects of {job_id}")
        with self._refs_lock:
            self._refs.pop(job_id, None)
        return len(keys)

    def job_ids(self) -> list[str]:
        """Every job folder in the bucket (not only this host's cache)."""
        root, ids = "/".join(p for p in (self.prefix, "jobs") if p) + "/", []
        with self._s3_errors("listing the jobs"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root,
                                                                              Delimiter="/"):
                ids.extend(p["Prefix"][len(root):].strip("/") for p in page.get("CommonPrefixes", []))
        return sorted(i for i in ids if i and not i.startswith("."))

    def _delete(self, keys: list[str], doing: str) -> None:
        for start in range(0, len(keys), 1000):  # delete_objects takes at most 1000 keys
            with self._s3_errors(doing):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageUnavailable(self._scrub(f"the artifact store {self._where()} did not remove "
                                                     f"{first.get('Key')}: {first.get('Code')}"))

    def put_receipt(self, job_id: str, name: str, data: bytes) -> None:
        super().put_receipt(job_id, name, data)  # the cache keeps the local layout
        with self._s3_errors(f"saving receipt {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self._receipt_key(job_id, name), Body=data,
                                   ContentType="application/json")

    def read_receipt(self, job_id: str, name: str) -> bytes | None:
        return self._get_bytes(self._receipt_key(job_id, name), f"reading receipt {name}")

    # --- reads ---

    def verify(self, job_id: str, ref: ArtifactRef) -> Path:
        """The artifact's local path: the cached copy if it matches `ref`, else a fresh, checked download."""
        path = self.path(job_id, ref.name)
        if path.is_file() and path.stat().st_size == ref.size and sha256_file(path) == ref.sha256:
            return path
        return self._download(job_id, ref, path)

    def valid_ref(self, job_id: str, name: str) -> ArtifactRef | None:
        data = self._get_bytes(self._ref_key(job_id, name), "reading the manifest")
        ref = self._parse_ref(data, name) if data is not None else None
        return ref if ref is not None and self._matches(job_id, ref) else None

    def local_copy(self, job_id: str, name: str) -> Path | None:
        return self.path(job_id, name) if self.valid_ref(job_id, name) else None

    def read_manifest(self, job_id: str) -> Manifest:
        return self._manifest(job_id, self._list_refs(job_id))

    def rebuild_manifest(self, job_id: str) -> Manifest:
        """The references are the manifest: rebuilding it is rewriting its view."""
        return self._write_view(job_id)

    # --- manifest: references, and the view of them ---

    def _list_refs(self, job_id: str) -> dict[str, str]:
        """Key → ETag of every reference object of the job."""
        prefix = self._key(job_id, REFS) + "/"
        listing: dict[str, str] = {}
        with self._s3_errors("listing the manifest"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                listing.update((obj["Key"], obj["ETag"]) for obj in page.get("Contents", []))
        return listing

    def _manifest(self, job_id: str, listing: dict[str, str]) -> Manifest:
        with self._refs_lock:
            known = self._refs.setdefault(job_id, {})
            self._refs.move_to_end(job_id)
            while len(self._refs) > CACHED_JOBS:
                self._refs.popitem(last=False)
            stale = [key for key, etag in listing.items() if known.get(key, ("",))[0] != etag]
        if stale:
            with ThreadPoolExecutor(min(FETCH_THREADS, len(stale))) as pool:
                fetched = list(pool.map(self._fetch_ref, stale))
            with self._refs_lock:
                known.update(zip(stale, fetched))
        artifacts = {}
        for key in sorted(listing):
            ref = known.get(key, ("", None))[1]
            if ref is not None:
                artifacts[ref.name] = ref
        updated = max((ref.created_at for ref in artifacts.values()), default=None)
        return Manifest(job_id=job_id, updated_at=updated, artifacts=artifacts)

    def _fetch_ref(self, key: str) -> tuple[str, ArtifactRef | None]:
        with self._s3_errors("reading the manifest"):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if _code(e) in NOT_FOUND:  # gone between the listing and now
                    return "", None
                raise
            data = obj["Body"].read()
        return obj["ETag"], self._parse_ref(data, key)

    def _parse_ref(self, data: bytes, what: str) -> ArtifactRef | None:
        try:
            return ArtifactRef.model_validate_json(data)
        except ValidationError:
            # Left out, like an unverifiable entry of a local manifest: the stage that made it runs again.
            structlog.get_logger().warning("manifest.ref_unreadable", ref=what)
            return None

    def _write_view(self, job_id: str) -> Manifest:
        """(Re)write manifest.json from the references; again while the listing changes meanwhile, so the
        last writer among hosts leaves a view that holds every reference recorded before it."""
        listing = self._list_refs(job_id)
        for _ in range(VIEW_ROUNDS):
            manifest = self._manifest(job_id, listing)
            body = manifest.model_dump_json(indent=2).encode()
            with self._s3_errors("writing the manifest"):
                self.client.put_object(Bucket=self.bucket, Key=self._key(job_id, MANIFEST), Body=body,
                                       ContentType="application/json")
            again = self._list_refs(job_id)
            if again == listing:
                break
            listing = again
        atomic_write_bytes(self.job_dir(job_id) / MANIFEST, body)
        return manifest

    # --- transfers ---

    def _get_bytes(self, key: str, doing: str) -> bytes | None:
        """A small object's content, or None if there is no such object."""
        with self._s3_errors(doing):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as e:
                if _code(e) in NOT_FOUND:
                    return None
                raise

    def _download(self, job_id: str, ref: ArtifactRef, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with self._s3_errors(f"downloading {ref.name}"):
                try:
                    obj = self.client.get_object(Bucket=self.bucket, Key=self._key(job_id, ref.name))
                except ClientError as e:
                    if _code(e) in NOT_FOUND:
                        raise CorruptArtifact(f"artifact {ref.name} is missing from the shared store",
                                              artifact=ref.name, stage=ref.stage) from None
                    raise
                if obj["ContentLength"] == ref.size:  # a different size can't match: don't fetch it
                    with writing(ref.name):
                        path.parent.mkdir(parents=True, exist_ok=True)
                        with open(tmp, "wb") as f:
                            for chunk in obj["Body"].iter_chunks(1 << 20):
                                f.write(chunk)
                                digest.update(chunk)
                                size += len(chunk)
                            f.flush()
                            os.fsync(f.fileno())
                else:
                    obj["Body"].close()
            if size != ref.size or digest.hexdigest() != ref.sha256:
                raise CorruptArtifact(
                    f"artifact {ref.name} in the shared store does not match its sha256 in the manifest",
                    artifact=ref.name, stage=ref.stage,
                )
            with writing(ref.name):
                os.replace(tmp, path)
                fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        structlog.get_logger().debug("artifact.fetched", job_id=job_id, artifact=ref.name, bytes=size)
        return path

    # --- errors: typed, readable, without credentials ---

    @contextlib.contextmanager
    def _s3_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except S3UploadFailedError as e:  # boto3's upload wraps the ClientError that says what went wrong
            cause = e.__cause__ or e.__context__
            raise (self._translate(cause, doing) if isinstance(cause, ClientError) else
                   StorageUnavailable(self._scrub(f"the artifact store {self._where()} failed {doing}: {e}"))) from e
        except (ClientError, BotoCoreError) as e:
            translated = self._translate(e, doing)
            if translated is None:
                raise
            raise translated from e

    def _translate(self, e: BaseException, doing: str) -> ClipperError | None:
        where = self._where()
        if isinstance(e, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
            return StorageMisconfigured(
                f"no usable credentials for the artifact store {where} while {doing}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or another source of the AWS credential chain) on the workers")
        if isinstance(e, (EndpointUnreachable, HTTPClientError)):
            return StorageUnavailable(self._scrub(
                f"cannot reach the artifact store {where} while {doing} ({type(e).__name__}: {e}): check "
                "CLIPPER_S3_ENDPOINT_URL and that the store is up"))
        if not isinstance(e, ClientError):
            return None  # a bug (bad parameter, ...): let it surface as it is
        error = e.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code}: {error.get('Message')}" if error.get("Message") else code
        if code == "NoSuchBucket" or (status == 404 and code in NOT_FOUND):  # 404 reaches here from head_bucket
            return StorageMisconfigured(self._scrub(
                f"bucket {self.bucket!r} does not exist ({where}) while {doing}: create it, or fix "
                "CLIPPER_STORAGE_URL / CLIPPER_S3_ENDPOINT_URL"))
        if code in BAD_CREDENTIALS:
            return StorageMisconfigured(self._scrub(
                f"the artifact store {where} refused the credentials while {doing} ({detail}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"))
        if status >= 500 or code in TRANSIENT:
            return StorageUnavailable(self._scrub(f"the artifact store {where} is failing while {doing} ({detail})"))
        return StorageMisconfigured(self._scrub(f"the artifact store {where} refused {doing} ({detail})"))

    def _scrub(self, text: str) -> str:
        for secret in [*self._secrets, *(os.environ.get(name, "") for name in AWS_SECRET_ENV)]:
            if secret:
                text = text.replace(secret, "[REDACTED]")
        return text


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
