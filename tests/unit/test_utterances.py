"""Utterances on real transcripts: split by speaker turns and pauses, by punctuation only when there is some."""

from __future__ import annotations

import pytest

from clipper.text.grounding import tokens
from clipper.text.utterances import PAUSE_S, split_utterances, utterances
from tests.helpers.transcripts import labelled, unpunctuated


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "real-transcripts"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["call", "concat", "allison"])
@pytest.mark.parametrize("bare", [False, True], ids=["as-transcribed", "unpunctuated"])
def test_utterances_cover_the_words_one_speaker_each(work, name, bare) -> None:
    t = labelled(name, work)
    t = unpunctuated(t) if bare else t
    toks = tokens(t)
    units = utterances(t, max_chars=240)
    assert [i for u in units for i in range(u.first, u.last + 1)] == list(range(len(toks)))  # all, in order
    for u in units:
        part = toks[u.first : u.last + 1]
        assert {tok.speaker for tok in part} == {u.speaker}
        assert len(u.text) <= 240 or u.last - u.first < 5
        assert (u.start, u.end) == (part[0].start, max(part[-1].end, part[0].start))
        # no long pause inside an utterance
        assert all(b.start - a.end < PAUSE_S for a, b in zip(part, part[1:]))
    for a, b in zip(units, units[1:]):
        assert b.turn == a.turn + (a.speaker != b.speaker)
    speakers = {u.speaker for u in units}
    assert len(units) >= len({(u.turn) for u in units}) and (None in speakers) == (name == "allison")


@pytest.mark.slow
def test_punctuation_splits_when_present_but_is_not_needed(work) -> None:
    t = labelled("allison", work)
    units = utterances(t)
    bare = utterances(unpunctuated(t))
    ends = sum(u.text.endswith((".", "!", "?")) for u in units)
    assert ends >= 0.8 * len(units)  # sentences where tiny.en wrote them
    assert len(bare) >= 0.4 * len(units)  # pauses alone still find many units (measured: 30 vs 66)
    assert max(len(u.text) for u in bare) <= 240


@pytest.mark.slow
def test_a_run_on_without_pauses_is_cut_at_its_longest_pause(work) -> None:
    t = unpunctuated(labelled("allison", work))
    toks = [tok.__class__(tok.text, tok.norm, tok.start, tok.start + 0.01, tok.segment, tok.speaker)
            for tok in tokens(t)]  # same words, with no pause over 0.8 s anywhere
    units = split_utterances(toks, max_chars=120, pause_s=99.0)
    assert len(units) > len(toks) * 5 / 120
    assert all(len(u.text) <= 120 for u in units)
