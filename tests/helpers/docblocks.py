"""The fenced examples of the docs, as a test runs them: found, named, their placeholders replaced by rule, and
their shell commands typed one at a time into one bash session (so variables and ids carry from one command
to the next, as in a reader's terminal). Used by tests/e2e/test_docs_examples.py, whose docstring states the
rules."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from clipper.media.urls import job_id_for

FENCE = re.compile(r"^(```|~~~)([\w-]*)\n(.*?)^\1[ \t]*$", re.S | re.M)
EXAMPLE_HOST = "https://example.com/"
ID = re.compile(r"\b(clip|batch)-(?:[0-9a-f]{16}|…)")
UNKNOWN_ID = "clip-0000000000000000"  # the docs' id of a job that does not exist: kept as it is
EXIT_CODE = re.compile(r"#.*\bexit code (\d+)")


MARKER = re.compile(r"<!-- (example: [\w-]+) -->\n$")


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    body: str
    marker: str | None = None  # `example: NAME` from a `<!-- example: NAME -->` line right above the block

    @property
    def key(self) -> tuple[str, str]:
        """(page, its marker or else its first line): what names a block in the test's tables, wherever it moves."""
        return self.doc, self.marker or (self.body.splitlines()[0].strip() if self.body.strip() else "")

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}:{self.lang or 'plain'}"


def blocks(root: Path, docs: tuple[str, ...]) -> list[Block]:
    found = []
    for doc in docs:
        text = (root / doc).read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            marker = MARKER.search(text, 0, m.start())
            found.append(Block(doc, text[: m.start()].count("\n") + 1, m.group(2), m.group(3),
                               marker.group(1) if marker else None))
    return found


def example_urls(root: Path, docs: tuple[str, ...]) -> set[str]:
    """Every `https://example.com/<name>` the docs use (the media they submit)."""
    urls: set[str] = set()
    for doc in docs:
        urls |= set(re.findall(r"https://example\.com/[\w./-]+\w", (root / doc).read_text(encoding="utf-8")))
    return urls


@dataclass
class Substitutions:
    """The rules, in order: example.com media → the local media server; a job id derived from a docs URL → the id
    of that URL's local stand-in; other literal replacements (addresses, the store folder, hooks); an id the docs
    show that no URL gives (or `clip-…`) → the last id of that kind a command printed."""

    media: str  # base URL of the local media server, no trailing slash
    urls: set[str]
    literal: dict[str, str] = field(default_factory=dict)
    printed: dict[str, str] = field(default_factory=dict)  # kind (clip, batch) → last id printed

    def __post_init__(self) -> None:
        self.ids = {job_id_for(url): job_id_for(self.local(url)) for url in self.urls}

    def local(self, url: str) -> str:
        return self.media + "/" + url.removeprefix(EXAMPLE_HOST)

    def apply(self, text: str) -> str:
        for old, new in self.literal.items():
            text = text.replace(old, new)
        text = re.sub(r"https://example\.com/([\w./-]*\w)", lambda m: self.local(m.group(0)), text)
        return ID.sub(self._id, text)

    def _id(self, m: re.Match) -> str:
        found = m.group(0)
        if found == UNKNOWN_ID:
            return found
        if found in self.ids:
            return self.ids[found]
        if m.group(1) in self.printed:
            return self.printed[m.group(1)]
        raise AssertionError(f"{found}: no URL of the docs gives this id and no command printed one before it; "
                             "use the id of the URL the example submits")

    def saw(self, output: str) -> None:
        for m in re.finditer(r"\b(clip|batch)-[0-9a-f]{16}\b", output):
            if m.group(0) != UNKNOWN_ID:
                self.printed[m.group(1)] = m.group(0)


def commands(body: str, console: bool) -> list[tuple[str, list[str]]]:
    """(command, the output lines the docs show after it). A console block's commands are its `$ ` lines; a sh
    block's are its lines, with `\\`-continued lines joined and comment lines dropped."""
    result: list[tuple[str, list[str]]] = []
    pending = ""
    for raw in body.splitlines():
        if console:
            if raw.startswith("$ "):
                result.append((raw[2:], []))
            elif result and raw.strip():
                result[-1][1].append(raw)
            continue
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        pending += raw + "\n" if raw.endswith("\\") else raw  # bash joins `\`+newline itself
        if not raw.endswith("\\"):
            result.append((pending, []))
            pending = ""
    return result


def expected_exit(command: str) -> int:
    """0, unless the command's comment says `exit code N`."""
    m = EXIT_CODE.search(command)
    return int(m.group(1)) if m else 0


class Shell:
    """One bash session: each command's output and exit status, the session's variables kept in between."""

    MARK = "__clipper_docs_rc__"

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{command}\nprintf '\\n{self.MARK} %s\\n' $?\n".encode())
        self.proc.stdin.flush()
        out = b""
        deadline = time.monotonic() + timeout
        while (m := re.search(rf"\n{self.MARK} (\d+)\n".encode(), out)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"{command!r} did not finish in {timeout:.0f} s; output so far:\n"
                                     f"{out.decode(errors='replace')[-3000:]}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                out += os.read(self.proc.stdout.fileno(), 65536)
        return int(m.group(1)), out[: m.start()].decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def shown_lines_in_order(expected: list[str], output: str) -> str | None:
    """None when every line the docs show (but `…`) is in the output, in that order (spaces compared loosely);
    else the first one missing."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for line in expected:
        want = " ".join(line.split())
        if not want or want == "…":
            continue
        while at < len(actual) and actual[at] != want:
            at += 1
        if at == len(actual):
            return line
        at += 1
    return None
