"""The structure a newcomer relies on: arrows that point one way, a stage declared once, small modules."""

from __future__ import annotations

import re

import pytest

from activities import activity_classes
from clipper.job.stages import ACTIVITY_STAGES, PIPELINE, STAGES
from tests.helpers import ROOT
from tests.helpers.imports import PACKAGES, cycles, graph, modules, reachable, third_party

EDGES = graph()
MAX_LINES = 400


def test_no_import_cycles_not_even_through_deferred_imports():
    assert cycles(EDGES) == []


def test_the_domain_knows_nothing_of_temporal_or_the_layers_above_it():
    for name, path in modules().items():
        if name == "clipper" or name.startswith("clipper."):
            assert "temporalio" not in third_party(path), name
            above = {d for d in EDGES[name] if d.split(".")[0] in ("clipper_app", "workflows", "activities")}
            assert not above, f"{name} imports {above}"


def test_the_client_loads_no_activity_module():
    loaded = reachable(EDGES, "clipper_app.client")
    assert not {m for m in loaded if m.split(".")[0] == "activities"}


def test_workflows_import_no_activity_module():
    for name in EDGES:
        if name.startswith("workflows"):
            assert not {d for d in EDGES[name] if d.startswith("activities")}, name


def test_every_activity_type_of_the_stage_table_has_one_class_and_every_class_a_row():
    assert set(activity_classes()) == set(ACTIVITY_STAGES)


def test_modules_stay_small():
    big = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"split these modules (over {MAX_LINES} lines): {big}"


def test_the_wheel_installs_only_distinct_top_level_names():
    text = (ROOT / "pyproject.toml").read_text()
    listed = re.search(r"\[tool\.setuptools\.packages\.find\]\ninclude = \[(.*?)\]", text, re.S).group(1)
    tops = {name.split(".")[0] for name in re.findall(r'"([^"]+)"', listed)}
    assert tops == set(PACKAGES)


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "bench", "scripts", "worker.py", "starter.py"])
def test_code_carries_no_issue_tracker_markers(folder):
    paths = [ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py")
    marked = [f"{p.relative_to(ROOT)}:{i}" for p in paths for i, line in enumerate(p.read_text().splitlines(), 1)
              if re.search(r"\bissue \d+\b", line, re.I)]
    assert not marked, marked


def test_tests_import_helpers_never_other_test_modules():
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*from tests\.(conftest|unit|e2e|workflows|crash)\b", text, re.M), path


def test_the_architecture_page_lists_the_stages_of_the_table_in_order():
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("\n## Stages", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([a-z_]+)`\s*\|", section, re.M)
    assert rows == list(STAGES) == [s.name for s in PIPELINE]


def readme_layout() -> set[str]:
    """The paths the README's layout sketch names (`clipper/` + `  job/` = clipper/job)."""
    text = (ROOT / "README.md").read_text().split("\n## How it works", 1)[1]
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    paths, parent = set(), ""
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or len(match.group(1)) > 2 or not re.fullmatch(r"[\w.]+/?", match.group(2)):
            continue  # a continuation line of a description
        name = match.group(2).rstrip("/")
        if match.group(1):
            paths.add(f"{parent}/{name}")
        else:
            parent = name
            paths.add(name)
    return paths


def test_the_readme_layout_matches_the_tree():
    sketch = readme_layout()
    assert all((ROOT / p).exists() for p in sketch), sorted(p for p in sketch if not (ROOT / p).exists())
    tops = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")
            and p.name not in {"storage", "build", "dist"} and not p.name.endswith(".egg-info")}
    packages = {f"{top}/{p.name}" for top in ("clipper", "clipper_app") for p in (ROOT / top).iterdir()
                if p.is_dir() and any(p.glob("*.py"))}
    assert tops | packages <= sketch, sorted((tops | packages) - sketch)


def test_the_cli_and_the_pages_go_through_the_client():
    """They read jobs, outputs and versions by asking the client; neither opens the store or talks to Temporal."""
    for name, path in modules().items():
        if name in ("clipper_app.cli", "clipper_app.web") or name.startswith(("clipper_app.cli.", "clipper_app.web.")):
            below = {d for d in EDGES[name] if d.startswith(("clipper.store", "activities", "workflows"))}
            assert not below, f"{name} imports {below}"
            assert "temporalio" not in third_party(path), name


def test_the_notification_events_are_the_job_states_ones():
    from typing import get_args

    from clipper.job.status import NOTIFY_EVENTS
    from clipper.ops.notify import Event

    assert get_args(Event) == NOTIFY_EVENTS
