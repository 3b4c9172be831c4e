"""The papers' table layouts, filled from aggregated results.

- ``methods`` (SADM/3DDP Table 1): rows = methods, columns = dataset x PPC; the best method per column is bold,
  the second underlined; the whole-dataset reference row spans each dataset's columns.
- ``backbones`` (SADM Table 2): rows = evaluation backbone, columns = dataset x method, one table per PPC; within a
  row and dataset the best method is bold, the second underlined.

Every table compares like with like: one protocol (and version), distillation network and selection rule (and,
for the methods layout, one evaluation network). Rows whose cells departed from the reference settings carry a
footnote mark saying how.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from ddbench.errors import DDBenchError
from ddbench.tables.render import Row, Table, rank_values
from ddbench.tables.tidy import GROUP_KEYS as _GROUP_KEYS

METHOD_ORDER = ["random", "herding", "kcenter", "dc", "pcc", "dm", "sadm", "dd3d", "3ddp"]
DATASET_ORDER = ["modelnet10", "modelnet40", "modelnet40_rotated", "modelnet40_rotated_pca", "shapenet55",
                 "scanobjectnn", "omniobject3d", "shapes"]
BACKBONE_ORDER = ["pointnet", "pointnet_in", "pointnet2_ssg", "pointnet2_msg", "dgcnn", "pointconv",
                  "point_transformer", "pct", "pointmlp"]
MARKS = ["†", "‡", "§", "¶", "‖", "#"]
#: names in the published-results file that differ from ddbench's
PUBLISHED_ALIASES = {
    "backbone": {"pointnet2": "pointnet2_msg"},
    "method": {"ddp3d": "3ddp"},
    "dataset": {"modelnet40_aligned": "modelnet40", "scanobjectnn_aligned": "scanobjectnn"},
}
SETTING_LABELS = {"_rotated_pca": "rotated, PCA", "_rotated": "rotated", "_pca": "PCA"}
LAYOUTS = ("methods", "backbones", "segmentation")
#: the published tables whose rows sit beside ours in the methods layout (the papers' main tables; the others are
#: shown with ``ddbench table --preset``)
MAIN_TABLES = ("1", "main")


@dataclass(frozen=True)
class Labels:
    """What tables need to know of the components beyond the records: display names (from the components'
    ``display_name``, resolved by the pipeline) and which methods are full-data reference rows (by their
    declared role, recorded in every cell)."""

    display_names: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> display name
    full_data: frozenset[str] = frozenset()

    def display_name(self, kind: str, name: str) -> str:
        if kind == "dataset":
            for suffix, label in SETTING_LABELS.items():
                if name.endswith(suffix):
                    return f"{self.display_name('dataset', name[: -len(suffix)])} ({label})"
        return self.display_names.get(kind, {}).get(name) or name


def _order(values, preferred):
    values = list(dict.fromkeys(values))
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), str(v)))


def load_published(source: str | None = None) -> pd.DataFrame:
    text = resources.files("ddbench").joinpath("reference/published_results.csv").read_text()
    df = pd.read_csv(io.StringIO(text), dtype={"table": str})
    for column, aliases in PUBLISHED_ALIASES.items():
        df[column] = df[column].replace(aliases)
    if source is not None:
        if source not in set(df["source"]):
            raise DDBenchError(f"unknown published source {source!r}; known: {', '.join(sorted(set(df['source'])))}")
        df = df[df["source"] == source]
    return df


def _deviation_symbols(agg: pd.DataFrame) -> dict[str, str]:
    budgets = _order([b for b in agg["budget"] if b], [])
    configs = _order([c for c in agg["config_deviation"] if c], [])
    return dict(zip(budgets + configs, MARKS * 4))


RANKING_NOTE = "Bold: best; underlined: second best (whole dataset and published rows excluded)."
#: ``--significant``: marks follow a test, not the display precision
ALPHA = 0.05
SIGNIFICANT_NOTE = (
    "Bold: best and significantly better than the next; underlined: second best and significantly better than the "
    "third (Welch's t-test, two-sided p < {alpha:g}, over draw means where both have several draws, else over "
    "nets); a best or second best that is not significantly better is left unmarked (whole dataset and published "
    "rows excluded)."
)


def _caption(spec, agg, std, metric, symbols, with_published, what_varies: str,
             ranking_note: str = RANKING_NOTE) -> tuple[str, list[str]]:
    what = {"oa": "Overall accuracy", "macc": "Mean class accuracy"}[metric]
    ddofs = sorted(set(int(d) for d in agg["ddof"]))
    draws = sorted(set(int(n) for n in agg["n_draws"]))
    nets = sorted(set(int(n) for n in agg["n_nets"] // agg["n_draws"]))
    spread = (
        "std over evaluation nets" + (" (RMS over draws)" if max(draws) > 1 else "")
        if std == "nets" else "std over draw seeds"
    )
    selection = ("final epoch" if spec["selection"] == "final"
                 else "BEST EPOCH ON THE TEST SET (test-set selection, as DD3D reports)")
    title = (
        f"{what} (%), mean ± {spread}, ddof={','.join(map(str, ddofs))}; {selection}. "
        f"Protocol {spec['protocol']} v{spec['protocol_version']}, {what_varies}"
        + (f", distillation network {spec['distill_backbone']}" if spec["distill_backbone"] else "")
        + f"; {'/'.join(map(str, nets))} nets x {'/'.join(map(str, draws))} draw seed(s) per entry."
        + (f" Iterative methods after {spec['iteration']} iterations." if spec.get("iteration") is not None else "")
        + (f" Data: {spec['data_release']}." if spec.get("data_release") else "")
    )
    notes = [f"{sym} {text}" for text, sym in symbols.items()]
    notes.append(ranking_note)
    if with_published:
        notes.append("Rows marked [source] are published numbers, copied for comparison, not measured here.")
    return title, notes


def _split_by_distill_backbone(agg: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    """Groups by ``keys``; methods without a distillation network join the table of every network."""
    groups = []
    for key, g in agg.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        dbbs = sorted(d for d in g["distill_backbone"].unique() if d)
        for dbb in dbbs or [""]:
            groups.append((dict(zip(keys, key), distill_backbone=dbb), g[g["distill_backbone"].isin({"", dbb})]))
    return groups


# -- significance (--significant) ------------------------------------------------------------------------------


def attach_samples(agg: pd.DataFrame, tidy: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``agg`` with a ``samples`` column: per aggregated number, the per-net values of each draw seed."""
    keys = [k for k in agg.columns if k in tidy.columns and k in _GROUP_KEYS]

    def filled(frame):
        return frame[keys].astype(object).where(frame[keys].notna(), None).apply(tuple, axis=1)

    samples = {key: {int(seed): d[metric].astype(float).tolist() for seed, d in g.groupby("seed")}
               for key, g in tidy.groupby(filled(tidy), sort=False)}
    return agg.assign(samples=[samples.get(k, {}) for k in filled(agg)])


