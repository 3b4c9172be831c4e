"""Getting datasets onto disk: download with resume and checksum, import of archives or folders, provenance.

Downloads use ``requests`` (HTTP Range requests resume a partial ``.part`` file); ``file://`` URLs and local paths
are accepted everywhere, so every path is testable without a network. Archives are extracted safely (no member
may escape the data root). What was fetched or imported is recorded in ``<data root>/.ddbench/<dataset>.json``
with the sha256 of every archive.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from ddbench.data.catalog import Archive, archives_for
from ddbench.errors import DataError
from ddbench.io import atomic_path, sha256_file

#: progress(bytes done, bytes total or None, description)
ByteProgress = Callable[[int, int | None, str], None]
CHUNK = 1 << 20


def provenance_path(data_root: Path, dataset: str) -> Path:
    return data_root / ".ddbench" / f"{dataset}.json"


def read_provenance(data_root: Path, dataset: str) -> dict:
    path = provenance_path(data_root, dataset)
    if not path.exists():
        return {"dataset": dataset, "archives": []}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError(f"{path} is not valid JSON; delete it and import the dataset again") from None


def record_provenance(data_root: Path, dataset: str, entry: dict) -> None:
    prov = read_provenance(data_root, dataset)
    prov["archives"] = [a for a in prov["archives"] if a.get("filename") != entry.get("filename")] + [entry]
    path = provenance_path(data_root, dataset)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(prov, indent=2) + "\n")


def download(url: str, dest: Path, progress: ByteProgress | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` when the server honours Range requests."""
    progress = progress or (lambda done, total, desc: None)
    parsed = urlparse(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("", "file"):
        src = Path(unquote(parsed.path) if parsed.scheme else url)
        if not src.exists():
            raise DataError(f"{src} does not exist")
        shutil.copyfile(src, dest)
        progress(dest.stat().st_size, dest.stat().st_size, dest.name)
        return dest
    import requests

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
            if resp.status_code == 416:  # the partial file is already complete
                part.replace(dest)
                return dest
            resp.raise_for_status()
            resumed = have and resp.status_code == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as fh:
                done = have
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    done += len(chunk)
                    progress(done, total, dest.name)
    except requests.RequestException as err:
        raise DataError(
            f"download of {url} failed ({' '.join(str(err).split())}); run the same command again to resume, or "
            f"download it yourself and use `ddbench data import`"
        ) from None
    part.replace(dest)
    return dest


def verify_archive(path: Path, archive: Archive | None) -> str:
    """sha256 of ``path``; a mismatch with the published checksum deletes the file and raises."""
    digest = sha256_file(path)
    if archive is not None and archive.sha256 and digest != archive.sha256:
        path.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch for {path.name}: expected {archive.sha256[:12]}... (published, {archive.checksum_source}), "
            f"got {digest[:12]}...; the corrupt file was deleted, run the command again"
        )
    return digest


def _safe_members(names: list[str], target: Path) -> None:
    root = target.resolve()
    for name in names:
        dest = (target / name).resolve()
        if dest != root and root not in dest.parents:
            raise DataError(f"archive member {name!r} would be written outside {target}; refusing to extract")


def extract(archive_path: Path, target: Path) -> list[str]:
    """Extract a zip or tar archive into ``target``; returns the top-level names it created."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive_path):
            with zipfile.ZipFile(archive_path) as zf:
                names = zf.namelist()
                _safe_members(names, target)
                zf.extractall(target)
        elif tarfile.is_tarfile(archive_path):
            with tarfile.open(archive_path) as tf:
                names = tf.getnames()
                _safe_members(names, target)
                tf.extractall(target, filter="data")
        else:
            raise DataError(f"{archive_path} is neither a zip nor a tar archive; give the archive or its extracted folder")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"cannot extract {archive_path} ({' '.join(str(err).split())}); it is truncated or corrupt") from None
    return sorted({n.split("/", 1)[0] for n in names if n.strip("/")})


def match_archive(dataset: str, path: Path) -> Archive | None:
    """The catalog entry of ``dataset`` whose file name is ``path``'s, if any."""
    name = path.name
    return next((a for a in archives_for(dataset) if a.filename == name), None)


def import_data(dataset: str, source: Path, data_root: Path, link: bool = False) -> dict:
    """Bring an archive or an extracted folder the user already has under the data root."""
    if not source.exists():
        raise DataError(f"{source} does not exist; give the path of the downloaded archive or its extracted folder")
    data_root.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        target = data_root / source.name
        if target.exists() or target.is_symlink():
            if target.resolve() != source.resolve():
                raise DataError(f"{target} already exists; remove it or import under another name")
        elif link:
            target.symlink_to(source.resolve(), target_is_directory=True)
        else:
            shutil.copytree(source, target)
        entry = {"filename": source.name, "source": str(source.resolve()), "kind": "folder",
                 "mode": "link" if link else "copy", "created": [target.name]}
    else:
        archive = match_archive(dataset, source)
        digest = verify_archive(source, archive)
        created = extract(source, data_root)
        entry = {"filename": source.name, "source": str(source.resolve()), "kind": "archive", "sha256": digest,
                 "published_sha256": archive.sha256 if archive else None, "created": created}
    entry["imported"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record_provenance(data_root, dataset, entry)
    return entry


def choose_archive(dataset: str, url: str | None = None, archive_name: str | None = None) -> tuple[str, Archive | None]:
    """(address, catalog entry) to fetch: ``url`` if given (matched to the catalog by file name), else the first
    downloadable official archive (or the one named ``archive_name``)."""
    archives = archives_for(dataset)
    if url is not None:
        return url, next((a for a in archives if a.filename == Path(urlparse(url).path).name), None)
    candidates = [a for a in archives if a.url and (archive_name is None or a.filename == archive_name)]
    if not candidates:
        known = ", ".join(a.filename for a in archives) or "none"
        notes = "; ".join(a.note for a in archives if a.note)
        raise DataError(
            f"no downloadable archive for {dataset} (archives: {known}); {notes + '; ' if notes else ''}"
            f"get it and run `ddbench data import {dataset} PATH`"
        )
    return candidates[0].url, candidates[0]


def fetch(dataset: str, data_root: Path, url: str | None = None, archive_name: str | None = None,
          progress: ByteProgress | None = None, keep_archive: bool = False) -> dict:
    """Download an official archive of ``dataset`` (or ``url``), verify it, extract it, record it."""
    url, archive = choose_archive(dataset, url, archive_name)
    filename = Path(unquote(urlparse(url).path)).name or f"{dataset}.download"
    dest = data_root / ".downloads" / filename
    download(url, dest, progress)
    digest = verify_archive(dest, archive)
    created = extract(dest, data_root)
    entry = {"filename": filename, "url": url, "kind": "archive", "sha256": digest,
             "published_sha256": archive.sha256 if archive else None, "created": created,
             "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record_provenance(data_root, dataset, entry)
    if not keep_archive:
        dest.unlink(missing_ok=True)
    return entry
