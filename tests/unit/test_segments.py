"""Re-cutting long segments (batched decoding) into subtitle-sized ones from their word timestamps."""

from __future__ import annotations

from clipper.asr.segments import split_segment
from clipper.job.outputs import Segment, Word


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(word=w, start=a, end=b) for w, a, b in spec]


def test_cuts_after_sentences_and_pauses_keeping_every_word_in_order():
    ws = words(("Hello", 0.0, 0.4), ("there", 0.5, 0.9), ("friends.", 1.0, 1.6), ("This", 1.8, 2.2),
               ("is", 2.3, 2.6), ("long", 2.7, 3.4), ("and", 4.2, 4.4), ("then", 4.5, 4.8), ("ends", 4.9, 5.4))
    pieces = split_segment(Segment(id=3, start=0.0, end=5.4, text="x", words=ws))
    assert [p.text for p in pieces] == ["Hello there friends.", "This is long", "and then ends"]
    assert [w for p in pieces for w in p.words] == ws
    assert all(p.start == p.words[0].start and p.end == p.words[-1].end for p in pieces)


def test_no_piece_is_longer_than_the_limit_and_short_pieces_are_not_cut():
    ws = [Word(word=f"w{i}", start=i * 0.5, end=i * 0.5 + 0.4) for i in range(60)]  # 30 s, no pauses
    pieces = split_segment(Segment(id=0, start=0.0, end=30.0, text="x", words=ws), max_s=10.0)
    assert len(pieces) == 3 and all(p.end - p.start <= 10.0 for p in pieces)
    short = words(("Yes.", 0.0, 0.3), ("No.", 0.4, 0.7), ("Maybe.", 0.8, 1.2))  # under min_s: one piece
    assert len(split_segment(Segment(id=0, start=0.0, end=1.2, text="x", words=short))) == 1


def test_segment_without_words_is_kept():
    seg = Segment(id=0, start=1.0, end=2.0, text="[music]")
    assert split_segment(seg) == [seg]
