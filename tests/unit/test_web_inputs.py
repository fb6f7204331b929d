"""The patterns the OpenAPI document gives (clipper_app/web/openapi.py, inputs.py) say exactly what the checks behind
them take: a media URL the document allows is one the URL checks take, and one it forbids they refuse (the
Schemathesis run of tests/e2e/test_openapi.py finds the same through the server, slowly)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipper.config import Settings
from clipper.errors import ClipperError
from clipper.media.urls import check_submittable, job_id_for
from clipper_app.web.api import check_media_url
from clipper_app.web.inputs import HOST_PATTERN, SPACES
from clipper_app.web.openapi import URL_PATTERN

URL = re.compile(URL_PATTERN)
SETTINGS = Settings()


def taken(url: str) -> bool:
    """What submit does with a URL before any job starts."""
    try:
        check_media_url(url, SETTINGS)
        check_submittable(url.strip())
        job_id_for(url.strip())
    except ClipperError:
        return False
    return True


@pytest.mark.parametrize("url", [
    "https://e.com/a.mp3", " HTTP://E.com:8080/a?b=1#c \n", "http://bücher.de/", "http://h:65535", "http://h:",
    "", " ", "ftp://e.com/a", "https://u:p@e.com/a", "http//e.com", "http://h:65536", "http://[::1]/", "/etc/passwd",
    "http://e.com/a b", "http://e\x85.com", "http://e\uff0fx.com/", "\ufeffhttp://e.com", "http://e.com/\x00",
    "http://[2001:db8::1]:8080/a", "http://[fe80::1%eth0]/", "http://[::ffff:1.2.3.4]/", "http://[v1.x]/",
    "http://[:::]/", "http://[1.2.3.4]/", "http://[1:2:3:4:5:6:7:8:9]/", "http://[::1/", "http://a]b/",
])
def test_the_url_pattern_is_the_url_checks(url):
    assert bool(URL.match(url)) == taken(url), url


@settings(max_examples=100, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.from_regex(URL_PATTERN, fullmatch=True),
                 st.from_regex(r"[ \x85]?[Hh][Tt]{2}[Pp][Ss]?:/{0,3}.{0,12}", fullmatch=True),
                 st.from_regex(r"http://\[[0-9a-fA-F:.%v]{0,20}\](:[0-9]{0,6})?/?", fullmatch=True),
                 st.text(max_size=12)))
def test_generated_urls_agree(url):
    if len(url) <= 4096:
        assert bool(URL.match(url)) == taken(url)


def test_the_patterns_spell_their_spaces_out():
    """No \\s: JSON Schema validators read it as ECMA-262 does (no \\x85, but \\ufeff), Python as str.isspace()."""
    spaces = re.compile(f"[{SPACES}]")
    assert all(bool(spaces.match(chr(c))) == chr(c).isspace() for c in range(0x3001))
    assert "\\s" not in URL_PATTERN + HOST_PATTERN
