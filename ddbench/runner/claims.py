"""Claims: at most one worker computes a cell (or a distillation) at a time, across the worker processes, the
``ddbench run`` invocations and the machines that share one results directory (docs/running.md#claims).

A claim is a lease from filelock (``filelock.SoftFileLease``): a marker file ``RESULTS/claims/<cell id>.lock``
made by exclusive creation, refreshed by a heartbeat thread while its holder works, removed when it is done. It
needs only exclusive creation and rename from the filesystem, so it works where ``flock`` is unreliable (NFS).
A holder that dies loses its claim: at once to a contender on the same host (its process is gone), and to one on
another host once that contender has seen the marker unchanged for the lease (``DDBENCH_CLAIM_LEASE`` seconds,
300 by default; every worker of one results directory must use the same value).

Beside the marker, ``<cell id>.claim`` (JSON) says who holds it (worker, host, pid, since when) and how far it is
(stage, done, total), which is what ``ddbench status`` and the live progress of the runner read;
``claims/events.jsonl`` logs every claim, take-over and finish (one JSON object a line).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ddbench.errors import ConfigError
from ddbench.io import pid_alive

LEASE_ENV = "DDBENCH_CLAIM_LEASE"
#: seconds a dead holder on another host keeps its claim; long enough for NFS attribute caching (60 s at most by
#: default) never to hide three heartbeats in a row
DEFAULT_LEASE_S = 300.0
#: the least seconds between two progress updates of a claim file
PROGRESS_EVERY_S = 2.0
EVENTS = "events.jsonl"
HOST = socket.gethostname()
#: claims this process holds (released by :func:`release_held`, e.g. when SLURM preempts the job)
_HELD: set[Claim] = set()


def lease_seconds() -> float:
    """The lease of every claim (``DDBENCH_CLAIM_LEASE``, default 300 s)."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{LEASE_ENV} must be a positive number of seconds, got {text!r}")
    return value


def host_id() -> str:
    """This host as claims tell hosts apart: the host name, plus the PID namespace inside a container (two
    containers with one host name are two hosts: neither can see whether the other's processes live)."""
    with contextlib.suppress(OSError):
        return f"{HOST}#{os.stat('/proc/self/ns/pid').st_ino:x}"
    return HOST


def worker_label() -> str:
    """Who this worker is, for people: ``DDBENCH_WORKER`` (set by the executors), a SLURM job, or the pid."""
    if label := os.environ.get("DDBENCH_WORKER"):
        return label
    if job := os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"slurm {job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if job := os.environ.get("SLURM_JOB_ID"):
        return f"slurm {job}"
    return f"pid {os.getpid()}"


def claims_dir(results_dir: str | Path, kind: str = "cell") -> Path:
    base = Path(results_dir) / "claims"
    return base if kind == "cell" else base / kind


@dataclass
class ClaimInfo:
    """What a claim file says, and whether its holder still runs (``state``: ``running`` or ``stale``)."""

    key: str
    kind: str
    worker: str
    host: str
    pid: int
    since: float
    host_id: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0
    updated: float = 0.0
    state: str = "running"

    @property
    def since_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))

    def describe(self) -> str:
        return f"{self.worker} on {self.host} since {self.since_text}"


def _lease_class():
    try:
        from filelock import SoftFileLease
    except ImportError:  # pragma: no cover - filelock < 3.30
        raise ConfigError("claims need filelock >= 3.30 (SoftFileLease): pip install -U filelock") from None
    return SoftFileLease


def read_info(path: Path) -> ClaimInfo | None:
    try:
        raw = json.loads(path.read_text())
        return ClaimInfo(**{k: raw[k] for k in ClaimInfo.__dataclass_fields__ if k in raw})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_info(path: Path, info: ClaimInfo) -> None:
    """Atomically (a reader sees the old or the new file), without fsync: a claim file is advisory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(info)) + "\n")
    os.replace(tmp, path)


def log_event(results_dir: str | Path, event: str, key: str, kind: str = "cell", **fields: Any) -> None:
    """Append one line to ``claims/events.jsonl`` (one ``write`` in append mode: lines never interleave)."""
    line = {"t": round(time.time(), 3), "event": event, "kind": kind, "key": key, "worker": worker_label(),
            "host": HOST, "pid": os.getpid(), **fields}
    path = claims_dir(results_dir) / EVENTS
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def read_events(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every event logged under ``results_dir`` (a line cut short by a killed writer is left out)."""
    path = claims_dir(results_dir) / EVENTS
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


