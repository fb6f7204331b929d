"""The follow domain: durations, feeds read as streams, item identity, which items a check starts."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

import pytest

from clipper.config import Settings
from clipper.errors import FeedEmpty, InvalidRequest, NotAFeed, UnsupportedUrl
from clipper.follow.every import EVERY_DEFAULT_S, format_every, parse_every, phase_s
from clipper.follow.feed import FeedListing, PlaylistListing, list_source
from clipper.follow.model import (
    FeedItem,
    FollowRecord,
    FollowRequest,
    follow_id_for,
    item_id,
    job_id_for_item,
    plan_check,
    remember,
)
from tests.helpers.feeds import atom, audio_page, rss
from tests.helpers.httpserver import HTML_NO_MEDIA, serve

LOCAL = Settings(allow_private_addresses=True, download_socket_timeout_s=5)


def chunks(data: bytes, size: int = 7):
    """A feed as a stream of small pieces: the parser must not need the whole document at once."""
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("15m", 900), ("1h30m", 5400), ("45", 45), ("2d", 172800)])
def test_every(text, seconds):
    assert parse_every(text) == seconds
    assert parse_every(format_every(seconds)) == seconds


@pytest.mark.parametrize("text", ["5s", "9", "8d", "soon", "", "10x", "m"])
def test_every_refused(text):
    with pytest.raises(InvalidRequest, match="--every"):
        parse_every(text)


def test_every_default_is_a_quarter_hour():
    assert format_every(EVERY_DEFAULT_S) == "15m"


def test_follows_check_at_phases_spread_over_their_interval():
    """Not all at the epoch-aligned instant: 200 follows every 30 s fall on most of the 30 seconds, stably."""
    from collections import Counter

    ids = [follow_id_for(f"https://example.com/feed{n}.xml") for n in range(200)]
    phases = Counter(phase_s(i, 30) for i in ids)
    assert set(phases) <= set(range(30)) and len(phases) >= 25 and max(phases.values()) <= 20
    assert [phase_s(i, 30) for i in ids[:5]] == [phase_s(i, 30) for i in ids[:5]]
    assert all(0 <= phase_s(i, 7 * 86400) < 7 * 86400 for i in ids)


def test_rss_items_in_order_with_enclosure_guid_and_date():
    listing = FeedListing(chunks(rss([("ep2", "https://cdn.example.com/2.mp3"), ("ep1", "https://cdn.example.com/1.mp3")])),
                          "the feed")
    items = list(listing.items())
    assert [(i.guid, i.url) for i in items] == [("ep2", "https://cdn.example.com/2.mp3"),
                                               ("ep1", "https://cdn.example.com/1.mp3")]
    assert items[0].published == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert listing.title == "A show"


def test_atom_entries_use_the_alternate_link():
    listing = FeedListing([atom([("yt:video:a", "https://www.youtube.com/watch?v=a")])], "the feed")
    (item,) = list(listing.items())
    assert item.guid == "yt:video:a" and item.url == "https://youtube.com/watch?v=a"
    assert item.published is not None and listing.title == "A channel"


def test_an_xml_document_that_is_no_feed_is_refused():
    with pytest.raises(NotAFeed, match="not an RSS or Atom feed"):
        list(FeedListing([b"<?xml version='1.0'?><config><a/></config>"], "x").items())


def test_a_feed_that_stops_parsing_is_refused():
    data = rss([("a", "https://e.com/a.mp3")])
    with pytest.raises(NotAFeed, match="stopped parsing"):
        list(FeedListing([data[: len(data) // 2] + b"<<<"], "x").items())


def test_a_feed_without_items_is_empty():
    with pytest.raises(FeedEmpty):
        list(FeedListing([rss([])], "x").items())


def test_duplicate_guids_start_one_job():
    items = [FeedItem(url="https://e.com/a.mp3", guid="same"), FeedItem(url="https://e.com/b.mp3", guid="same"),
             FeedItem(url="https://e.com/c.mp3", guid="other")]
    request = FollowRequest(follow_id="follow-1", source="https://e.com/feed")
    plan = plan_check(request, FollowRecord(follow_id="follow-1", source=request.source), items)
    assert plan.listed == 3 and [i.url for _, i in plan.start] == ["https://e.com/a.mp3", "https://e.com/c.mp3"]


def test_identity_is_the_guid_else_the_url_and_the_job_id_is_stable():
    a = item_id("follow-1", FeedItem(url="https://e.com/a.mp3", guid="g").identity)
    assert a == item_id("follow-1", FeedItem(url="https://e.com/moved.mp3", guid="g").identity)
    assert a != item_id("follow-2", "g")
    assert item_id("follow-1", FeedItem(url="https://e.com/a.mp3").identity) == item_id("follow-1", "https://e.com/a.mp3")
    assert job_id_for_item(a).startswith("clip-") and len(job_id_for_item(a)) == 21


def test_seen_items_are_not_started_again_and_the_cap_leaves_the_rest_for_later():
    request = FollowRequest(follow_id="f", source="s", max_starts=2)
    record = FollowRecord(follow_id="f", source="s")
    items = [FeedItem(url=f"https://e.com/{n}.mp3", guid=str(n)) for n in range(5)]
    first = plan_check(request, record, items)
    assert len(first.start) == 2 and first.left == 3
    remember(record, [k for k, _ in first.start])
    second = plan_check(request, record, items)
    assert [i.guid for _, i in second.start] == ["2", "3"] and second.left == 1


def test_new_only_and_since_skip_the_back_catalogue():
    items = [FeedItem(url="https://e.com/new.mp3", guid="new", published=datetime(2026, 12, 5, tzinfo=UTC)),
             FeedItem(url="https://e.com/old.mp3", guid="old", published=datetime(2026, 1, 1, tzinfo=UTC)),
             FeedItem(url="https://e.com/undated.mp3", guid="undated")]
    record = FollowRecord(follow_id="f", source="s")
    plan = plan_check(FollowRequest(follow_id="f", source="s", new_only=True), record, items)
    assert not plan.start and len(plan.skip) == 3
    since = FollowRequest(follow_id="f", source="s", since=datetime(2026, 6, 1))
    plan = plan_check(since, record, items)
    assert [i.guid for _, i in plan.start] == ["new"] and len(plan.skip) == 2
    record.first_done = True  # later checks: an undated new item is new
    assert [i.guid for _, i in plan_check(since, record, items).start] == ["new", "undated"]


@pytest.mark.slow
def test_a_huge_feed_is_read_in_bounded_memory():
    """10,000 items: the parser holds one item at a time; memory grows with the ids kept, not the document."""
    items = [(f"guid-{n}", f"https://cdn.example.com/episodes/{n}.mp3") for n in range(10_000)]
    data = rss(items)
    assert len(data) > 2_000_000
    tracemalloc.start()
    try:
        request = FollowRequest(follow_id="f", source="s")  # a check starts at most 100; the rest wait
        plan = plan_check(request, FollowRecord(follow_id="f", source="s"),
                          FeedListing(chunks(data, 64 * 1024), "x").items())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.listed == 10_000 and len(plan.start) == 100 and plan.left == 9_900
    print(f"peak {peak / 1e6:.1f} MB for a {len(data) / 1e6:.1f} MB feed")
    assert peak < len(data) // 2  # the ids seen and 100 items: a parsed tree of the feed would be many times it


def test_list_source_reads_a_served_feed():
    with serve({"/feed.xml": (rss([("a", "https://e.com/a.mp3")]), "application/rss+xml")}) as server:
        listing = list_source(server.url("/feed.xml"), LOCAL)
        assert [i.guid for i in listing.items()] == ["a"]


@pytest.mark.slow
def test_a_plain_html_page_is_not_a_feed():
    with serve({"/page.html": (HTML_NO_MEDIA, "text/html")}) as server, pytest.raises(NotAFeed):
        list(list_source(server.url("/page.html"), LOCAL).items())


@pytest.mark.slow  # yt-dlp's extractors load (about a second)
def test_a_page_yt_dlp_lists_as_a_playlist_is_listed_by_yt_dlp():
    """The path YouTube channels/playlists and X accounts take, offline: a page that is no feed goes to yt-dlp's
    flat listing (here its generic extractor, on a page of `<audio>` elements), one item per entry, by URL."""
    with serve({"/show.html": (b"", "text/html")}) as server:
        urls = [server.url("/a.mp3"), server.url("/b.mp3")]
        server.files["/show.html"] = (audio_page(urls, "A page"), "text/html")
        listing = list_source(server.url("/show.html"), LOCAL)
        assert isinstance(listing, PlaylistListing) and listing.title == "A page"
        items = list(listing.items())
        assert [i.url for i in items] == urls and [i.identity for i in items] == urls
        assert [i.title for i in items] == ["A page (1)", "A page (2)"]


def test_only_http_sources():
    with pytest.raises(UnsupportedUrl):
        list_source("ftp://example.com/feed.xml", LOCAL)
