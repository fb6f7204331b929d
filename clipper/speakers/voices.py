"""Where the voices change: whether the people heard just after a moment were heard just before it.

The speakers stage's labels carry this only after clustering, and clustering may fold the voices of two
recordings into one label (one threshold for the whole recording), so a join between two parts whose voices
resemble each other leaves no handover in the labels. The embeddings clustering starts from keep it: the
segmentation model finds up to three local speakers in each 10 s window and CAM++ embeds each one's speech
(clipper/speakers/neural.py). `VoiceProfile` keeps those embeddings with when (the centre of each one's speech)
and how much speech each stands for; `change(t)` asks of the voices within `window_s` after `t` how far the
nearest voice within `window_s` before it lies (1 − cosine), and the same backwards, and takes the smaller of
the two: a conversation whose people take turns scores low (each voice is heard on both sides), a new set of
people high, a voice that carries on across the moment pulls it down. It needs no words, no threshold of the
clustering and no labels.

Kept per job as `voices.npz` by the speakers stage (~150 kB an hour, compressed: 192 float16 per local speaker and
10 s window) and read by the summary stage for the chapters.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MIN_SPEECH_S = 5.0  # a side needs this much speech (embedded) to say who was heard


@dataclass
class VoiceProfile:
    times: np.ndarray  # (n,) seconds: the centre of each embedded stretch of speech, ascending
    seconds: np.ndarray  # (n,) how much speech each embedding stands for
    vectors: np.ndarray  # (n, dims) unit length

    def __post_init__(self) -> None:
        order = np.argsort(self.times, kind="stable")
        self.times = np.asarray(self.times, np.float64)[order]
        self.seconds = np.asarray(self.seconds, np.float64)[order]
        vectors = np.asarray(self.vectors, np.float32)[order]
        self.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def change(self, t: float, window_s: float) -> float:
        """0-1: how new the voices after `t` are to the `window_s` before it and the other way round (the
        smaller); 0 where a side has under `MIN_SPEECH_S` of embedded speech (no evidence)."""
        a, b, c = np.searchsorted(self.times, [t - window_s, t, t + window_s])
        before, after = slice(a, b), slice(b, c)
        s1, s2 = self.seconds[before], self.seconds[after]
        if s1.sum() < MIN_SPEECH_S or s2.sum() < MIN_SPEECH_S:
            return 0.0
        far = 1.0 - self.vectors[after] @ self.vectors[before].T  # (after, before)
        new = float(np.dot(s2, far.min(axis=1)) / s2.sum())
        gone = float(np.dot(s1, far.min(axis=0)) / s1.sum())
        return max(0.0, min(new, gone))

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, times=self.times.astype(np.float32), seconds=self.seconds.astype(np.float32),
                            vectors=self.vectors.astype(np.float16))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VoiceProfile:
        with np.load(io.BytesIO(data), allow_pickle=False) as found:
            return cls(found["times"], found["seconds"], found["vectors"])
