"""Who speaks when, offline: GE2E embeddings of the speech the transcript found, clustered, re-segmented.

The steps, and why:
1. Speech comes from the transcript's word times (merged across short pauses): the ASR already found it, and
   embedding silence or music only adds points that belong to no speaker. `speakers_speech=vad` takes it from
   Silero VAD instead (lower DER, fewer rarely-heard speakers found; both measured in the benchmark).
2. The speech frames are joined into one stream (pauses cut out, as Resemblyzer trims long silences) and
   embedded in 1.6 s windows (the length GE2E was trained on) every `step_s`: a short utterance borrows its
   neighbours' speech instead of being padded with silence.
3. The windows are clustered by agglomerative clustering (average linkage, cosine) stopped at a similarity
   threshold: that threshold decides the speaker count (capped by `settings.speakers_max`, or fixed by
   `settings.speakers_count`). Windows mixing two voices form tiny clusters; clusters with less than
   `min_cluster_s` of speech are merged into their most similar neighbour.
4. Re-segmentation: every `step_s` slot of the stream is scored against each speaker's centroid (averaging the
   windows that cover it) and a Viterbi pass with a switch penalty places turn changes, so a turn boundary
   lands between windows, not at a window's edge, and one odd window does not make a turn. A few rounds then
   re-estimate the centroids from the re-segmented windows (and drop speakers left with too little speech):
   k-means with time smoothing, which stabilises the count near the threshold.

Long recordings: at most `max_points` windows are clustered (an even subsample); every window is then scored
against the centroids, so memory stays bounded. `should_stop()` is checked between pieces of work of ~0.1–0.3 s
(batches of windows, minutes of spectrogram or VAD, refinement rounds) and `on_progress(done_s, total_s)`
reports the speech embedded so far (the bulk of the time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from clipper.asr.base import StopRequested
from clipper.config import Settings
from clipper.models import SpeakerTurn, Transcript
from clipper.speakers.assign import relabel
from clipper.speakers.encoder import HOP, PARTIAL_FRAMES, SAMPLE_RATE, gain_for_rms, load_encoder, mel_frames

FPS = SAMPLE_RATE // HOP  # mel frames per second
_MEL_BLOCK = 60 * FPS  # frames computed at once: a minute of speech (~20 ms)
_VAD_BLOCK_S = 300  # seconds of audio per VAD call (~0.3 s)


@dataclass(frozen=True)
class Tuning:
    """The engine's knobs, measured in bench/diarization.py (the defaults are the best measured)."""

    step_s: float = 0.2  # one window every step_s of speech; the resolution of turn changes
    window_frames: int = PARTIAL_FRAMES
    join_gap_s: float = 0.5  # words closer than this are one stretch of speech
    pad_s: float = 0.1  # speech extends this far around the words (ASR word times are tight)
    threshold: float = 0.70  # cosine similarity at which agglomerative clustering stops merging
    min_cluster_s: float = 3.0  # a speaker talks at least this long, else their windows go to the nearest one
    refine: int = 3  # rounds of: centroids from the re-segmented windows, speakers under min_cluster_s dropped
    switch_penalty: float = 0.2  # Viterbi cost of a speaker change, in cosine-similarity units
    max_points: int = 1500  # windows clustered at most (memory O(n²)); the rest are scored afterwards
    batch: int = 32  # windows per encoder call: a stop takes effect within one batch


TUNING = Tuning()


