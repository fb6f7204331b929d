"""Clock text (clipper/clock.py): points in the media truncated, lengths rounded, each in its one format. The
pages' JavaScript copy of `duration` is checked against these in tests/unit/test_page_script.py."""

from __future__ import annotations

from clipper.clock import clock, clock_range, clock_tenths, duration


def test_a_point_in_the_media_is_truncated_and_shows_hours_from_an_hour_on():
    assert clock(0) == clock(None) == clock(-3) == "00:00"
    assert clock(65.9) == "01:05"  # truncated: a jump to it lands before the words, not after
    assert clock(3599.99) == "59:59"
    assert clock(3600) == "1:00:00" and clock(3725.4) == "1:02:05"
    assert clock(36125) == "10:02:05"


def test_hours_always_or_never():
    assert clock(59.9, hours=True) == "0:00:59" and clock(7300, hours=True) == "2:01:40"  # long chapters line up
    assert clock(7199.9, hours=False) == "119:59"  # the LLM's numbered lines: minutes keep counting
    assert clock(5, hours=False) == "00:05"


def test_a_span_and_tenths():
    assert clock_range(10.5, 15.9) == "00:10–00:15"
    assert clock_range(3599, 3725) == "59:59–1:02:05"
    assert clock_tenths(0) == "00:00.0" and clock_tenths(4.32) == "00:04.3" and clock_tenths(-1) == "00:00.0"
    assert clock_tenths(59.96) == "01:00.0"  # rounded to a tenth, carried into the minutes
    assert clock_tenths(3725.44) == "62:05.4"  # minutes count past 59


def test_a_length_is_rounded_with_unpadded_minutes():
    assert duration(None) == "" and duration(None, missing="–") == "–"
    assert duration(0) == "0:00" and duration(-5) == "0:00"
    assert duration(59.6) == "1:00"  # rounded, unlike a point in the media
    assert duration(125) == "2:05" and duration(3599.4) == "59:59" and duration(3599.5) == "1:00:00"
    assert duration(3723) == "1:02:03"
    assert duration(62.5) == "1:02" and duration(63.5) == "1:04"  # half to even, as Python's round
    assert duration(54, hours=True) == "0:00:54" and duration(4 * 3600, hours=True) == "4:00:00"  # limits' messages
