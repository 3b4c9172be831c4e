"""``ddbench report``: one self-contained HTML page that holds every cell of its inputs, embeds its images as
data URIs, references no remote URL, and loads in a real browser (Chromium, where installed) without a console
error or a broken image."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from ddbench.reports.report import ReportOptions, build_report, report_context
from ddbench.tables import read_cells
from ddbench.tables.layouts import Labels
from tests.test_reports_fixtures import REFERENCE_URL, build_results, real_clouds

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LABELS = Labels({"method": {"random": "Random", "sadm": "SADM"}})


class _Page(HTMLParser):
    """Every attribute value, every <img> src, and the text outside citation spans."""

    def __init__(self):
        super().__init__()
        self.attributes: list[tuple[str, str, str]] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._citation = 0

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, k, v or "") for k, v in attrs]
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag == "span" and "citation" in (dict(attrs).get("class") or ""):
            self._citation += 1

    def handle_endtag(self, tag):
        if tag == "span" and self._citation:
            self._citation -= 1

    def handle_data(self, data):
        if not self._citation:
            self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def decodes_to_png(src: str) -> bool:
    prefix = "data:image/png;base64,"
    return src.startswith(prefix) and base64.b64decode(src[len(prefix):], validate=True).startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def page(results, tmp_path_factory) -> Path:
    real = real_clouds()
    return build_report([results], tmp_path_factory.mktemp("report"), LABELS, ReportOptions(dpi=40),
                        real_loader=lambda manifest: real)


def test_report_holds_every_cell_of_its_inputs(results, page):
    html = page.read_text()
    cells, _ = read_cells(results)
    for c in cells:
        assert f'id="cell-{c.cell_id}"' in html, c.cell_id
    assert html.count('<tr id="cell-') == len(cells)
    assert "failed: boom" in html  # failed cells are listed too, with their error


def test_report_has_the_tables_metrics_plots_galleries_and_provenance(page):
    html = page.read_text()
    text = " ".join(parse(html).text)
    for section in ("tables", "metrics", "comparisons", "plots", "galleries", "provenance", "cells"):
        assert f'<section id="{section}">' in html
    assert '<td class="best"' in html  # significance-ranked tables
    assert "Welch&#39;s t-test" in html or "Welch's t-test" in text
    for kind in ("ppc", "storage", "iteration", "heatmap", "cost"):
        assert f'id="plot-{kind}"' in html
    for artifact in ("herding.h5", "dd3d.h5", "3ddp.h5"):
        assert artifact in text
    assert "resolutions" in text and "anchors" in text
    assert "+12.67 (3 draws)" in text  # SADM PPC 1's gain over random, draw by draw
    assert "eval_nets = 5 (reference 10; budget)" in text and "sadm v1" in text
    assert "torch 2.13.0+cpu" in text and "test-cpu" in text and "glibc" in text
    assert "ddbench run --config experiment.toml" in text  # the experiment file that made the directory


def test_report_is_self_contained(page):
    html = page.read_text()
    parsed = parse(html)
    assert parsed.images and all(decodes_to_png(src) for src in parsed.images)
    for tag, name, value in parsed.attributes:
        if name in ("src", "href", "action", "poster", "srcset"):  # only embedded data or in-page anchors
            assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:80]!r}> refers to another resource"
        else:
            assert not re.search(r"https?://", value), f"<{tag} {name}={value[:80]!r}> names a remote URL"
    assert not re.search(r"https?://", " ".join(parsed.text)), "a remote URL outside a plain-text citation"
    assert REFERENCE_URL in html  # ... where it is a citation, plain text
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<style>" in html  # the CSS is inline


def test_template_is_shipped_as_package_data():
    template = resources.files("ddbench.reports").joinpath("templates", "report.html.j2")
    assert template.is_file()
    assert '"reports/templates/*.j2"' in (REPO / "pyproject.toml").read_text()


def test_report_without_galleries(results):
    context = report_context([results], LABELS, ReportOptions(galleries=False))
    assert context["galleries"] == [] and len(context["plots"]) == 5


def test_report_notes_an_artifact_it_cannot_read(results, tmp_path):
    import shutil as sh

    from ddbench.reports.report import _galleries

    copy = Path(sh.copytree(results, tmp_path / "copy"))
    (copy / "artifacts" / "dd3d.h5").write_bytes(b"not an artifact")
    galleries = _galleries(read_cells(copy)[0], None, ReportOptions(max_classes=1, dpi=20))
    broken = next(g for g in galleries if g["artifact"] == "dd3d.h5")
    assert broken["note"].startswith("not rendered:") and broken["images"] == []
    assert all(g["images"] for g in galleries if g is not broken)  # the others, without real clouds


# -- in a real browser ---------------------------------------------------------------------------------------------


def load_in_browser(path: Path, timeout: int = 120) -> tuple[str, str]:
    """(DOM after the load event, stderr) of headless Chromium on ``path``."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri()],
                          capture_output=True, text=True, timeout=timeout)
    return proc.stdout, proc.stderr


def browser_problems(path: Path) -> list[str]:
    """Console messages (the page logs none when all is well), images the browser did not decode, images that
    are not PNG data URIs."""
    dom, stderr = load_in_browser(path)
    problems = [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    body = re.search(r"<body[^>]*>", dom)
    if not body or 'data-images-broken="0"' not in body.group(0):
        problems.append(f"broken images, or the load event never ran: {body.group(0) if body else dom[:200]!r}")
    expected = len(parse(path.read_text()).images)
    if body and f'data-images="{expected}"' not in body.group(0):
        problems.append(f"the browser saw another number of images than the {expected} of the page")
    problems += [f"not a PNG data URI: {src[:60]}" for src in parse(dom).images if not decodes_to_png(src)]
    return problems


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_loads_in_chromium_without_errors(page):
    assert browser_problems(page) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_browser_check_sees_a_console_error_and_a_broken_image(page, tmp_path):
    html = page.read_text()
    bad = tmp_path / "bad.html"
    first = parse(html).images[0]
    bad.write_text(html.replace(first, "data:image/png;base64,iVBORw0KGgo=", 1)
                   .replace("</main>", "<script>undefinedFunction();</script></main>"))
    problems = browser_problems(bad)
    assert any("undefinedFunction" in p for p in problems)
    assert any("broken images" in p for p in problems)
