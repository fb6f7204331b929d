"""What a followed source lists: an RSS/Atom feed read as a stream, or any playlist yt-dlp can list.

A feed is read with the standard library's pull parser as its bytes arrive, each `<item>`/`<entry>` turned into a
`FeedItem` and dropped from the tree at once, so a 10,000-item feed costs the memory of one item (plus the ids
the caller keeps), not of the document. The parser resolves no external entity, and expat bounds entity
expansion (no "billion laughs"). A podcast's media URL is its enclosure; without one, the item's link.

Anything that does not start like XML (a YouTube channel or playlist, an X account's Spaces, …) is listed by
yt-dlp's flat extraction, as `submit-batch` does (`clipper/media/playlist.py`); a page that lists no media, or a
single media rather than a list, is `NotAFeed`; a feed or playlist without an item is `FeedEmpty`. Every request,
redirects included, passes the SSRF guard (`GuardedYoutubeDL`).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

import yt_dlp

from clipper.config import Settings
from clipper.errors import (
    ClipperError,
    CredentialsInUrl,
    FeedEmpty,
    ForbiddenAddress,
    LocalPathNotAllowed,
    NoMediaFound,
    NotAFeed,
    UnsupportedUrl,
)
from clipper.follow.model import FeedItem
from clipper.media.download import YtdlpLogger
from clipper.media.playlist import expand_playlist, item_url
from clipper.media.ssrf import GuardedYoutubeDL
from clipper.media.urls import (
    NETWORK_SCHEMES,
    canonical_url,
    check_url,
    check_url_syntax,
)
from clipper.media.ytdlp_errors import map_ytdlp_error, short_url

CHUNK = 64 * 1024
FEED_MAX_BYTES = 256 * 1024 * 1024  # a feed longer than this is not a feed
FEED_ROOTS = ("rss", "RDF", "feed")
ITEM_TAGS = ("item", "entry")
SNIFF_BYTES = 2048


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: Element, *names: str) -> str | None:
    for child in elem:
        if _local(child.tag) in names and (child.text or "").strip():
            return child.text.strip()
    return None


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())  # Atom: RFC 3339
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text.strip())  # RSS: RFC 822
        except (TypeError, ValueError):
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _media_url(elem: Element) -> str | None:
    """The enclosure's URL (a podcast's audio), else the item's link (RSS text, Atom href)."""
    link = None
    for child in elem:
        name, attrs = _local(child.tag), child.attrib
        if name == "enclosure" and attrs.get("url"):
            return attrs["url"].strip()
        if name == "link" and attrs.get("rel") == "enclosure" and attrs.get("href"):
            return attrs["href"].strip()
        if name == "content" and attrs.get("url") and link is None:  # media:content
            link = attrs["url"].strip()
        if name == "link" and link is None:
            if attrs.get("href") and attrs.get("rel", "alternate") == "alternate":
                link = attrs["href"].strip()
            elif (child.text or "").strip():
                link = child.text.strip()
    return link


def _item(elem: Element) -> FeedItem | None:
    url = _media_url(elem)
    if not url:
        return None
    return FeedItem(url=item_url(url), guid=_child_text(elem, "guid", "id"), title=_child_text(elem, "title"),
                    published=_date(_child_text(elem, "pubDate", "published", "updated", "date")))