def sample_units(a: dict[int, list[float]], b: dict[int, list[float]]) -> tuple[list[float], list[float], str]:
    """The two samples a test compares: the draw means when both sides have several draws (the nets of one draw
    are not independent), else every net."""
    if len(a) >= 2 and len(b) >= 2:
        return [float(np.mean(v)) for v in a.values()], [float(np.mean(v)) for v in b.values()], "draws"
    return [x for v in a.values() for x in v], [x for v in b.values() for x in v], "nets"


def welch_p(a: dict[int, list[float]], b: dict[int, list[float]]) -> tuple[float, str]:
    """Two-sided p of Welch's t-test between two entries (NaN when a side has fewer than 2 values), and its
    unit with the sizes."""
    from scipy import stats

    x, y, unit = sample_units(a, b)
    if len(x) < 2 or len(y) < 2:
        return float("nan"), f"{unit}, {len(x)} vs {len(y)}"
    with np.errstate(all="ignore"):
        p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    return p, f"{unit}, {len(x)} vs {len(y)}"


def significant_marks(table: Table, cells: list[tuple[int, object]], decimals: int, alpha: float, where: str,
                      name) -> str:
    """Re-rank ``cells`` (entries that compete: ``(row index, column)``) so that the best is bold only when
    significantly better than the next and the second underlined only when significantly better than the third;
    returns the note that gives the tests. ``name(cell)`` names an entry."""
    values = {k: table.rows[k[0]].value(k[1])[0] for k in cells}
    for k in cells:
        table.ranks.pop(k, None)
    distinct = sorted({round(v, decimals) for v in values.values()}, reverse=True)
    tiers = [[k for k in cells if round(values[k], decimals) == d] for d in distinct]
    parts = []
    for rank, upper in enumerate(tiers[:2], 1):
        if len(upper) != 1:
            parts.append(f"{' = '.join(name(k) for k in upper)} tied")
            continue
        if rank >= len(tiers):
            break
        lower = tiers[rank]
        best = upper[0]
        tests = [(welch_p(table.rows[best[0]].samples.get(best[1], {}), table.rows[k[0]].samples.get(k[1], {})), k)
                 for k in lower]
        if all(p < alpha for (p, _), _ in tests):
            table.ranks[upper[0]] = rank
        parts += [f"{name(upper[0])} vs {name(k)} p = {p:.3g} ({unit})" + ("" if p < alpha else ", not significant")
                  for (p, unit), k in tests]
    return f"{where}: " + "; ".join(parts) + "." if parts else ""


