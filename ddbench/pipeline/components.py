"""What the CLI and the tables need to know of the installed components, read from the registry here (the
resolution layer) and handed down as plain values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ddbench.data.paths import resolve_cache_dir, resolve_data_root
from ddbench.plugins import Registries, get_registries

if TYPE_CHECKING:  # the tables import pandas, which a listing never needs (docs/plugins.md#how-fast-a-listing-answers)
    from ddbench.tables.layouts import Labels

#: the component kinds whose display names tables show
_DISPLAYED = ("method", "dataset", "backbone")


def table_labels(reg: Registries | None = None) -> Labels:
    """Display names of every installed method, dataset and backbone (tables fall back to the name)."""
    from ddbench.tables.layouts import Labels

    reg = reg or get_registries()
    names = {kind: {i.name: getattr(i.cls, "display_name", "") or i.name for i in reg.kind(kind)}
             for kind in _DISPLAYED}
    return Labels(display_names=names)


def make_tables(results_dir, *args, **kwargs) -> str:
    """:func:`ddbench.tables.make_tables` with the installed components' display names."""
    from ddbench.tables import make_tables as render_tables

    return render_tables(results_dir, *args, labels=table_labels(), **kwargs)


def open_dataset(name: str, config: dict | None = None, data_root=None, cache_dir=None):
    """The registered dataset ``name`` with ``config`` overrides, reading from ``data_root``."""
    info = get_registries().dataset.get(name)
    return info.cls(info.make_config(config), resolve_data_root(data_root), resolve_cache_dir(cache_dir))


def component_rows(kind: str, data_root=None) -> list[dict[str, Any]]:
    """One row per installed component of ``kind``: name, version, origin, description, defaults (datasets: whether
    their data is present; backbones: parameters and the outputs they provide)."""
    rows = []
    for info in get_registries().kind(kind):
        row = {"name": info.name, "version": info.version, "source": f"{info.source} {info.source_version}".strip(),
               "description": info.description, "defaults": info.default_config()}
        if kind in ("method", "backbone", "dataset", "protocol"):
            tasks = [*getattr(info.cls, "tasks", ("classification",)), *getattr(info.cls, "task_variants", {})]
            row["tasks"] = ",".join(dict.fromkeys(tasks))
        if kind == "method":
            row["role"] = info.cls.role
        if kind in ("method", "protocol"):
            ref = info.cls.reference
            row["reference"] = (f"{ref.paper}; {ref.repository}@{ref.revision[:10]}".rstrip("@; ") if ref else "")
            default = info.cls.Config()
            row["departures"] = [f"{d.what} (switch: {d.switch})" if d.switch else d.what
                                 for d in info.cls.departures if d.applies(default)]
        if kind == "dataset":
            present, where = info.cls(None, resolve_data_root(data_root), None).availability()
            row["data"] = "present: " + where if present else "missing"
        if kind == "preset":
            row.update(table=f"{info.cls.source} table {info.cls.table}", layout=info.cls.layout,
                       limitations=info.cls.limitations)
            row.pop("defaults")
        if kind == "backbone":
            row["parameters(K=40)"] = info.cls(None, 40).num_parameters()
            row["provides"] = ",".join(sorted(info.cls.provides))
        rows.append(row)
    return rows


def backbone_factories(names: list[str] | None = None) -> dict[str, Any]:
    """Factories of the named backbones (all when None), for measurements such as ``ddbench list --throughput``."""
    from ddbench.backbones.base import BackboneFactory

    reg = get_registries()
    return {i.name: BackboneFactory.of(i.cls) for i in reg.backbone if names is None or i.name in names}


def dataset_class(name: str) -> type:
    """The class of the registered dataset ``name`` (did-you-mean error otherwise)."""
    return get_registries().dataset.get(name).cls


def dataset_classes() -> list[tuple[str, type, str]]:
    """(name, class, plugin it came from) of every registered dataset."""
    return [(i.name, i.cls, i.source) for i in get_registries().dataset]


def plugin_report() -> list:
    """What ddbench knows of every plugin: loaded, disabled or broken (with the one-line error)."""
    return get_registries().plugins


def component_kinds() -> tuple[str, ...]:
    from ddbench.registry import KINDS

    return KINDS


def comparison_by_metric(records, published, preset, decimals: int):
    """The comparison of one metric, or (``metric = "all"``) of every metric the published table has, stacked
    with a ``metric`` column."""
    import pandas as pd

    from ddbench.tables.preset import comparison_frame

    versions = {i.name: str(i.version) for i in get_registries().protocol}
    if preset.metric != "all":
        return comparison_frame(records, published, preset.paper_release, decimals, preset.metric, table_labels(),
                                versions)
    frames = []
    for metric in dict.fromkeys(published["metric"]):
        frame = comparison_frame(records, published[published["metric"] == metric], preset.paper_release, decimals,
                                 metric, table_labels(), versions)
        frames.append(frame.assign(metric=metric))
    return pd.concat(frames, ignore_index=True)


def preset_table(name: str, results, fmt: str = "markdown", decimals: int = 1, datasets=None, methods=None,
                 ppc=None) -> str:
    """Our cells under ``results`` beside preset ``name``'s published table (docs/presets.md)."""
    from ddbench.tables import read_cells
    from ddbench.tables.layouts import load_published
    from ddbench.tables.preset import render_comparison

    preset = get_registries().preset.get(name).cls
    published = load_published(preset.source)
    published = published[published["table"] == preset.table]
    if datasets:
        published = published[published["dataset"].isin(datasets)]
    if methods:
        published = published[published["method"].isin(methods)]
    if ppc:
        published = published[published["ppc"].isin(ppc) | published["ppc"].isna()]
    records, _ = read_cells(results)
    task = preset.grid.get("task", "classification")
    keep = [r for r in records if (not datasets or r.dataset in datasets) and (not methods or r.method in methods)
            and (not ppc or r.ppc in ppc or r.ppc is None) and r.task == task]
    frame = comparison_by_metric(keep, published, preset, decimals)
    title = f"{preset.title} ({name}).{' ' + preset.limitations[0].upper() + preset.limitations[1:] + '.' if preset.limitations else ''}"
    ddofs = sorted({int(r.results.ddof) for r in keep if r.results is not None})
    if ddofs:
        title += (f" Ours: mean ± std over evaluation nets, ddof={','.join(map(str, ddofs))} (with several draws: "
                  "the RMS over draws, and a mark gives the spread over draws); published: as the paper reports it.")
    return render_comparison(frame, fmt, title)
