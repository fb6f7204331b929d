"""RSS and Atom feeds made up for the follow tests: items with guids, enclosures and dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

BASE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def rss(items: list[tuple[str, str]] | list[tuple[str, str, datetime]], title: str = "A show") -> bytes:
    """`items`: (guid, media URL[, published]) newest first, as podcast feeds list them."""
    parts = []
    for n, item in enumerate(items):
        guid, url = item[0], item[1]
        when = item[2] if len(item) > 2 else BASE - timedelta(days=n)  # type: ignore[misc]
        parts.append(f"<item><title>Episode {guid}</title><guid isPermaLink=\"false\">{guid}</guid>"
                     f"<pubDate>{format_datetime(when)}</pubDate>"
                     f"<enclosure url=\"{url}\" type=\"audio/mpeg\" length=\"1\"/></item>")
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>{title}</title>"
            f"<link>https://example.com/</link>{''.join(parts)}</channel></rss>").encode()


def atom(entries: list[tuple[str, str]], title: str = "A channel") -> bytes:
    parts = "".join(f"<entry><id>{i}</id><title>Video {i}</title><updated>2026-12-0{1 + n % 9}T10:00:00Z</updated>"
                    f"<link rel=\"alternate\" href=\"{url}\"/></entry>" for n, (i, url) in enumerate(entries))
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<title>{title}</title>{parts}</feed>").encode()


def audio_page(urls: list[str], title: str = "Episodes") -> bytes:
    """An HTML page with one `<audio>` per URL: not a feed, but yt-dlp's generic extractor lists it as a playlist
    (one entry per element, titled "<title> (n)"), so a follow of it takes the yt-dlp listing path offline."""
    tags = "".join(f'<audio src="{url}"></audio>' for url in urls)
    return f"<!doctype html><html><head><title>{title}</title></head><body>{tags}</body></html>".encode()
