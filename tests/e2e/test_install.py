"""clipper as a user installs it: a wheel built from the checkout, installed into a fresh virtual environment and
run from a folder outside the repo, with nothing putting the repo on the import path.

The wheel is installed without dependencies; the fresh environment gets them (temporalio, pydantic, ...) from the
project venv through one `.pth` line naming the project venv's site-packages. That folder is added to sys.path
but is not a site dir, so the editable install's own `.pth` (which maps `client`, `cli`, ... to the checkout) is
not executed: before the wheel is installed, the fresh environment can import the dependencies but not clipper,
and after, every clipper module it imports must come from its own site-packages.

The wheel is built from a snapshot of the checkout in a temporary folder: setuptools builds in the source tree
(`build/`, `*.egg-info`), which must not appear in a checkout others are editing, and its reused `build/lib`
would let a stale module slip into the wheel. It is built offline (`--no-build-isolation --no-index`) with the
project venv's setuptools (the test extra asks for one that builds wheels).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tests.helpers import run

from tests.helpers.reports import add_report

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("activities", "clipper", "clipper_app", "workflows")  # the top-level names a wheel installs; no generic ones
NOT_SHIPPED = ("tests", "scripts", "bench", "docs", "deploy")  # checkout-only folders
SNAPSHOT_SKIP_TOP = {".git", ".venv", "venv", "build", "dist", "storage", ".data", ".pytest_cache"}
CORE_COMMANDS = {"submit", "status", "watch", "show", "list", "history", "stats", "pause", "resume", "cancel",
                 "retry", "abandon", "priority"}
TIMEOUT = 180


@dataclass
class Installed:
    venv: Path
    python: Path
    work: Path  # the working directory of every command: outside the repo, empty
    env: dict[str, str]
    wheel: Path
    build_mode: str
    timings: dict[str, float]
    deps: list[str]  # the project venv's site-packages, added by the fresh venv's .pth file

    def run(self, *cmd: str | Path, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(c) for c in cmd], check=False, cwd=self.work, env={**self.env, **env},
                              capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)

    @property
    def version(self) -> str:  # clipper-<version>-py3-none-any.whl
        return self.wheel.name.split("-")[1]

    def script(self, name: str) -> Path:
        return self.venv / "bin" / name


def inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def check(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def snapshot(dest: Path) -> Path:
    """The checkout's files as they are now, without the venv, git data, build output or caches."""
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", ".pyc"))}
        if Path(folder).resolve() == ROOT:
            skipped |= SNAPSHOT_SKIP_TOP & set(names)
        return skipped

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    return dest


def build_wheel(src: Path, out: Path) -> tuple[Path, str]:
    """Offline: the project venv's setuptools (>= 70.1, from the test extra, has bdist_wheel) builds it."""
    offline = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "-w", str(out), str(src)]
    built = subprocess.run(offline, check=False, capture_output=True, text=True, timeout=TIMEOUT)
    mode = "offline (--no-build-isolation --no-index)"
    assert built.returncode == 0, f"the wheel could not be built offline:\n{built.stdout}\n{built.stderr}"
    wheels = list(out.glob("clipper-*.whl"))
    assert len(wheels) == 1, f"expected one clipper wheel in {out}, found {wheels}"
    return wheels[0], mode


