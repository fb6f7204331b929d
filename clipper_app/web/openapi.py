"""The OpenAPI document (`/openapi.json`) of this server as it runs: what it says is what the API does.

FastAPI writes the document from the routes and models. What depends on the server's settings, or that a type
cannot say, is added here (tests/e2e/test_openapi.py runs Schemathesis over every route to hold the two together):
- Who must authenticate: the bearer scheme is required on the writes when CLIPPER_WEB_TOKEN is set, on the reads
  too with CLIPPER_WEB_PROTECT_READS; a loopback server without a token requires nothing (security.py), so its
  document declares no requirement and no 401.
- The problems (RFC 9457, `application/problem+json`, the `Problem` schema) a route can answer besides its own:
  421 for a host the server does not answer for, 403 for a write from another site's page, 413 for a body over
  the limit, 500 for a corrupt artifact, 503 when Temporal or the store cannot be reached.
- The media URLs' shape: http(s) with a host and no user name or password (`URL_PATTERN`), unless
  CLIPPER_ALLOW_LOCAL_FILES lets local paths in too. The typed URL checks refuse the rest, with their own reason.
- The speech model's language rule: when the server's model is English-only (tiny.en) on the local engine, a job
  in another language must name a multilingual model or another engine; found by asking the submit check itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from clipper.asr import ENGINES
from clipper.asr.models import KNOWN_MODELS, check_job_model
from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.job.request import JobOptions
from clipper.media.urls import MAX_URL_LENGTH
from clipper_app.web.api import ROUTERS
from clipper_app.web.inputs import SPACES
from clipper_app.web.problems import problem
from clipper_app.web.security import SAFE_METHODS, require_reader, require_writer, token_of

# An http(s) URL as `check_url_syntax` takes it (surrounding spaces are trimmed): a host name without user name or
# password, nor any of the characters whose NFKC form holds a URL delimiter (Python refuses those in a host), or
# an IPv6 address (with a zone) or IPvFuture in brackets; a port 0-65535; then anything without spaces or control
# characters. Spelled out for JSON Schema validators and Python alike: no \s, \d or \w.
_NFKC = r"\u2047-\u2049\u2100\u2101\u2105\u2106\u2a74\ufe13\ufe16\ufe55\ufe56\ufe5f\ufe6b\uff03\uff0f\uff1a\uff1f\uff20"
_NOT_IN_HOST = SPACES + r"/?#@\[\]\x00-\x1f\x7f" + _NFKC
_H16, _OCTET = "[0-9A-Fa-f]{1,4}", "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = f"({_H16}:{_H16}|{_OCTET}(\\.{_OCTET}){{3}})"
_IPV6 = "|".join([  # RFC 3986's IPv6address, the forms Python's ipaddress reads
    f"({_H16}:){{6}}{_LS32}", f"::({_H16}:){{5}}{_LS32}", f"({_H16})?::({_H16}:){{4}}{_LS32}",
    *(f"(({_H16}:){{0,{n}}}{_H16})?::({_H16}:){{{3 - n}}}{_LS32}" for n in (1, 2)),
    f"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}", f"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(({_H16}:){{0,5}}{_H16})?::{_H16}", f"(({_H16}:){{0,6}}{_H16})?::"])
_HOST = (f"([^:{_NOT_IN_HOST}]+|\\[(({_IPV6})(%[^%{_NOT_IN_HOST}]+)?|v[0-9A-Fa-f]+\\.[^{_NOT_IN_HOST}]+)\\])")
URL_PATTERN = (
    f"^[{SPACES}]*[Hh][Tt][Tt][Pp][Ss]?://{_HOST}"
    r"(:0*(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})?)?"
    f"([/?#][^{SPACES}\\x00-\\x1f\\x7f]*)?[{SPACES}]*$"
)
SCHEME = "HTTPBearer"
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
# Problems any route may answer (besides the ones each router declares), with what they mean.
COMMON = {421: "the Host names a server this one is not (DNS rebinding gets nothing)",
          500: "an artifact no longer matches its checksum (CorruptArtifact)",
          503: "Temporal or the artifact store cannot be reached now; try again"}
WRITES_ONLY = {403: "a write sent by a page of another site (Origin, Sec-Fetch-Site)",
               413: "the body is larger than CLIPPER_WEB_MAX_BODY_BYTES"}
NOT_JSON = {400: "the body is not text (UTF-8) at all"}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve `document` at /openapi.json (built once, on the first request), and answer a method a path does not
    take with the methods it does (`Allow`: every route of the path, not only the first one matched)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(document(app, settings))
        return built

    async def not_allowed(request: Request, _: Exception) -> JSONResponse:
        allow = ", ".join(sorted(allowed_methods(request.url.path)))
        return problem(405, "MethodNotAllowed", f"{request.method} is not allowed here; {allow or 'nothing'} is",
                       {"Allow": allow})

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(405, not_allowed)


def allowed_methods(path: str) -> set[str]:
    """The methods the API's routes take at `path`."""
    return {m for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
            for m in r.methods}


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                operation = doc["paths"][route.path_format][method.lower()]
                _responses(operation, method, route.path_format, _needs_token(route, settings))
    _security_scheme(doc, settings)
    schemas = doc["components"]["schemas"]
    if not settings.allow_local_files:
        for name, fields in (("SubmitJob", ("url", "callback_url")), ("SubmitBatch", ("source", "urls"))):
            for field in fields:
                _url_pattern(schemas[name]["properties"][field])
    else:
        _url_pattern(schemas["SubmitJob"]["properties"]["callback_url"])
    _url_pattern(schemas["Follow"]["properties"]["source"])  # a followed source is http(s) whatever the settings
    callback = schemas["SubmitJob"]["properties"]["callback_url"]  # empty (or spaces only) means no webhook
    callback["anyOf"].insert(-1, {"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": f"^[{SPACES}]*$"})
    if rule := language_rule(settings):
        for name in ("SubmitJob", "SubmitBatch", "Follow"):
            schemas[name]["properties"]["options"] = {"allOf": [schemas[name]["properties"]["options"]],
                                                      "anyOf": rule}
    return doc


