"""Benchmark: speaker diarization on real recordings with reference turns, tuning and test split apart.

    python -m bench.diarization                       # every recording of bench/corpus.py, both splits
    python -m bench.diarization --split test          # the held-out column only
    python -m bench.diarization --calibrate           # grid over the clustering knobs, on the TUNING split only
    python -m bench.diarization --set threshold=0.5   # one knob changed
    python -m bench.diarization --cost 60,180         # the stage's time and memory on 1 h and 3 h of conversation

Per recording: speakers found / in the reference, DER and JER (pyannote.metrics, collar 0.25 s, overlapped speech
scored, over the whole recording), DER's parts (missed speech, false alarm, confusion), the reference's and the
found overlap share, and the stage's seconds ÷ audio seconds on one thread. Then one summary row per split: mean
DER, recordings with the right count, single-voice recordings reported as one.

Calibration never reads the test split: `--calibrate` scans each tuning recording once (the costly pass) and
re-decides with every (threshold, min_cluster_s) pair — the objective is mean DER plus 0.25 per speaker
counted wrong — and prints the grid and the best pair. Engine defaults live in clipper/speakers/neural.py.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import fields, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from clipper.config import Settings
from clipper.job.outputs import SpeakerTurn


def _annotation(turns: list[SpeakerTurn]):
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for i, t in enumerate(turns):
        if t.end > t.start:
            out[Segment(t.start, t.end), i] = t.speaker
    return out


def der(reference: list[SpeakerTurn], hypothesis: list[SpeakerTurn], duration_s: float,
        collar: float = 0.25) -> dict[str, float]:
    """Diarization error rate over the whole recording (missed + false alarm + confusion, over reference
    speech; overlapped speech scored) and its three parts, each as a share of the reference speech."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar)
    parts = metric(_annotation(reference), _annotation(hypothesis), uem=Timeline([Segment(0, duration_s)]),
                   detailed=True)
    total = max(parts["total"], 1e-9)
    return {"der": parts["diarization error rate"], "miss": parts["missed detection"] / total,
            "fa": parts["false alarm"] / total, "conf": parts["confusion"] / total}


def jer(reference: list[SpeakerTurn], hypothesis: list[SpeakerTurn], duration_s: float,
        collar: float = 0.25) -> float:
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import JaccardErrorRate

    return float(JaccardErrorRate(collar=collar)(_annotation(reference), _annotation(hypothesis),
                                                 uem=Timeline([Segment(0, duration_s)])))


def overlap_share(turns: list[SpeakerTurn], duration_s: float, step: float = 0.01) -> float:
    """Share of the speech during which two or more talk (on a 10 ms grid)."""
    count = np.zeros(int(duration_s / step) + 2, np.int16)
    for t in turns:
        count[int(t.start / step):int(t.end / step)] += 1
    speech = int((count > 0).sum())
    return float((count > 1).sum()) / speech if speech else 0.0


def load_samples(path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16_000)


def score(rec, found: list[SpeakerTurn], seconds: float) -> dict:
    duration = len(rec.samples) / 16_000
    d = der(rec.turns, found, duration)
    return {"name": rec.name, "split": rec.split, "minutes": round(duration / 60, 2),
            "true": len({t.speaker for t in rec.turns}), "found": len({t.speaker for t in found}),
            "der": d["der"], "jer": jer(rec.turns, found, duration), "miss": d["miss"], "fa": d["fa"],
            "conf": d["conf"], "overlap_ref": overlap_share(rec.turns, duration),
            "overlap_found": overlap_share(found, duration), "x_audio": seconds / duration}


def run_neural(rec, settings: Settings, tuning) -> tuple[list[SpeakerTurn], float]:
    from clipper.speakers.audio import AudioSource
    from clipper.speakers.neural import decide, scan

    started = time.perf_counter()
    found = decide(scan(AudioSource(samples=rec.samples), settings, tuning=tuning), settings, tuning)
    return found.turns, time.perf_counter() - started


COLUMNS = ("recording", "split", "min", "speakers found/true", "DER", "JER", "miss", "FA", "confusion",
           "overlap ref", "overlap found", "stage s ÷ audio s")


def table(rows: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['name']} | {r['split']} | {r['minutes']} | {r['found']}/{r['true']} | {r['der']:.1%} | "
                     f"{r['jer']:.1%} | {r['miss']:.1%} | {r['fa']:.1%} | {r['conf']:.1%} | "
                     f"{r['overlap_ref']:.1%} | {r['overlap_found']:.1%} | {r['x_audio']:.4f} |")
    return lines


def summary(rows: list[dict]) -> list[str]:
    """One line per split: the held-out column beside the tuning one."""
    lines = ["| split | recordings | mean DER | median DER | count right | count ±1 | one voice → 1 | "
             "stage s ÷ audio s (mean) |", "|" + "---|" * 8]
    for split in ("tune", "test"):
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        ders = [r["der"] for r in mine]
        single = [r for r in mine if r["true"] == 1]
        lines.append(f"| {split} | {len(mine)} | {np.mean(ders):.1%} | {np.median(ders):.1%} | "
                     f"{sum(r['found'] == r['true'] for r in mine)}/{len(mine)} | "
                     f"{sum(abs(r['found'] - r['true']) <= 1 for r in mine)}/{len(mine)} | "
                     f"{sum(r['found'] == 1 for r in single)}/{len(single)} | "
                     f"{np.mean([r['x_audio'] for r in mine]):.4f} |")
    return lines