def clean_env(tmp: Path) -> dict[str, str]:
    """The caller's environment minus anything that would point Python or clipper somewhere else."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "PWD"}
           and not k.startswith(("CLIPPER_", "TEMPORAL_"))}
    env.update({"HF_HUB_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1", "PYTHONNOUSERSITE": "1",
                "CLIPPER_STORAGE_DIR": str(tmp / "storage"),
                "CLIPPER_TASK_QUEUE": f"install-{uuid.uuid4().hex[:8]}"})
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    assert not inside(tmp, ROOT), f"the temporary folder {tmp} is inside the repo"
    timings: dict[str, float] = {}
    started = time.monotonic()

    # 1. The wheel, from a snapshot of the checkout.
    wheel, mode = build_wheel(snapshot(tmp / "src"), tmp / "dist")
    timings["build wheel"] = time.monotonic() - started

    # 2. A fresh venv (no pip: the project's pip installs into it with --python, offline).
    mark = time.monotonic()
    venv = tmp / "venv"
    check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=False,
                         capture_output=True, text=True, timeout=TIMEOUT), "python -m venv")
    python = venv / "bin" / "python"
    env = clean_env(tmp)
    work = tmp / "work"
    work.mkdir()
    deps = list(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))  # project venv's
    probe = Installed(venv, python, work, env, wheel, mode, timings, deps)
    site = Path(check(probe.run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"),
                      "purelib of the fresh venv").stdout.strip())
    assert inside(site, venv), f"the fresh venv's site-packages {site} is not in {venv}"
    assert all(Path(d, "temporalio").is_dir() for d in deps), f"temporalio is not in the project venv's {list(deps)}"
    (site / "clipper-test-deps.pth").write_text("".join(f"{d}\n" for d in deps), encoding="utf-8")

    # Dependencies importable, clipper not: the .pth line does not bring the editable install with it.
    before = probe.run(python, "-c", "import temporalio, pydantic, rich\nfor name in " + repr(PACKAGES) + ":\n"
                       "    try:\n        __import__(name)\n    except ModuleNotFoundError:\n        pass\n"
                       "    else:\n        print(name)")
    check(before, "importing the dependencies in the fresh venv")
    assert before.stdout.split() == [], f"importable before the wheel is installed: {before.stdout.split()}"

    # 3. The wheel, without dependencies, from nowhere but the file.
    check(subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          "--no-index", "--disable-pip-version-check", str(wheel)],
                         check=False, capture_output=True, text=True, timeout=TIMEOUT, cwd=work),
          "pip install the wheel")
    timings["venv + install"] = time.monotonic() - mark
    add_report(request.config, "install from a wheel", [
        f"{wheel.name}: {mode}", ", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items())])
    return probe


def test_wheel_holds_every_module_of_the_packages(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES), f"the wheel's top-level packages are {sorted(tops)}, expected {PACKAGES}"
    assert not tops & set(NOT_SHIPPED)
    on_disk = {p.relative_to(ROOT).as_posix() for top in PACKAGES for p in (ROOT / top).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert on_disk, "no package files found in the checkout"
    missing = sorted(on_disk - names)
    assert not missing, f"files of the packages missing from the wheel: {missing}"
    entry_points = zipfile.ZipFile(installed.wheel).read(f"clipper-{installed.version}.dist-info/entry_points.txt")
    entry_points = entry_points.decode()
    assert re.search(r"^clipper = clipper_app\.cli\.main:main$", entry_points, re.MULTILINE), entry_points
    assert re.search(r"^clipper-worker = clipper_app\.workers\.main:main$", entry_points, re.MULTILINE), entry_points


def test_imports_come_from_the_wheel(installed: Installed):
    code = (
        "import json, sys, importlib.metadata as md\n"
        "from clipper_app.client import ClipperClient, JobNotFound, JobFailed\n"
        "import clipper_app.client as client, clipper_app.cli as cli, clipper_app.cli.main, clipper.config\n"
        "import workflows, activities, clipper_app.workers as workers\n"
        "print(json.dumps({'client': client.__file__, 'cli': cli.__file__, 'cli.main': clipper_app.cli.main.__file__,\n"
        "    'workers': workers.__file__,\n"
        "    'workflows': workflows.__file__, 'activities': activities.__file__, 'config': clipper.config.__file__,\n"
        "    'clipper': list(clipper.__path__), 'ClipperClient': sys.modules[ClipperClient.__module__].__file__,\n"
        "    'errors': [JobNotFound.__name__, JobFailed.__name__],\n"
        "    'dist': str(md.distribution('clipper').locate_file('')), 'version': md.version('clipper'),\n"
        "    'sys_path': sys.path}))\n")
    found = json.loads(check(installed.run(installed.python, "-c", code), "importing the client").stdout)
    print("client imported from", found["client"])
    site = installed.venv
    for key in ("client", "cli", "cli.main", "workers", "workflows", "activities", "config", "ClipperClient", "dist"):
        assert inside(found[key], site), f"{key} imported from {found[key]}, not from the fresh venv {site}"
        assert not inside(found[key], ROOT), f"{key} imported from the repo: {found[key]}"
    assert found["clipper"] and all(inside(p, site) for p in found["clipper"]), f"clipper from {found['clipper']}"
    assert found["errors"] == ["JobNotFound", "JobFailed"]
    assert found["version"] == installed.version, f"clipper {found['version']} installed, wheel {installed.version}"
    # The repo's only folders on the path: the project venv's site-packages, from the .pth line (dependencies).
    on_path = [p for p in found["sys_path"] if p and inside(p, ROOT) and p not in installed.deps]
    assert not on_path, f"the repo is on the fresh venv's sys.path: {on_path}"
    assert all(d in found["sys_path"] for d in installed.deps), f"the .pth line was not applied: {found['sys_path']}"


def test_console_scripts_help(installed: Installed):
    from clipper_app.cli.main import parser  # the checkout's CLI: the installed one must offer the same subcommands

    choices = set(next(a for a in parser()._actions if a.dest == "command").choices)
    assert CORE_COMMANDS <= choices, f"the checkout's parser lacks {CORE_COMMANDS - choices}"
    for name in ("clipper", "clipper-worker"):
        script = installed.script(name)
        assert script.is_file(), f"{name} was not installed in {script.parent}"
        shebang = script.read_text(encoding="utf-8").splitlines()[0]
        assert shebang == f"#!{installed.python}", f"{name} runs {shebang!r}, not the fresh venv's python"

    cli = check(installed.run(installed.script("clipper"), "--help"), "clipper --help")
    listed = re.search(r"\{([a-z,-]+)\}", cli.stdout)
    assert listed, f"no subcommand list in clipper --help:\n{cli.stdout}"
    assert set(listed.group(1).split(",")) == choices, f"subcommands: {listed.group(1)} vs {sorted(choices)}"
    for command in CORE_COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", cli.stdout, re.MULTILINE), f"{command} is not described in --help"

    worker = check(installed.run(installed.script("clipper-worker"), "--help"), "clipper-worker --help")
    assert "--task-queue" in worker.stdout and "--queues" in worker.stdout, worker.stdout
    assert "Run a clipper worker" in worker.stdout, worker.stdout


def test_a_pip_installed_clipper_labels_speakers(installed: Installed, tmp_path: Path):
    """`clipper models` in the fresh install finds the speaker models (the model wheel is what `clipper models
    install` puts beside the dependencies; here they come with the project venv's site-packages) and the
    installed code labels the two women on the real call, building its graphs into a cache of its own."""
    cache = tmp_path / "model-cache"
    models = check(installed.run(installed.script("clipper"), "models", CLIPPER_MODEL_CACHE=str(cache)),
                   "clipper models")
    assert models.stdout.count("ok ") == 2 and "missing" not in models.stdout, models.stdout
    call = ROOT / "tests" / "data" / "real" / "call.mp3"
    code = ("import json, pathlib, clipper.speakers.neural as n\n"
            "from clipper.config import Settings\nfrom clipper.speakers.label import speaker_turns\n"
            f"found = speaker_turns(pathlib.Path({str(call)!r}), Settings()); turns = found.turns\n"
            "print(json.dumps({'speakers': sorted({t.speaker for t in turns}), 'module': n.__file__,\n"
            "                  'model': found.model}))")
    found = json.loads(check(installed.run(installed.python, "-c", code, CLIPPER_MODEL_CACHE=str(cache)),
                             "labelling the call").stdout)
    assert found["speakers"] == ["S1", "S2"], found
    assert inside(found["module"], installed.venv), found["module"]
    assert sorted(p.suffix for p in cache.iterdir()) == [".onnx", ".onnx"], list(cache.iterdir())


def one_line_error(proc: subprocess.CompletedProcess, what: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, f"{what} exited {proc.returncode}, expected 2\n{proc.stdout}\n{proc.stderr}"
    assert len(lines) == 1 and "Traceback" not in proc.stderr, f"{what}: not one line on stderr: {proc.stderr!r}"
    return lines[0]


def test_cli_against_the_dev_server(installed: Installed, temporal_server):
    address = {"TEMPORAL_ADDRESS": temporal_server.address}
    clipper = installed.script("clipper")

    missing = installed.run(clipper, "status", "x", **address)
    assert "JobNotFound" in one_line_error(missing, "clipper status x"), missing.stderr
    assert missing.stdout.strip() == "", missing.stdout

    assert not (installed.work / "not-a-url").exists()
    refused = installed.run(clipper, "submit", "not-a-url", **address)
    assert "UnsupportedUrl" in one_line_error(refused, "clipper submit not-a-url"), refused.stderr
    assert refused.stdout.strip() == "", f"a job id was printed: {refused.stdout}"

    # No job started: the id that submission would have given the job does not exist on the server.
    job_id = check(installed.run(installed.python, "-c", "from clipper.media.urls import job_id_for\n"
                                 "print(job_id_for('not-a-url'))"), "job_id_for").stdout.strip()
    assert job_id.startswith("clip-"), job_id

    async def describe() -> RPCStatusCode | None:
        client = await Client.connect(temporal_server.address)
        try:
            await client.get_workflow_handle(job_id).describe()
        except RPCError as err:
            return err.status
        return None

    assert run(describe()) == RPCStatusCode.NOT_FOUND, f"a workflow {job_id} exists: submit started a job"