# -- rows = methods ----------------------------------------------------------------------------------------------


def table_groups(agg: pd.DataFrame, labels: Labels = Labels()) -> list[tuple[dict, pd.DataFrame]]:
    return _split_by_distill_backbone(agg, ["protocol", "protocol_version", "eval_backbone", "selection",
                                            "data_release"])


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def build_table(spec: dict, agg: pd.DataFrame, std: str = "nets", decimals: int = 1, metric: str = "oa",
                published: pd.DataFrame | None = None, by: str = "ppc", storage: bool = False,
                labels: Labels = Labels(), significant: bool = False, alpha: float = ALPHA) -> Table:
    """Rows = methods; columns = dataset x PPC (``by="ppc"``) or dataset x storage budget (``by="budget"``, each
    cell noting the PPC the method got). ``storage`` notes every cell's stored bytes and clouds per class.
    ``significant`` (``agg`` with :func:`attach_samples`): bold and underline only what a test supports."""
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    axis = {"ppc": "ppc", "budget": "budget_bytes"}[by]
    full_data = agg["method"].isin(labels.full_data)
    non_whole = agg[~full_data]
    if by == "budget":
        non_whole = non_whole[non_whole["budget_bytes"].notna()]
    datasets = _order(agg["dataset"], DATASET_ORDER)
    columns = [(d, p) for d in datasets for p in sorted(non_whole[non_whole["dataset"] == d][axis].dropna().unique())]
    symbols = _deviation_symbols(agg)
    rows: list[Row] = []
    for method in _order(non_whole["method"], METHOD_ORDER):
        for (budget, confdev), g in non_whole[non_whole["method"] == method].groupby(["budget", "config_deviation"]):
            row = Row(labels.display_name("method", method), method, "measured",
                      [symbols[x] for x in (budget, confdev) if x])
            for _, r in g.iterrows():
                if pd.isna(r[axis]):
                    continue
                col = (r["dataset"], r[axis])
                row.values[col] = (r["mean"], r[std_col])
                row.samples[col] = r.get("samples") or {}
                notes = [f"PPC {int(r['ppc'])}"] if by == "budget" else []
                if storage and not pd.isna(r.get("storage_bytes_per_class")):
                    notes.append(f"{_kb(r['storage_bytes_per_class'])}, {r['effective_clouds_per_class']:g} cl")
                if notes:
                    row.notes[col] = "; ".join(notes)
            rows.append(row)
    rows += _full_data_rows(agg[full_data], std_col, symbols, labels)
    if published is not None and metric == "oa" and by == "ppc":
        rows += _published_method_rows(published, rows, columns, spec, labels)
    if by == "budget":
        axis_labels = dict(corner=("Method", "bytes/class"), sub_labels={b: _kb(b) for _, b in columns}, sub_prefix="",
                      csv_subs={b: f"budget{int(b)}" for _, b in columns})
    else:
        axis_labels = dict(corner=("Method", "PPC"), sub_labels={p: str(int(p)) for _, p in columns}, sub_prefix="PPC ",
                      csv_subs={p: f"ppc{int(p)}" for _, p in columns})
    table = Table(title="", columns=columns, rows=rows, notes=[], key_name="method",
                  group_labels={d: labels.display_name("dataset", d) for d in datasets}, **axis_labels)
    tests = _rank_method_columns(table, decimals, significant, alpha)
    with_published = any(r.kind == "published" for r in rows)
    table.title, table.notes = _caption(spec, agg, std, metric, symbols, with_published,
                                        f"evaluation network {spec['eval_backbone']}",
                                        SIGNIFICANT_NOTE.format(alpha=alpha) if significant else RANKING_NOTE)
    table.notes += tests
    if by == "budget":
        table.title += " Columns: equal storage per class; each method at the largest PPC that fits (noted)."
    return table


