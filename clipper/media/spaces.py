"""X/Twitter Spaces: the recording of a Space answers 404 for a while after the Space ends.

So a 404 from the media of a Space URL is not final at once: the download asks again with backoff until
`space_not_ready_s` (CLIPPER_SPACE_NOT_READY_S) has passed since the stage's first attempt, and only then
reports `MediaNotFound`. Everything else stays as it was: another host's 404 is final at once, and so is a
malformed Space URL (it never reaches the media: yt-dlp reports it as unsupported, not as a 404).

The rule is a pure function of (URL, error, elapsed time, settings), so it is tested without a network; the
hosts whose `/i/spaces/<id>` URLs are Spaces are a setting (`space_hosts`, default twitter.com, which x.com
canonicalises to), so a local test server can stand in for X without loosening the SSRF guard.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from clipper.config import Settings
from clipper.errors import ClipperError, MediaNotFound
from clipper.media.urls import HOST_ALIASES, canonical_url

SPACE_PATH = re.compile(r"^/i/spaces/[A-Za-z0-9]+/?$")
RETRY_MIN_S = 5.0  # the first wait; then as long as has passed already (a doubling backoff) ...
RETRY_MAX_S = 60.0  # ... up to this, and never past the end of the window


def is_space_url(url: str, settings: Settings) -> bool:
    """An X Space's address (any spelling: x.com, www., tracking parameters) on one of `space_hosts`."""
    try:
        parts = urlsplit(canonical_url(url))
    except (ClipperError, ValueError):
        return False
    hosts = {HOST_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in settings.space_hosts}
    return parts.scheme in ("http", "https") and (parts.hostname or "") in hosts and bool(SPACE_PATH.match(parts.path))


def not_ready_wait(url: str, error: ClipperError, elapsed_s: float, settings: Settings) -> float | None:
    """How long to wait before asking again for the media of `url` after `error`, `elapsed_s` seconds after the
    stage's first try; None: report `error` now."""
    if not isinstance(error, MediaNotFound) or error.http_status != 404 or not is_space_url(url, settings):
        return None
    remaining = settings.space_not_ready_s - elapsed_s
    if remaining <= 0:
        return None
    return min(max(RETRY_MIN_S, elapsed_s), RETRY_MAX_S, remaining)
