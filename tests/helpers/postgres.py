"""A throw-away PostgreSQL server for the search index's tests and benchmark: Debian's `postgresql` binaries
(`initdb`, `pg_ctl`), a data directory in a temp folder, a free port, gone when the block ends.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the Debian package creates
(`runuser -u postgres`), in a folder that user owns. `pg_binaries()` is None when the binaries are not installed
(`make test` installs them as root; otherwise `sudo apt-get install -y postgresql`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scripts.devserver import free_port

MISSING = ("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: `sudo apt-get install -y postgresql` "
           "(make test installs it when run as root)")


def pg_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields its URL (`postgresql://clipper@127.0.0.1:<port>/postgres`, trust on loopback)."""
    bin_dir = pg_binaries()
    if bin_dir is None:
        raise RuntimeError(MISSING)
    root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="clipper-pg-"))
    data, port = folder / "data", free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(folder, "postgres", "postgres")

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "clipper", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            yield f"postgresql://clipper@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           check=False, capture_output=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
