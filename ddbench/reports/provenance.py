"""Where the numbers of a report come from: per results directory, the protocols, deviations, departures, seeds,
library versions, devices and timings of its cells, read from the typed records."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ddbench.cells.record import CellRecord


def _distinct(values) -> list[str]:
    return sorted({str(v) for v in values if v not in (None, "")})


def _versions(cells: list[CellRecord]) -> dict[str, str]:
    libs: dict[str, set] = {}
    for c in cells:
        for lib, version in (c.environment.get("versions") or {}).items():
            libs.setdefault(lib, set()).add(str(version))
    return {lib: ", ".join(sorted(v)) for lib, v in sorted(libs.items())}


def _seconds(cells: list[CellRecord], key: str) -> float:
    return float(sum(c.timing.get(key) or 0 for c in cells))


def _references(cells: list[CellRecord]) -> list[str]:
    """The components' declared references, as plain-text citations."""
    out = set()
    for c in cells:
        for component, ref in c.references.items():
            parts = [ref.get(k, "") for k in ("paper", "repository", "revision")]
            out.add(f"{component}: " + "; ".join(p for p in parts if p))
    return sorted(out)


def directory_provenance(root: Path, cells: list[CellRecord], bad: list[str]) -> dict:
    """One results directory's provenance, as plain values for the template."""
    ok = [c for c in cells if c.status == "ok"]
    experiment = root / "experiment.toml"
    deviations = Counter(f"{d.label()} = {d.used} (reference {d.reference}; {d.kind})" for c in cells
                         for d in c.deviations)
    departures = Counter(f"{d.get('component', '?')}: {d.get('what', '')}" for c in cells for d in c.departures)
    devices = Counter(f"{c.environment.get('device', '?')} ({c.environment.get('device_name', '')})".replace(" ()", "")
                      for c in cells)
    return {
        "root": str(root), "n_ok": len(ok), "n_failed": sum(c.status == "failed" for c in cells),
        "unreadable": list(bad),
        "experiment": experiment.read_text() if experiment.exists() else "",
        "protocols": _distinct(f"{c.protocol} v{c.protocol_version}" for c in cells),
        "deviations": [f"{text} — {n} cell(s)" for text, n in sorted(deviations.items())],
        "departures": [f"{text} — {n} cell(s)" for text, n in sorted(departures.items())],
        "references": _references(cells),
        "draw_seeds": _distinct(c.seed for c in cells),
        "net_seeds": _distinct(n.seed for c in ok for n in c.results.nets),
        "versions": _versions(cells),
        "devices": [f"{d} — {n} cell(s)" for d, n in sorted(devices.items())],
        "allocators": _distinct(c.environment.get("allocator") for c in cells),
        "engines": _distinct(c.results.engine for c in ok),
        "data": _distinct((c.data.get("release") or {}).get("sampling") for c in cells),
        "distill_hours": _seconds(cells, "distill_seconds") / 3600,
        "eval_hours": _seconds(cells, "eval_seconds") / 3600,
        "period": " – ".join(x for x in (min((c.started for c in cells if c.started), default=""),
                                          max((c.finished for c in cells if c.finished), default="")) if x),
    }


def cell_rows(cells: list[CellRecord]) -> list[dict]:
    """Every cell, one row each: identity, result, cost, device (the report lists all of its inputs)."""
    rows = []
    for c in sorted(cells, key=lambda c: c.cell_id):
        res = c.results
        result = "" if res is None or not res.nets else (
            f"{res.oa_mean if res.oa_mean is not None else sum(n.oa for n in res.nets) / len(res.nets):.2f}"
            + (f" ± {res.oa_std:.2f}" if res.oa_std is not None else "") + f" ({len(res.nets)} nets)")
        peak = c.memory.get("peak_rss_bytes")
        rows.append({
            "cell_id": c.cell_id, "status": c.status, "method": c.method, "dataset": c.dataset,
            "ppc": "" if c.ppc is None else str(c.ppc), "seed": c.seed, "eval_backbone": c.eval_backbone,
            "protocol": f"{c.protocol} v{c.protocol_version}", "result": result,
            "distill_s": f"{c.timing.get('distill_seconds') or 0:.0f}", "eval_s": f"{c.timing.get('eval_seconds') or 0:.0f}",
            "peak_gib": f"{peak / 2**30:.2f}" if peak else "", "device": c.environment.get("device_name") or
            c.environment.get("device", ""), "error": c.error, "path": c.path,
        })
    return rows
