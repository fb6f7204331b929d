"""Every fenced example of README.md and docs/api.md, run as a reader would run it, against a real stack: a
Temporal dev server (a namespace of its own, so the docs' fixed ids and the queue `clipper` are the docs'
own), a worker process (`python worker.py`), `clipper web` on a free port, and the bundled sample served over
local HTTP. A block that cannot run is listed in NOT_RUN with the reason; a new block with no rule fails.

How a block runs, by its language:
- `sh` / `console`: its commands (a console block's `$ ` lines; a sh block's lines, `\\`-continued lines joined)
  are typed one at a time into one bash session, with `clipper`, `python` and `temporal` from the checkout's
  venv on PATH. Each must exit 0, or the code its comment states (`# exit code 1`), or the one EXPECTED lists
  with the reason. Commands that start a worker are run apart: each must log `worker.started`, then SIGTERM
  drains it and it exits 0. The output lines a console block shows must appear, in order (`…` skips lines).
- `python`: the blocks of a page run in order in one namespace with top-level `await` (as typed into
  `python -m asyncio`), with `URL` (the sample), `API` (the web app) and `TOKEN` (None: a loopback server
  without one) given; CHECKS then looks at what a block printed or defined.
- the `text` block of search-attribute filters: each line is a `temporal workflow list --query`; the `json`
  block of a webhook body: it has exactly the keys of a real body.

The placeholders, replaced mechanically (tests/helpers/docblocks.py `Substitutions`):
- `https://example.com/<name>` → the local media server: every `.mp3` name serves the bundled sample (the
  phone call of README's speakers example is `call.mp3`), `feed.xml` is an RSS feed of `a.mp3` and `b.mp3`;
- a job id the docs derive from one of those URLs (`job_id_for`) → the id of its local stand-in: an id no docs
  URL gives fails the test (the docs must show the real id of the URL they submit), except the unknown id
  `clip-0000000000000000`; `clip-…`, and a batch or job id that is no URL's, are the last id of that kind a
  command of the block printed (or that its SETUP made);
- `127.0.0.1:7233` → the dev server, `http://127.0.0.1:8080` → the web app, `~/.local/share/clipper` → the
  store folder, `https://hooks.example.org/clipper` → a local webhook receiver.
The workers run without audiograms (CLIPPER_AUDIOGRAMS_ENABLED=false): the examples never read them, and they
are the slowest stage.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import httpx
import pytest

from clipper.config import get_settings
from clipper.media.urls import job_id_for
from clipper.ops import signing
from clipper.ops.notify import Notification, webhook_body
from clipper_app.client import ensure_search_attributes
from tests.helpers import ROOT, SAMPLE
from tests.helpers.docblocks import (
    Block, Shell, Substitutions, blocks, commands, example_urls, expected_exit, shown_lines_in_order,
)
from tests.helpers.httpserver import serve, serving
from tests.helpers.webhooks import Receiver
from tests.helpers.webserver import free_port

DOCS = ("README.md", "docs/api.md")
CALL = ROOT / "tests" / "data" / "real" / "call.mp3"

NOT_RUN = {
    ("README.md", "make demo   # venv + install from PyPI, local Temporal dev server (unless one is reachable), a "
                  "worker,"): "make demo starts a dev server, a worker and a job of its own, and make test is the "
                              "suite this test belongs to; tests/e2e/test_install.py covers the install",
    ("README.md", "workflows/            the Temporal workflows: MediaJob (media_job.py, the pipeline on one "
                  "screen), the stage runner"): "the layout sketch, not commands: tests/unit/test_structure.py "
                                                "checks it against the tree",
    ("docs/api.md", "import { createHash } from 'node:crypto';"): "TypeScript needs @temporalio/client from npm, "
                                                                  "which this project does not depend on; the "
                                                                  "temporal CLI block makes the same calls",
}
# (page, the start of a command): (exit code, why) for commands that cannot succeed where the docs place them.
EXPECTED = {
    ("README.md", "clipper retry clip-…"): (2, "the session's job is done by then (watch followed it to the end): "
                                              "retry applies to a job waiting after a failure, JobClosed"),
    ("docs/api.md", "clipper submit-batch https://www.youtube.com/playlist"): (None, "a YouTube playlist needs the "
                                                                                   "internet; not run"),
    ("docs/api.md", "clipper pause batch-"): (2, "the episodes.txt batch has ended by then (--wait): JobClosed"),
}
# Commands typed as the docs show them, no placeholder replaced: they compute the docs' id of the docs' URL.
VERBATIM = {("docs/api.md", "printf %s 'https://example.com/a.mp3' | sha256sum")}
SLOW = ("watch", "--wait", "workflow result", "submit-batch")


def docs_blocks() -> list[Block]:
    return blocks(ROOT, DOCS)


def feed(media) -> bytes:  # noqa: ANN001
    items = "".join(f'<item><title>{name}</title><guid>{name}</guid><enclosure url="{escape(media.url("/" + name))}" '
                    f'type="audio/mpeg" length="{SAMPLE.stat().st_size}"/></item>' for name in ("a.mp3", "b.mp3"))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Docs cast</title>'
            f'<link>http://example.com/</link>{items}</channel></rss>').encode()


class Stack:
    def __init__(self, server, tmp: Path) -> None:  # noqa: ANN001
        self.exits = contextlib.ExitStack()
        self.namespace = f"docs-{uuid.uuid4().hex[:8]}"
        self.store, self.cwd = tmp / "store", tmp / "work"
        self.cwd.mkdir()
        media_files = {"/" + u.removeprefix("https://example.com/"): (SAMPLE.read_bytes(), "audio/mpeg")
                       for u in example_urls(ROOT, DOCS) if u.endswith(".mp3")}
        media_files["/call.mp3"] = (CALL.read_bytes(), "audio/mpeg")
        self.media = self.exits.enter_context(serve(media_files))
        self.media.files["/feed.xml"] = (feed(self.media), "application/rss+xml")
        self.receiver = self.exits.enter_context(serving(Receiver()))
        path = f"{ROOT / '.venv' / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"
        self.env = {**os.environ, "PATH": path,
                    "TEMPORAL_ADDRESS": server.address, "TEMPORAL_NAMESPACE": self.namespace,
                    "CLIPPER_TASK_QUEUE": "clipper", "CLIPPER_STORAGE_DIR": str(self.store),
                    "CLIPPER_ALLOW_PRIVATE_ADDRESSES": "true", "CLIPPER_AUDIOGRAMS_ENABLED": "false",
                    "CLIPPER_LOG_FORMAT": "json", "HF_HUB_OFFLINE": "1", "CLIPPER_GRACEFUL_SHUTDOWN_S": "5"}
        for name in ("CLIPPER_STORAGE_URL", "CLIPPER_WEBHOOK_SECRET", "CLIPPER_WEB_TOKEN", "CLIPPER_WEBHOOK_URL"):
            self.env.pop(name, None)
        subprocess.run(["temporal", "operator", "namespace", "create", "--namespace", self.namespace],
                       env=self.env, check=True, capture_output=True, timeout=60)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._attributes(server.address))
        self.worker = self.start([sys.executable, str(ROOT / "worker.py")], tmp / "worker.log")
        port = free_port()
        self.web = self.start([sys.executable, str(ROOT / "starter.py"), "web", "--port", str(port)], tmp / "web.log")
        self.api = f"http://127.0.0.1:{port}"
        self.wait_for_web()
        self.subs = Substitutions(self.media.url("").rstrip("/"), example_urls(ROOT, DOCS), literal={
            "127.0.0.1:7233": server.address, "http://127.0.0.1:8080": self.api,
            "~/.local/share/clipper": str(self.store), "https://hooks.example.org/clipper": self.receiver.url("/c")})
        self.shell = Shell(self.cwd, self.env)
        self.python: dict = {"URL": self.subs.local("https://example.com/episode.mp3"), "API": self.api,
                             "TOKEN": None}

    async def _attributes(self, address: str) -> None:
        from temporalio.client import Client

        deadline = time.monotonic() + 30
        while True:  # a namespace just made takes a moment to be served
            try:
                await ensure_search_attributes(await Client.connect(address, namespace=self.namespace),
                                               self.namespace)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        self.exits.callback(_stop, proc)
        return proc

    def wait_for_web(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.api + "/api/jobs", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.web.poll() is None and time.monotonic() < deadline, "clipper web did not start"
            time.sleep(0.3)

    def close(self) -> None:
        self.shell.close()
        self.exits.close()
        self.loop.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def stack(temporal_server, tmp_path_factory):
    built = Stack(temporal_server, tmp_path_factory.mktemp("docs"))
    old = {k: os.environ.get(k) for k in built.env}
    os.environ.update({k: v for k, v in built.env.items() if k != "PATH"})  # what ClipperClient.connect() reads
    get_settings.cache_clear()
    try:
        yield built
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            elif k != "PATH":
                os.environ[k] = v
        get_settings.cache_clear()
        built.close()


def test_every_block_runs_or_is_listed_with_its_reason():
    found = docs_blocks()
    keys = {b.key for b in found}
    assert not set(NOT_RUN) - keys, f"NOT_RUN names blocks the docs no longer have: {set(NOT_RUN) - keys}"
    for block in found:
        assert block.key in NOT_RUN or block.lang in RUNNERS or block.key in SPECIAL, \
            f"{block.name}: no rule runs a `{block.lang}` block; run it, or list it in NOT_RUN with the reason"
    commands_seen = {(b.doc, c) for b in found if b.lang in ("sh", "console")
                     for c, _ in commands(b.body, b.lang == "console")}
    for doc, start in EXPECTED:
        assert any(d == doc and c.startswith(start) for d, c in commands_seen), f"EXPECTED: no command {start!r}"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a block may follow a whole job (watch, --wait, result)
@pytest.mark.parametrize("block", docs_blocks(), ids=lambda b: b.name)
def test_docs_example(block: Block, stack: Stack):
    if block.key in NOT_RUN:
        pytest.skip(NOT_RUN[block.key])
    if block.key in SETUP:
        SETUP[block.key](stack)
    run = SPECIAL.get(block.key) or RUNNERS[block.lang]
    run(block, stack)


# --- runners ---


def run_shell(block: Block, stack: Stack) -> None:
    for command, shown in commands(block.body, block.lang == "console"):
        code, why = next(((c, w) for (doc, start), (c, w) in EXPECTED.items()
                          if doc == block.doc and command.startswith(start)), (expected_exit(command), ""))
        if code is None:
            continue  # EXPECTED says why it is not run
        verbatim = any(doc == block.doc and command.startswith(start) for doc, start in VERBATIM)
        typed = command if verbatim else stack.subs.apply(command)
        if typed.startswith(("clipper-worker", "python worker.py")):
            run_worker(typed, stack)
            continue
        timeout = 900 if any(s in typed for s in SLOW) else 180
        rc, out = stack.shell.run(typed, timeout)
        assert rc == code, f"{block.name}: {typed!r} exited {rc}, not {code} {why}\n{out[-3000:]}"
        stack.subs.saw(out)
        missing = shown_lines_in_order([stack.subs.apply(line) for line in shown], out)
        assert missing is None, f"{block.name}: {typed!r} did not print {missing!r}:\n{out[-3000:]}"
        if check := CHECKS.get((block.doc, command)):
            check(out, stack)


def run_worker(command: str, stack: Stack) -> None:
    """A worker the docs start: it must come up, then drain on SIGTERM and exit 0."""
    argv = command.split("#")[0].split()
    if argv[0] == "python":
        argv[0] = sys.executable
    proc = subprocess.Popen(argv, cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out = ""
    try:
        deadline = time.monotonic() + 90
        while "worker.started" not in out:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"{command!r} ended before it started:\n{out[-2000:]}"
            assert time.monotonic() < deadline, f"{command!r} did not log worker.started:\n{out[-2000:]}"
            out += line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, f"{command!r} did not exit 0 after SIGTERM"
    finally:
        _stop(proc)


def run_python(block: Block, stack: Stack) -> None:
    source = stack.subs.apply(block.body)
    code = compile(source, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(stack.cwd)  # files the example writes land in the work folder
    try:
        with contextlib.redirect_stdout(printed):
            result = eval(code, stack.python)  # noqa: S307 - the docs' own example
            if asyncio.iscoroutine(result):
                stack.loop.run_until_complete(asyncio.wait_for(result, 900))
    finally:
        os.chdir(cwd)
    if check := CHECKS.get(block.key):
        check(printed.getvalue(), stack)


def run_queries(block: Block, stack: Stack) -> None:
    for line in block.body.splitlines():
        query = line.split("#")[0].strip()
        if query:
            done = subprocess.run(["temporal", "workflow", "list", "--query", query], env=stack.env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"the server refused {query!r}: {done.stderr}"


def check_webhook_body(block: Block, stack: Stack) -> None:
    shown = json.loads(block.body)
    real = json.loads(webhook_body(Notification(job_id="clip-1", event="done", state="done", url="https://e.x/a",
                                                at=datetime.now(timezone.utc))))
    assert set(shown) == set(real), f"the body shown has {sorted(shown)}, a real one {sorted(real)}"


RUNNERS = {"sh": run_shell, "console": run_shell, "python": run_python}
SPECIAL = {
    ("docs/api.md", 'ClipperState="failed"                                   # failed jobs, waiting or given up'):
        run_queries,
    ("docs/api.md", '{"at": "2025-05-01T10:02:11Z", "error_message": "the LLM API answered 503", "error_type": '
                    '"LLMUnavailable",'): check_webhook_body,
}


# --- what a block needs first, and what is checked after it ---


def call_job(stack: Stack) -> None:
    """README's speakers example shows the committed phone call 'after clipper speakers JOB S1=Diane S2=Sheila'."""
    url = stack.media.url("/call.mp3")
    for command in (f"clipper submit {url} --wait", "clipper speakers clip-… S1=Diane S2=Sheila"):
        rc, out = stack.shell.run(stack.subs.apply(command), 900)
        assert rc == 0, out[-3000:]
        stack.subs.saw(out)
    assert stack.subs.printed["clip"] == job_id_for(url)


