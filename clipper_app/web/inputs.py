"""What the REST API takes: its request bodies and the shapes of its parameters, as the OpenAPI document shows them.

Each constraint here is one the API enforces, so a request the document allows is one the API takes (and the
reverse); tests/e2e/test_openapi.py holds them together with Schemathesis. Where a typed check says better what
is wrong (the URL checks, `check_names`), the document carries the rule and the check refuses with its own message;
clipper_app/web/openapi.py adds the rules that depend on the server's settings (the URL pattern, the language rule).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from clipper.asr import ENGINES
from clipper.asr.models import KNOWN_MODELS
from clipper.errors import InvalidRequest
from clipper.job.request import JobOptions
from clipper.job.status import PRIORITY_DEFAULT, PRIORITY_HIGHEST, PRIORITY_LOWEST, PRIORITY_RANGE
from clipper.llm import TEXT_ENGINES
from clipper.media.urls import MAX_URL_LENGTH
from clipper.speakers.names import LABEL, MAX_NAME, check_names

# What Python's str.isspace() calls a space (what strip() and split() remove), spelled out: a pattern's `\s` means
# other characters to a JSON Schema validator (ECMA-262) than to Python. Patterns here use explicit classes only.
SPACES = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A media URL: the URL checks refuse what does not look like one, with the typed error saying why; the document
# says the same with a pattern (clipper_app/web/openapi.py: http(s), or anything when local files are allowed).
MediaUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]
# `?source=`: a host name, as a visibility query can hold it between its quotes (no space, quote or backslash).
HOST_PATTERN = "^[^" + SPACES + r"\x22\x27\x5c\x00-\x1f\x7f]+$"
# Speaker names as `check_names` takes them (clipper/speakers/names.py). Their letters are any alphabet's, which no
# pattern says alike to Python and to a JSON Schema validator: the rule is in words, `check_names` enforces it.
NAMES_SCHEMA = {"type": "object", "minProperties": 1, "additionalProperties": False, "patternProperties": {
    LABEL.pattern: {"type": "string", "maxLength": MAX_NAME, "description": (
        "a letter or digit (of any alphabet), then letters, digits, spaces and .,'’()-@&+; runs of spaces count "
        "as one; \"\" removes the name")}}}


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(low: int, high: int) -> Any:
    """A JSON integer from `low` to `high`: 3 or 3.0, never "3" or true (a lax int would take them, the document
    does not). The bounds come before the validator, or the document loses them."""
    return Annotated[StrictInt, Field(ge=low, le=high), BeforeValidator(_whole)]


Priority = whole(PRIORITY_HIGHEST, PRIORITY_LOWEST)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Options(JobOptions):
    """JobOptions with unknown keys refused (422), as the CLI's `--set` refuses them: a typo is never ignored; each
    value as the submit checks take it (an engine or model by its exact name)."""

    model_config = ConfigDict(extra="forbid")

    asr_engine: Literal[ENGINES] | None = Field(None, description="speech to text; default: CLIPPER_ASR_ENGINE")
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}$", description=(
        "the language spoken (ISO 639 code: en, de, …); default: English for tiny.en, detected by base"))
    asr_model: Literal[tuple(KNOWN_MODELS)] | None = Field(None, description="default: CLIPPER_ASR_MODEL")
    text_engine: Literal[TEXT_ENGINES] | None = Field(None, description="quotes and summary; default: auto")
    llm_model: str | None = Field(None, min_length=1, max_length=200, description="default: CLIPPER_LLM_MODEL")
    max_quotes: whole(1, 1000) | None = Field(None, description="at most this many quotes")

    def plain(self) -> JobOptions:
        return JobOptions.model_validate(self.model_dump(exclude_unset=True))


class SubmitJob(Strict):
    url: MediaUrl = Field(description="an http(s) link to audio or video")
    priority: Priority = Field(PRIORITY_DEFAULT, description=PRIORITY_RANGE)
    options: Options = Field(default_factory=Options)
    callback_url: str | None = Field(None, max_length=MAX_URL_LENGTH, description=(
        "an http(s) URL that receives the signed webhook when the job is done or fails; its host must resolve to a "
        "public address (or one CLIPPER_ALLOWED_HOSTS lists)"))


class Pause(Strict):
    now: StrictBool = Field(False, description="stop the running stage at once (it resumes from saved progress)")


class Retry(Strict):
    options: Options = Field(default_factory=Options, description="the options to change for the retry")


class SetPriority(Strict):
    priority: Priority = Field(description=PRIORITY_RANGE)


class SubmitBatch(Strict):
    """Exactly one of `source` and `urls`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["source"], "properties": {"source": {"type": "string"}}},
        {"required": ["urls"], "properties": {"urls": {"type": "array"}}}]})

    source: MediaUrl | None = Field(None, description="a playlist, channel or feed URL (http(s)); or give `urls`")
    urls: list[MediaUrl] | None = Field(None, min_length=1, max_length=10_000, description="one job per URL")
    priority: Priority = Field(PRIORITY_DEFAULT, description=PRIORITY_RANGE)
    options: Options = Field(default_factory=Options)
    concurrency: whole(1, 100) | None = Field(
        None, description="items at most at once; default: CLIPPER_BATCH_CONCURRENCY")


def check_speaker_names(names: dict[str, str]) -> None:
    """The form of a naming request (`NAMES_SCHEMA`): `InvalidRequest` (422) naming what is wrong."""
    check_names(names)
    if too_long := [label for label, name in names.items() if len(name) > MAX_NAME]:
        raise InvalidRequest(f"the name for {too_long[0]} is longer than {MAX_NAME} characters")
