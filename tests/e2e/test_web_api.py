"""The REST API over real HTTP (uvicorn on loopback, httpx), against the real dev server: every job control on
a MediaJob run by stand-in activities (tests/helpers/standins.py), the problem JSON of every refusal, the
bearer token, the body limit, and the OpenAPI document. The real end-to-end job is tests/e2e/test_web_job.py."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import SecretStr

from clipper.job.status import JobState, StageState
from clipper_app.web.app import create_app
from clipper_app.web.security import WebTokenRequired, check_bind
from tests.helpers import ROOT, run
from tests.helpers.standins import StandIns, harness, standin_settings, until
from tests.helpers.webserver import web_server

TOKEN = "web-t0ken-planted-Qx7"
PROBLEM_KEYS = {"type", "title", "status", "detail", "error"}


def problem(response: httpx.Response, status: int, error: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == PROBLEM_KEYS and body["status"] == status and body["error"] == error, body
    assert body["detail"] and body["title"]
    return body


async def state_is(http: httpx.AsyncClient, job: str, state: JobState, stage_done: str | None = None) -> dict:
    async def probe():
        body = (await http.get(f"/api/jobs/{job}")).json()
        if body.get("state") != state.value:
            return None
        if stage_done and next(s for s in body["stages"] if s["name"] == stage_done)["state"] != StageState.done:
            return None
        return body
    return await until(probe, what=f"{job} to be {state.value}", timeout=20)


@pytest.mark.slow
def test_every_job_control_over_http(settings):
    """submit (and the same media again), status, list, pause, pause now, priority, resume, retry and abandon
    refused while running (409), cancel, then controls on the ended job (409) and unknown ids (404)."""
    fakes = StandIns(held={"transcribe"})
    url = f"https://example.com/{uuid.uuid4().hex}.mp3"

    async def body():
        # harness: a worker with the stand-ins; its own job is left alone, the API submits another.
        async with harness(settings, fakes):
            with web_server(standin_settings(settings)) as base:
                async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                    r = await http.post("/api/jobs", json={"url": url, "priority": 2})
                    assert r.status_code == 202, r.text
                    job = r.json()["job_id"]
                    assert r.json() == {"job_id": job, "existing": False}
                    again = await http.post("/api/jobs", json={"url": url})
                    assert again.status_code == 202 and again.json() == {"job_id": job, "existing": True}

                    await until(lambda: len(fakes.of("transcribe")) == 2, what="both jobs to reach transcribe")
                    status = await state_is(http, job, JobState.running)
                    assert status["job_id"] == job and status["priority"] == 2
                    listed = await until(lambda: _listed(http, job), what="the job in GET /api/jobs")
                    assert listed["state"] == "running"

                    r = await http.put(f"/api/jobs/{job}/priority", json={"priority": 1})
                    assert r.status_code == 200 and r.json() == {"job_id": job, "priority": 1}
                    problem(await http.put(f"/api/jobs/{job}/priority", json={"priority": 9}), 422, "ValidationError")
                    problem(await http.put(f"/api/jobs/{job}/priority", json={"priority": "x"}), 422, "ValidationError")

                    for control in ("retry", "abandon"):  # running: not waiting after a failure
                        body = problem(await http.post(f"/api/jobs/{job}/{control}"), 409, "InvalidRequest")
                        assert "not waiting" in body["detail"]
                    problem(await http.post(f"/api/jobs/{job}/retry", json={"options": {"nope": 1}}), 422,
                            "ValidationError")

                    r = await http.post(f"/api/jobs/{job}/pause", json={"now": True})
                    assert r.status_code == 202 and r.json()["control"] == "pause_now"
                    await until(lambda: "transcribe" in fakes.cancelled, what="pause now to cancel the stage")
                    await state_is(http, job, JobState.paused)
                    assert (await http.post(f"/api/jobs/{job}/resume")).status_code == 202
                    await state_is(http, job, JobState.running)
                    assert (await http.post(f"/api/jobs/{job}/pause")).status_code == 202  # no body at all
                    await state_is(http, job, JobState.paused)

                    assert (await http.post(f"/api/jobs/{job}/cancel")).status_code == 202
                    await state_is(http, job, JobState.cancelled)

                    async def closed():  # cancelled, then the workflow closes after its cleanup helper
                        return (await http.post(f"/api/jobs/{job}/resume")).status_code == 409
                    await until(closed, what="the cancelled job to close", timeout=20)
                    for path in ("pause", "resume", "cancel"):
                        problem(await http.post(f"/api/jobs/{job}/{path}"), 409, "JobClosed")
                    problem(await http.post(f"/api/jobs/{job}/abandon"), 409, "JobClosed")
                    problem(await http.put(f"/api/jobs/{job}/priority", json={"priority": 2}), 409, "JobClosed")
                    problem(await http.get(f"/api/jobs/{job}/artifacts"), 409, "JobNotFinished")
                    problem(await http.get(f"/api/jobs/{job}/artifacts/report.md"), 409, "JobNotFinished")

                    unknown = "clip-0000000000000000"
                    for method, path in (("GET", ""), ("POST", "/pause"), ("POST", "/cancel"), ("POST", "/retry"),
                                         ("GET", "/artifacts"), ("GET", "/artifacts/report.md")):
                        problem(await http.request(method, f"/api/jobs/{unknown}{path}"), 404, "JobNotFound")
                    problem(await http.put(f"/api/jobs/{unknown}/priority", json={"priority": 2}), 404, "JobNotFound")
                    problem(await http.get(f"/api/batches/{unknown}"), 404, "JobNotFound")
                    problem(await http.get(f"/api/batches/{job}"), 404, "JobNotFound")  # a job is no batch
                    problem(await http.get("/api/nothing-here"), 404, "NotFound")
            fakes.held.clear()  # let the harness's own job finish

    run(body())


async def _listed(http: httpx.AsyncClient, job: str) -> dict | None:
    rows = (await http.get("/api/jobs", params={"limit": 20})).json()
    return next((row for row in rows if row["job_id"] == job and row.get("state")), None)


def test_bad_input_is_422_and_oversized_is_413(settings):
    """Bad JSON, unknown fields and options, bad URLs by the CLI's rules, a callback_url by the SSRF rules
    (loopback refused unless the operator allows it), bad list filters; a body over the limit is 413."""
    strict = settings.model_copy(update={"allow_private_addresses": False})

    async def body():
        with web_server(strict) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                r = await http.post("/api/jobs", content=b'{"url": ', headers={"content-type": "application/json"})
                problem(r, 422, "ValidationError")
                problem(await http.post("/api/jobs", json={}), 422, "ValidationError")
                problem(await http.get("/api/batches", params={"state": "bogus"}), 422, "ValidationError")
                listed = await http.get("/api/batches", params={"state": "done", "limit": 5})
                assert listed.status_code == 200 and isinstance(listed.json(), list)
                problem(await http.post("/api/jobs", json={"url": "https://e.com/a.mp3", "x": 1}), 422,
                        "ValidationError")
                problem(await http.post("/api/jobs", json={"url": "https://e.com/a.mp3", "options": {"nope": 1}}),
                        422, "ValidationError")
                problem(await http.post("/api/jobs", json={"url": "https://e.com/a.mp3", "priority": 0}), 422,
                        "ValidationError")
                problem(await http.post("/api/jobs", json={"url": "ftp://e.com/a.mp3"}), 422, "UnsupportedUrl")
                body = problem(await http.post("/api/jobs", json={"url": "https://me:pw-S3cret@e.com/a.mp3"}), 422,
                               "CredentialsInUrl")
                assert "pw-S3cret" not in body["detail"]
                problem(await http.post("/api/jobs", json={"url": "/etc/passwd"}), 422, "LocalPathNotAllowed")
                hook = {"url": "https://e.com/a.mp3", "callback_url": "http://127.0.0.1:9/hook"}
                problem(await http.post("/api/jobs", json=hook), 422, "ForbiddenAddress")
                body = problem(await http.post("/api/jobs", json={**hook, "callback_url": "http://u:Pw-9z@e.com/h"}),
                               422, "CredentialsInUrl")
                assert "Pw-9z" not in body["detail"]
                problem(await http.post("/api/jobs", json={**hook, "callback_url": "file:///etc/passwd"}), 422,
                        "UnsupportedUrl")
                problem(await http.get("/api/jobs", params={"state": "sleepy"}), 422, "ValidationError")
                problem(await http.get("/api/jobs", params={"limit": 0}), 422, "ValidationError")
                problem(await http.post("/api/batches", json={"source": "https://e.com/p", "urls": ["https://e.com/a"]}),
                        422, "InvalidRequest")
                big = {"url": "https://e.com/a.mp3", "options": {"language": "x" * 70_000}}
                problem(await http.post("/api/jobs", json=big), 413, "BodyTooLarge")

                async def chunks():  # no Content-Length: counted as it streams in
                    for _ in range(20):
                        yield b" " * 8192
                problem(await http.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"}),
                        413, "BodyTooLarge")
        allowed = strict.model_copy(update={"allowed_hosts": ["127.0.0.1"]})
        with web_server(allowed) as base:  # the operator allows the loopback receiver: accepted
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                r = await http.post("/api/jobs", json={"url": f"https://example.com/{uuid.uuid4().hex}.mp3",
                                                       "callback_url": "http://127.0.0.1:9/hook"})
                assert r.status_code == 202, r.text

    run(body())


@pytest.mark.slow
def test_token_guards_writes_and_optionally_reads(settings):
    """No token: only loopback binds (the CLI refuses 0.0.0.0 with a typed one-line error). With a token, writes
    need it (401 missing or wrong, never echoed); reads too with CLIPPER_WEB_PROTECT_READS."""
    with pytest.raises(WebTokenRequired):
        check_bind("0.0.0.0", settings)
    check_bind("localhost", settings)
    check_bind("0.0.0.0", settings.model_copy(update={"web_token": SecretStr(TOKEN)}))
    env = {"TEMPORAL_ADDRESS": settings.temporal_address, "PATH": "/usr/bin:/bin"}
    cli = subprocess.run([sys.executable, "starter.py", "web", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "WebTokenRequired" in cli.stderr and "CLIPPER_WEB_TOKEN" in cli.stderr, cli
    url = f"https://example.com/{uuid.uuid4().hex}.mp3"

    async def body():
        guarded = settings.model_copy(update={"web_token": SecretStr(TOKEN)})
        with web_server(guarded) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                r = problem(await http.post("/api/jobs", json={"url": url}), 401, "Unauthorized")
                wrong = await http.post("/api/jobs", json={"url": url}, headers={"Authorization": "Bearer nope"})
                problem(wrong, 401, "Unauthorized")
                assert wrong.headers["www-authenticate"] == "Bearer" and "nope" not in wrong.text
                problem(await http.post("/api/jobs", json={"url": url}, headers={"Authorization": TOKEN}), 401,
                        "Unauthorized")
                ok = await http.post("/api/jobs", json={"url": url}, headers={"Authorization": f"Bearer {TOKEN}"})
                assert ok.status_code == 202, ok.text
                job = ok.json()["job_id"]
                problem(await http.post(f"/api/jobs/{job}/cancel"), 401, "Unauthorized")
                assert (await http.get(f"/api/jobs/{job}")).status_code == 200  # reads stay open
                assert TOKEN not in r["detail"]
        with web_server(guarded.model_copy(update={"web_protect_reads": True})) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                problem(await http.get(f"/api/jobs/{job}"), 401, "Unauthorized")
                problem(await http.get("/api/jobs"), 401, "Unauthorized")
                auth = {"Authorization": f"Bearer {TOKEN}"}
                assert (await http.get(f"/api/jobs/{job}", headers=auth)).status_code == 200
                assert (await http.post(f"/api/jobs/{job}/cancel", headers=auth)).status_code == 202
                assert "set-cookie" not in (await http.get("/api/jobs", headers=auth)).headers

    run(body())


EXPECTED_ROUTES = {
    ("post", "/api/jobs"), ("get", "/api/jobs"), ("get", "/api/jobs/{job_id}"),
    *{("post", f"/api/jobs/{{job_id}}/{c}") for c in ("pause", "resume", "cancel", "retry", "abandon", "speakers")},
    ("put", "/api/jobs/{job_id}/priority"), ("get", "/api/jobs/{job_id}/artifacts"),
    ("get", "/api/jobs/{job_id}/artifacts/{name}"), ("get", "/api/jobs/{job_id}/clips.zip"), ("post", "/api/batches"),
    ("get", "/api/batches"), ("get", "/api/batches/{batch_id}"),
    *{("post", f"/api/batches/{{batch_id}}/{c}") for c in ("pause", "resume", "cancel")},
    ("put", "/api/batches/{batch_id}/priority"), ("get", "/api/batches/{batch_id}/artifacts"),
    ("get", "/api/batches/{batch_id}/artifacts/{name}"), ("get", "/api/search"),
}


@pytest.mark.slow
def test_openapi_document_is_valid_and_complete(settings):
    async def body():
        with web_server(settings) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                return (await http.get("/openapi.json")).json()

    doc = run(body())
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    routes = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert EXPECTED_ROUTES <= routes, EXPECTED_ROUTES - routes
    submit = doc["paths"]["/api/jobs"]["post"]
    assert "202" in submit["responses"] and "422" in submit["responses"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_loopback_is_not_a_trust_boundary(settings):
    """A page on another site cannot drive a loopback server: a foreign Host (DNS rebinding) is 421, a write from
    another origin 403; the server's own names, clients without Origin, and same-origin pages keep working."""
    fakes = StandIns(held={"transcribe"})

    async def body():
        async with harness(settings, fakes):
            with web_server(standin_settings(settings)) as base:
                port = base.rsplit(":", 1)[1]
                async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                    evil = {"Host": "attacker.example", "Origin": "http://attacker.example"}
                    problem(await http.get("/api/jobs", headers={"Host": "attacker.example"}), 421, "UnknownHost")
                    problem(await http.post("/api/jobs", json={"url": "https://example.com/a.mp3"}, headers=evil),
                            421, "UnknownHost")
                    cross = {"Origin": "http://attacker.example"}
                    problem(await http.post("/api/jobs", json={"url": "https://example.com/a.mp3"}, headers=cross),
                            403, "CrossOrigin")
                    problem(await http.post("/api/jobs", json={"url": "https://example.com/a.mp3"},
                                            headers={"Sec-Fetch-Site": "cross-site"}), 403, "CrossOrigin")
                    assert (await http.get("/api/jobs", headers={"Host": f"localhost:{port}"})).status_code == 200
                    same = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
                    ok = await http.post("/api/jobs", json={"url": f"https://example.com/{uuid.uuid4().hex}.mp3"},
                                         headers=same)
                    assert ok.status_code == 202, ok.text
                    assert (await http.get("/")).status_code == 200  # the pages from the printed URL
                    # A problem's type is a page of this app that says what the error means.
                    refused = problem(await http.post("/api/jobs", json={"url": "ftp://example.com/a.mp3"}), 422,
                                      "UnsupportedUrl")
                    page = await http.get(refused["type"])
                    assert refused["type"] == "/problems/UnsupportedUrl" and page.status_code == 200
                    assert "scheme or shape" in page.text and "text/html" in page.headers["content-type"]
                    assert (await http.get("/problems/NoSuchThing")).status_code == 404
                    icon = await http.get("/favicon.ico")  # every browser asks for it: no 404 in the log
                    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")

    run(body())


