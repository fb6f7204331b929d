"""Speakers end to end on a real conversation (the two-person phone call): the real dev server, yt-dlp over
HTTP, ffmpeg, Whisper and the speaker encoder; then naming the speakers of the finished job from the CLI."""

from __future__ import annotations

import asyncio
import re

import webvtt

from clipper.job.outputs import AudiogramIndex, QuoteSet, SpeakerSet, Transcript
from clipper.job.status import JobState, StageState
from clipper.speakers.voices import VoiceProfile
from clipper.store.local import ArtifactStore
from tests.helpers import run
from tests.helpers import conversations
from tests.helpers.httpserver import serve
from tests.helpers.jobs import assert_manifest_matches, steering
from tests.helpers.processes import cli

LINE = re.compile(r"^\[\d\d:\d\d\] (S\d+|Diane|Sheila): \S")


def test_a_real_call_gets_speakers_and_people_can_name_them(settings):
    call = conversations.audio("call").read_bytes()

    async def body():
        with serve({"/call.mp3": (call, "audio/mpeg")}) as media:
            async with steering(settings) as clipper:
                job = (await clipper.submit(media.url("/call.mp3"))).job_id
                result = await clipper.result(job)
                before = AudiogramIndex.model_validate_json(
                    ArtifactStore(settings.storage_dir).path(job, "audiograms.json").read_bytes())
                videos = {a.name: ArtifactStore(settings.storage_dir).read_manifest(job).artifacts[a.name].sha256
                          for a in before.audiograms}
                listed = await cli(settings, "speakers", job)
                named = await cli(settings, "speakers", job, "S1=Diane", "S2=Sheila")
                refused = await cli(settings, "speakers", job, "S7=Carl")
                namings: list[str] = []
                for _ in range(50):  # the server's list lags its starts a little
                    namings = [w.id async for w in clipper.client.list_workflows("WorkflowType = 'NameSpeakers'")
                               if w.id.startswith(f"{job}/names-")]
                    if namings:
                        break
                    await asyncio.sleep(0.1)
                return job, result, listed, named, refused, namings, before, videos

    job, result, listed, named, refused, namings, before, videos = run(body())
    assert len(namings) == 1, namings  # the refused naming started no workflow
    assert result.state == JobState.done and result.status.stage("speakers").state == StageState.done
    store = ArtifactStore(settings.storage_dir)
    asr = Transcript.model_validate_json(store.path(job, "asr.json").read_bytes())
    transcript = Transcript.model_validate_json(store.path(job, "transcript.json").read_bytes())
    assert all(s.speaker is None for s in asr.segments)  # what speech-to-text wrote stays as it was
    assert transcript.text.split() == asr.text.split()  # labelling splits segments, loses no word
    assert all(s.speaker and all(w.speaker == s.speaker for w in s.words) for s in transcript.segments)
    assert len({s.speaker for s in transcript.segments}) >= 2, "a two-person call labelled as one voice"
    # The voices heard, kept for the chapters (read by the summary stage): an embedding per local speaker and
    # window, placed within the call.
    heard = VoiceProfile.from_bytes(store.path(job, "voices.npz").read_bytes())
    assert len(heard.times) >= 4 and 0 <= heard.times.min() and heard.times.max() <= transcript.duration_s + 1
    assert store.read_manifest(job).artifacts["voices.npz"].stage == "speakers"
    assert result.artifacts["voices.npz"].sha256 == store.read_manifest(job).artifacts["voices.npz"].sha256

    assert listed.code == 0 and re.search(r"^S1\t", listed.out, re.M) and re.search(r"^S2\t", listed.out, re.M)
    assert named.code == 0, named.err
    assert refused.one_line_error() == "error InvalidRequest: this job has no speaker S7; its speakers: " + \
        ", ".join(s.label for s in SpeakerSet.model_validate_json(store.path(job, "speakers.json").read_bytes()).speakers)

    # The outputs that show speakers now show the names; every artifact still matches its sha256.
    speakers = SpeakerSet.model_validate_json(store.path(job, "speakers.json").read_bytes())
    assert speakers.names() == {"S1": "Diane", "S2": "Sheila"}
    assert sum(s.talk_time_s for s in speakers.speakers) > 10
    text = store.path(job, "transcript.txt").read_text().splitlines()
    assert text and all(LINE.match(line) for line in text), text[:3]
    assert any("Diane:" in line for line in text) and any("Sheila:" in line for line in text)
    voices = {c.voice for c in webvtt.from_string(store.path(job, "transcript.vtt").read_text()).captions}
    assert {"Diane", "Sheila"} <= voices
    assert "Diane:" in store.path(job, "transcript.srt").read_text()
    report = store.path(job, "report.md").read_text()
    assert "## Speakers" in report and "Diane (S1)" in report and "Sheila (S2)" in report
    quotes = QuoteSet.model_validate_json(store.path(job, "quotes.json").read_bytes())
    assert all(q.speaker in {"S1", "S2"} for q in quotes.quotes)
    # The audiograms showed who speaks (two voices: their labels) and are drawn again with the names; the
    # videos as they were are kept as a version.
    assert before.audiograms and {a.speaker for a in before.audiograms} <= {"S1", "S2"}, before
    after = AudiogramIndex.model_validate_json(store.path(job, "audiograms.json").read_bytes())
    assert {a.speaker for a in after.audiograms} <= {"Diane", "Sheila"} and None not in {a.speaker for a in after.audiograms}
    manifest = store.read_manifest(job).artifacts
    assert all(manifest[name].sha256 != sha for name, sha in videos.items()), "audiograms not redrawn"
    kept = [n for n in manifest if n.startswith("versions/") and "/audiograms/" in n]
    assert len(kept) == len(videos), kept
    assert_manifest_matches(store, job)
