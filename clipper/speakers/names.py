"""The names people give speakers (`name_speakers`, `clipper speakers JOB S1=Diane`): one validation, used by the
workflow's update validator, the client, the CLI and the activity that renders the outputs again."""

from __future__ import annotations

import re

from clipper.errors import InvalidRequest

LABEL = re.compile(r"^S[1-9][0-9]{0,2}$")
MAX_NAME = 60
# Names end up in subtitles (a WebVTT voice tag), Markdown and file listings: letters, digits, spaces and the
# punctuation names use; no markup, no control characters.
NAME = re.compile(r"^[\w][\w .,'’()\-@&+]*$", re.UNICODE)


def check_names(names: dict[str, str], labels: list[str] | None = None) -> dict[str, str]:
    """`names` cleaned (whitespace folded); an empty name means "remove the name". `labels`: the speakers the job
    has (None: not known yet, only the form is checked). Bad input is an `InvalidRequest` saying what to do."""
    if not names:
        raise InvalidRequest('no names given: pass labels and names, e.g. {"S1": "Diane"} (CLI: S1=Diane)')
    out: dict[str, str] = {}
    for label, name in names.items():
        if not isinstance(label, str) or not LABEL.match(label):
            raise InvalidRequest(f"{label!r} is not a speaker label: labels are S1, S2, ... (see speakers.json)")
        if labels is not None and label not in labels:
            known = ", ".join(labels) or "none (no speakers were found)"
            raise InvalidRequest(f"this job has no speaker {label}; its speakers: {known}")
        if not isinstance(name, str):
            raise InvalidRequest(f"the name for {label} must be text")
        name = " ".join(name.split())
        if len(name) > MAX_NAME:
            raise InvalidRequest(f"the name for {label} is longer than {MAX_NAME} characters")
        if name and not NAME.match(name):
            raise InvalidRequest(f"the name for {label} may hold letters, digits, spaces and .,'()-@&+ only")
        out[label] = name
    return out


def merged(current: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """Names after `changes` (already checked): an empty name removes the label's name."""
    out = {**current, **changes}
    return {k: v for k, v in sorted(out.items(), key=lambda kv: int(kv[0][1:])) if v}


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """CLI `S1=Diane "S2=Sheila Smith"` → {"S1": "Diane", "S2": "Sheila Smith"}."""
    out = {}
    for pair in pairs:
        label, sep, name = pair.partition("=")
        if not sep:
            raise InvalidRequest(f"{pair!r}: write LABEL=NAME, e.g. S1=Diane")
        out[label.strip()] = name
    return out
