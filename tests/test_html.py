"""`kpictl report --format html` (src/kpictl/render/html.py): one self-contained page.

The page is parsed with the standard library's HTML parser; every table cell of the Markdown
scorecard must be a cell of the page, every image a `data:` URI that decodes to a PNG, and no
value from the data may become an element or attribute. The browser test (marked `browser`)
opens the page in headless Chromium (Debian's `chromium`, which `.ci/run` installs): no console
message, every image decoded, no sideways page scroll on a 390 px phone, screenshots at 1280
and 390 px and a PDF print written to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from contextlib import chdir
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from kpictl import load_spec
from kpictl.cli import app
from kpictl.engine.sources import load_sources
from kpictl.render.html import heading_slug, image_data_uri, markdown_to_html
from kpictl.render.text import md_cell, md_text
from kpictl.scorecard.charts import MIN_BUCKET_UNITS, ChartData, chart_data
from kpictl.scorecard.gather import gather_report
from kpictl.scorecard.model import VOLATILE_PROVENANCE, ReportOptions

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


# ----------------------------------------------------------------------------------------------
# Reading a page back
# ----------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Elements (tag, attributes), the text of each table cell, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.open: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("td", "th"):
            self._cell = []
        if tag not in ("meta", "img", "br", "hr", "input", "link"):
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <img … />: a void element, nothing to close

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def tags(self) -> Counter[str]:
        return Counter(tag for tag, _ in self.elements)


def markdown_cells(markdown: str) -> list[str]:
    """The text of every table cell as a CommonMark + GFM renderer shows it."""
    cells: list[str] = []
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    inside = False
    for token in tokens:
        if token.type in ("th_open", "td_open"):
            inside = True
        elif token.type in ("th_close", "td_close"):
            inside = False
        elif inside and token.type == "inline":
            cells.append(
                "".join(
                    c.content
                    for c in token.children or ()
                    if c.type in ("text", "text_special", "code_inline")
                ).strip()
            )
    return cells


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR, after checking the signature and every chunk's CRC
    and that the image data inflates."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    offset, chunks, idat = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert zlib.decompress(idat)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode_data_uri(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    assert head == "data:image/png;base64", head
    return base64.b64decode(payload, validate=True)


PNG_1X1 = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


# ----------------------------------------------------------------------------------------------
# markdown_to_html
# ----------------------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![i](http://e/t.png)",
    "http://evil.example",
    '" onmouseover="alert(1)',
    "x\n# All KPIs OK",
    "a|b",
]


def test_a_document_keeps_its_cells_headings_and_links() -> None:
    markdown = (
        "# Agent scorecard\n\n## At a glance\n\n| KPI | current |\n| --- | ---: |\n"
        "| Task completion | 69.51 % |\n| Cost | $0.8398 |\n\n"
        "See [Data quality](#data-quality).\n\n## Data quality\n\nAll good.\n"
    )
    html = markdown_to_html(markdown, title="Agent scorecard")
    page = Page(html)
    assert page.cells == ["KPI", "current", "Task completion", "69.51 %", "Cost", "$0.8398"]
    ids = [a.get("id") for tag, a in page.elements if tag in ("h1", "h2")]
    assert ids == ["agent-scorecard", "at-a-glance", "data-quality"]
    assert ("a", {"href": "#data-quality"}) in page.elements
    # each table scrolls in its own box; numbers keep GFM's right alignment
    wraps = [a for tag, a in page.elements if tag == "div"]
    assert wraps == [{"class": "table-wrap", "role": "region", "tabindex": "0"}]
    assert ("td", {"style": "text-align:right"}) in page.elements
    assert html.startswith("<!DOCTYPE html>\n") and "<title>Agent scorecard</title>" in html
    assert page.open == []  # every element closed


def test_data_values_stay_text() -> None:
    rows = "".join(f"| {md_cell(md_text(v))} | 1 |\n" for v in HOSTILE)
    markdown = f"# Cohorts\n\n| channel | n |\n| --- | ---: |\n{rows}\n"
    benign = markdown_to_html(
        "# Cohorts\n\n| channel | n |\n| --- | ---: |\n"
        + "".join(f"| v{i} | 1 |\n" for i in range(len(HOSTILE))),
        title="t",
    )
    page = Page(markdown_to_html(markdown, title="t"))
    assert page.elements == Page(benign).elements  # the same elements and attributes
    assert page.cells[2::2] == [" ".join(v.split()) for v in HOSTILE]


def test_raw_html_in_the_markdown_is_shown_as_text() -> None:
    page = Page(markdown_to_html("<script>alert(1)</script>\n\n<b>x</b> <img src=x>\n", title="t"))
    assert page.tags() == Counter(
        {"html": 1, "head": 1, "meta": 4, "title": 1, "style": 1, "body": 1, "main": 1, "p": 2}
    )
    assert "<script>alert(1)</script>" in "".join(page.text)


def test_a_title_is_escaped() -> None:
    html = markdown_to_html("# x\n", title='</title><script>alert("t")</script>')
    assert Page(html).tags()["script"] == 0
    assert "<title>&lt;/title&gt;&lt;script&gt;alert(&quot;t&quot;)" in html


def test_images_become_data_uris_and_a_missing_one_is_refused() -> None:
    html = markdown_to_html(
        "![Cost per task](charts/cost.png)\n", title="t", images={"charts/cost.png": PNG_1X1}
    )
    images = [a for tag, a in Page(html).elements if tag == "img"]
    assert [a["alt"] for a in images] == ["Cost per task"]
    assert png_size(decode_data_uri(images[0]["src"])) == (1, 1)
    with pytest.raises(ValueError, match=re.escape("no bytes for the image 'charts/other.png'")):
        markdown_to_html("![x](charts/other.png)\n", title="t", images={})
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert image_data_uri(svg) == "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
    with pytest.raises(ValueError, match="not a PNG or SVG image"):
        image_data_uri(b"GIF89a")


def test_heading_slugs_follow_github() -> None:
    seen: dict[str, int] = {}
    names = ["Data quality", "ROI", "Cost at scale (10x)", "ROI", "Drill-down"]
    slugs = [heading_slug(n, seen) for n in names]
    assert slugs == ["data-quality", "roi", "cost-at-scale-10x", "roi-1", "drill-down"]


def test_the_policy_forbids_scripts_and_fetches() -> None:
    html = markdown_to_html("# x\n", title="t")
    policy = next(
        a["content"]
        for tag, a in Page(html).elements
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert policy.startswith("default-src 'none'; img-src data:;")
    assert "script-src" not in policy  # falls back to default-src 'none'


# ----------------------------------------------------------------------------------------------
# Headless Chromium
# ----------------------------------------------------------------------------------------------

# a phone's width (iPhone 12 to 15: 390 CSS px). Screenshots are taken at exactly this width;
# a headless window is never narrower than 500 px, so the checker measures the page there, which
# is still under the stylesheet's phone breakpoint (40rem = 640 px)
PHONE = 390
NARROWEST_WINDOW = 500
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# reads the page after load: each image's decoded width, and whether the page scrolls sideways
CHECKER = (
    "window.addEventListener('load', () => { const out = document.createElement('pre');"
    " out.id = 'kpictl-check'; out.textContent = JSON.stringify({"
    " images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,"
    " width: i.naturalWidth})),"
    " scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth});"
    " document.body.append(out); });"
)


def chromium(page: Path, *args: str, width: int = 1280, height: int = 1600) -> tuple[str, str]:
    """Run headless Chromium on `page`; (stdout, the console lines of its log)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    profile = page.parent / f"profile-{width}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=5000",  # run the load handlers before dumping or printing
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, "\n".join(console)


