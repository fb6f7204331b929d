"""The pages' script (clipper_app/web/static/common.js) decides as the server does: it writes a duration as
clipper/clock.py does and reads a job's state with the rules the page carries (clipper/job/status.py), run in Node
on the same inputs as the Python. Without Node the browser tests (tests/e2e/test_web_pages.py) still cover it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from clipper.clock import duration
from clipper.job.status import SHOWN_STATES, shown_state, state_rules
from tests.helpers import ROOT

COMMON_JS = ROOT / "clipper_app" / "web" / "static" / "common.js"
SECONDS = [None, 0, 0.4, 0.5, 1.5, 2.5, 59.5, 59.6, 62.5, 63.5, 125, 599.9, 3599.4, 3599.5, 3600, 3723, 86399.5,
           90061, -0.5, -3, 12.345, 1234.5678]
NODE = """
const fs = require("fs"), vm = require("vm");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const context = vm.createContext({document: {body: {dataset: {rules: JSON.stringify(input.rules)}}}});
vm.runInContext(fs.readFileSync(input.path, "utf8") + "\\n;globalThis.page = clipper;", context);
const out = {};
for (const [name, args] of Object.entries(input.calls)) out[name] = args.map((a) => context.page[name](a));
process.stdout.write(JSON.stringify(out));
"""


def common_js(rules: dict, calls: dict[str, list]) -> dict[str, list]:
    """common.js evaluated in Node, with a stand-in `document` whose body carries `rules` as data-rules: each
    function named in `calls` applied to each of its arguments."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    done = subprocess.run([node, "-e", NODE], input=json.dumps({"path": str(COMMON_JS), "rules": rules,
                                                               "calls": calls}),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_durations_are_written_as_the_server_writes_them():
    assert common_js({}, {"duration": SECONDS})["duration"] == [duration(s) for s in SECONDS]


STATUSES = [
    {"state": "queued"}, {"state": "running"}, {"state": "done"}, {"state": "cancelled"}, {"state": "failed"},
    {"state": "failed", "waiting_since": "2025-01-02T03:04:05Z", "paused_since": None},
    {"state": "paused", "paused_since": "2025-01-02T03:04:05Z", "waiting_since": None},
    {"state": "running", "paused_since": "2025-01-02T03:04:05Z"},
    {"state": "paused", "paused_since": "2025-01-02T03:04:05Z", "waiting_since": "2025-01-02T03:05:00Z"},
]


def test_states_are_read_by_the_rules_the_page_carries():
    rules = {**state_rules(), "reloadOn": ["done"]}
    got = common_js(rules, {"shownState": STATUSES, "listedAs": list(SHOWN_STATES), "reloadsOn": ["done", "failed"]})
    assert got["shownState"] == [shown_state(s) for s in STATUSES]
    assert got["listedAs"] == [rules["listedAs"].get(s, s) for s in SHOWN_STATES]
    assert got["reloadsOn"] == [True, False]
