"""The export archive's layout and the import's checks (clipper/store/archive.py), and putting a checked archive into a
local store all or nothing (clipper/store/import_claim.py). No server: the archive layer is Temporal-free; the whole
path with real jobs on real servers is tests/e2e/test_export_import.py.

Every damaged archive here is made from a good one by real tar operations (one byte changed, cut short, a member
dropped, added or renamed), and must be refused with `ArchiveInvalid` before anything is stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import subprocess
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clipper.errors import ArchiveInvalid, CorruptArtifact, InvalidRequest, JobExists
from clipper.job.request import JobRequest, JobResult
from clipper.job.status import JobState, JobStatus
from clipper.store.archive import (
    ARTIFACTS, EXPORT_INFO, HISTORY, SUMS, ExportInfo, ExportSource, exportable, read_archive, write_archive,
)
from clipper.store.files import sha256_file
from clipper.store.import_claim import MARKER, ImportClaim, staging_dir
from clipper.store.local import MANIFEST
from clipper.store.local import ArtifactStore

JOB = "clip-0123456789abcdef"
HISTORY_FILE = Path(__file__).resolve().parents[1] / "histories" / "1.0-media-chunked-done.json"
FILES = {
    "audio.wav": b"RIFF" + bytes(range(256)) * 40,
    "report.md": "# Report\n\nSheila said “hello”.\n".encode(),
    "clips/clip-01.mp3": b"\xff\xfb" + b"\x01" * 3000,
    "versions/1/report.md": b"# Report (before the retry)\n",
    "export/history.json": b"{}",  # an earlier import's own file: never exported again
}


def made_job(root: Path) -> tuple[ArtifactStore, ExportInfo]:
    store = ArtifactStore(root)
    for name, data in FILES.items():
        store.put_bytes(JOB, name, data, "import" if name.startswith("export/") else "report")
    refs = {n: r for n, r in store.read_manifest(JOB).artifacts.items() if not n.startswith("export/")}
    status = JobStatus(job_id=JOB, url="https://example.com/episode.mp3", state=JobState.done, progress=1.0,
                       artifacts=refs)
    info = ExportInfo(job_id=JOB, exported_at=datetime.now(timezone.utc),
                      request=JobRequest(url="https://example.com/episode.mp3"), status=status,
                      result=JobResult(job_id=JOB, state=JobState.done, artifacts=refs, status=status),
                      source=ExportSource(namespace="default", address="127.0.0.1:7233", task_queue="clipper",
                                          store=store.uri(JOB)))
    return store, info


@pytest.fixture
def exported(tmp_path) -> tuple[Path, ArtifactStore, ExportInfo]:
    store, info = made_job(tmp_path / "source")
    out = tmp_path / "job.tar"
    write_archive(out, info, HISTORY_FILE.read_bytes(), store, exportable(store.read_manifest(JOB)))
    return out, store, info


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]


def repack(src: Path, dst: Path, drop: str | None = None, add: list[tuple[tarfile.TarInfo, bytes]] = (),
           sums: dict[str, bytes | None] | None = None) -> Path:
    """A copy of the archive rebuilt by tarfile: without member `drop`, with members `add` (before SHA256SUMS),
    and SHA256SUMS rewritten for `sums` ({member: content to list, or None to unlist it}) as a forger would."""
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members(src):
            if member.name == drop:
                continue
            if member.name == SUMS:
                for extra, content in add:
                    tar.addfile(extra, io.BytesIO(content) if extra.isfile() else None)
                if sums is not None:
                    lines = [line for line in data.decode().splitlines() if line.split("  ", 1)[1] not in sums]
                    lines += [f"{hashlib.sha256(c).hexdigest()}  {n}" for n, c in sums.items() if c is not None]
                    data = ("\n".join(lines) + "\n").encode()
                    member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return dst


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo,
                                                                                               bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = (len(data) if kind == tarfile.REGTYPE else 0), kind, link
    return info, data


def refused(path: Path, tmp_path: Path, match: str) -> None:
    with pytest.raises(ArchiveInvalid, match=match):
        read_archive(path, tmp_path / "staging")


# --- the layout ---


def test_round_trip_of_the_layout(exported, tmp_path):
    out, store, info = exported
    names = [m.name for m, _ in members(out)]
    expected = sorted(n for n in FILES if not n.startswith("export/"))
    assert names == [EXPORT_INFO, HISTORY, MANIFEST, *[ARTIFACTS + n for n in expected], SUMS]
    archive = read_archive(out, tmp_path / "staging")
    assert archive.job_id == JOB and archive.info == info and archive.history == HISTORY_FILE.read_bytes()
    assert archive.manifest.artifacts == exportable(store.read_manifest(JOB)).artifacts
    assert {n: p.read_bytes() for n, p in archive.files.items()} == {n: FILES[n] for n in expected}
    assert archive.size == sum(len(FILES[n]) for n in expected)
    # Only flat, numbered files are written while reading: no member's name becomes a path.
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [f"{i:06d}" for i in range(len(expected))]
    # SHA256SUMS is the standard format: an extracted copy checks with coreutils alone.
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    check = subprocess.run(["sha256sum", "--strict", "-c", SUMS], cwd=tmp_path / "extracted", capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(names) - 1, check.stdout + check.stderr


def test_export_replaces_the_output_atomically_and_refuses_a_changed_artifact(exported, tmp_path):
    out, store, info = exported
    before = out.read_bytes()
    store.path(JOB, "report.md").write_bytes(b"# edited on disk\n")  # no longer what the manifest vouches for
    with pytest.raises(CorruptArtifact, match="report.md"):
        write_archive(out, info, b"{}", store, exportable(store.read_manifest(JOB)))
    assert out.read_bytes() == before  # the old archive stays whole
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(InvalidRequest, match="folder"):
        write_archive(tmp_path, info, b"{}", store, exportable(store.read_manifest(JOB)))


# --- refused archives ---


def test_one_changed_byte_in_any_member_is_refused(exported, tmp_path):
    out, _, _ = exported
    with tarfile.open(out) as tar:
        spans = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    for name in (ARTIFACTS + "audio.wav", ARTIFACTS + "clips/clip-01.mp3", EXPORT_INFO, HISTORY, MANIFEST, SUMS):
        offset, size = spans[name]
        data = bytearray(out.read_bytes())
        data[offset + size // 2] ^= 0x01
        copy = tmp_path / f"tampered-{name.replace('/', '_')}.tar"
        copy.write_bytes(bytes(data))
        refused(copy, tmp_path, "does not match its sha256 in SHA256SUMS|malformed or repeated line|not listed")


def test_a_truncated_archive_is_refused(exported, tmp_path):
    out, _, _ = exported
    data = out.read_bytes()
    with tarfile.open(out) as tar:
        sums_header = next(m for m in tar.getmembers() if m.name == SUMS).offset
        audio = next(m for m in tar.getmembers() if m.name == ARTIFACTS + "audio.wav")
    cuts = {
        "half": (len(data) // 2, "not a complete tar archive|no SHA256SUMS"),
        "inside a member's data": (audio.offset_data + 100, "not a complete tar archive"),
        "at the last member's header": (sums_header, "no SHA256SUMS: it is truncated"),
        "empty": (0, "not a complete tar archive"),
    }
    for size, match in cuts.values():
        copy = tmp_path / f"cut-{size}.tar"
        copy.write_bytes(data[:size])
        refused(copy, tmp_path, match)


def test_missing_members_are_refused(exported, tmp_path):
    out, _, _ = exported
    gone = ARTIFACTS + "report.md"
    refused(repack(out, tmp_path / "a.tar", drop=gone), tmp_path, f"lacks {gone}, listed in SHA256SUMS")
    # A forger who also drops it from SHA256SUMS still meets the manifest.
    forged = repack(out, tmp_path / "b.tar", drop=gone, sums={gone: None})
    refused(forged, tmp_path, f"lacks {gone}, which its manifest lists")
    refused(repack(out, tmp_path / "c.tar", drop=SUMS), tmp_path, "no SHA256SUMS")
    refused(repack(out, tmp_path / "d.tar", drop=HISTORY, sums={HISTORY: None}), tmp_path, "has no history.json")


def test_members_outside_the_archive_links_and_extras_are_refused(exported, tmp_path):
    out, _, _ = exported
    cases = {
        "traversal": ([entry("artifacts/../../evil.sh", b"x")], "points outside"),
        "absolute": ([entry("/etc/cron.d/evil", b"x")], "points outside"),
        "symlink": ([entry("artifacts/link", kind=tarfile.SYMTYPE, link="/etc/passwd")], "link or special file"),
        "hard link": ([entry("artifacts/hard", kind=tarfile.LNKTYPE, link=MANIFEST)], "link or special file"),
        "device": ([entry("artifacts/dev", kind=tarfile.CHRTYPE)], "link or special file"),
        "unexpected": ([entry("notes.txt", b"hi")], "unexpected member notes.txt"),
        "unlisted": ([entry("artifacts/extra.bin", b"x")], "not listed in SHA256SUMS"),
        "twice": ([entry(ARTIFACTS + "report.md", b"# other\n")], "appears twice"),
    }
    for what, (extra, match) in cases.items():
        refused(repack(out, tmp_path / f"{what}.tar", add=extra), tmp_path, match)
    # Listed in SHA256SUMS, but not in the manifest: an artifact nobody vouched for.
    smuggled = repack(out, tmp_path / "smuggled.tar", add=[entry("artifacts/extra.bin", b"x")],
                      sums={"artifacts/extra.bin": b"x"})
    refused(smuggled, tmp_path, "artifacts/extra.bin is not in the manifest")
    # A re-packed copy with folder entries and ./ prefixes is still the same archive.
    with tarfile.open(tmp_path / "repacked.tar", "w") as tar:
        tar.addfile(entry("./artifacts", kind=tarfile.DIRTYPE)[0])
        for member, data in members(out):
            member.name = "./" + member.name
            tar.addfile(member, io.BytesIO(data))
    assert read_archive(tmp_path / "repacked.tar", tmp_path / "s2").job_id == JOB


def test_a_consistent_forgery_still_meets_the_manifest_and_the_format(exported, tmp_path):
    out, _, info = exported
    edited = b"# Report\n\nSomething nobody said.\n"
    forged = repack(out, tmp_path / "forged.tar", drop=ARTIFACTS + "report.md",
                    add=[entry(ARTIFACTS + "report.md", edited)], sums={ARTIFACTS + "report.md": edited})
    refused(forged, tmp_path, "report.md does not match the manifest's sha256")
    future = info.model_dump_json().replace('"format":1', '"format":2').encode()
    newer = repack(out, tmp_path / "newer.tar", drop=EXPORT_INFO, add=[entry(EXPORT_INFO, future)],
                   sums={EXPORT_INFO: future})
    refused(newer, tmp_path, "format 2; this clipper reads format 1")
    not_tar = tmp_path / "noise.tar"
    not_tar.write_bytes(bytes(range(256)) * 8)
    refused(not_tar, tmp_path, "not a complete tar archive")


# --- into a store, all or nothing ---


def test_import_claim_stores_everything_or_nothing(exported, tmp_path):
    out, _, _ = exported
    target = ArtifactStore(tmp_path / "target")
    archive = read_archive(out, staging_dir(target, "one"))
    claim = ImportClaim(target, JOB)
    history = claim.store_archive(archive)
    claim.done()
    manifest = target.read_manifest(JOB)
    for name, ref in archive.manifest.artifacts.items():
        assert (manifest.artifacts[name].sha256, manifest.artifacts[name].size) == (ref.sha256, ref.size)
        assert sha256_file(target.path(JOB, name)) == ref.sha256
    assert target.verify(JOB, history).read_bytes() == HISTORY_FILE.read_bytes()
    assert not (target.job_dir(JOB) / MARKER).exists()

    # A folder that holds files is another job's: refused, and left exactly as it was.
    before = sorted(p.relative_to(target.root) for p in target.root.rglob("*"))
    with pytest.raises(JobExists, match="has files in this deployment's store"):
        ImportClaim(target, JOB)
    assert sorted(p.relative_to(target.root) for p in target.root.rglob("*")) == before

    # A failed import (the registration raised after the files were written) leaves no folder.
    other = ArtifactStore(tmp_path / "other")
    claim = ImportClaim(other, JOB)
    claim.store_archive(read_archive(out, staging_dir(other, "two")))
    assert other.read_manifest(JOB).artifacts
    claim.discard()
    assert not (other.root / "jobs" / JOB).exists()


def test_an_interrupted_import_is_discarded_by_the_next_one_and_a_running_one_blocks(exported, tmp_path):
    out, _, _ = exported
    target = ArtifactStore(tmp_path / "target")
    # What an import killed mid-way leaves: some files and its marker, locked by nobody.
    target.put_bytes(JOB, "audio.wav", b"half of it", "report")
    (target.job_dir(JOB) / MARKER).touch()
    claim = ImportClaim(target, JOB)
    assert target.read_manifest(JOB).artifacts == {}  # the leftover is gone
    # While this import holds the claim, another is refused and touches nothing.
    with pytest.raises(JobExists, match="being imported by another process"):
        ImportClaim(target, JOB)
    claim.store_archive(read_archive(out, staging_dir(target, "x")))
    claim.done()
    assert target.read_manifest(JOB).artifacts["audio.wav"].sha256 == hashlib.sha256(FILES["audio.wav"]).hexdigest()
    # The lock is a real flock: a process holding it (not just a file) is what blocks.
    marker = target.job_dir(JOB) / MARKER
    with open(marker, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(JobExists, match="being imported"):
            ImportClaim(target, JOB)