def with_checker(html: str) -> str:
    """The page plus CHECKER, allowed by its hash in the page's own policy (nothing else is)."""
    digest = base64.b64encode(hashlib.sha256(CHECKER.encode()).digest()).decode()
    assert "default-src 'none';" in html
    html = html.replace("default-src 'none';", f"default-src 'none'; script-src 'sha256-{digest}';")
    return html.replace("</body>", f"<script>{CHECKER}</script>\n</body>")


def check_in_chromium(html: str, folder: Path, name: str) -> dict[str, dict[str, object]]:
    """Open `html` at 1280 and 390 px: no console message, screenshots and a PDF print into
    tests/artifacts/; returns the checker's findings per width."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = folder / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    checked = folder / f"{name}-checked.html"
    checked.write_text(with_checker(html), encoding="utf-8")
    found: dict[str, dict[str, object]] = {}
    for width, height in ((1280, 1600), (PHONE, 1600)):
        shot = ARTIFACTS / f"{name}-{width}.png"
        shot.unlink(missing_ok=True)
        _, console = chromium(page, f"--screenshot={shot}", width=width, height=height)
        assert console == "", console  # the page as shipped: no error, no CSP violation
        assert png_size(shot.read_bytes()) == (width, height)
        dom, console = chromium(checked, "--dump-dom", width=width, height=height)
        assert console == "", console
        match = re.search(r'<pre id="kpictl-check">(.*?)</pre>', dom, re.S)
        assert match, "the checker did not run"
        found[str(width)] = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    pdf = ARTIFACTS / f"{name}.pdf"
    pdf.unlink(missing_ok=True)
    _, console = chromium(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert console == "", console
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes().count(b"/Type /Page") >= 1
    return found


@pytest.mark.browser
def test_a_page_with_a_wide_table_and_an_image_in_chromium(tmp_path: Path) -> None:
    header = "| KPI | " + " | ".join(f"column {i}" for i in range(12)) + " |\n"
    rule = "| --- |" + " ---: |" * 12 + "\n"
    row = "| Task completion (not reopened in 24 h) |" + " 1,234.56 % |" * 12 + "\n"
    markdown = f"# Wide\n\n{header}{rule}{row * 3}\n![A chart](c.png)\n"
    html = markdown_to_html(markdown, title="Wide", images={"c.png": PNG_1X1})
    found = check_in_chromium(html, tmp_path, "unit-wide")
    for width, window in ((1280, 1280), (PHONE, NARROWEST_WINDOW)):
        checked = found[str(width)]
        assert checked["images"] == [{"alt": "A chart", "complete": True, "width": 1}]
        # the table scrolls inside its box; the page never scrolls sideways
        assert checked["scrollWidth"] == checked["innerWidth"] == window


# ----------------------------------------------------------------------------------------------
# kpictl report --format html on the bundled sample
# ----------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    with chdir(ROOT):
        result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def scorecards(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(Markdown on stdout, the HTML page written with -o) of `report --by channel`."""
    pytest.importorskip("matplotlib")
    page = tmp_path_factory.mktemp("html") / "out" / "scorecard.html"
    code, markdown, err = run("report", "--by", "channel")
    assert code == 0, err
    code, out, err = run("report", "--by", "channel", "--format", "html", "-o", str(page))
    assert code == 0, err
    assert out == "" and err.splitlines()[-1] == f"kpictl: wrote {page}"
    return markdown, page.read_text(encoding="utf-8")


