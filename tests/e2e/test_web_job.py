"""One real job driven over HTTP alone, as another service would with curl: submit (with a callback_url) →
poll the status → the artifacts (Range on the audio: 206; ETag; 416) → the signed webhook at a local receiver.
Real worker (yt-dlp over HTTP, ffmpeg, Whisper tiny.en), real dev server, real uvicorn. Then traversal attempts
(`..`, encoded slashes, a symlink in the job's folder, a listed artifact swapped for a symlink) all answer 404."""

from __future__ import annotations

import pytest

import json
import shutil
import threading

import httpx
from pydantic import SecretStr

from clipper.ops.notify import SIGNATURE_HEADER, verify_signature
from clipper.store.local import ArtifactStore
from clipper_app.client import connect
from clipper_app.workers.pools import build_worker
from tests.helpers import run
from tests.helpers.jobs import until
from tests.helpers.webhooks import Receiver
from tests.helpers.webserver import raw_get, web_server

SECRET = "whsec-web-planted-Lm4"


@pytest.mark.slow
def test_a_job_end_to_end_over_http(settings, media_server, tmp_path):
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings = settings.model_copy(update={"webhook_secret": SecretStr(SECRET), "notify_on": "failed"})
    store = ArtifactStore(settings.storage_dir)

    async def body():
        temporal = await connect(settings)
        async with build_worker(temporal, settings):
            with web_server(settings) as base:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    r = await http.post("/api/jobs", json={"url": media_server.url("/episode.mp3"), "priority": 2,
                                                           "callback_url": receiver.url("/hooks/T0k")})
                    assert r.status_code == 202, r.text
                    job = r.json()["job_id"]

                    async def finished():
                        status = (await http.get(f"/api/jobs/{job}")).json()
                        return status if status["state"] in ("done", "failed", "cancelled") else None
                    status = await until(finished, timeout=300, interval=0.5, what="the job to finish")
                    assert status["state"] == "done", status
                    await until(lambda: receiver.requests, timeout=30, what="the callback webhook")
                    r = await http.get(f"/api/jobs/{job}/artifacts")
                    assert r.status_code == 200, r.text
                    listing = r.json()
                    names = {a["name"]: a for a in listing}
                    assert {"audio.wav", "report.md", "transcript.vtt", "clips.json"} <= set(names)

                    audio = names["audio.wav"]
                    full = store.path(job, "audio.wav").read_bytes()
                    r = await http.get(f"/api/jobs/{job}/artifacts/audio.wav", headers={"Range": "bytes=100-1099"})
                    assert r.status_code == 206 and r.content == full[100:1100]
                    assert r.headers["content-range"] == f"bytes 100-1099/{audio['size']}"
                    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"] == "audio/wav"
                    assert r.headers["etag"] == f'"{audio["sha256"]}"'
                    tail = await http.get(f"/api/jobs/{job}/artifacts/audio.wav", headers={"Range": "bytes=-10"})
                    assert tail.status_code == 206 and tail.content == full[-10:]
                    r = await http.get(f"/api/jobs/{job}/artifacts/audio.wav",
                                       headers={"Range": f"bytes={audio['size']}-"})
                    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{audio['size']}"
                    r = await http.get(f"/api/jobs/{job}/artifacts/audio.wav", headers={"If-None-Match": r'"x", ' +
                                                                                           f'"{audio["sha256"]}"'})
                    assert r.status_code == 304
                    head = await http.head(f"/api/jobs/{job}/artifacts/audio.wav")
                    assert head.status_code == 200 and head.content == b""
                    assert int(head.headers["content-length"]) == audio["size"]
                    assert head.headers["etag"] == f'"{audio["sha256"]}"'
                    report = await http.get(f"/api/jobs/{job}/artifacts/report.md")
                    assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
                    assert report.content == store.path(job, "report.md").read_bytes()
                    assert report.headers["x-content-type-options"] == "nosniff"
                    clip = json.loads((await http.get(f"/api/jobs/{job}/artifacts/clips.json")).content)["clips"][0]
                    r = await http.get(f"/api/jobs/{job}/artifacts/{clip['name']}")
                    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg" and len(r.content) > 1000

                    named = await http.post(f"/api/jobs/{job}/speakers", json={"S1": "Diane"})
                    assert named.status_code == 200 and named.json().get("S1") == "Diane", named.text
                    bad = await http.post(f"/api/jobs/{job}/speakers", json={"S1": "x" * 500})
                    assert bad.status_code == 422 and bad.json()["error"] == "InvalidRequest", bad.text
                    return job

    job = run(body())
    path, headers, raw = receiver.requests[0]
    assert path == "/hooks/T0k" and verify_signature(raw, headers.get(SIGNATURE_HEADER), SECRET)
    payload = json.loads(raw)
    assert payload["event"] == "done" and payload["job_id"] == job and "callback_url" not in payload
    assert len(receiver.requests) == 1  # done only: failed was not the outcome, and the operator has no webhook
    receiver.shutdown()

    # Traversal, with the server up again on the same store (raw paths: nothing normalises them on the way).
    outside = tmp_path / "secret.txt"
    outside.write_text("not for you")
    job_dir = store.job_dir(job)
    (job_dir / "evil.txt").symlink_to(outside)
    with web_server(settings) as base:
        for attempt in ("../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
                        "clips/..%2f..%2fmanifest.json", "/etc/passwd", "%2Fetc%2Fpasswd", "evil.txt",
                        "manifest.json", ".receipts/notify-done-callback.json", "clips%5c..%5c..%5cx"):
            status, _, data = raw_get(base, f"/api/jobs/{job}/artifacts/{attempt}")
            assert status == 404 and b"not for you" not in data and b"root:" not in data, (attempt, status, data)
        # A listed artifact swapped for a symlink to a file outside (same bytes, so the sha256 still matches).
        clip_path = store.path(job, "transcript.vtt")
        copy = tmp_path / "transcript.vtt"
        shutil.copy(clip_path, copy)
        clip_path.unlink()
        clip_path.symlink_to(copy)
        status, _, data = raw_get(base, f"/api/jobs/{job}/artifacts/transcript.vtt")
        assert status == 404 and json.loads(data)["error"] == "ArtifactNotFound"
        status, _, _ = raw_get(base, f"/api/jobs/{job}/artifacts/report.md")
        assert status == 200