def episodes_file(stack: Stack) -> None:
    (stack.cwd / "episodes.txt").write_text("\n".join(stack.subs.local(f"https://example.com/{n}")
                                                      for n in ("a.mp3", "b.mp3")) + "\n")


SETUP = {
    ("README.md", "$ cat ~/.local/share/clipper/jobs/clip-9601ada24b57cff0/transcript.txt"): call_job,
    ("docs/api.md", "clipper submit-batch https://www.youtube.com/playlist?list=PL... --concurrency 2 --priority 4"):
        episodes_file,
}


def check_ids(out: str, stack: Stack) -> None:
    assert out.strip() == "clip-6bc35c67f0de1515", out


def check_hash(out: str, stack: Stack) -> None:
    assert out.strip() == "f0494a592230c989", out  # the digits of clip-f0494a592230c989, as the table says


def check_verify(out: str, stack: Stack) -> None:
    """The snippet accepts what the worker's code sends, signed with a job's own secret, and nothing else."""
    verify = stack.python["verify"]
    job = "clip-0123456789abcdef"
    secret = signing.job_secret(job, get_settings())
    body = webhook_body(Notification(job_id=job, event="done", state="done", url="https://e.x/a",
                                     at=datetime.now(timezone.utc)))
    headers = signing.signature_headers(secret, "delivery-1", body)
    assert verify(secret, headers, body)
    assert not verify(signing.job_secret("clip-fedcba9876543210", get_settings()), headers, body)
    assert not verify(secret, headers, body.replace(b"done", b"fail"))
    assert not verify(secret, {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}, body)
    configured = "a plain operator secret"
    assert verify(configured, signing.signature_headers(configured, "d", body), body)


def check_client(out: str, stack: Stack) -> None:
    assert "quotes, clip 1:" in out and "JobNotFound: no job 'clip-0000000000000000'" in out, out


def check_remote(out: str, stack: Stack) -> None:
    job = stack.subs.ids[job_id_for("https://example.com/episode.mp3")]
    assert f"{job} done" in out and "transcript.srt" in out and "JobNotFound:" in out, out
    assert (stack.cwd / "transcript.srt").read_bytes() == (stack.store / "jobs" / job / "transcript.srt").read_bytes()


CHECKS = {
    ("docs/api.md", "python -c \"from clipper.media.urls import job_id_for; print(job_id_for("
                    "'https://youtu.be/dQw4w9WgXcQ'))\""): check_ids,
    ("docs/api.md", "printf %s 'https://example.com/a.mp3' | sha256sum | cut -c1-16    # for a URL that is "
                    "already canonical"): check_hash,
    ("docs/api.md", "example: verify-webhook"): check_verify,
    ("docs/api.md", "example: python-client"): check_client,
    ("docs/api.md", "example: remote-client"): check_remote,
}
