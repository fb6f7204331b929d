"""Smoke runs of the benchmarks in bench/ on tiny inputs: they run end to end and print well-formed tables.

No timing assertions (shared machines vary); the numbers are whatever they are. bench/resume_cost.py needs
the speech model and minutes of audio, so only its table is checked here, on made-up cases.
"""

from __future__ import annotations

import pytest
from bench.overhead import TOTAL, run_overhead
from bench.resume_cost import Case, Progress, table
from bench.throughput import MARKS, run_throughput


def columns(line: str) -> int:
    assert line.startswith("|") and line.endswith("|"), line
    return line.count("|") - 1


def assert_markdown_table(lines: list[str], rows: int) -> None:
    assert len(lines) == rows + 2
    width = columns(lines[0])
    assert all(columns(line) == width for line in lines), lines
    assert set(lines[1]) <= set("|-:")


@pytest.mark.slow
def test_throughput_samples_worker_rss(tmp_path):
    result = run_throughput(3, workdir=tmp_path, quiet=True)
    assert result.load.problems() == []
    assert [s.jobs_done for s in result.rss.samples] == [0, 1, 2, 3]
    assert all(value is not None and value > 0 for value in result.rss_at().values())
    assert_markdown_table(result.table(), rows=1)
    assert f"RSS @{MARKS[-1]}% MiB" in result.table()[0]


@pytest.mark.slow
def test_overhead_times_every_stage_both_ways(tmp_path):
    result = run_overhead(runs=1, warmup=0, workdir=tmp_path, quiet=True)
    lines = result.table()
    assert_markdown_table(lines, rows=7)  # six stages and the total
    for stage in ("download", "transcribe", "quotes", "summary", "clips", "report", TOTAL):
        row = result.row(stage)
        assert row["direct"] > 0 and row["scheduled_to_completed"] > 0, (stage, row)


def test_resume_cost_table():
    cases = [Case("single", None, transcribe_s=10.0, job_s=12.0, words=300),
             Case("single", 0.5, Progress(50.0, 60.0, 0.0, 1.2, False), resumed_from_s=60.0, kill_to_retry_s=3.1,
                  transcribe_s=15.0, job_s=18.0, words=300, retries=1),
             Case("single", 0.9, transcribe_s=10.5, job_s=12.5, words=300)]  # finished before the kill
    lines = table(cases)
    assert_markdown_table(lines, rows=3)
    assert "no kill" in lines[2] and "finished first" in lines[4]
    assert "| 5.0 |" in lines[3]  # lost: 15.0 - 10.0