# --- the document and the API agree (tests/e2e/test_openapi.py runs Schemathesis over every route; each case
# below is one place where it once found them disagreeing) ---


def operations(doc: dict):
    return [(method, path, op) for path, item in doc["paths"].items() for method, op in item.items()]


def param(doc: dict, path: str, name: str) -> dict:
    schema = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name)["schema"]
    refs = [s["$ref"].rsplit("/", 1)[1] for s in schema.get("anyOf", []) if "$ref" in s]
    return doc["components"]["schemas"][refs[0]] if refs else schema["anyOf"][0]


def test_the_document_says_what_the_api_takes(settings):
    doc = create_app(settings).openapi()
    schemas = doc["components"]["schemas"]
    url = schemas["SubmitJob"]["properties"]["url"]  # {"url": ""} was valid in the document
    assert url["minLength"] == 1 and re.match(url["pattern"], " https://e.com/a.mp3")
    assert not re.match(url["pattern"], "") and not re.match(url["pattern"], "ftp://e.com/a.mp3")
    batch = schemas["SubmitBatch"]  # {} was valid
    assert [alt["required"] for alt in batch["oneOf"]] == [["source"], ["urls"]]
    assert batch["properties"]["urls"]["anyOf"][0]["minItems"] == 1
    for path in ("/api/jobs", "/api/batches"):  # ?state= was valid
        assert param(doc, path, "state")["enum"] == [s.value for s in JobState]
    assert not re.match(param(doc, "/api/jobs", "source")["pattern"], "")  # ?source= was valid
    speakers = doc["paths"]["/api/jobs/{job_id}/speakers"]["post"]
    names = speakers["requestBody"]["content"]["application/json"]["schema"]
    assert names["additionalProperties"] is False and list(names["patternProperties"]) == ["^S[1-9][0-9]{0,2}$"]
    assert schemas["Options"]["additionalProperties"] is False  # retry's options: only JobOptions' fields
    assert schemas["Retry"]["properties"]["options"]["$ref"] == "#/components/schemas/Options"
    # Auth as the server enforces it: a loopback server without a token asks for none (and answers no 401).
    assert not [(m, p) for m, p, op in operations(doc) if "security" in op or "401" in op["responses"]]
    guarded = create_app(settings.model_copy(update={"web_token": SecretStr(TOKEN)})).openapi()
    needs = {(m, p) for m, p, op in operations(guarded) if op.get("security") == [{"HTTPBearer": []}]}
    assert needs == {(m, p) for m, p, _ in operations(guarded) if m not in ("get", "head")}
    assert all("401" in op["responses"] for m, p, op in operations(guarded) if (m, p) in needs)
    reads_too = create_app(settings.model_copy(update={"web_token": SecretStr(TOKEN), "web_protect_reads": True}))
    assert all(op.get("security") == [{"HTTPBearer": []}] for _, _, op in operations(reads_too.openapi()))
    for _, _, op in operations(doc):  # every refusal is problem JSON
        assert all(list(r["content"]) == ["application/problem+json"] for s, r in op["responses"].items()
                   if int(s) >= 400 and s != "416")


