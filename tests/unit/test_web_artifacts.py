"""A small byte range of an artifact is read in one go (clipper_app/web/artifacts.py) rather than streamed by
Starlette's `FileResponse`: for any Range header, the answer is the one `FileResponse` gives (status, bytes,
Content-Range), so players see no difference."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipper.store.refs import ArtifactRef
from clipper_app.web import artifacts
from tests.helpers import run

SIZE = 5000
DATA = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    path = tmp_path_factory.mktemp("artifact") / "audio.wav"
    path.write_bytes(DATA)
    ref = ArtifactRef(name="audio.wav", sha256=hashlib.sha256(DATA).hexdigest(), size=SIZE, stage="download",
                      created_at=datetime.now(timezone.utc))
    app = FastAPI()

    @app.get("/fast")
    async def fast(request: Request):
        return await artifacts.file_response(request, path, ref)

    @app.get("/streamed")
    async def streamed():
        return FileResponse(path, media_type="audio/wav", headers={"ETag": f'"{ref.sha256}"'})

    app.state.etag = f'"{ref.sha256}"'
    return app


def get_both(app: FastAPI, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
    async def body():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            return await http.get("/fast", headers=headers), await http.get("/streamed", headers=headers)

    return run(body())


def same(fast: httpx.Response, streamed: httpx.Response) -> None:
    assert fast.status_code == streamed.status_code
    assert fast.headers.get("content-range") == streamed.headers.get("content-range")
    if streamed.status_code in (200, 206) and "multipart" not in streamed.headers.get("content-type", ""):
        assert fast.content == streamed.content
        assert int(fast.headers["content-length"]) == len(fast.content)


numbers = st.one_of(st.just(""), st.integers(0, SIZE + 10).map(str))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=numbers, last=numbers)
def test_any_single_range_is_answered_as_file_response_does(app, first, last):
    fast, streamed = get_both(app, {"Range": f"bytes={first}-{last}"})
    same(fast, streamed)


@pytest.mark.parametrize("header", ["bytes=100-1099", "bytes=-10", f"bytes={SIZE}-", "bytes=0-0", "bytes=-0",
                                    "bytes=10-5", "bytes=0-1,5-9", "items=0-5", "bytes=abc", "bytes=-"])
def test_edge_ranges(app, header):
    fast, streamed = get_both(app, {"Range": header})
    same(fast, streamed)


def test_a_small_range_is_read_in_one_go_with_the_files_headers(app):
    fast, _ = get_both(app, {"Range": "bytes=100-1099"})
    assert fast.status_code == 206 and fast.content == DATA[100:1100]
    assert fast.headers["content-range"] == f"bytes 100-1099/{SIZE}" and fast.headers["accept-ranges"] == "bytes"
    assert fast.headers["etag"] == app.state.etag and fast.headers["content-type"] == "audio/wav"
    assert fast.headers["content-disposition"] == 'inline; filename="audio.wav"'
    assert fast.headers["x-content-type-options"] == "nosniff"


def test_if_range_with_another_etag_gets_the_whole_file(app):
    fast, streamed = get_both(app, {"Range": "bytes=0-9", "If-Range": '"older"'})
    assert fast.status_code == 200 and fast.content == DATA
    same(fast, streamed)
    fast, _ = get_both(app, {"Range": "bytes=0-9", "If-Range": app.state.etag})
    assert fast.status_code == 206 and fast.content == DATA[:10]


def test_a_range_over_the_limit_is_streamed(app, monkeypatch):
    assert artifacts.small_range(_request({"range": "bytes=0-99"}), '"e"', SIZE) == (0, 99)
    monkeypatch.setattr(artifacts, "SMALL_RANGE", 50)
    assert artifacts.small_range(_request({"range": "bytes=0-99"}), '"e"', SIZE) is None


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(k.encode(), v.encode())
                                                                              for k, v in headers.items()]})