def calibrate(recs, settings: Settings, tuning) -> None:
    """Grid over the clustering knobs on scans of the tuning recordings (each scanned once)."""
    from clipper.speakers.audio import AudioSource
    from clipper.speakers.neural import decide, scan

    assert all(r.split == "tune" for r in recs), "calibration reads the tuning split only"
    scans = [(r, scan(AudioSource(samples=r.samples), settings, tuning=tuning)) for r in recs]
    results = []
    for threshold, min_cluster in itertools.product((0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
                                                    (2.0, 4.0, 8.0, 12.0, 20.0)):
        t = replace(tuning, threshold=threshold, min_cluster_s=min_cluster)
        ders, wrong = [], []
        for rec, s in scans:
            found = decide(s, settings, t).turns
            ders.append(der(rec.turns, found, len(rec.samples) / 16_000)["der"])
            wrong.append(abs(len({x.speaker for x in found}) - len({x.speaker for x in rec.turns})))
        results.append((float(np.mean(ders)) + 0.25 * float(np.mean(wrong)), threshold, min_cluster,
                        float(np.mean(ders)), sum(w == 0 for w in wrong)))
    print("| threshold | min_cluster_s | mean DER | count right | objective |")
    print("|---|---|---|---|---|")
    for obj, th, mc, mder, right in sorted(results, key=lambda r: r[1:3]):
        print(f"| {th} | {mc} | {mder:.1%} | {right}/{len(scans)} | {obj:.3f} |")
    best = min(results)
    print(f"\nbest on the tuning split: threshold={best[1]} min_cluster_s={best[2]} "
          f"(mean DER {best[3]:.1%}, count right {best[4]}/{len(scans)})")


def cost(minutes: float, work: Path) -> dict:
    """The stage's cost on `minutes` of real conversation (every corpus recording, both splits, end to end,
    repeated), as the worker runs it: a 16 kHz WAV read a block at a time, the default threads, in a fresh
    process whose peak RSS is its own."""
    import json
    import subprocess
    import sys
    import wave

    from bench.corpus import recordings

    pieces = [r.samples for r in recordings()]
    total = int(minutes * 60 * 16_000)
    path = work / f"conversation-{minutes:g}min.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        written, i = 0, 0
        while written < total:
            piece = pieces[i % len(pieces)][:total - written]
            out.writeframes(np.clip(np.round(piece * 32767), -32768, 32767).astype("<i2").tobytes())
            written, i = written + len(piece), i + 1
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so the child would report this process's peak.
    code = ("import json, re, sys, time, pathlib\n"
            "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "from clipper.config import Settings\nfrom clipper.speakers.label import speaker_turns\n"
            "from clipper.speakers import campplus, segmentation\n"
            "s = Settings(); segmentation.load_segmenter(s.speakers_threads); campplus.load_campplus(s.speakers_threads)\n"
            "loaded = hwm()\n"
            "t = time.perf_counter(); turns = speaker_turns(pathlib.Path(sys.argv[1]), s).turns\n"
            "print(json.dumps({'seconds': time.perf_counter() - t, 'speakers': len({x.speaker for x in turns}),\n"
            "  'loaded_mb': loaded / 1024, 'peak_mb': hwm() / 1024}))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    path.unlink()
    return {"minutes": minutes, **row, "x_audio": row["seconds"] / (minutes * 60)}


def main() -> None:
    from bench.corpus import recordings
    from clipper.speakers.neural import TUNING, Tuning

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["tune", "test"], default=None)
    parser.add_argument("--names", default="", help="comma-separated recording names (default: all)")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--cost", default="", metavar="MINUTES,...",
                        help="measure the stage's time and peak memory on this many minutes of conversation")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override a Tuning field ({', '.join(f.name for f in fields(Tuning))})")
    args = parser.parse_args()
    tuning = TUNING
    for item in args.set:
        key, value = item.split("=", 1)
        tuning = replace(tuning, **{key: type(getattr(TUNING, key))(value)})
    if args.cost:
        import tempfile

        print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; speakers_threads "
              f"{Settings().speakers_threads}")
        print("| audio | stage s | stage s ÷ audio s | speakers found | process RSS with models loaded | peak RSS |")
        print("|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for minutes in (float(m) for m in args.cost.split(",")):
                r = cost(minutes, Path(tmp))
                print(f"| {minutes:g} min | {r['seconds']:.1f} | {r['x_audio']:.4f} | {r['speakers']} | "
                      f"{r['loaded_mb']:.0f} MiB | {r['peak_mb']:.0f} MiB |", flush=True)
        return
    settings = Settings(speakers_engine="neural")
    recs = recordings("tune" if args.calibrate else args.split)
    if args.names:
        recs = [r for r in recs if r.name in args.names.split(",")]
    if args.calibrate:
        calibrate(recs, settings, tuning)
        return
    rows = []
    print(f"{tuning}", flush=True)
    for rec in recs:
        found, seconds = run_neural(rec, settings, tuning)
        rows.append(score(rec, found, seconds))
        print(table(rows[-1:])[-1], flush=True)
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    main()