def volatile(cells: list[str]) -> set[int]:
    """Indexes of the provenance rows that change from run to run (label and value)."""
    return {i + 1 for i, cell in enumerate(cells) if cell in VOLATILE_PROVENANCE} | {
        i for i, cell in enumerate(cells) if cell in VOLATILE_PROVENANCE
    }


def test_the_page_holds_every_cell_of_the_markdown(scorecards: tuple[str, str]) -> None:
    markdown, html = scorecards
    page = Page(html)
    assert page.open == []
    expected, shown = markdown_cells(markdown), page.cells
    assert len(shown) == len(expected) > 300
    skip = volatile(expected)
    assert [c for i, c in enumerate(shown) if i not in skip] == [
        c for i, c in enumerate(expected) if i not in skip
    ]
    # KPI values as the Markdown prints them (a no-break space before the unit)
    assert "69.51\u00a0%" in shown and "$0.8398" in shown
    assert page.elements[0] == ("html", {"lang": "en"})
    assert "<title>Agent scorecard</title>" in html


def test_the_page_is_self_contained(scorecards: tuple[str, str]) -> None:
    markdown, html = scorecards
    page = Page(html)
    assert page.tags()["script"] == 0 and page.tags()["link"] == 0
    for tag, attributes in page.elements:
        if "href" in attributes:
            assert attributes["href"].startswith("#"), (tag, attributes)
        if "src" in attributes:
            assert attributes["src"].startswith("data:image/png;base64,"), tag
    images = [a for tag, a in page.elements if tag == "img"]
    spec = load_spec(SPEC)
    assert len(images) == len(spec.kpis)  # every KPI has a daily trend on the sample
    for image in images:
        width, height = png_size(decode_data_uri(image["src"]))
        assert (width, height) == (1152, 720)  # 8 × 5 in at 144 dpi
    assert images[0]["alt"] == (
        "Task completion (not reopened in 24 h): treatment arm (arm = 'treatment'), per day"
    )
    # the Markdown printed to stdout has no images: charts come with --charts or --format html
    assert "![" not in markdown


def png_text(data: bytes) -> dict[str, str]:
    """The PNG's tEXt entries (keyword → text)."""
    entries, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            entries[key.decode("latin-1")] = value.decode("latin-1")
        offset += 12 + length
    return entries


