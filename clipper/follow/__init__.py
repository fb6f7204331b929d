"""Follows: a feed or account watched on a schedule, a job started for every item it has not seen.

The domain only, no Temporal: how often (`every.py`), what a source lists (`feed.py`: RSS/Atom read as a stream,
else yt-dlp's playlist listing), how an item is named and what a follow remembers (`model.py`). The schedule,
the `FollowCheck` workflow and its activities live in workflows/, activities/ and clipper_app/client/follows.py.
"""
