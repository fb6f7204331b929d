"""URL canonicalisation, stable job ids, and the safety guard run before any download.

The canonical form decides the job id, so `x.com/...?utm_source=...` and `twitter.com/...` name the same job
and a second submission finds the first one's work instead of starting over.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from clipper.config import Settings
from clipper.errors import (
    CredentialsInUrl, DownloadFailed, ForbiddenAddress, LocalPathNotAllowed, MediaNotFound, UnsupportedUrl,
)

MAX_URL_LENGTH = 4096
# "http//host" or "https//host": a web address with its colon lost, which would otherwise pass as a local path.
_MISSING_COLON = re.compile(r"^(https?)//+(.*)$", re.IGNORECASE)
NETWORK_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

HOST_ALIASES = {
    "x.com": "twitter.com",
    "www.x.com": "twitter.com",
    "mobile.x.com": "twitter.com",
    "www.twitter.com": "twitter.com",
    "mobile.twitter.com": "twitter.com",
    "www.youtube.com": "youtube.com",
    "m.youtube.com": "youtube.com",
}

# Query parameters that track the click, not the media; dropping them makes shared links collapse to one job.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "igshid", "si", "s", "t", "ref", "ref_src", "feature", "mc_cid", "mc_eid"}
)


# The user-info part of any URL in a text (`scheme://user:password@`), greedy up to the last `@` before the path
# so that an unescaped `@` inside a password is covered too; `scheme//` (colon lost) counts as well.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*:?//)[^/?#\s]*@")
REDACTED_USERINFO = "***"


def redact_credentials(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by `***`: the one rule for showing or
    logging a URL (error messages, logs, a job's status). Text without such a URL comes back unchanged."""
    return _USERINFO.sub(rf"\1{REDACTED_USERINFO}@", text) if "@" in text else text


def _short(url: str, limit: int = 200) -> str:
    url = redact_credentials(url)
    return url if len(url) <= limit else url[: limit - 3] + "..."


def _scheme(url: str) -> str:
    """The URL's scheme, lower-cased; "" for a plain path. Raises ValueError for malformed input."""
    return urlsplit(url).scheme.lower()


def is_local(url: str) -> bool:
    """True for a local path (absolute, relative or `~`) or a `file:` URL."""
    url = url.strip()
    if not url:
        return False
    try:
        return _scheme(url) in ("", "file")
    except ValueError:
        return False