@pytest.mark.slow
def test_a_batch_over_http(settings, media_server):
    """The batch routes with a real worker: submit a list of URLs, pause, re-prioritise, resume, list, follow it
    to the end, read its item list as an artifact; a control on the ended batch is 409."""

    async def body():
        temporal = await connect(settings)
        async with build_worker(temporal, settings):
            with web_server(settings) as base:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    url = media_server.url("/episode.mp3") + "?batch=1"
                    r = await http.post("/api/batches", json={"urls": [url], "priority": 3, "concurrency": 1})
                    assert r.status_code == 202, r.text
                    batch = r.json()["batch_id"]
                    assert (await http.post(f"/api/batches/{batch}/pause")).status_code == 202

                    async def state(wanted):
                        s = (await http.get(f"/api/batches/{batch}")).json()
                        return s if s["state"] in wanted else None
                    await until(lambda: state({"paused"}), timeout=60, what="the batch to pause")
                    r = await http.put(f"/api/batches/{batch}/priority", json={"priority": 1})
                    assert r.status_code == 200 and r.json()["priority"] == 1, r.text
                    assert (await http.post(f"/api/batches/{batch}/resume")).status_code == 202
                    listed = [b["job_id"] for b in (await http.get("/api/batches")).json()]
                    done = await until(lambda: state({"done", "failed", "cancelled"}), timeout=300, interval=0.5,
                                       what="the batch to finish")
                    names = {a["name"] for a in (await http.get(f"/api/batches/{batch}/artifacts")).json()}
                    items = await http.get(f"/api/batches/{batch}/artifacts/items.json")
                    await temporal.get_workflow_handle(batch).result()  # its status says done just before it returns
                    ended = await http.post(f"/api/batches/{batch}/cancel")
                    return batch, listed, done, names, items, ended

    batch, listed, done, names, items, ended = run(body())
    assert done["state"] == "done" and done["counts"]["done"] == 1 and done["priority"] == 1, done
    assert "items.json" in names and items.status_code == 200 and "episode.mp3" in items.text
    assert ended.status_code == 409 and ended.json()["error"] == "JobClosed", ended.text
    assert isinstance(listed, list)  # visibility is eventually consistent: the new batch may not be listed yet