@pytest.fixture(scope="module")
def treatment_by_day() -> dict[str, dict[str, int]]:
    """`kpictl compute --grain day --where "arm = 'treatment'"`: n per KPI and day."""
    code, out, err = run("compute", "--grain", "day", "--where", "arm = 'treatment'", "-f", "json")
    assert code == 0, err
    n: dict[str, dict[str, int]] = {}
    for row in json.loads(out)["results"]:
        if "bucket" in row["cohort"]:
            n.setdefault(row["kpi"], {})[row["cohort"]["bucket"]] = row["n"]
    return n


def test_each_chart_shows_the_n_per_day_compute_counts(
    scorecards: tuple[str, str], treatment_by_day: dict[str, dict[str, int]]
) -> None:
    _, html = scorecards
    images = [a for tag, a in Page(html).elements if tag == "img"]
    drawn = {}
    for image in images:
        described = json.loads(png_text(decode_data_uri(image["src"]))["Description"])
        drawn[described["kpi"]] = {
            bucket.replace("+00:00", "Z"): n for bucket, n in described["n"].items()
        }
    assert drawn == treatment_by_day
    kpis = load_spec(SPEC).kpis
    assert len(drawn) == len(kpis) and all(len(days) == 30 for days in drawn.values())


@pytest.fixture(scope="module")
def charts() -> dict[str, ChartData]:
    """What each chart of the sample's scorecard shows (the holdout design)."""
    spec = load_spec(SPEC)
    with chdir(ROOT):
        data = gather_report(spec, load_sources(spec, cache=False), ReportOptions())
    return {chart.kpi: chart for chart in chart_data(data)}


def test_a_share_has_a_wilson_band_and_thin_days_are_not_read(
    charts: dict[str, ChartData], treatment_by_day: dict[str, dict[str, int]]
) -> None:
    from statsmodels.stats.proportion import proportion_confint

    chart = charts["task_completion_rate"]
    assert chart.title == "Task completion (not reopened in 24 h)"
    assert chart.arm == "treatment arm (arm = 'treatment')"
    assert chart.baseline_label == "baseline holdout, control arm (arm = 'holdout')"
    assert chart.band == "95 % Wilson interval" and chart.min_units == MIN_BUCKET_UNITS == 30
    for point in chart.points:
        if point.n < 30 or point.value is None:
            assert point.low is None and point.high is None
            continue
        low, high = proportion_confint(round(point.value * point.n), point.n, method="wilson")
        assert (point.low, point.high) == (pytest.approx(low), pytest.approx(high))
    # too few units: exactly the days compute counts under 30 (csat: few rated conversations)
    for name in ("task_completion_rate", "csat_mean", "time_to_resolution_p50"):
        thin = {p.bucket.strftime("%Y-%m-%dT%H:%M:%SZ") for p in charts[name].sparse}
        assert thin == {day for day, n in treatment_by_day[name].items() if n < 30}, name
    assert len(charts["csat_mean"].sparse) == 26
    # a mean or a percentile has no per-day interval from (value, n): no band, said so
    assert charts["csat_mean"].band is None and charts["agent_latency_p95"].band is None


def test_a_far_threshold_does_not_stretch_the_axis(charts: dict[str, ChartData]) -> None:
    chart = charts["agent_latency_p95"]
    values = [p.value for p in chart.points if p.value is not None]
    assert chart.off_chart == (("catastrophic (> 10000)", 10000.0, "above"),)
    assert chart.y_range[1] < 6000 < 10000  # data up to ~4,600 ms; the bound is 10,000 ms
    assert chart.y_range[0] <= min(values) and max(values) <= chart.y_range[1]
    # thresholds near the data are drawn: policy violations' levels lie inside 0–6 %
    assert [label for label, _ in charts["policy_violation_rate"].thresholds] == [
        "warning (0.2pp)",
        "critical (0.5pp)",
        "catastrophic (> 1%)",
    ]
    assert charts["policy_violation_rate"].off_chart == ()


@pytest.mark.browser
def test_the_scorecard_page_in_chromium(scorecards: tuple[str, str], tmp_path: Path) -> None:
    _, html = scorecards
    found = check_in_chromium(html, tmp_path, "scorecard")
    for width, window in ((1280, 1280), (PHONE, NARROWEST_WINDOW)):
        checked = found[str(width)]
        images = checked["images"]
        assert isinstance(images, list) and len(images) == len(load_spec(SPEC).kpis)
        # every chart decoded at its full size
        assert all(i["complete"] and i["width"] == 1152 for i in images), images
        assert checked["scrollWidth"] == checked["innerWidth"] == window