def test_the_api_takes_what_the_document_allows_and_refuses_the_rest(settings):
    unknown = "clip-0000000000000000"
    refused = [  # (method, path, body, query, error)
        ("POST", "/api/jobs", {"url": ""}, None, "ValidationError"),
        ("POST", "/api/batches", {}, None, "InvalidRequest"),
        ("POST", "/api/batches", {"urls": []}, None, "ValidationError"),
        ("GET", "/api/batches", None, {"state": ""}, "ValidationError"),
        ("GET", "/api/jobs", None, {"state": ""}, "ValidationError"),
        ("GET", "/api/jobs", None, {"source": ""}, "ValidationError"),
        ("POST", f"/api/jobs/{unknown}/speakers", {"S1": "Diane", "x": ""}, None, "InvalidRequest"),
        ("POST", f"/api/jobs/{unknown}/retry", {"options": {"nope": 1}}, None, "ValidationError"),
        ("POST", f"/api/jobs/{unknown}/pause", {"now": 0}, None, "ValidationError"),  # a boolean, not 0
        ("PUT", f"/api/jobs/{unknown}/priority", {"priority": "2"}, None, "ValidationError"),  # a number
        ("POST", "/api/jobs", {"url": "https://e.com/a.mp3", "options": {"language": "de"}}, None,
         "LanguageNotSupported"),  # English-only tiny.en: the document's rule for options says so too
    ]

    async def body():
        with web_server(settings) as base:
            async with httpx.AsyncClient(base_url=base, timeout=15) as http:
                for method, path, json, query, error in refused:
                    problem(await http.request(method, path, json=json, params=query), 422, error)
                for path in ("/api/jobs", "/api/batches"):  # no Authorization: the document asks for none
                    assert (await http.get(path, params={"state": "done", "source": "example.com"}
                                           if path == "/api/jobs" else {"state": "done"})).status_code == 200
                fresh = f"https://example.com/{uuid.uuid4().hex}.mp3"
                ok = await http.post("/api/jobs", json={"url": fresh, "callback_url": "", "priority": 2.0,
                                                        "options": {"language": "de", "asr_model": "base"}})
                assert ok.status_code == 202, ok.text
                assert (await http.put(f"/api/jobs/{unknown}/priority", json={"priority": 2.0})).status_code == 404
                batch = await http.post("/api/batches", json={"urls": [fresh]})
                assert batch.status_code == 202, batch.text
                batch_id = batch.json()["batch_id"]
                for route in ("", "/artifacts", "/clips.zip"):  # a batch is no job: 404, never a 500
                    problem(await http.get(f"/api/jobs/{batch_id}{route}"), 404, "JobNotFound")
                allowed = problem(await http.request("OPTIONS", "/api/jobs"), 405, "MethodNotAllowed")
                assert allowed and (await http.request("PATCH", "/api/jobs")).headers["allow"] == "GET, POST"
                garbled = await http.post(f"/api/jobs/{unknown}/pause", content=b"\xff\xfe{",
                                          headers={"content-type": "application/json"})
                assert garbled.status_code == 400  # documented: not text at all

    run(body())
