"""The SSRF guard on every request yt-dlp makes, redirects included.

`check_url` vets the URL a user submitted, but yt-dlp then makes requests of its own: the page, the media
URLs an extractor found in it, HLS/DASH fragments, and every redirect any of them answers with. A public URL
that answers `302 Location: http://169.254.169.254/...` would otherwise reach the cloud metadata service.

yt-dlp sends every request through its `RequestDirector`, built by `YoutubeDL.build_request_director`. We
build it with one handler only, `GuardedUrllibRH`: yt-dlp's own urllib handler with `check_url` run on the
URL of every request it is given and on every redirect target before following it (urllib follows at most
10 redirects). A refusal is raised as `GuardRefused`, a yt-dlp `RequestError`, so yt-dlp lets it through
to us; `ytdlp_errors.find_clipper_error` digs the typed error out again. Using only this handler also keeps
yt-dlp from picking an unguarded `requests` or `curl_cffi` handler, should those packages be installed.

The same redirect hook bounds redirects: more than `MAX_REDIRECTS` hops, or a loop, is `TooManyRedirects` at
once (urllib's own limit would end as an anonymous HTTP error that looks transient and is retried). And when
the download has a `TransferWatch`, every connection's socket is counted and can be shut down by it
(`transfer.py`: stalls, trickles, stop requests).

Limits: the guard checks names when a request is made and the socket resolves them again (DNS rebinding is
not fully excluded), and media fetched by an external program (ffmpeg for RTMP, say) is not seen here; the
downloader is told to use its native HLS/DASH code, which goes through this handler. Run workers without
access to sensitive networks as well.
"""

from __future__ import annotations

import os
import ssl
import threading
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import yt_dlp
from yt_dlp.networking._urllib import HTTPHandler, RedirectHandler, UrllibRH
from yt_dlp.networking.exceptions import RequestError

from clipper.config import Settings
from clipper.errors import ClipperError, TooManyRedirects
from clipper.media.transfer import TransferWatch, WatchedHTTPOpen
from clipper.media.urls import check_url
from clipper.media.ytdlp_errors import short_url

UrlCheck = Callable[[str], None]

# Hops one request may follow: urllib's own limit, and more than any real media link needs (CDNs use 1-3).
MAX_REDIRECTS = 10
# The same address again once is not a loop: a site may redirect to itself after setting a cookie.
MAX_REVISITS = 1

# Schemes that never touch the network; yt-dlp uses data: URLs internally (e.g. inline manifests).
_OFFLINE_SCHEMES = ("data:",)


class GuardRefused(RequestError):
    """A request (or a redirect) refused by the guard; `error` is the typed error to report."""

    def __init__(self, error: ClipperError) -> None:
        super().__init__(error.message, cause=error)
        self.error = error


def _vet(check: UrlCheck, url: str, redirected_from: str | None = None) -> None:
    if url.lower().startswith(_OFFLINE_SCHEMES):
        return
    try:
        check(url)
        return
    except ClipperError as err:
        refused = err
    if redirected_from is not None:
        refused = type(refused)(f"{short_url(redirected_from)} redirects to a refused address: {refused.message}")
    raise GuardRefused(refused)


class _GuardedRedirectHandler(RedirectHandler):
    """yt-dlp's redirect handler, vetting the target before following. Runs before the stock one."""

    handler_order = RedirectHandler.handler_order - 100  # lower runs first; the stock handler never sees it

    def __init__(self, check: UrlCheck) -> None:
        super().__init__()
        self.check = check

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        _vet(self.check, newurl, redirected_from=req.full_url)
        chain = [*(getattr(req, "clipper_chain", None) or [req.full_url]), newurl]
        _check_redirects(chain)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        new.clipper_chain = chain
        return new