@pytest.mark.slow
def test_chunked_vs_single_prints_a_row_per_run(capsys):
    from bench.chunked_vs_single import main

    assert main(["--repeats", "1", "--rounds", "2", "--runs", "single:1,chunked:1:25:2:1:2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    table_lines = [line for line in out if line.startswith("|")]
    assert_markdown_table(table_lines, rows=2)
    single, chunked = (line.split("|")[1:-1] for line in table_lines[2:])
    assert single[3].strip() == "1.00×" and single[4].strip() == "1.00×"  # the base against itself, both ways
    assert int(chunked[1]) >= 2  # the 55 s sample in chunks of ≤ 25 s
    assert float(chunked[-1].strip().rstrip("%")) < 30.0  # WER: the chunked text is the sample's speech


@pytest.mark.slow
def test_control_latency_measures_a_cancel(tmp_path):
    """bench/control_latency.py end to end on its cheapest case: a quotes stage held by a slow LLM, cancelled."""
    from bench.control_latency import run_control_latency, table

    measures = run_control_latency(["quotes"], ("cancel",), runs=1, workdir=tmp_path, asr_engine="noop", quiet=True)
    assert [(m.case, m.signal, m.running) for m in measures] == [("quotes", "cancel", ["quotes"])]
    assert measures[0].to_cancelled_s is not None and measures[0].to_cancelled_s > 0, measures[0]
    assert measures[0].to_logged_s is not None, measures[0]
    lines = table(measures)
    assert_markdown_table(lines, rows=1)
    assert lines[2].startswith("| quotes | cancel | quotes |")


def test_web_load_table():
    from bench.web_load import Row, table

    rows = [Row("status", 10, 4, 0.5, [40.0, 10.0, 30.0, 20.0], 0, {"web": 1.25, "worker": 0.0, "temporal": 0.1}),
            Row("page", 1, 2, 1.0, [5.0, 7.0], 1)]
    lines = table(rows)
    assert_markdown_table(lines, rows=2)
    assert lines[2] == "| status | 10 | 8 | 20 | 40 | 40 | 0 | 1.25 | 0.00 | 0.10 | – |"  # nearest-rank percentiles
    assert lines[3] == "| page | 1 | 2 | 5 | 7 | 7 | 1 | – | – | – | – |"


@pytest.mark.slow
def test_web_load_answers_every_route(tmp_path):
    """bench/web_load.py end to end on a few requests: a real job, `clipper web`, every route answered."""
    from bench.web_load import ROUTES, run_web_load, table

    rows = run_web_load(concurrency=[2], requests=4, workdir=tmp_path, quiet=True)
    assert [(r.route, r.concurrency, len(r.latencies_ms), r.errors) for r in rows] == [(r, 2, 4, 0) for r in ROUTES]
    assert_markdown_table(table(rows), rows=len(ROUTES))
    assert all("clients" in r.cpu_ms for r in rows)  # the generator's own CPU is measured beside the app's


@pytest.mark.slow  # about 1 s on 2 shared cores (a segmentation, the text libraries' first load)
def test_chapters_bench_scores_boundaries_against_the_joins():
    """A join is found by a chapter start within 20 s; a start near no join (nor a glued piece's inner join) is
    extra. Two made-up recordings joined: different words, different speakers."""
    from bench.chapters import Joined, evaluate, table
    from clipper.job.outputs import Segment, Transcript, Word

    segments, t = [], 0.0
    for part, (who, line) in enumerate([("A", "the harbour boats sail out at dawn with nets"),
                                         ("B", "our compiler emits bytecode for the virtual machine")]):
        for _ in range(30):
            words = []
            for w in line.split():
                words.append(Word(start=round(t, 2), end=round(t + 0.3, 2), word=w, speaker=who))
                t += 0.4
            segments.append(Segment(id=len(segments), start=words[0].start, end=words[-1].end, text=line,
                                    words=words, speaker=who))
            t += 0.6
        if part == 0:
            join, t = t + 0.75, t + 1.5
    joined = Joined("made-up", "tune", ["a", "b"], Transcript(engine="test", duration_s=t, segments=segments),
                    [join], [])
    r = evaluate(joined)
    assert (r.joins, r.found, r.extra, r.missed) == (1, 1, 0, [])
    assert len(r.titles) == 2 and r.titles[0] != r.titles[1]
    lines = table([r]).splitlines()
    assert_markdown_table(lines[:3], 1)
    assert "1 / 1" in lines[2]


@pytest.mark.slow
def test_search_bench_builds_and_times_a_tiny_index(tmp_path):
    from bench.search import hour_job, measure, sentences
    from clipper.search.sqlite import SqliteIndex

    assert len(hour_job(0, sentences()).entries) == 918  # 900 lines of 4 s, 10 quotes, 8 chapters
    row = measure("SQLite FTS5", SqliteIndex(tmp_path / "search.sqlite3"), jobs=2, count=24)
    assert columns(row) == 8 and row.startswith("| SQLite FTS5 | 2 | 1,836 |")


@pytest.mark.slow
def test_follow_bench_starts_a_job_per_item_and_breaks_checks_down(tmp_path):
    """bench/follow.py end to end on two follows every 10 s, one new item each: a job per item, and its table."""
    from bench.follow import PHASES, measure, table

    m = measure(follows=2, every_s=10, rounds=1, tmp=tmp_path)
    assert (m["items"], m["jobs"], m["missing"]) == (2, 2, 0), m
    assert m["p50"] > 0 and m["cpu_per_check_ms"] > 0, m
    lines = table(m).splitlines()
    assert_markdown_table(lines, rows=11 + len(PHASES))
    assert "| 2 / 2 (0) |" in lines[3]
