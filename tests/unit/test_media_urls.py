"""URL canonicalisation, job ids and the pre-download guard (real DNS for `localhost`, no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper.config import Settings
from clipper.errors import (
    CredentialsInUrl,
    DownloadFailed,
    ForbiddenAddress,
    LocalPathNotAllowed,
    MediaNotFound,
    UnsupportedUrl,
)
from clipper.media.urls import (
    canonical_url, check_submittable, check_url, check_url_syntax, is_local, job_id_for, local_path, redact_credentials,
)

SAMPLE = Path(__file__).parent.parent / "data" / "sample.mp3"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.com/user/status/123", "https://twitter.com/user/status/123"),
        ("https://www.x.com/user/status/123?s=20&t=abc", "https://twitter.com/user/status/123"),
        ("https://mobile.twitter.com/user/status/123", "https://twitter.com/user/status/123"),
        ("https://youtu.be/dQw4w9WgXcQ?si=xyz&t=42", "https://youtube.com/watch?v=dQw4w9WgXcQ"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", "https://youtube.com/watch?v=dQw4w9WgXcQ"),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ#t=10", "https://youtube.com/watch?v=dQw4w9WgXcQ"),
        (
            "  HTTPS://Example.COM:443/a/b.mp3?utm_source=x&utm_medium=y&b=2&a=1&fbclid=z  ",
            "https://example.com/a/b.mp3?a=1&b=2",
        ),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://[::1]:443/x", "https://[::1]/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "my clip.mp3"
    expected = target.resolve().as_uri()
    assert expected.startswith("file:///")
    assert canonical_url("my clip.mp3") == expected
    assert canonical_url(str(target)) == expected
    assert canonical_url(expected) == expected
    assert canonical_url("file:" + str(target)) == expected
    assert local_path(expected) == target.resolve()
    assert canonical_url("~/x.mp3") == (Path.home() / "x.mp3").resolve().as_uri()


def test_is_local() -> None:
    assert is_local("/tmp/a.mp3")
    assert is_local("relative/a.mp3")
    assert is_local("~/a.mp3")
    assert is_local("file:///tmp/a.mp3")
    assert not is_local("https://example.com/a.mp3")
    assert not is_local("ftp://example.com/a.mp3")
    assert not is_local("")


def test_job_id_is_stable_across_spellings() -> None:
    a = job_id_for("https://x.com/user/status/1?utm_source=share")
    b = job_id_for("https://twitter.com/user/status/1")
    c = job_id_for("https://youtu.be/abc")
    assert a == b == job_id_for("https://twitter.com/user/status/1")
    assert a != c == job_id_for("https://www.youtube.com/watch?v=abc&si=1")
    assert a.startswith("clip-") and len(a) == len("clip-") + 16


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://example.com/a.mp3", "ftp"),
        ("javascript:alert(1)", "javascript"),
        ("data:audio/mpeg;base64,AAAA", "data"),
        ("gopher://example.com/", "gopher"),
    ],
)
def test_refuses_other_schemes(url: str, scheme: str) -> None:
    with pytest.raises(UnsupportedUrl, match=scheme):
        check_url(url, Settings())


@pytest.mark.parametrize("url", ["", "   ", "http://", "http://[::1", "http://exa mple.com/"])
def test_refuses_empty_and_malformed(url: str) -> None:
    with pytest.raises(UnsupportedUrl):
        check_url(url, Settings())


@pytest.mark.parametrize(("url", "meant"), [("http//nohost", "http://nohost"), ("HTTPS//x.com/a", "https://x.com/a")])
def test_missing_colon_is_a_malformed_url_not_a_local_path(url: str, meant: str) -> None:
    for settings in (Settings(), Settings(allow_local_files=True)):
        with pytest.raises(UnsupportedUrl, match=f"colon .* is missing \\(did you mean {meant}\\?\\)"):
            check_url(url, settings)


def test_refuses_very_long_url() -> None:
    with pytest.raises(UnsupportedUrl, match="4096"):
        check_url("https://example.com/" + "a" * 10_000, Settings())


def test_local_files_refused_by_default_and_allowed_when_configured(tmp_path: Path) -> None:
    for url in (str(SAMPLE), SAMPLE.as_uri()):
        with pytest.raises(LocalPathNotAllowed, match="CLIPPER_ALLOW_LOCAL_FILES=true"):
            check_url(url, Settings())
        check_url(url, Settings(allow_local_files=True))
    with pytest.raises(MediaNotFound):
        check_url(str(tmp_path / "missing.mp3"), Settings(allow_local_files=True))
    with pytest.raises(UnsupportedUrl):
        check_url(str(tmp_path), Settings(allow_local_files=True))  # a folder


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp3",
        "http://10.0.0.1/a.mp3",
        "http://192.168.1.10:8080/a.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.mp3",
        "http://[::ffff:127.0.0.1]/a.mp3",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://2130706433/",  # 127.0.0.1 as one number: caught through resolution
        "http://localhost:8000/a.mp3",
    ],
)
def test_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(ForbiddenAddress, match="CLIPPER_ALLOW_PRIVATE_ADDRESSES=true"):
        check_url(url, Settings())


def test_private_addresses_allowed_when_configured() -> None:
    check_url("http://127.0.0.1/a.mp3", Settings(allow_private_addresses=True))
    check_url("http://localhost/a.mp3", Settings(allowed_hosts=["LOCALHOST"]))
    with pytest.raises(ForbiddenAddress):
        check_url("http://10.0.0.1/a.mp3", Settings(allowed_hosts=["localhost"]))


def test_public_literal_address_passes() -> None:
    check_url("https://93.184.215.14/a.mp3", Settings())  # a literal public address needs no DNS


def test_dns_failure_is_retryable() -> None:
    with pytest.raises(DownloadFailed) as info:
        check_url("https://no-such-host.invalid/a.mp3", Settings())
    assert info.value.non_retryable is False


# --- credentials in URLs: refused, and never shown ---


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:s3cret@host.example/a.mp3", "https://***@host.example/a.mp3"),
        ("https://u:p@ss@host.example/a.mp3", "https://***@host.example/a.mp3"),  # an unescaped @ in the password
        ("https://TOKEN@host.example/a.mp3", "https://***@host.example/a.mp3"),  # a token as the user name
        ("see http//u:p@host.example/x", "see http//***@host.example/x"),  # the colon lost, in a message
        ("https://medium.com/@user and mailto:a@b.example", "https://medium.com/@user and mailto:a@b.example"),
    ],
)
def test_redact_credentials(text: str, shown: str) -> None:
    assert redact_credentials(text) == shown


@pytest.mark.parametrize("url", ["https://user:s3cret@host.example/a.mp3", "https://s3cret@host.example/a.mp3",
                                 "http//user:s3cret@host.example/a.mp3 "])
def test_credentials_in_a_url_are_refused_without_echoing_them(url: str) -> None:
    for check in (check_url_syntax, check_submittable, lambda u: check_url(u, Settings())):
        with pytest.raises((CredentialsInUrl, UnsupportedUrl)) as info:
            check(url)
        assert "s3cret" not in info.value.message and "***@host.example" in info.value.message
        assert info.value.non_retryable
    with pytest.raises(CredentialsInUrl, match="needs no login"):
        check_url_syntax("https://user:s3cret@host.example/a.mp3")


def test_a_string_that_is_no_url_nor_file_is_unsupported_not_a_local_path():
    from clipper.errors import UnsupportedUrl

    with pytest.raises(UnsupportedUrl, match="neither a URL nor a file"):
        check_url("not-a-url", Settings(allow_local_files=False))


def test_the_guard_shares_one_ssl_context_per_set_of_options_and_it_still_verifies() -> None:
    """Loading the CA bundle is ~40 ms of CPU; every YoutubeDL made one. Shared now, as strict as before."""
    import ssl

    from clipper.media.ssrf import GuardedYoutubeDL

    def context(params: dict, **kwargs: bool) -> ssl.SSLContext:
        ydl = GuardedYoutubeDL(params, Settings(), auto_init=False)
        return next(iter(ydl._request_director.handlers.values()))._make_sslcontext(**kwargs)

    first, again = context({}), context({})
    assert first is again and first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert context({"nocheckcertificate": True}).verify_mode == ssl.CERT_NONE  # other options: its own context
    assert context({}, legacy_ssl_support=True) is not first