def _check_redirects(chain: list[str]) -> None:
    """`chain`: the address asked for, then every redirect target so far, the newest last."""
    if chain.count(chain[-1]) > 1 + MAX_REVISITS:
        loop = chain[chain.index(chain[-1]):]
        shown = " -> ".join(short_url(u, 80) for u in loop[: loop.index(chain[-1], 1) + 1])
        raise GuardRefused(TooManyRedirects(
            f"{short_url(chain[0])} redirects in a loop ({shown}); the site may want cookies or a login clipper "
            "does not have: open it in a browser and submit the address the media finally plays from"))
    if len(chain) - 1 > MAX_REDIRECTS:
        raise GuardRefused(TooManyRedirects(
            f"{short_url(chain[0])} redirects more than {MAX_REDIRECTS} times (last to {short_url(chain[-2], 120)}); "
            "a media link needs a few at most: open it in a browser and submit the address the media finally "
            "plays from"))


_SSL_CONTEXTS: dict[tuple, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


class GuardedUrllibRH(UrllibRH):
    """yt-dlp's urllib request handler with the URL check on every request and every redirect hop."""

    RH_NAME = "guarded-urllib"

    def __init__(self, *, url_check: UrlCheck, watch: TransferWatch | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url_check = url_check
        self.watch = watch

    def _create_instance(self, proxies, cookiejar, legacy_ssl_support=None):  # noqa: ANN001, ANN202
        opener: urllib.request.OpenerDirector = super()._create_instance(proxies, cookiejar, legacy_ssl_support)
        opener.add_handler(_GuardedRedirectHandler(self.url_check))
        if self.watch is not None:
            stock = next(h for h in opener.handlers if isinstance(h, HTTPHandler))
            opener.add_handler(WatchedHTTPOpen(stock, self.watch))
        return opener

    def _make_sslcontext(self, legacy_ssl_support=None):  # noqa: ANN001, ANN202 - yt-dlp's signature
        # yt-dlp builds a context per YoutubeDL and loads the whole CA bundle into it: ~40 ms of CPU each time,
        # for every listing and download, http ones too. One context per set of options serves the process (a
        # set-up SSLContext is safe to share between threads); a CA bundle changed on disk needs a restart.
        legacy = legacy_ssl_support if legacy_ssl_support is not None else self.legacy_ssl_support
        key = (self.verify, bool(legacy), self.prefer_system_certs, tuple(sorted(self._client_cert.items())),
               os.environ.get("SSLKEYLOGFILE"))
        with _SSL_LOCK:
            if key not in _SSL_CONTEXTS:
                _SSL_CONTEXTS[key] = super()._make_sslcontext(legacy_ssl_support)
            return _SSL_CONTEXTS[key]

    def _send(self, request):  # noqa: ANN001, ANN202
        _vet(self.url_check, request.url)
        return super()._send(request)


class GuardedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every HTTP request, redirects included, passes `check_url` under `settings`; with a
    `watch`, whose every connection counts for it and can be ended by it. `auto_init=False` skips loading
    yt-dlp's ~1,800 extractors (~110 ms of CPU): enough for `urlopen`, not for `extract_info`."""

    def __init__(self, params: dict[str, Any], settings: Settings, watch: TransferWatch | None = None,
                 auto_init: bool = True) -> None:
        self._watch = watch
        passed: set[tuple[str, str | None, int | None]] = set()

        def url_check(url: str) -> None:
            # A verdict depends only on scheme, host and port; an HLS stream makes thousands of requests to
            # one host, so a host that passed is not resolved again for every fragment of this download.
            try:
                parts = urlsplit(url)
                key = (parts.scheme.lower(), parts.hostname, parts.port)
            except ValueError:
                key = None
            if key is not None and key in passed:
                return
            check_url(url, settings)
            if key is not None:
                passed.add(key)

        self._url_check: UrlCheck = url_check
        super().__init__(params, auto_init=auto_init)

    def build_request_director(self, handlers, preferences=None):  # noqa: ANN001, ANN201
        # Whatever handlers yt-dlp would pick (requests, curl_cffi, ...), use ours only, carrying the check.
        def guarded(**kwargs: Any) -> GuardedUrllibRH:
            return GuardedUrllibRH(url_check=self._url_check, watch=self._watch, **kwargs)

        return super().build_request_director([guarded], preferences)