def speech_regions(transcript: Transcript, duration_s: float, tuning: Tuning = TUNING) -> list[tuple[float, float]]:
    """[start, end) stretches of speech: the words' spans (a segment's span when it has no words), padded,
    joined across pauses shorter than `join_gap_s`, clamped to the audio."""
    spans = []
    for seg in transcript.segments:
        if seg.words:
            spans += [(w.start, max(w.end, w.start)) for w in seg.words]
        else:
            spans.append((seg.start, seg.end))
    spans.sort()
    out: list[list[float]] = []
    for a, b in spans:
        a, b = max(0.0, a - tuning.pad_s), min(duration_s, b + tuning.pad_s)
        if b <= a:
            continue
        if out and a - out[-1][1] < tuning.join_gap_s:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def vad_regions(samples: np.ndarray, should_stop: Callable[[], bool] | None = None) -> list[tuple[float, float]]:
    """Speech by Silero VAD (the ONNX model faster-whisper ships; ~0.001 × audio on 2 cores): it hears speech
    Whisper left out or misplaced (overlaps, back-channels), and no hallucinated words. Run a few minutes at a
    time, so a stop is heard."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=200)
    block = _VAD_BLOCK_S * SAMPLE_RATE
    out = []
    for offset in range(0, len(samples), block):
        _check(should_stop)
        found = get_speech_timestamps(samples[offset:offset + block], options)
        out += [((offset + s["start"]) / SAMPLE_RATE, (offset + s["end"]) / SAMPLE_RATE) for s in found]
    return out


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise StopRequested("speaker diarization stopped on request")


def diarize(
    samples: np.ndarray,
    transcript: Transcript,
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    tuning: Tuning = TUNING,
    regions: list[tuple[float, float]] | None = None,
) -> list[SpeakerTurn]:
    """Speaker turns (S1, S2, ... in order of appearance) of `samples` (16 kHz mono float32).

    `regions` overrides where speech is (the benchmark passes the reference turns to measure the clustering
    alone). Raises `SpeakerModelMissing` without the encoder's weights and `StopRequested` on a stop."""
    encoder = load_encoder()
    duration = len(samples) / SAMPLE_RATE
    if regions is None:
        regions = (vad_regions(samples, should_stop) if settings.speakers_speech == "vad" else
                   speech_regions(transcript, duration, tuning))
    frames = _speech_frames(regions, len(samples))
    if len(frames) == 0:
        return []
    stream, gain = _stream(samples, frames, should_stop)
    stream *= gain**2  # power spectrogram: the volume factor squared
    starts = _window_starts(len(stream), tuning)
    width = min(tuning.window_frames, len(stream))
    total_s = len(stream) / FPS
    embeddings = np.zeros((len(starts), 256), np.float32)
    with threadpool_limits(limits=settings.speakers_threads or None, user_api="blas"):
        for i in range(0, len(starts), tuning.batch):
            _check(should_stop)
            chunk = starts[i:i + tuning.batch]
            embeddings[i:i + len(chunk)] = encoder.embed_mels(np.stack([stream[s:s + width] for s in chunk]))
            if on_progress is not None:
                on_progress(min(total_s, (chunk[-1] + width) / FPS), total_s)
    _check(should_stop)
    centroids = cluster(embeddings, settings, tuning, len(stream))
    labels = resegment(embeddings, starts, width, len(stream), centroids, tuning)
    for _ in range(tuning.refine):
        _check(should_stop)
        centroids = _recentre(embeddings, starts, width, labels, centroids, tuning,
                              keep_all=settings.speakers_count > 0)
        labels = resegment(embeddings, starts, width, len(stream), centroids, tuning)
    return relabel(_turns(frames, labels, tuning, duration))


def _speech_frames(regions: list[tuple[float, float]], n_samples: int) -> np.ndarray:
    """Indices of the mel frames inside the regions, in order, each once."""
    last = 1 + n_samples // HOP
    mask = np.zeros(last, bool)
    for a, b in regions:
        mask[max(0, round(a * FPS)):min(last, round(b * FPS))] = True
    return np.flatnonzero(mask)


def _stream(samples: np.ndarray, frames: np.ndarray,
            should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, float]:
    """The mel rows of `frames` (computed run by run, never the whole file at once) and the volume gain of
    the speech they cover (one gain for the recording, so every voice keeps its relative level)."""
    breaks = np.flatnonzero((np.diff(frames) > 1) | (np.arange(1, len(frames)) % _MEL_BLOCK == 0)) + 1
    runs = np.split(frames, breaks)  # contiguous runs, none longer than a block (bounded STFT memory)
    rows, energy, count = [], 0.0, 0
    for run in runs:
        _check(should_stop)
        a, b = int(run[0]), int(run[-1]) + 1
        rows.append(mel_frames(samples, a, b))
        piece = samples[a * HOP:b * HOP]
        energy += float(np.sum(np.square(piece, dtype=np.float64)))
        count += len(piece)
    return np.concatenate(rows), gain_for_rms(float(np.sqrt(energy / max(count, 1))))


def _step(tuning: Tuning) -> int:
    """Frames between window starts; also the re-segmentation's slot."""
    return max(1, round(tuning.step_s * FPS))


def _window_starts(n: int, tuning: Tuning) -> np.ndarray:
    """Window starts every step over the stream, the last one ending at the stream's end."""
    step = _step(tuning)
    last = max(0, n - tuning.window_frames)
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return np.array(starts)


