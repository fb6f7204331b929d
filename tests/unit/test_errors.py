"""What a stage does with a typed error is a property of the error's class, inherited by its subclasses."""

from __future__ import annotations

import pytest

from clipper import errors
from clipper.errors import ClipperError, InvalidRequest, ends_job, error_class


def every_error() -> list[type[ClipperError]]:
    found, todo = [], [ClipperError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_subclasses_inherit_ending_the_job():
    for cls in every_error():
        if issubclass(cls, InvalidRequest):
            assert cls.ends_job and ends_job(cls.__name__), cls
    assert ends_job("LanguageNotSupported") and ends_job("UnknownAsrModel")


@pytest.mark.parametrize("name", ["AccessDenied", "LLMAuthError", "EngineNotConfigured", "DownloadFailed",
                                  "StageTimedOut", "ZeroDivisionError", ""])
def test_refusals_a_person_can_cure_and_unknown_types_wait_for_a_retry(name):
    assert not ends_job(name)


def test_an_error_that_ends_the_job_is_never_retried_by_temporal():
    for cls in every_error():
        if cls.ends_job:
            assert cls.non_retryable, cls


def test_every_type_name_is_unique_so_the_lookup_is_unambiguous():
    names = [cls.__name__ for cls in every_error()]
    assert len(names) == len(set(names))
    assert error_class("CorruptArtifact") is errors.CorruptArtifact and error_class("Nope") is None


def test_troubleshooting_lists_exactly_the_errors_that_end_a_job():
    import re

    from tests.helpers import ROOT

    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    bullet = page.split("- **Fails at once**", 1)[1].split("\n- **", 1)[0]
    listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", bullet)) - {"CorruptArtifact"}
    assert listed == {cls.__name__ for cls in every_error() if cls.ends_job} - {"CorruptArtifact"}
