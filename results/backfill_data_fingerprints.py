"""Backfill the data a published cell was computed on: content fingerprint and release record (schema 2 records
carry them from the start; files written before could not). Run from the repository root:

    python results/backfill_data_fingerprints.py results/modelnet10_* --data-root ../shared/data

For every cell record (and the manifest of its artifact) under the named folders that lacks a content fingerprint,
the script opens the cell's dataset with the recorded config, checks that the release files the record names have
the sizes recorded then (otherwise it refuses: the data may not be the same), and writes the content fingerprint
and the release record in. Idempotent; atomic writes; prints what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ddbench.cells.record import load_record
from ddbench.data.fingerprint import content_fingerprint
from ddbench.errors import DDBenchError
from ddbench.io import write_json_atomic
from ddbench.pipeline import open_dataset
from ddbench.synthetic.artifact import manifest_path


def same_source_files(recorded: dict, current: dict) -> bool:
    """Whether the release files a record names still have the sizes recorded then."""
    old, new = recorded.get("files") or {}, current.get("files") or {}
    return bool(old) and old.keys() == new.keys() and all(old[k][0] == new[k][0] for k in old if old[k])


def backfill_folder(folder: Path, data_root: str | None) -> list[str]:
    """Backfill every cell record (and artifact manifest) under ``folder``; returns one line per change."""
    done, identities = [], {}
    for path in sorted((folder / "cells").glob("*.json")):
        raw = json.loads(path.read_text())
        if (raw.get("data") or {}).get("content_fingerprint"):
            continue
        record = load_record(path)
        key = json.dumps([record.dataset, record.spec.get("dataset_config")], sort_keys=True)
        if key not in identities:
            dataset = open_dataset(record.dataset, record.spec.get("dataset_config"), data_root)
            identities[key] = (dataset, content_fingerprint(dataset.load("train"), dataset.load("test")))
        dataset, content = identities[key]
        if not same_source_files(raw.get("data", {}).get("fingerprint", {}), dataset.fingerprint()):
            raise DDBenchError(f"{path}: its recorded release files differ from {dataset.fingerprint().get('folder')}; "
                               "the cell may have been computed on other data, so it is not backfilled")
        release = {**dataset.release_record(), "backfilled": True}
        raw["data"] = {**raw.get("data", {}), "content_fingerprint": content, "release": release}
        write_json_atomic(path, raw)
        done.append(f"{path}: data {content}")
        manifest = manifest_path(folder / raw.get("artifact", {}).get("path", "missing.h5"))
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            if m.get("data_fingerprint") is None:
                write_json_atomic(manifest, {**m, "data_fingerprint": content, "data_release": release})
                done.append(f"{manifest}: data {content}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    try:
        for folder in args.folders:
            for line in backfill_folder(folder, args.data_root):
                print(line)
    except DDBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
