"""Reports people look at (docs/reports.md): plots, renders of synthetic sets, a self-contained HTML report,
comparisons with significance, and metrics beyond accuracy.

Everything here reads the typed cell records (``ddbench.tables.read_cells`` / ``ddbench.cells.record``) and
the artifacts (``ddbench.synthetic.artifact.load_artifact``); it never reads the component registry: display
names come in as :class:`ddbench.tables.layouts.Labels` and real clouds through a loader, both from the CLI.

- :mod:`ddbench.reports.plots`: the figures of ``ddbench plot`` (matplotlib, Agg canvas);
- :mod:`ddbench.reports.gallery`: the renders of ``ddbench render``;
- :mod:`ddbench.reports.report`: ``ddbench report`` (jinja2 template ``templates/report.html.j2``);
- :mod:`ddbench.reports.compare` and :mod:`ddbench.reports.stats`: ``ddbench compare`` (scipy.stats);
- :mod:`ddbench.reports.metrics`: gain over random, fraction of the whole-data accuracy, accuracy per KiB.
Submodules are imported on use, so that ``ddbench --help`` pays for none of matplotlib, scipy or jinja2.
"""