class FeedListing:
    """A feed's items as they are parsed (`items()`, one pass), and its title once the parser has met it."""

    def __init__(self, chunks: Iterable[bytes], where: str) -> None:
        self.chunks, self.where, self.title = chunks, where, None

    def items(self) -> Iterator[FeedItem]:
        parser, stack, count, size = XMLPullParser(events=("start", "end")), [], 0, 0
        for chunk in self.chunks:
            size += len(chunk)
            if size > FEED_MAX_BYTES:
                raise NotAFeed(f"{self.where}: more than {FEED_MAX_BYTES >> 20} MiB: not a feed clipper reads")
            try:
                parser.feed(chunk)
                for event, elem in parser.read_events():
                    if event == "start":
                        if not stack and _local(elem.tag) not in FEED_ROOTS:
                            raise NotAFeed(f"{self.where}: an XML document, but not an RSS or Atom feed "
                                           f"(<{_local(elem.tag)}>)")
                        stack.append(elem)
                        continue
                    stack.pop()
                    name = _local(elem.tag)
                    if name == "title" and self.title is None and stack and _local(stack[-1].tag) in ("channel", "feed") \
                            and elem.text:
                        self.title = elem.text.strip()  # the feed's (channel's) own title, before any item's
                    if name in ITEM_TAGS:
                        item = _item(elem)
                        if stack:
                            stack[-1].remove(elem)  # done with it: keep the tree small
                        if item is not None:
                            count += 1
                            yield item
            except ParseError as err:
                raise NotAFeed(f"{self.where}: the feed stopped parsing ({err})") from None
        try:
            parser.close()
        except ParseError as err:
            raise NotAFeed(f"{self.where}: the feed stopped parsing ({err})") from None
        if count == 0:
            raise FeedEmpty(f"{self.where}: the feed lists no item with a media URL yet")


class PlaylistListing:
    """A playlist listed by yt-dlp (flat, one request for the page): its entries, identified by their URL."""

    def __init__(self, url: str, settings: Settings) -> None:
        try:
            self.batch = expand_playlist(url, settings)
        except NoMediaFound as err:
            raise (FeedEmpty if "no entries" in err.message else NotAFeed)(
                f"{short_url(url)}: lists no media (not a feed, playlist or channel clipper can follow)") from None
        self.title = self.batch.title
        single = len(self.batch.items) == 1 and self.batch.items[0].url == canonical_url(url)
        if single:
            raise NotAFeed(f"{short_url(url)} is one media, not a feed or playlist: use clipper submit for it")

    def items(self) -> Iterator[FeedItem]:
        for entry in self.batch.items:
            yield FeedItem(url=entry.url, title=entry.title)


def _looks_like_xml(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")) and b"<html" not in text[:SNIFF_BYTES]


def list_source(url: str, settings: Settings) -> FeedListing | PlaylistListing:
    """The listing of a followed source (http/https only; SSRF-guarded)."""
    scheme, _, _ = check_url_syntax(url)
    if scheme not in NETWORK_SCHEMES:
        raise UnsupportedUrl(f"{short_url(url)}: a followed source must be an http(s) URL")
    check_url(url, settings)
    params = {"quiet": True, "no_warnings": True, "logger": YtdlpLogger(url),
              "socket_timeout": settings.download_socket_timeout_s, "retries": 0}
    # Only a request here: yt-dlp's extractors are loaded by the playlist listing, when it is one.
    ydl = GuardedYoutubeDL(params, settings, auto_init=False)
    try:
        response = ydl.urlopen(url)
        head = response.read(SNIFF_BYTES)
    except (yt_dlp.utils.YoutubeDLError, yt_dlp.networking.exceptions.RequestError) as err:
        ydl.close()
        raise map_ytdlp_error(url, err) from err
    if _looks_like_xml(head):  # the connection stays open while the caller reads the items
        return FeedListing(_chain(ydl, response, head, url), short_url(url))
    response.close()
    ydl.close()
    return PlaylistListing(url, settings)


def _chain(ydl: GuardedYoutubeDL, response, head: bytes, url: str) -> Iterator[bytes]:
    try:
        yield head
        while chunk := response.read(CHUNK):
            yield chunk
    except (yt_dlp.networking.exceptions.RequestError, OSError) as err:
        raise map_ytdlp_error(url, err) from err
    finally:
        response.close()
        ydl.close()


def passes_with_time(err: ClipperError) -> bool:
    """Whether a source's error may pass with time (a 404 may be a feed moving; retried within the check) or never
    will (not a feed, an address or URL the guard refuses: the check gives up at once)."""
    return not isinstance(err, (NotAFeed, UnsupportedUrl, ForbiddenAddress, CredentialsInUrl, LocalPathNotAllowed))