def local_path(url: str) -> Path:
    """The absolute, resolved path a local path or `file:` URL points at."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        # file:///a/b, file:/a/b and file://localhost/a/b all mean /a/b; the path is percent-encoded.
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedUrl(f"file URL {_short(url)} names another host ({parts.netloc}); only local files work")
        raw = unquote(parts.path)
    else:
        raw = url
    return Path(raw).expanduser().resolve()


def _canonical_query(query: str) -> str:
    kept = [
        (key, value)
        for key, value in parse_qsl(query, keep_blank_values=True)
        if not key.lower().startswith("utm_") and key.lower() not in TRACKING_PARAMS
    ]
    return urlencode(sorted(kept))


def canonical_url(url: str) -> str:
    """One spelling per piece of media: lower-case scheme/host, no default port, known aliases folded,
    tracking parameters and fragment dropped, query sorted. Local paths become `file://<absolute path>`."""
    url = url.strip()
    if not url:
        raise UnsupportedUrl("the URL is empty; submit an http(s) link to audio or video")
    if is_local(url):
        return local_path(url).as_uri()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsupportedUrl(f"{_short(url)} is not a valid URL: {e}") from e
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    host = HOST_ALIASES.get(host, host)
    path, query = parts.path or "/", parts.query

    if host == "youtu.be" and path.strip("/"):
        host, query = "youtube.com", urlencode([("v", path.strip("/").split("/")[0])]) + "&" + query
        path = "/watch"

    netloc = f"[{host}]" if ":" in host else host  # IPv6 literals keep their brackets
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, quote(path, safe="/%:@!$&'()*+,;=~-._"), _canonical_query(query), ""))


def job_id_for(url: str) -> str:
    """A stable job id: the same media submitted twice (in any spelling) maps to the same workflow."""
    return "clip-" + hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:16]


def _is_forbidden_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global  # also catches shared (CGNAT) and documentation ranges
    )


def _resolve(host: str, port: int, url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise DownloadFailed(f"could not resolve the host {host} of {_short(url)} (DNS): {e.strerror}") from e
    except UnicodeError as e:
        raise UnsupportedUrl(f"{_short(url)} has an invalid host name {host!r}") from e
    addresses = []
    for info in infos:
        # sockaddr[0] may carry an IPv6 zone ("fe80::1%eth0"); ip_address accepts that form.
        addresses.append(ipaddress.ip_address(info[4][0]))
    return addresses


_ALLOW_PRIVATE_HINT = "set CLIPPER_ALLOW_PRIVATE_ADDRESSES=true or add the host to CLIPPER_ALLOWED_HOSTS to allow"


def _check_host(url: str, host: str, port: int) -> None:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if _is_forbidden_ip(literal):
            raise ForbiddenAddress(
                f"{_short(url)} points at the non-public address {literal}; {_ALLOW_PRIVATE_HINT}"
            )
        return
    # Names (and odd spellings like 2130706433 or 127.1) are resolved: every address must be public.
    # The downloader resolves again later, so DNS rebinding is not fully excluded; this is a guard, not a
    # sandbox. Run workers without access to sensitive networks as well.
    for address in _resolve(host, port, url):
        if _is_forbidden_ip(address):
            raise ForbiddenAddress(
                f"{_short(url)}: the host {host} resolves to the non-public address {address}; {_ALLOW_PRIVATE_HINT}"
            )


def refuse_credentials(url: str, netloc: str | None = None) -> None:
    """A URL with a user name or password (`https://user:pass@host/...`) is refused: a job's URL is shown and stored
    everywhere, so it must carry no secret. The message shows the URL with its credentials replaced by `***`."""
    if netloc is None:
        try:
            netloc = urlsplit(url.strip()).netloc
        except ValueError:
            return  # not a URL: check_url_syntax says why
    if "@" in netloc:
        raise CredentialsInUrl(
            f"{_short(url.strip())} carries a user name or password; clipper keeps no secrets in a job's URL (it "
            "is shown in the job's status, history and reports). Submit a link that needs no login (a public or "
            "pre-signed URL), or download the media yourself and submit the file"
        )


def check_url_syntax(url: str) -> tuple[str, str | None, int | None]:
    """The checks that need no policy and no network: what a client can refuse before submitting.

    Returns (scheme, host, port). Local paths pass here; whether they are allowed is the worker's call.
    """
    if not isinstance(url, str) or not url.strip():
        raise UnsupportedUrl("the URL is empty; submit an http(s) link to audio or video")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsupportedUrl(f"the URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsupportedUrl(f"{_short(url)!r} contains spaces or control characters; is it a URL?")
    if missing := _MISSING_COLON.match(url):
        scheme, rest = missing.group(1).lower(), missing.group(2)
        raise UnsupportedUrl(
            f"{_short(url)} is not a valid URL: the colon after {scheme!r} is missing "
            f"(did you mean {_short(f'{scheme}://{rest}')}?)"
        )
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise UnsupportedUrl(f"{_short(url)} is not a valid URL: {e}") from e
    refuse_credentials(url, parts.netloc)
    if scheme not in ("", "file", *NETWORK_SCHEMES):
        raise UnsupportedUrl(f"the scheme {scheme!r} of {_short(url)} is not supported; use http or https")
    if scheme in NETWORK_SCHEMES and not host:
        raise UnsupportedUrl(f"{_short(url)} has no host name")
    return scheme, host, port


def check_submittable(url: str) -> tuple[str, str | None, int | None]:
    """What a client refuses at submit: a bad URL, or a bare word that is neither a URL nor a file here (a
    mistyped link would otherwise become a job that fails in its worker)."""
    scheme, host, port = check_url_syntax(url)
    if scheme == "" and not Path(url.strip()).expanduser().exists():
        raise UnsupportedUrl(f"{_short(url.strip())!r} is neither a URL nor a file on this machine; submit an "
                             "http(s) link to audio or video (or the path of a local file)")
    return scheme, host, port


def check_url(url: str, settings: Settings) -> None:
    """Refuse, with a typed error saying what to do, any URL we must not fetch. Run before every download."""
    scheme, host, port = check_url_syntax(url)
    url = url.strip()

    if scheme in ("", "file"):
        if scheme == "" and not settings.allow_local_files:
            check_submittable(url)  # a bare word that is no file here is not a URL at all: UnsupportedUrl
        if not settings.allow_local_files:
            raise LocalPathNotAllowed(
                f"{_short(url)} is a local file (add https:// if it is a web address); "
                "set CLIPPER_ALLOW_LOCAL_FILES=true to allow local files"
            )
        path = local_path(url)
        if not path.exists():
            raise MediaNotFound(f"no file at {path}")
        if not path.is_file():
            raise UnsupportedUrl(f"{path} is not a regular file")
        return

    assert host is not None  # check_url_syntax guarantees it for network schemes
    if settings.allow_private_addresses:
        return
    allowed = {h.strip().lower().rstrip(".") for h in settings.allowed_hosts}
    if host.rstrip(".") in allowed:
        return
    _check_host(url, host, port or DEFAULT_PORTS[scheme])
