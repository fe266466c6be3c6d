"""Downloading a published file: progress, resume, checksum, atomic placement.

``download(urls, dest, sha256=...)`` streams into ``DEST.partial`` (a tqdm
bar on stderr shows size, rate and ETA); a partial file left by an
interrupted run is resumed with an HTTP ``Range`` request (a server that
ignores it sends the whole file, which then replaces the partial). The
finished file is checked against the published sha256 (or its prefix):
a mismatch deletes the partial and names both digests; a match moves it to
``DEST`` through :func:`vggkit.fileio.atomic_write`. Nothing is fetched
when :func:`offline_reason` names an offline switch.
"""
from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from vggkit.fileio import atomic_write, file_sha256
from vggkit.weights.catalogue import WeightsError

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds without data before a download counts as interrupted
#: environment switches that forbid downloads (vggkit's own, and the Hugging Face hub's)
OFFLINE_VARIABLES = ("VGGKIT_OFFLINE", "HF_HUB_OFFLINE")


class DownloadError(WeightsError):
    """A download that failed or was interrupted (a partial file is kept for resuming)."""


class ChecksumError(WeightsError):
    """A file whose sha256 is not the published one."""


class OfflineError(WeightsError):
    """A download refused because an offline switch is set."""


def offline_reason() -> str | None:
    """``'VGGKIT_OFFLINE=1'`` (or HF_HUB_OFFLINE) when downloads are off, else None."""
    for var in OFFLINE_VARIABLES:
        value = os.environ.get(var, "").strip()
        if value.lower() in {"1", "true", "yes", "on"}:
            return f"{var}={value}"
    return None


def digest_matches(expected: str | None, digest: str) -> bool:
    """``digest`` is the published ``expected`` (a full digest or a prefix; None: unchecked)."""
    return expected is None or digest.lower().startswith(expected.lower())


def describe_digest(expected: str) -> str:
    return f"sha256 {expected}" if len(expected) == 64 else f"sha256 prefix {expected}"


def partial_path(dest: str | os.PathLike) -> Path:
    """Where an unfinished download of ``dest`` is kept."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".partial")


def download(urls: Sequence[str], dest: str | os.PathLike, sha256: str | None = None,
             progress: bool = True, label: str = "") -> str:
    """Fetch the first of ``urls`` that answers into ``dest``; returns the file's sha256.

    Raises:
        OfflineError: an offline switch is set (nothing is opened).
        DownloadError: every URL failed; an interrupted download leaves
            ``DEST.partial``, which the next call resumes.
        ChecksumError: the file is not the published one (the partial is deleted).
    """
    reason = offline_reason()
    if reason:
        raise OfflineError(f"not downloading {urls[0]} ({reason})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(dest)
    failures = []
    for url in urls:
        try:
            _fetch(url, partial, progress, label or dest.name)
            break
        except DownloadError as exc:
            failures.append(str(exc))
    else:
        raise DownloadError("; ".join(failures))
    digest = file_sha256(partial)
    if not digest_matches(sha256, digest):
        partial.unlink()
        raise ChecksumError(f"the download of {label or dest.name} from {url} has sha256 "
                            f"{digest}, not the published {describe_digest(sha256 or '')}; "
                            f"the partial file '{partial}' was deleted")
    atomic_write(dest, lambda tmp: os.replace(partial, tmp))
    return digest


def _fetch(url: str, partial: Path, progress: bool, label: str) -> None:
    """Stream ``url`` into ``partial``, resuming what it already holds."""
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "vggkit", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial is not a prefix of this file: start over
            partial.unlink()
            return _fetch(url, partial, progress, label)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    with response:
        resumed = have and response.status == 206 and response.headers.get(
            "Content-Range", "").startswith(f"bytes {have}-")
        have = have if resumed else 0  # a 200 answer is the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        _stream(response, partial, have, total, progress, label, url)


def _stream(response: http.client.HTTPResponse, partial: Path, have: int, total: int | None,
            progress: bool, label: str, url: str) -> None:
    from tqdm import tqdm
    done = have
    with open(partial, "ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=label, disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(_interrupted(url, partial, done, total, exc)) from exc
    if total is not None and done != total:
        raise DownloadError(_interrupted(url, partial, done, total, "connection closed"))


def _interrupted(url: str, partial: Path, done: int, total: int | None, why: object) -> str:
    of = f" of {total}" if total is not None else ""
    return (f"{url}: interrupted after {done}{of} bytes ({why}); they are kept in "
            f"'{partial}' and the next attempt resumes from there")
