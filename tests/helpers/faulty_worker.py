"""A worker process that kills itself (SIGKILL) in the middle of one write: what a kill -9 there leaves behind.

`python -m tests.helpers.faulty_worker` (see `processes.start_worker(fault=...)`) runs the ordinary worker of
clipper_app/workers/main.py, except that the first write named in KILL_MID_WRITE writes its temp file in full and then the
process dies, before the rename that would put it in place and before any `finally` could remove it:

- `clip`: a quote's clip, cut by ffmpeg into its temp file (clipper/media/clips.py);
- an artifact name, e.g. `clips.json`: the store writing that artifact's temp file (clipper/store/local.py).
"""

from __future__ import annotations

import os
import signal

import clipper.media.clips
import clipper.store.local

FAULT = os.environ.get("KILL_MID_WRITE", "")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    if FAULT == "clip":
        run_ffmpeg = clipper.media.clips.run_ffmpeg

        def cut_then_die(*args, **kwargs):
            run_ffmpeg(*args, **kwargs)
            die()

        clipper.media.clips.run_ffmpeg = cut_then_die
    elif FAULT:
        write_synced = clipper.store.local.write_synced

        def write_then_die(path, data, what):
            write_synced(path, data, what)
            if what == FAULT:
                die()

        clipper.store.local.write_synced = write_then_die


if __name__ == "__main__":
    install()
    from clipper_app.workers.main import main

    main()
