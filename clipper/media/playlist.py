"""The items of a batch: a playlist expanded with yt-dlp's flat extraction, or a file of URLs.

`expand_playlist` lists a playlist, channel or podcast feed without resolving any entry (`extract_flat`): one
request for the page or feed, none per item. It passes the same SSRF guard as the download stage (`check_url`
on the URL, every request and redirect through `GuardedYoutubeDL`). A URL that is not a playlist is a list
of one. `parse_url_list` reads a file of URLs: one per line, `#` comments and blank lines skipped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yt_dlp
from yt_dlp.utils import unsmuggle_url

from clipper.config import Settings
from clipper.errors import ClipperError, NoMediaFound, UnsupportedUrl
from clipper.job.batch import BatchEntry, BatchItems
from clipper.media.download import YtdlpLogger
from clipper.media.ssrf import GuardedYoutubeDL
from clipper.media.urls import NETWORK_SCHEMES, canonical_url, check_url, check_url_syntax, redact_credentials
from clipper.media.ytdlp_errors import map_ytdlp_error, short_url


def _options(url: str, settings: Settings) -> dict[str, Any]:
    return {
        "extract_flat": "in_playlist",  # list the entries, resolve none of them
        "noplaylist": False,
        "skip_download": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": YtdlpLogger(url),
        "socket_timeout": settings.download_socket_timeout_s,
        "retries": 0,  # Temporal retries the activity, with backoff
        "extractor_retries": 0,
    }


def item_url(url: str) -> str:
    """An entry's URL as a job would be submitted with it: yt-dlp's smuggled data dropped, canonical if it can
    be made so (otherwise as given: the item's job then fails with the typed error of its download)."""
    url, _ = unsmuggle_url(url.strip())
    try:  # a bare path is left alone: made absolute here, it would name a file of the worker's
        return canonical_url(url) if check_url_syntax(url)[0] else url
    except ClipperError:
        return redact_credentials(url)  # an entry with a password: its job fails with CredentialsInUrl, secret-free


def expand_playlist(url: str, settings: Settings) -> BatchItems:
    """The entries of the playlist at `url` (http/https), in playlist order; a single media URL → itself."""
    scheme, _, _ = check_url_syntax(url)
    if scheme not in NETWORK_SCHEMES:
        raise UnsupportedUrl(f"{short_url(url)}: a playlist must be an http(s) URL; for a list of URLs use a file")
    check_url(url, settings)
    try:
        with GuardedYoutubeDL(_options(url, settings), settings) as ydl:
            info = ydl.extract_info(url, download=False, process=True)
    except yt_dlp.utils.YoutubeDLError as e:
        raise map_ytdlp_error(url, e) from e
    if not info:
        raise NoMediaFound(f"nothing found at {short_url(url)}")
    source = canonical_url(url)
    if info.get("_type") not in ("playlist", "multi_video"):
        title = info.get("title")
        return BatchItems(source=source, title=title, items=[BatchEntry(url=source, title=title)])
    items = []
    for entry in info.get("entries") or []:
        link = (entry or {}).get("url") or (entry or {}).get("webpage_url")
        if link:
            items.append(BatchEntry(url=item_url(link), title=entry.get("title")))
    if not items:
        raise NoMediaFound(f"the playlist at {short_url(url)} has no entries")
    return BatchItems(source=source, title=info.get("title"), items=items)


def parse_url_list(text: str) -> list[str]:
    """A file of URLs: one per line; lines starting with `#` and blank lines are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def batch_id_for(source: str | None = None, urls: list[str] | None = None) -> str:
    """A stable batch id: the same playlist (any spelling) or the same list of URLs maps to the same batch."""
    key = canonical_url(source) if source else "\n".join(urls or [])
    return "batch-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
