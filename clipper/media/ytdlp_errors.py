"""yt-dlp failures translated into the typed errors of `clipper.errors`, with messages a user can act on.

yt-dlp wraps everything in `DownloadError`; the HTTP status sits in `exc_info[1]` (an `HTTPError` with
`.status`), sometimes one level deeper in `ExtractorError.cause`, and always in the text ("HTTP Error 404").
"""

from __future__ import annotations

import re
from typing import Any

from clipper.errors import (
    STORAGE_FULL_WORDING,
    AccessDenied,
    ClipperError,
    DownloadFailed,
    InvalidMedia,
    MediaNotFound,
    MediaTooLarge,
    NoMediaFound,
    TooManyRedirects,
    storage_full,
)

_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_PREFIXES = re.compile(r"^(ERROR:\s*)?(\[[^\]]+\]\s*)?([\w.-]+:\s+)?(?=\S)")
_TRANSIENT = (  # wording of connection drops, short reads and timeouts across Python and yt-dlp
    "timed out",
    "timeout",
    "connection reset",
    "connection refused",
    "connection aborted",
    "remote end closed",
    "incompleteread",
    "incomplete read",
    "got error",
    "bytes, expected",
    "temporary failure",
    "network is unreachable",
    "ssl",
)
_NO_MEDIA = ("unsupported url", "no video formats found", "requested format is not available", "no media found")
_DENIED = ("private video", "sign in to", "login required", "members-only", "not available in your country")


def short_url(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."


def clean_message(message: str, limit: int = 300) -> str:
    """yt-dlp's message without `ERROR: [generic] id:` prefixes, `(caused by ...)` and bug-report boilerplate."""
    text = _PREFIXES.sub("", message.strip())
    text = re.split(r"\s*\(caused by |;\s*please report this issue", text)[0].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _causes(error: BaseException) -> list[Any]:
    """The exceptions behind a yt-dlp error: DownloadError.exc_info, RequestError.cause, __cause__, __context__."""
    found: list[Any] = []
    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        exc_info = getattr(current, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        stack += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return found


def find_clipper_error(error: BaseException) -> ClipperError | None:
    """A typed error of ours raised inside yt-dlp (e.g. by the SSRF guard on a redirect), if there is one."""
    return next((e for e in _causes(error) if isinstance(e, ClipperError)), None)


def _http_status(error: BaseException) -> int | None:
    """The HTTP status behind a yt-dlp error: DownloadError.exc_info -> ExtractorError.cause -> HTTPError."""
    for current in _causes(error):
        status = getattr(current, "status", None)
        if isinstance(status, int) and 100 <= status <= 599:
            return status
    match = _HTTP_STATUS.search(str(error))
    return int(match.group(1)) if match else None


def map_ytdlp_error(url: str, error: BaseException) -> ClipperError:
    """Translate a yt-dlp exception into the typed error a user sees."""
    own = find_clipper_error(error)
    if own is not None:
        return own
    where, reason = short_url(url), clean_message(str(error))
    lowered = str(error).lower()
    if any(wording in lowered for wording in STORAGE_FULL_WORDING):  # "unable to write data: [Errno 28] ..."
        return storage_full(f"the download of {where}", reason)
    status = _http_status(error)
    if status in (404, 410):
        return MediaNotFound(f"{where}: the server says this media does not exist (HTTP {status})", status)
    if status in (401, 403, 451):
        return AccessDenied(
            f"{where}: the server refused access (HTTP {status}); the media may be private, need a login "
            "or be blocked for this network"
        )
    if "redirect loop detected" in lowered:  # urllib's own limit; ssrf.py's, lower, normally comes first
        return TooManyRedirects(f"{where}: too many redirects, or a redirect loop ({reason})")
    if status == 429:
        return DownloadFailed(f"{where}: the server asked us to slow down (HTTP 429)")
    if status is not None and status >= 500:
        return DownloadFailed(f"{where}: the server had a problem (HTTP {status})")
    if "did not get any data blocks" in lowered:  # 200 with an empty body (a short body is another error)
        return InvalidMedia(f"{where}: the server sent an empty file (0 bytes); there is nothing to transcribe")
    if "larger than max-filesize" in lowered:
        return MediaTooLarge(f"{where} is larger than the configured limit (CLIPPER_MAX_DOWNLOAD_BYTES)")
    if any(fragment in lowered for fragment in _NO_MEDIA):
        return NoMediaFound(f"{where}: no audio or video found at this address ({reason})")
    if any(fragment in lowered for fragment in _DENIED):
        return AccessDenied(f"{where}: the media is not accessible ({reason})")
    if status is not None and 400 <= status < 500:
        return MediaNotFound(f"{where}: the server rejected the request (HTTP {status})", status)
    if any(fragment in lowered for fragment in _TRANSIENT):
        return DownloadFailed(f"{where}: network problem ({reason})")
    # Unknown failures are retried: a transient problem is likelier than a permanent one we failed to name.
    return DownloadFailed(f"{where}: download failed ({reason})")
