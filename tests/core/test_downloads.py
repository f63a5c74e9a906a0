"""Downloads against the fake Hub: whole jobs, stalls, pause/resume, kill/resume, cancel,
verification, server errors, dropped connections, disk space, unsafe names, gated repos."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from quantdesk.core import library
from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.hub.downloads import DownloadError, DownloadJob, VerificationError
from quantdesk.core.jobs import Cancelled
from tests.hubserver import TOKEN

REPO = "acme/Tiny-GGUF"
Q8 = "Tiny-Q8_0.gguf"


def _data(fake_hub, name: str, repo: str = REPO) -> bytes:
    return fake_hub.repos[repo].files[name]


def _fast(spec, **kw) -> DownloadJob:
    """A job with test-sized patience: stalls noticed after 0.3 s, quick retries."""
    kw.setdefault("stall_timeout_s", 0.3)
    kw.setdefault("retry_wait_s", 0.01)
    return DownloadJob(spec, **kw)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_a_split_model_is_one_job_with_one_progress_and_lands_verified(fake_hub):
    details = hub.repo_details(REPO)
    f16 = [g for g in hub.group_files(details.files) if g.label == "F16"][0]
    spec = downloads.plan(REPO, group=f16, details=details)
    assert spec.revision == details.sha and len(spec.files) == 2
    reports = []
    paths = _fast(spec).run(reports.append)
    assert [p.relative_to(spec.dest).as_posix() for p in paths] == [f.path for f in spec.files]
    for f, p in zip(spec.files, paths, strict=True):
        assert p.read_bytes() == _data(fake_hub, f.path)
    assert reports[-1].done == reports[-1].total == spec.total_bytes
    assert all(r.total == spec.total_bytes for r in reports)
    assert not list(spec.dest.rglob("*.part")) and downloads.pending() == []
    # Files are fetched at the pinned commit, through the CDN redirect, without the token leaving the Hub.
    assert any(f"/resolve/{details.sha}/F16/" in r["path"] for r in fake_hub.requests)
    entry = [e for e in library.list_models() if e.name == "Tiny-F16"][0]
    assert entry.size == spec.total_bytes and len(entry.files) == 2 and entry.repo_id == REPO


def test_default_plan_is_the_recommended_level_and_include_patterns_select(fake_hub):
    assert downloads.plan(REPO).label == "Q4_K_M"
    spec = downloads.plan(REPO, include=["*Q8_0*"])
    assert [f.path for f in spec.files] == [Q8]
    assert spec.dest == downloads.default_dest(REPO)
    with pytest.raises(DownloadError, match="no file in acme/Tiny-GGUF matches"):
        downloads.plan(REPO, include=["*Q3_K*"])
    assert downloads.plan("acme/Tiny").label == "safetensors checkpoint"


def test_a_stalled_connection_is_resumed_with_a_range_request(fake_hub):
    fake_hub.fault(Q8, "stall", after=50_000, seconds=5)
    spec = downloads.plan(REPO, include=[Q8])
    [path] = _fast(spec).run()
    assert path.read_bytes() == _data(fake_hub, Q8)
    assert fake_hub.ranges(Q8) == [None, "bytes=50000-"]


def _start_stalled(fake_hub, after: int):
    """A download of Q8 that stalls after `after` bytes, run in a thread; returns once those bytes
    are on disk, with (spec, job, partial file, errors the job raised, thread)."""
    fake_hub.fault(Q8, "stall", after=after, seconds=10)
    spec = downloads.plan(REPO, include=[Q8])
    job = DownloadJob(spec, stall_timeout_s=20)
    part = downloads.partial_path(spec.dest / Q8, spec.files[0])
    errors = []
    t = threading.Thread(target=lambda: _run_catching(job, errors))
    t.start()
    _wait_for(lambda: part.exists() and part.stat().st_size == after)
    return spec, job, part, errors, t


def test_pause_keeps_the_partial_and_resume_continues_it(fake_hub):
    spec, job, part, errors, t = _start_stalled(fake_hub, 60_000)
    paused_at = time.monotonic()
    job.pause()
    t.join(10)
    assert time.monotonic() - paused_at < 2  # the stalled read is interrupted, not waited out
    assert isinstance(errors[0], Cancelled) and part.stat().st_size == 60_000
    assert [p.id for p in downloads.pending()] == [spec.id]
    assert downloads.downloaded_bytes(spec) == 60_000
    assert not (spec.dest / Q8).exists()  # not in the Library until complete and verified

    [path] = _fast(downloads.pending()[0]).run()
    assert path.read_bytes() == _data(fake_hub, Q8)
    assert fake_hub.ranges(Q8)[-1] == "bytes=60000-"
    assert downloads.pending() == [] and not part.exists()


def _run_catching(job, errors):
    try:
        job.run()
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


def test_cancel_removes_the_partial_and_forgets_the_download(fake_hub):
    spec, job, part, errors, t = _start_stalled(fake_hub, 30_000)
    cancelled_at = time.monotonic()
    job.cancel()
    t.join(10)
    assert time.monotonic() - cancelled_at < 2
    assert isinstance(errors[0], Cancelled)
    assert not part.exists() and not (spec.dest / Q8).exists() and downloads.pending() == []


def test_a_killed_download_resumes_from_where_it_stopped(fake_hub, tmp_path, quantdesk_home):
    """A real `quantdesk download` process, killed midway; the next run continues the partial."""
    fake_hub.fault(Q8, "stall", after=70_000, seconds=30)
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "QUANTDESK_HOME": str(quantdesk_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantdesk", "download", REPO, "--include", Q8],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        spec = downloads.plan(REPO, include=[Q8])
        part = downloads.partial_path(spec.dest / Q8, spec.files[0])
        _wait_for(lambda: part.exists() and part.stat().st_size == 70_000, timeout=30)
    finally:
        proc.kill()
        proc.wait(10)
    [earlier] = downloads.pending()  # the killed process had recorded it
    assert earlier.id == spec.id
    [path] = _fast(earlier).run()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.files[0].sha256
    assert fake_hub.ranges(Q8)[-1] == "bytes=70000-"


def test_a_flipped_byte_fails_verification_and_stays_out_of_the_library(fake_hub):
    fake_hub.fault(Q8, "corrupt")
    spec = downloads.plan(REPO, include=[Q8])
    with pytest.raises(VerificationError, match=r"does not match the Hub's checksum \(sha256"):
        _fast(spec).run()
    assert not (spec.dest / Q8).exists() and not list(spec.dest.glob("*.part"))
    assert not [e for e in library.list_models() if e.path.name == Q8]
    assert downloads.pending() == []


def test_small_files_are_checked_against_their_git_blob_id(fake_hub):
    fake_hub.fault("config.json", "corrupt")
    spec = downloads.plan("acme/Tiny", include=["config.json"])
    with pytest.raises(VerificationError, match="git blob id"):
        _fast(spec).run()
    [path] = _fast(spec).run()  # the fault was for one request only
    assert path.read_bytes() == _data(fake_hub, "config.json", "acme/Tiny")


def test_server_errors_are_retried_then_reported_in_plain_words(fake_hub):
    fake_hub.fault(Q8, "status", status=500, times=1)
    spec = downloads.plan(REPO, include=[Q8])
    [path] = _fast(spec).run()  # one 500 is retried
    assert path.read_bytes() == _data(fake_hub, Q8)
    path.unlink()
    fake_hub.fault(Q8, "status", status=500, times=10)
    with pytest.raises(DownloadError, match=r"server error \(HTTP 500\) \(tried 3 times\).*resume to continue"):
        _fast(spec, max_retries=2).run()
    assert [p.id for p in downloads.pending()] == [spec.id]  # kept for a later resume


def test_dropped_connections_resume_and_finally_say_so(fake_hub):
    fake_hub.fault(Q8, "drop", after=40_000)
    spec = downloads.plan(REPO, include=[Q8])
    [path] = _fast(spec).run()
    assert path.read_bytes() == _data(fake_hub, Q8)
    assert fake_hub.ranges(Q8)[-1] == "bytes=40000-"
    path.unlink()
    fake_hub.fault(Q8, "drop", after=0, times=10)
    with pytest.raises(DownloadError, match="connection was dropped"):
        _fast(spec, max_retries=2).run()


def test_free_disk_space_is_checked_before_downloading(fake_hub):
    fake_hub.repos[REPO].declared_sizes[Q8] = 10**16  # 10 PB
    spec = downloads.plan(REPO, include=[Q8])
    with pytest.raises(DownloadError, match="not enough disk space"):
        _fast(spec).run()
    assert fake_hub.ranges(Q8) == []  # nothing was requested


@pytest.mark.parametrize(
    "name",
    [
        "../evil.gguf",
        "/etc/evil.gguf",
        "a/../../evil.gguf",
        "a\\..\\evil.gguf",
        "C:evil.gguf",
        "ok/./x.gguf",
        "",
        "a//b.gguf",
        "NUL.gguf",
        "x\x00.gguf",
    ],
)
def test_unsafe_names_from_the_hub_are_refused(name):
    with pytest.raises(DownloadError, match="refusing"):
        downloads.safe_relpath(name)


def test_a_repo_listing_an_unsafe_name_downloads_nothing(fake_hub, tmp_path):
    fake_hub.repos[REPO].extra_siblings.append("../../escape.gguf")
    with pytest.raises(DownloadError, match="refusing an unsafe file name"):
        downloads.plan(REPO, include=["*.gguf"], dest=tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "escape.gguf").exists()
    assert downloads.safe_relpath("F16/Tiny-F16-00001-of-00002.gguf").parts == ("F16", "Tiny-F16-00001-of-00002.gguf")


def test_gated_repos_explain_what_to_do_and_work_with_a_token(fake_hub, monkeypatch):
    spec = downloads.plan("bigco/Locked-GGUF", include=["*.gguf"])
    with pytest.raises(DownloadError, match="gated.*accept its terms.*token"):
        _fast(spec).run()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    [path] = _fast(spec).run()
    assert path.read_bytes() == _data(fake_hub, "Locked-Q4_K_M.gguf", "bigco/Locked-GGUF")
    hub_reqs = [r for r in fake_hub.requests if "/resolve/" in r["path"] and "Locked" in r["path"]]
    cdn_reqs = [r for r in fake_hub.requests if r["path"].startswith("/cdn/")]
    assert hub_reqs[-1]["auth"] == f"Bearer {TOKEN}"
    assert cdn_reqs and all(r["auth"] is None for r in cdn_reqs)  # the token never reaches the CDN


def test_download_cli_with_include_and_dest(fake_hub, tmp_path, capsys):
    from quantdesk.cli import main

    dest = tmp_path / "mine"
    assert main(["download", REPO, "--include", "*Q4_K_M*", "--dest", str(dest)]) == 0
    out = capsys.readouterr()
    assert Path(out.out.strip()) == dest / "Tiny-Q4_K_M.gguf" and "Downloading acme/Tiny-GGUF" in out.err
    assert main(["download", "acme/Nope"]) == 2
    assert "no such model" in capsys.readouterr().err


def test_proxies_from_the_environment_are_used(fake_hub, monkeypatch):
    """HF_ENDPOINT names a host that does not exist; only the proxy (the fake Hub) can reach it."""
    from huggingface_hub.utils import close_session

    monkeypatch.setenv("HF_ENDPOINT", "http://hub.quantdesk.invalid")
    monkeypatch.setenv("HTTP_PROXY", fake_hub.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    close_session()  # the shared client reads the proxy settings when it is created
    try:
        assert hub.search(hub.SearchQuery(text="tiny", gguf=True)).results[0].repo_id == REPO
        [path] = _fast(downloads.plan(REPO, include=[Q8])).run()
        assert path.read_bytes() == _data(fake_hub, Q8)
    finally:
        close_session()
    assert all(r["proxied"] for r in fake_hub.requests)
    assert any(r["path"].startswith("http://hub.quantdesk.invalid/acme/Tiny-GGUF/resolve/") for r in fake_hub.requests)