def _rank_method_columns(table: Table, decimals: int, significant: bool, alpha: float) -> list[str]:
    """Rank the measured rows in every column (by display precision, or by test with ``significant``); returns
    the notes giving the tests."""
    notes = []
    for col in table.columns:
        measured = {i: r.values[col][0] for i, r in enumerate(table.rows) if r.kind == "measured" and col in r.values}
        if not measured:
            continue
        table.ranks.update({(i, col): rank for i, rank in rank_values(measured, decimals).items()})
        if significant:
            where = f"{table.group_labels[col[0]]} {table.sub_prefix}{table.sub_labels[col[1]]}"
            notes.append(significant_marks(table, [(i, col) for i in measured], decimals, alpha, where,
                                           lambda k: table.rows[k[0]].label))
    return [n for n in notes if n]


def _full_data_rows(agg: pd.DataFrame, std_col: str, symbols: dict[str, str], labels: Labels) -> list[Row]:
    """The full-data methods' rows: one value spanning each dataset's columns."""
    rows = []
    for method in _order(agg["method"], METHOD_ORDER):
        for (budget, confdev), g in agg[agg["method"] == method].groupby(["budget", "config_deviation"]):
            row = Row(labels.display_name("method", method), method, "reference",
                      [symbols[x] for x in (budget, confdev) if x])
            row.span = {r["dataset"]: (r["mean"], r[std_col]) for _, r in g.iterrows()}
            rows.append(row)
    return rows


def _published_method_rows(published: pd.DataFrame, rows: list[Row], columns, spec, labels: Labels) -> list[Row]:
    out: list[Row] = []
    main = published["table"].isin(MAIN_TABLES) & (published.get("metric", "oa") == "oa")
    pub = published[(published["backbone"] == spec["eval_backbone"]) & main]
    for method in [r.key for r in rows if r.kind in ("measured", "reference")]:
        for source, g in pub[pub["method"] == method].groupby("source"):
            full_data = method in labels.full_data
            row = Row(f"{labels.display_name('method', method)} [{source}]", method, "published")
            if full_data:
                row.span = {}
            for _, r in g.iterrows():
                std = r["std"] if not pd.isna(r["std"]) else np.nan
                if full_data:
                    row.span[r["dataset"]] = (r["mean"], std)
                elif (r["dataset"], float(r["ppc"])) in columns:
                    row.values[(r["dataset"], float(r["ppc"]))] = (r["mean"], std)
            if (row.values or any(d in (row.span or {}) for d, _ in columns)) and \
                    all(existing.label != row.label for existing in out):
                out.append(row)
    return out