def _needs_token(route: APIRoute, settings: Settings) -> bool:
    if not token_of(settings):
        return False
    checks = {d.dependency for d in route.dependencies}
    return require_writer in checks or (require_reader in checks and settings.web_protect_reads)


def _responses(operation: dict[str, Any], method: str, path: str, token: bool) -> None:
    responses = operation["responses"]
    if token:
        operation["security"] = [{SCHEME: []}]
    else:
        operation.pop("security", None)
        responses.pop("401", None)
    if "{" not in path:
        responses.pop("404", None)  # only a route with an id has something to find
    if method in SAFE_METHODS:
        responses.pop("413", None)  # no body to be too large
    extra = {**COMMON, **({} if method in SAFE_METHODS else WRITES_ONLY), **(NOT_JSON if "requestBody" in operation
                                                                             else {})}
    for status, text in extra.items():
        responses.setdefault(str(status), {"description": text})
    for status, response in responses.items():
        if int(status) >= 400 and status != "416":
            response["content"] = PROBLEM


def _security_scheme(doc: dict[str, Any], settings: Settings) -> None:
    if not token_of(settings):
        text = ("not required by this server: it runs without CLIPPER_WEB_TOKEN, which only a loopback address "
                "allows")
    else:
        text = ("CLIPPER_WEB_TOKEN, as `Authorization: Bearer <token>`: required by submit and every control"
                + (", and by reads (CLIPPER_WEB_PROTECT_READS)" if settings.web_protect_reads else "; reads are open"))
    doc.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer", "description": text}


def _url_pattern(prop: dict[str, Any]) -> None:
    """Add URL_PATTERN to a string field, or to the strings of a list field (nullable or not)."""
    for variant in prop.get("anyOf", [prop]):
        if variant.get("type") == "string":
            variant["pattern"] = URL_PATTERN
        elif variant.get("type") == "array":
            variant["items"]["pattern"] = URL_PATTERN


def language_rule(settings: Settings) -> list[dict[str, Any]] | None:
    """When the submit check refuses a language other than English for some engine and model (tiny.en is English
    only), the cases it takes: English or no language, or an engine and model that transcribe others. None when
    every case takes any language. Asked of `check_job_model` itself, so the rule cannot drift from it."""
    ok, refused = [], False
    for engine in (None, *ENGINES):
        for model in (None, *KNOWN_MODELS):
            try:
                check_job_model(JobOptions(asr_engine=engine, asr_model=model, language="de"), settings)
                ok.append((engine, model))
            except ClipperError:
                refused = True
    if not refused:
        return None
    english = {"properties": {"language": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^[Ee][Nn]$"}]}}}
    return [english, *({"required": [k for k, v in (("asr_engine", e), ("asr_model", m)) if v is not None],
                        "properties": {k: {"type": "null"} if v is None else {"const": v}
                                       for k, v in (("asr_engine", e), ("asr_model", m))}} for e, m in ok)]