def cluster(features: np.ndarray, settings: Settings, tuning: Tuning, stream_frames: int) -> np.ndarray:
    """(k, 256) speaker centroids from window features: agglomerative clustering (average linkage, cosine) of
    at most `max_points` windows cut at `threshold`; then the clusters with less than `min_cluster_s` of speech
    merged into their most similar neighbour, and the most alike merged while there are more than
    `speakers_max`. A known `speakers_count` is what the merging stops at (small clusters included)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(features)
    if n == 1:
        return _normed(features.copy())
    pick = np.unique(np.linspace(0, n - 1, min(n, tuning.max_points)).round().astype(int))
    points = features[pick]
    count = settings.speakers_count
    tree = linkage(points, method="average", metric="cosine")
    labels = fcluster(tree, t=1.0 - tuning.threshold, criterion="distance")
    if 0 < count and len(np.unique(labels)) < count:  # a known count the threshold does not reach
        labels = fcluster(tree, t=min(count, len(points)), criterion="maxclust")
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    per_window_s = stream_frames / FPS / len(points)  # so a cluster's size reads in seconds whatever the step
    most = count if count > 0 else max(1, settings.speakers_max)
    while len(groups) > 1:
        sizes = [len(g) * per_window_s for g in groups]
        small = int(np.argmin(sizes))
        if len(groups) <= most and (sizes[small] >= tuning.min_cluster_s or len(groups) == count):
            break
        centroids = _normed(np.stack([points[g].mean(axis=0) for g in groups]))
        sims = centroids @ centroids.T
        np.fill_diagonal(sims, -np.inf)
        if sizes[small] >= tuning.min_cluster_s:  # too many speakers: merge the two most alike
            i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        else:
            i, j = small, int(np.argmax(sims[small]))
        groups[j] = np.concatenate([groups[j], groups[i]])
        del groups[i]
    return _normed(np.stack([points[g].mean(axis=0) for g in groups]))


def _normed(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def resegment(embeddings: np.ndarray, starts: np.ndarray, width: int, n: int, centroids: np.ndarray,
              tuning: Tuning) -> np.ndarray:
    """A speaker index per stream frame: each slot of `step` frames scored by the mean similarity of the windows
    covering it to each centroid, then the best path with a cost per speaker change (Viterbi)."""
    step = _step(tuning)
    slots = -(-n // step)
    sims = embeddings @ centroids.T  # (windows, k)
    score = np.zeros((slots, len(centroids)))
    hits = np.zeros(slots)
    for s, row in zip(starts, sims, strict=True):
        a, b = s // step, -(-(s + width) // step)
        score[a:b] += row
        hits[a:b] += 1
    score /= np.maximum(hits, 1)[:, None]
    path = _viterbi(score, tuning.switch_penalty)
    return np.repeat(path, step)[:n]


def _recentre(embeddings: np.ndarray, starts: np.ndarray, width: int, labels: np.ndarray,
              centroids: np.ndarray, tuning: Tuning, keep_all: bool) -> np.ndarray:
    """Centroids again from the windows as re-segmented (each window to the speaker at its centre), without
    the speakers left with less than `min_cluster_s` of speech (a known count keeps every speaker, and a
    speaker without windows keeps its centroid)."""
    talk = np.bincount(labels, minlength=len(centroids)) / FPS
    own = labels[np.minimum(starts + width // 2, len(labels) - 1)]
    keep = [j for j in range(len(centroids)) if keep_all or (np.any(own == j) and talk[j] >= tuning.min_cluster_s)]
    if not keep:
        keep = [int(np.argmax(talk))]
    return _normed(np.stack([embeddings[own == j].mean(axis=0) if np.any(own == j) else centroids[j]
                             for j in keep]))


def _viterbi(score: np.ndarray, penalty: float) -> np.ndarray:
    slots, k = score.shape
    if k == 1:
        return np.zeros(slots, int)
    back = np.zeros((slots, k), int)
    total = score[0].copy()
    for t in range(1, slots):
        stay = total
        best = int(np.argmax(total))
        switch = total[best] - penalty
        back[t] = np.where(stay >= switch, np.arange(k), best)
        total = np.maximum(stay, switch) + score[t]
    path = np.zeros(slots, int)
    path[-1] = int(np.argmax(total))
    for t in range(slots - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _turns(frames: np.ndarray, labels: np.ndarray, tuning: Tuning, duration_s: float) -> list[SpeakerTurn]:
    """Runs of frames with one label, back in the recording's time (never past its end); a pause shorter than
    `join_gap_s` inside one speaker's talk stays inside the turn."""
    turns: list[SpeakerTurn] = []
    cut = np.flatnonzero((np.diff(frames) > 1) | (np.diff(labels) != 0)) + 1
    for run in np.split(np.arange(len(frames)), cut):
        a, b = frames[run[0]] / FPS, min(duration_s, (frames[run[-1]] + 1) / FPS)
        speaker = f"k{int(labels[run[0]])}"
        if turns and turns[-1].speaker == speaker and a - turns[-1].end < tuning.join_gap_s:
            turns[-1] = SpeakerTurn(start=turns[-1].start, end=round(b, 3), speaker=speaker)
        else:
            turns.append(SpeakerTurn(start=round(a, 3), end=round(b, 3), speaker=speaker))
    return turns
