"""Speech to text with the real offline model (Whisper tiny.en) and a real local OpenAI-compatible server."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import re
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imageio_ffmpeg
import jiwer
import pytest

from clipper.asr import get_engine, transcript_to_text, wav_duration
from clipper.asr.base import StopRequested, cut_wav, decode_wav16k
from clipper.asr.noop import NOOP_TEXT
from clipper.asr.resume import MIN_TAIL_S, transcribe_resumable
from clipper.config import Settings
from clipper.errors import EngineNotConfigured, TranscriptionFailed
from clipper.job.outputs import Segment, Transcript
from clipper.store.files import JsonlLog

DATA = Path(__file__).parent.parent / "data"
MAX_WER = 0.15
PLANTED_KEY = "sk-test-PLANTED-key-0123456789abcdef"


def settings(**overrides) -> Settings:
    # Explicit values, so CLIPPER_* variables in the environment cannot change what the tests exercise.
    values = dict(
        asr_engine="local",
        asr_model_path=None,
        asr_beam_size=5,
        asr_cpu_threads=0,
        asr_compute_type="int8",
        asr_language="en",
        asr_api_base_url=None,
        asr_api_key=None,
        asr_api_model="whisper-1",
    )
    values.update(overrides)
    return Settings(**values)


def normalise(text: str) -> str:
    text = text.lower().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def wer(hypothesis: str) -> float:
    return jiwer.wer(normalise((DATA / "sample.txt").read_text()), normalise(hypothesis))


# --- fixtures ---


@pytest.fixture(scope="session")
def sample_wav(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("asr") / "sample.wav"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-i", str(DATA / "sample.mp3"),
         "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(wav)],
        check=True,
        timeout=60,
    )
    return wav


@pytest.fixture(scope="session")
def local_engine():
    engine = get_engine(settings(), "local")
    engine.load()  # cached per process: every test below reuses this model
    return engine


@pytest.fixture(scope="session")
def full_run(local_engine, sample_wav) -> tuple[list[Segment], float]:
    started = time.perf_counter()
    segments = list(local_engine.transcribe(sample_wav, language="en"))
    elapsed = time.perf_counter() - started
    print(f"\nlocal transcription of {wav_duration(sample_wav):.1f} s took {elapsed:.2f} s")
    return segments, elapsed


# --- audio helpers ---


@pytest.mark.slow
def test_decode_wav16k_reads_from_offset(sample_wav):
    whole = decode_wav16k(sample_wav)
    tail = decode_wav16k(sample_wav, 10.0)
    assert whole.dtype.name == "float32" and tail.dtype.name == "float32"
    assert len(whole) == pytest.approx(wav_duration(sample_wav) * 16000, abs=1)
    assert len(whole) - len(tail) == 160000
    assert (whole[160000:] == tail).all()
    assert float(abs(whole).max()) <= 1.0


# --- local engine ---


@pytest.mark.slow
def test_local_engine_accuracy(full_run):
    segments, elapsed = full_run
    text = " ".join(s.text for s in segments)
    score = wer(text)
    print(f"WER {score:.3f}")
    assert score <= MAX_WER, text


@pytest.mark.slow
def test_local_engine_times_are_absolute_and_ordered(full_run, sample_wav):
    segments, _ = full_run
    duration = wav_duration(sample_wav)
    assert len(segments) >= 4
    previous_start, previous_word = -1.0, -1.0
    for seg in segments:
        assert isinstance(seg.start, float) and type(seg.start) is float
        assert 0.0 <= seg.start < seg.end <= duration
        assert seg.start > previous_start
        previous_start = seg.start
        assert seg.text == seg.text.strip() and seg.text
        assert seg.words, "word timestamps are on"
        for w in seg.words:
            assert type(w.start) is float and type(w.end) is float
            assert 0.0 <= w.start <= w.end <= duration
            assert seg.start - 0.01 <= w.start and w.end <= seg.end + 0.01
            assert w.start >= previous_word
            previous_word = w.start
            assert w.word == w.word.strip() and w.word
            assert w.start == round(w.start, 3)


@pytest.mark.slow
def test_local_engine_offsets_times_when_starting_late(local_engine, sample_wav, full_run):
    segments, _ = full_run
    start = segments[-3].end
    tail = list(local_engine.transcribe(sample_wav, start_s=start, language="en"))
    assert tail and all(s.start >= start for s in tail)
    assert all(w.start >= start for s in tail for w in s.words)
    # Whisper decodes a fresh window from the seam, so the words may differ a little from the long run's
    # (tiny.en is not stable on short tails), but the stitched transcript must stay accurate.
    assert wer(" ".join(s.text for s in segments[:-2] + tail)) <= MAX_WER


# --- resumable driver ---


@pytest.mark.slow
def test_resume_skips_saved_segments(local_engine, sample_wav, full_run, tmp_path):
    segments, _ = full_run
    partial = JsonlLog(tmp_path / "partial.jsonl")
    for i, seg in enumerate(segments[:3]):
        partial.append(seg.model_copy(update={"id": i}).model_dump())
    progress: list[tuple[float, float | None]] = []
    duration = wav_duration(sample_wav)

    transcript, resumed_from = transcribe_resumable(
        local_engine, sample_wav, partial, duration_s=duration, language="en",
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert resumed_from == segments[2].end > 0
    assert [s.model_dump() for s in transcript.segments[:3]] == [
        s.model_copy(update={"id": i}).model_dump() for i, s in enumerate(segments[:3])
    ]
    new = transcript.segments[3:]
    assert new and all(s.start >= resumed_from for s in new), "audio before the resume point was not redone"
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert wer(transcript.text) <= MAX_WER, transcript.text
    assert (transcript.engine, transcript.model, transcript.language) == ("local", "whisper-tiny.en", "en")
    assert transcript.duration_s == duration
    # Every segment was saved as it came, and progress was reported after each one.
    assert [Segment.model_validate(r) for r in partial.read()] == transcript.segments
    assert progress[0] == (resumed_from, duration)
    assert [p[0] for p in progress[1:]] == [s.end for s in new]


@pytest.mark.slow
def test_should_stop_keeps_what_was_produced(local_engine, sample_wav, full_run, tmp_path):
    segments, _ = full_run
    partial = JsonlLog(tmp_path / "partial.jsonl")
    with pytest.raises(StopRequested):
        transcribe_resumable(
            local_engine, sample_wav, partial, duration_s=None, language="en",
            should_stop=lambda: len(partial.read()) >= 2,
        )
    saved = [Segment.model_validate(r) for r in partial.read()]
    assert [s.text for s in saved] == [s.text for s in segments[:2]]
    assert [s.id for s in saved] == [0, 1]


@pytest.mark.slow
def test_no_engine_run_on_a_tiny_tail(sample_wav, tmp_path):
    class MustNotRun:
        name, model = "must-not-run", None

        def transcribe(self, *args, **kwargs) -> Iterator[Segment]:
            raise AssertionError("the engine ran on a tail shorter than MIN_TAIL_S")

    duration = wav_duration(sample_wav)
    partial = JsonlLog(tmp_path / "partial.jsonl")
    partial.append(Segment(id=0, start=0.0, end=round(duration - MIN_TAIL_S / 2, 3), text="everything").model_dump())
    transcript, resumed_from = transcribe_resumable(MustNotRun(), sample_wav, partial, duration_s=duration)
    assert resumed_from == round(duration - MIN_TAIL_S / 2, 3)
    assert [s.text for s in transcript.segments] == ["everything"]


@pytest.mark.slow
def test_torn_partial_line_is_dropped_and_repaired(sample_wav, tmp_path):
    partial = JsonlLog(tmp_path / "partial.jsonl")
    partial.append(Segment(id=7, start=0.0, end=4.0, text="one").model_dump())
    partial.append(Segment(id=9, start=4.0, end=10.0, text="two").model_dump())
    with open(partial.path, "a") as f:
        f.write('{"id": 2, "start": 10.0, "en')  # kill -9 in the middle of a write
    engine = get_engine(settings(), "noop")
    transcript, resumed_from = transcribe_resumable(engine, sample_wav, partial, duration_s=None)
    assert resumed_from == 10.0
    assert [(s.id, s.text) for s in transcript.segments] == [(0, "one"), (1, "two"), (2, NOOP_TEXT)]
    assert transcript.segments[-1].end == pytest.approx(wav_duration(sample_wav), abs=1e-3)
    assert transcript.duration_s == pytest.approx(wav_duration(sample_wav), abs=1e-3)
    # The new segment landed on a line of its own, not glued to the torn one.
    assert [Segment.model_validate(r) for r in partial.read()] == transcript.segments


def test_transcript_to_text():
    t = Transcript(
        engine="x",
        segments=[
            Segment(id=0, start=0.0, end=1.0, text=" Hello. "),
            Segment(id=1, start=59.96, end=61.0, text="World"),
            Segment(id=2, start=3725.44, end=3726.0, text="Late"),
        ],
    )
    assert transcript_to_text(t) == "[00:00.0] Hello.\n[01:00.0] World\n[62:05.4] Late\n"


# --- engine selection and configuration errors ---


def test_unknown_engine():
    with pytest.raises(EngineNotConfigured, match="unknown ASR engine 'whisperx'; choose local, openai or noop"):
        get_engine(settings(), "whisperx")


def test_engine_from_settings():
    assert get_engine(settings(asr_engine="noop")).name == "noop"
    assert get_engine(settings(asr_engine="LOCAL")).name == "local"


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage"])
def test_bad_model_path(tmp_path, kind):
    path = tmp_path / "model"
    if kind != "missing":
        path.mkdir()
    if kind == "garbage":
        (path / "model.bin").write_bytes(b"not a model")
        (path / "tokenizer.json").write_text("{}")
    with pytest.raises(EngineNotConfigured) as info:
        engine = get_engine(settings(asr_model_path=path), "local")
        engine.load()
    assert str(path) in info.value.message


def test_openai_engine_needs_url_and_key():
    with pytest.raises(EngineNotConfigured, match="CLIPPER_ASR_API_BASE_URL"):
        get_engine(settings(asr_api_key=PLANTED_KEY), "openai")
    with pytest.raises(EngineNotConfigured, match="CLIPPER_ASR_API_KEY"):
        get_engine(settings(asr_api_base_url="http://127.0.0.1:9/v1"), "openai")


# --- OpenAI-compatible API against a real local HTTP server ---


class FakeTranscriptionServer(ThreadingHTTPServer):
    """POST /<mode>/v1/audio/transcriptions. Mode `ok` answers verbose_json sized to the uploaded WAV;
    a numeric mode answers that HTTP status with an error body that echoes the caller's key."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeTranscriptionServer

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self._body()
        mode = self.path.strip("/").split("/")[0]
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        fields: dict[str, list] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields.setdefault(name, []).append(part.get_content())
        self.server.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "fields": fields}
        )
        if not self.path.endswith("/v1/audio/transcriptions"):
            return self._reply(404, {"error": {"message": "no such route"}})
        if mode != "ok":
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            return self._reply(
                int(mode), {"error": {"message": f"Incorrect API key provided: {key}", "type": "error"}}
            )
        with wave.open(io.BytesIO(fields["file"][0]), "rb") as w:
            duration = w.getnframes() / w.getframerate()
        half = round(duration / 2, 2)
        self._reply(200, {
            "task": "transcribe",
            "language": "english",
            "duration": duration,
            "text": "First half. Second half.",
            "segments": [
                {"id": 0, "seek": 0, "start": 0.0, "end": half, "text": " First half.", "tokens": [],
                 "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0},
                {"id": 1, "seek": 0, "start": half, "end": duration, "text": " Second half.", "tokens": [],
                 "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0},
            ],
            # Top-level words, out of order, one starting exactly on the segment boundary.
            "words": [
                {"word": " Second", "start": half, "end": half + 0.5},
                {"word": " First", "start": 0.1, "end": 0.5},
                {"word": " half.", "start": 0.6, "end": 1.0},
                {"word": " half.", "start": half + 0.6, "end": half + 1.0},
            ],
        })


@pytest.fixture(scope="module")
def api_server() -> Iterator[FakeTranscriptionServer]:
    server = FakeTranscriptionServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def openai_engine(server: FakeTranscriptionServer, mode: str = "ok"):
    return get_engine(settings(asr_api_base_url=server.url(mode), asr_api_key=PLANTED_KEY), "openai")


@pytest.mark.slow
def test_openai_engine_transcribes(api_server, sample_wav):
    engine = openai_engine(api_server)
    segments = list(engine.transcribe(sample_wav, language="en"))
    duration = wav_duration(sample_wav)
    half = round(duration / 2, 2)
    assert [(s.start, s.end, s.text) for s in segments] == [
        (0.0, half, "First half."), (half, round(duration, 3), "Second half.")
    ]
    assert [[w.word for w in s.words] for s in segments] == [["First", "half."], ["Second", "half."]]
    request = api_server.requests[-1]
    assert request["auth"] == f"Bearer {PLANTED_KEY}"
    assert request["fields"]["model"] == ["whisper-1"]
    assert request["fields"]["response_format"] == ["verbose_json"]
    assert request["fields"]["language"] == ["en"]
    assert sorted(request["fields"]["timestamp_granularities[]"]) == ["segment", "word"]
    assert engine.detected_language == "english"


@pytest.mark.slow
def test_openai_engine_resume_uploads_only_the_rest(api_server, sample_wav, tmp_path):
    engine = openai_engine(api_server)
    partial = JsonlLog(tmp_path / "partial.jsonl")
    partial.append(Segment(id=0, start=0.0, end=20.0, text="Already done.").model_dump())
    transcript, resumed_from = transcribe_resumable(engine, sample_wav, partial, duration_s=None, language="en")
    duration = wav_duration(sample_wav)
    assert resumed_from == 20.0
    with wave.open(io.BytesIO(api_server.requests[-1]["fields"]["file"][0]), "rb") as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(duration - 20.0, abs=1e-3)
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    mid = round(20.0 + round((duration - 20.0) / 2, 2), 3)
    assert [(s.id, s.start, s.text) for s in transcript.segments] == [
        (0, 0.0, "Already done."), (1, 20.0, "First half."), (2, mid, "Second half.")
    ]
    assert transcript.segments[1].words[0].start == pytest.approx(20.1)
    assert transcript.engine == "openai" and transcript.model == "whisper-1"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "error", "hint"),
    [
        (401, EngineNotConfigured, "CLIPPER_ASR_API_KEY"),
        (403, EngineNotConfigured, "CLIPPER_ASR_API_KEY"),
        (404, EngineNotConfigured, "CLIPPER_ASR_API_MODEL"),
        (400, EngineNotConfigured, "rejected"),
        (429, TranscriptionFailed, "429"),
        (500, TranscriptionFailed, "500"),
        (503, TranscriptionFailed, "503"),
    ],
)
def test_openai_engine_errors(api_server, sample_wav, status, error, hint):
    engine = openai_engine(api_server, str(status))
    before = len(api_server.requests)
    with pytest.raises(error) as info:
        list(engine.transcribe(sample_wav))
    assert hint in info.value.message
    assert PLANTED_KEY not in info.value.message and PLANTED_KEY not in str(info.value)
    assert info.value.non_retryable is (error is EngineNotConfigured)
    assert len(api_server.requests) == before + 1, "the SDK must not retry on its own"


@pytest.mark.slow
def test_openai_engine_unreachable(sample_wav):
    engine = get_engine(settings(asr_api_base_url="http://127.0.0.1:9/v1", asr_api_key=PLANTED_KEY), "openai")
    with pytest.raises(TranscriptionFailed) as info:
        list(engine.transcribe(sample_wav))
    assert PLANTED_KEY not in info.value.message


@pytest.mark.slow
def test_cut_wav(sample_wav, tmp_path):
    out = tmp_path / "rest.wav"
    length = cut_wav(sample_wav, out, 50.0)
    assert length == pytest.approx(wav_duration(sample_wav) - 50.0, abs=1e-3)
    assert wav_duration(out) == pytest.approx(length, abs=1e-4)
    assert (decode_wav16k(out) == decode_wav16k(sample_wav, 50.0)).all()