class Claim:
    """A claim on one cell (``kind="cell"``, key: the cell id) or one distillation (``kind="distill"``, key: the
    distillation key) of a results directory."""

    def __init__(self, results_dir: str | Path, key: str, kind: str = "cell"):
        self.results_dir, self.key, self.kind = Path(results_dir), key, kind
        folder = claims_dir(results_dir, kind)
        self.lock_path, self.info_path = folder / f"{key}.lock", folder / f"{key}.claim"
        self.info: ClaimInfo | None = None
        self._lease = None
        self._written = 0.0

    @property
    def held(self) -> bool:
        return self.info is not None

    def _lock(self):
        if self._lease is None:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._lease = _lease_class()(str(self.lock_path), lease_duration=lease_seconds(), timeout=0)
        return self._lease

    def try_acquire(self, probe: bool = False) -> bool:
        """One attempt. A dead holder on this host loses the claim to it at once; one on another host once this
        object has seen its marker unchanged for the lease (so call it again on the same object to wait).
        ``probe``: only to learn whether the claim is free (a take-over is logged, a plain claim is not)."""
        from filelock import LeaseSettingsMismatch, Timeout

        if self.held:
            return True
        previous = self.holder() if self.lock_path.exists() else None
        try:
            self._lock().acquire(timeout=0)
        except Timeout:
            return False
        except LeaseSettingsMismatch:
            raise ConfigError(f"another worker of {self.results_dir} uses another claim lease; set {LEASE_ENV} "
                              "to one value for all of them") from None
        now = time.time()
        self.info = ClaimInfo(self.key, self.kind, worker_label(), HOST, os.getpid(), now, host_id(), updated=now)
        _HELD.add(self)
        _write_info(self.info_path, self.info)
        taken = {"previous": previous.describe()} if previous is not None and previous.pid != os.getpid() else {}
        if taken or not probe:
            log_event(self.results_dir, "took-over" if taken else "claimed", self.key, self.kind, **taken)
        return True

    def wait(self, on_wait: Callable[[ClaimInfo | None], None] | None = None, poll: float = 1.0) -> None:
        """Block until the claim is this process's; ``on_wait(holder)`` is called before each pause."""
        while not self.try_acquire():
            if on_wait is not None:
                on_wait(self.holder())
            time.sleep(poll)

    def progress(self, stage: str, done: int, total: int, force: bool = False) -> None:
        """Record how far the holder is (at most every PROGRESS_EVERY_S seconds unless ``force``)."""
        if self.info is None:
            return
        now = time.time()
        self.info.stage, self.info.done, self.info.total = stage, done, total
        if force or now - self._written >= PROGRESS_EVERY_S:
            self.info.updated, self._written = now, now
            with contextlib.suppress(OSError):
                _write_info(self.info_path, self.info)

    def log(self, event: str, **fields: Any) -> None:
        log_event(self.results_dir, event, self.key, self.kind, **fields)

    def holder(self) -> ClaimInfo | None:
        return read_info(self.info_path)

    def release(self) -> None:
        if self.info is None:
            return
        self.info = None
        _HELD.discard(self)
        with contextlib.suppress(OSError):
            self.info_path.unlink(missing_ok=True)
        self._lease.release()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def release_held() -> None:
    """Release every claim this process holds (a SLURM job about to be requeued hands its cell back)."""
    for claim in list(_HELD):
        claim.release()


def _marker_owner(lock: Path) -> tuple[str, int] | None:
    """(host, pid) that filelock recorded in a marker, or None."""
    try:
        fields = dict(line.split("=", 1) for line in lock.read_text().splitlines()[1:] if "=" in line)
        return fields["host"], int(fields["pid"])
    except (OSError, KeyError, ValueError):
        return None


def claim_state(info: ClaimInfo, lock: Path, lease: float | None = None) -> str:
    """``running`` or ``stale``: the holder's process is gone (this host), or its marker has not been refreshed
    for longer than the lease (another host; this compares the file's time with this host's clock)."""
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return "stale"  # a holder killed between making its marker and writing this file, or while releasing
    if info.host_id == host_id():
        return "running" if pid_alive(info.pid) else "stale"
    return "stale" if age > (lease or lease_seconds()) else "running"


def read_claims(results_dir: str | Path, kind: str = "cell") -> list[ClaimInfo]:
    """Every claim of ``kind`` under ``results_dir``, with its state."""
    folder = claims_dir(results_dir, kind)
    if not folder.is_dir():
        return []
    lease, infos = lease_seconds(), []
    for lock in sorted(folder.glob("*.lock")):
        info = read_info(lock.with_suffix(".claim"))
        if info is None:  # a marker without its file: the holder died before writing it
            owner = _marker_owner(lock) or ("?", 0)
            info = ClaimInfo(lock.stem, kind, "?", owner[0].split("?")[0], owner[1], lock.stat().st_mtime, "?")
            info.state = "stale" if time.time() - info.since > lease else "running"
        else:
            info.state = claim_state(info, lock, lease)
        infos.append(info)
    return infos


def iter_running(results_dir: str | Path, keys: set[str] | None = None) -> Iterator[ClaimInfo]:
    """The running cell claims under ``results_dir`` (of ``keys`` only, when given)."""
    for info in read_claims(results_dir):
        if info.state == "running" and (keys is None or info.key in keys):
            yield info