# -- rows = evaluation backbones ------------------------------------------------------------------------------------


def backbone_table_groups(agg: pd.DataFrame, labels: Labels = Labels()) -> list[tuple[dict, pd.DataFrame]]:
    measured = agg[~agg["method"].isin(labels.full_data)]
    return _split_by_distill_backbone(measured, ["protocol", "protocol_version", "selection", "ppc", "data_release"])


def build_backbone_table(spec: dict, agg: pd.DataFrame, std: str = "nets", decimals: int = 1, metric: str = "oa",
                         published: pd.DataFrame | None = None, by: str = "ppc", storage: bool = False,
                         labels: Labels = Labels(), significant: bool = False, alpha: float = ALPHA) -> Table:
    std_col = {"nets": "std_nets", "draws": "std_draws"}[std]
    datasets = _order(agg["dataset"], DATASET_ORDER)
    columns = [(d, m) for d in datasets for m in _order(agg[agg["dataset"] == d]["method"], METHOD_ORDER)]
    symbols = _deviation_symbols(agg)
    rows: list[Row] = []
    for ebb in _order(agg["eval_backbone"], BACKBONE_ORDER):
        for (budget, confdev), g in agg[agg["eval_backbone"] == ebb].groupby(["budget", "config_deviation"]):
            row = Row(labels.display_name("backbone", ebb), ebb, "measured",
                      [symbols[x] for x in (budget, confdev) if x])
            row.values = {(r["dataset"], r["method"]): (r["mean"], r[std_col]) for _, r in g.iterrows()}
            row.samples = {(r["dataset"], r["method"]): r.get("samples") or {} for _, r in g.iterrows()}
            rows.append(row)
    if published is not None and metric == "oa":
        pub = published[published["table"] == "2"]
        for (source, ebb), g in pub.groupby(["source", "backbone"]):
            row = Row(f"{labels.display_name('backbone', ebb)} [{source}]", ebb, "published")
            row.values = {(r["dataset"], r["method"]): (r["mean"], r["std"]) for _, r in g.iterrows()
                          if (r["dataset"], r["method"]) in columns}
            if row.values:
                rows.append(row)
    table = Table(
        title="", columns=columns, rows=rows, notes=[], key_name="eval_backbone", corner=("Evaluated on", "Method"),
        group_labels={d: labels.display_name("dataset", d) for d in datasets},
        sub_labels={m: labels.display_name("method", m) for _, m in columns},
    )
    tests = _rank_backbone_rows(table, datasets, decimals, significant, alpha)
    with_published = any(r.kind == "published" for r in rows)
    table.title, table.notes = _caption(
        spec, agg, std, metric, symbols, with_published, f"PPC {int(spec['ppc'])}",
        SIGNIFICANT_NOTE.format(alpha=alpha).replace("the next", "the next method of its row and dataset")
        if significant else "Bold: best method per row and dataset; underlined: second best (published rows excluded).")
    table.notes += tests
    if with_published:
        table.notes.append("The published cross-architecture rows (SADM Table 2) do not record their PPC.")
    return table


def _rank_backbone_rows(table: Table, datasets: list[str], decimals: int, significant: bool,
                        alpha: float) -> list[str]:
    """Rank the methods within every measured row and dataset (by test with ``significant``); returns the notes
    giving the tests."""
    notes = []
    for i, row in enumerate(table.rows):
        if row.kind != "measured":
            continue
        for d in datasets:
            cells = {col: v[0] for col, v in row.values.items() if col[0] == d}
            if not cells:
                continue
            table.ranks.update({(i, col): rank for col, rank in rank_values(cells, decimals).items()})
            if significant:
                notes.append(significant_marks(table, [(i, col) for col in cells], decimals, alpha,
                                               f"{row.label}, {table.group_labels[d]}",
                                               lambda k: table.sub_labels[k[1][1]]))
    return [n for n in notes if n]
