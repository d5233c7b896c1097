"""The progress report and the terminal table, from a progress table built by hand (no Spark).

As of 7 November 2026: the published FY2023 (22.907 Mt) and FY2025 (59.208 Mt) totals plus
10,000 t measured from events: 82.125 Mt combined, 5.475 % of 1.5 Gt.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import os
import re
import subprocess
import sys

import pytest

from scope3plus.aggregates import ReportedAggregate
from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.pipeline.rollup import (PROGRESS_COLUMNS, TOO_LITTLE_HISTORY, TOTAL, fiscal_years, growth_trend,
                                        years_ahead)
from scope3plus.progress_report import STATUS_RULE, as_json, as_table, format_tonnes_rounded, progress_tables, render, total_row
from scope3plus.report import FILES, HEADLESS_CHROMIUM, find_chromium, write_pdf, write_report

AS_OF = dt.date(2026, 11, 7)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AGGREGATES = [
    ReportedAggregate("FY2023", dt.date(2022, 4, 1), dt.date(2023, 3, 31), 22_907_000.0,
                      "https://www.scmp.com/tech/big-tech/article/3228762/", "verified by Bureau Veritas"),
    ReportedAggregate("FY2025", dt.date(2024, 4, 1), dt.date(2025, 3, 31), 59_208_000.0,
                      "http://www.wzs.org.cn/sjzs/news?id=21371", "ESG Report 2025"),
]


def progress_row(scope: str, **values) -> dict:
    """A gold.progress row: an idle scenario unless ``values`` say otherwise."""
    row = dict.fromkeys(PROGRESS_COLUMNS, 0.0)
    row.update(scope=scope, as_of=AS_OF, events=0, fiscal_year="FY2027", goal_t=1.5e9, days_remaining=3341,
               trailing_365d_days_with_data=0, remaining_t=None, required_t_per_year=None, on_track=None,
               projected_growth_t=None, projected_growth_low_t=None, projected_growth_high_t=None,
               growth_slope_t_per_year=None, growth_method=None,
               methodology_versions="", latest_run_landing_date=AS_OF, latest_run_status="succeeded", latest_run_quarantined_share=0.01,
               latest_run_id="run-2026-11-07", run_id="run-2026-11-07")
    row.update(values)
    return row


def hand_years(series: list[dict], aggregates: list[ReportedAggregate], config) -> list[dict]:
    """``fiscal_years`` as of hand_rows' date, against its goal."""
    total = total_row(hand_rows())
    return fiscal_years(total["as_of"], total["goal_t"], series, aggregates, config)


def hand_rows() -> list[dict]:
    green = dict(events=12_345, day_t=1_234.5, month_to_date_t=8_765.432, calendar_year_to_date_t=9_876.5,
                 fiscal_year_to_date_t=9_000.0, cumulative_t=10_000.0, cumulative_low_t=9_000.0,
                 cumulative_high_t=11_500.0, as_reported_cumulative_t=10_000.0, combined_cumulative_t=10_000.0,
                 trailing_365d_t=10_000.0, trailing_365d_days_with_data=7, share_of_goal=10_000 / 1.5e9,
                 combined_share_of_goal=10_000 / 1.5e9, projected_linear_t=101_000.0,
                 methodology_versions="green_trip@1.0.0", latest_run_quarantined_share=0.0123)
    rows = [progress_row(s, **(green if s == "green_trip" else {})) for s in SCENARIOS]
    rows.append(progress_row(
        TOTAL, **{**green, "reported_cumulative_t": 82_115_000.0, "combined_cumulative_t": 82_125_000.0,
                  "combined_share_of_goal": 82_125_000.0 / 1.5e9, "remaining_t": 1_417_875_000.0,
                  "required_t_per_year": 155_004_123.0, "projected_linear_t": 82_216_000.0,
                  "growth_method": TOO_LITTLE_HISTORY,  # two reported totals (FY2023, FY2025): no trend
                  "on_track": False, "methodology_versions": "green_trip@1.0.0"}))
    return rows


SERIES = [{"scenario": "green_trip", "month": dt.date(2026, 11, 1), "tonnes": 10_000.0}]
# green_trip's latest delivery as `delivery_quality` reads it from ops/job_runs and quarantine/green_trip
QUALITY = [{"scenario": "green_trip", "landing_date": AS_OF, "run_id": "run-2026-11-07", "gate": "passed, 1.230% quarantined",
            "landed_lines": 1_000, "silver_rows": 980, "quarantined_rows": 12, "duplicates_removed": 8,
            "reasons": {"range:distance_km": 7, "malformed_json": 5}}]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(out, hand_rows(), SERIES, AGGREGATES, load_config(None), QUALITY)


def test_the_page_shows_the_tables_numbers_as_formatted(report):
    page = report["html"].read_text(encoding="utf-8")
    for expected in (
        "OFF TRACK",
        "82.125 Mt",        # combined: 22.907 + 59.208 Mt reported + 10,000 t from events
        "82.115 Mt",        # reported
        "10,000.000 t",     # event-derived
        "5.475%",           # 82.125 Mt / 1.5 Gt
        "82.1 Mt CO2e avoided so far",  # the headline to 3 significant figures: 82,125,000 t
        "1.42 Gt",          # remaining: 1.5 Gt - 82.125 Mt = 1,417,875,000 t, to 3 significant figures
        "3,341 days",
        "155 Mt a year",    # 155,004,123 t to 3 significant figures
        "82.216 Mt",        # projection at the last 365 days' pace
        "1,234.500 t", "8,765.432 t", "9,876.500 t", "9,000.000 t",   # day, month, calendar and fiscal year
        "9,000.000 t – 11,500.000 t",                                   # the range
        "passed, 1.230% quarantined",
        "22.907 Mt", "59.208 Mt", "https://www.scmp.com/tech/big-tech/article/3228762/",
        "7 November 2026", "FY2027 to date", "Green trips (Amap)", "no events measured yet",
    ):
        assert html.escape(expected) in page, expected
    for table in progress_tables(hand_rows()):
        for cell in (c for row in table.body for c in row):
            assert html.escape(cell) in page, cell


def test_the_page_stands_alone_with_the_chart_embedded(report):
    page = report["html"].read_text(encoding="utf-8")
    png = report["png"].read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # the cumulative chart, then each scenario's share of the event-derived total (one bar per scenario)
    assert [base64.b64decode(e) for e in embedded] == [png, report["scenarios_png"].read_bytes()]
    assert not re.search(r"<(link|script)|src=\"http", page)  # nothing fetched from elsewhere
    from matplotlib.image import imread

    assert imread(report["png"]).shape[:2] == (640, 1100)  # 11 × 6.4 in at 100 dpi


def test_the_status_states_one_rule_and_no_trend_from_two_points(report):
    """hand_rows' growth fit rests on two reported totals (FY2023, FY2025): no trend is shown, and the
    page's only verdict is the one the linear rule gives (82.216 Mt projected < 1.5 Gt: OFF TRACK)."""
    page = html.unescape(report["html"].read_text(encoding="utf-8"))
    assert STATUS_RULE in page and TOO_LITTLE_HISTORY in page
    assert "would reach the goal" not in page and "growth trend continues off the chart" not in page
    assert "2.346 Gt" not in page and "61.3%" not in page  # the two-point fit's projection and rate: not quoted
    assert ">ON TRACK<" not in page and '<span class="badge">OFF TRACK</span>82.1 Mt CO2e avoided so far' in page
    assert "10,000 t (rests on 7 days of event data, less than a year: not a year's pace)" in page


def three_years() -> list[ReportedAggregate]:
    """Reported totals for three fiscal years in a row: FY2023 20 Mt, FY2024 30 Mt, FY2025 46 Mt."""
    return [ReportedAggregate(f"FY{2023 + i}", dt.date(2022 + i, 4, 1), dt.date(2023 + i, 3, 31), tonnes, "https://example.org", "")
            for i, tonnes in enumerate((20e6, 30e6, 46e6))]


def test_a_trend_through_three_fiscal_years_with_its_band(tmp_path):
    """Points (x = the fiscal year's first calendar year, y = its total): (2022, 20 Mt), (2023, 30 Mt), (2024, 46 Mt).
    x̄ = 2023, ȳ = 32 Mt, Sxx = 1 + 0 + 1 = 2, Sxy = (-1)(-12) + 0 + (1)(14) = 26 Mt: slope 13 Mt a year.
    Fitted 19, 32, 45 Mt; residuals 1, -2, 1 Mt; s² = (1 + 4 + 1) / (3 - 2) = 6 Mt²: s = √6 Mt ≈ 2.449 Mt."""
    config = load_config(None)
    trend = growth_trend(hand_years(SERIES, three_years(), config))
    assert trend.labels == ("FY2023", "FY2024", "FY2025")
    assert trend.slope == pytest.approx(13e6) and trend.intercept == pytest.approx(32e6)
    assert trend.se == pytest.approx(math.sqrt(6) * 1e6)
    # From 8 November 2026 to 31 December 2035: FY2027 (x 2026) 8 Nov - 31 Mar = 23 + 31 + 31 + 28 + 31 = 144 of 365 days;
    # x 2027..2034 whole; FY2036 (x 2035, 366 days with 29 Feb 2036) 1 Apr - 31 Dec 2035 = 275 days.
    ahead = years_ahead(AS_OF, config.goal_end, config.fiscal_year_start_month)
    assert ahead == [(2026.0, pytest.approx(144 / 365)), *[(float(x), 1.0) for x in range(2027, 2035)],
                     (2035.0, pytest.approx(275 / 366))]
    w = 144 / 365 + 8 + 275 / 366                     # ≈ 9.146 years ahead
    lever = 3 * 144 / 365 + (4 + 5 + 6 + 7 + 8 + 9 + 10 + 11) + 12 * 275 / 366  # Σ f·(x - 2023) ≈ 70.20
    added = w * 32e6 + 13e6 * lever                   # ≈ 1.205 Gt
    spread = 2 * math.sqrt(6) * 1e6 * math.sqrt(w * w / 3 + lever * lever / 2)  # ≈ 244.6 Mt
    value, low, high = trend.added(ahead)
    assert (value, low, high) == pytest.approx((added, added - spread, added + spread))
    assert added == pytest.approx(1_205_267_790, abs=1) and spread == pytest.approx(244_551_799, abs=1)

    paths = write_report(tmp_path, hand_rows(), SERIES, three_years(), config)
    page = html.unescape(paths["html"].read_text(encoding="utf-8"))
    # 82.125 Mt combined + 1.2053 Gt = 1.287 Gt; band 82.125 Mt + 960.7 Mt = 1.043 Gt to 82.125 Mt + 1.4498 Gt = 1.532 Gt
    assert ("a least-squares straight line through 3 complete fiscal-year totals (FY2023, FY2024, FY2025; +13.0 Mt a year) "
            "projects 1.29 Gt by 31 December 2035, band of ±2 standard errors 1.04 Gt to 1.53 Gt") in page
    assert TOO_LITTLE_HISTORY not in page and '<span class="badge">OFF TRACK</span>' in page  # the rule still decides
    assert trend_pixels(paths["png"]) > 500 and trend_pixels(write_report(
        tmp_path / "two", hand_rows(), SERIES, AGGREGATES, config)["png"]) == 0  # the band is drawn only with the trend


def trend_pixels(png) -> int:
    """Pixels of the trend's band (#e08a1e at 25 % over white: about (248, 226, 199)) in a chart."""
    from matplotlib.image import imread

    pixels = (imread(png)[:, :, :3] * 255).round()
    return int((abs(pixels - [248, 226, 199]).max(axis=2) <= 3).sum())


def test_no_trend_from_two_fiscal_years_or_a_year_with_a_few_days_of_events():
    config = load_config(None)
    # AGGREGATES: FY2023 and FY2025 reported, FY2024 without data (unknown, not zero): two points
    assert growth_trend(hand_years(SERIES, AGGREGATES, config)) is None
    # a third complete year, FY2026, whose events fall in one month only: no year's total, not a point
    one_month = SERIES + [{"scenario": "green_trip", "month": dt.date(2025, 11, 1), "tonnes": 500.0}]
    years = hand_years(one_month, AGGREGATES, config)
    assert [y["label"] for y in years if y["covered"]] == ["FY2023", "FY2025"]
    assert growth_trend(years) is None
    # events in every month of FY2026 (April 2025 - March 2026): a third point
    every_month = SERIES + [{"scenario": "green_trip", "month": dt.date(2025 + (m < 4), m, 1), "tonnes": 500.0}
                            for m in range(1, 13)]
    assert growth_trend(hand_years(every_month, AGGREGATES, config)).labels == ("FY2023", "FY2025", "FY2026")


@pytest.mark.parametrize("tonnes, shown", [
    (82_125_000.0, "82.1 Mt"), (33.355, "33.4 t"), (10_000.0, "10,000 t"), (999.96, "1,000 t"),
    (2_345_678_901.0, "2.35 Gt"), (0.01234, "0.0123 t"), (0.0, "0 t"), (None, "–"),
])
def test_headline_tonnes_have_three_significant_figures(tonnes, shown):
    assert format_tonnes_rounded(tonnes) == shown


def test_the_csv_is_the_table(report):
    lines = report["csv"].read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(PROGRESS_COLUMNS) and len(lines) == 1 + len(SCENARIOS) + 1
    assert lines[-1].startswith("total,2026-11-07,12345,")
    assert sorted(p.name for p in report.values()) == sorted(FILES.values())


def test_the_terminal_table_aligns_numbers_and_units():
    text = as_table(hand_rows())
    for expected in ("82.125 Mt", "5.475%", "1,234.500 t", "OFF TRACK", "Green trips (Amap)"):
        assert expected in text
    lines = text.splitlines()
    start = lines.index(next(l for l in lines if l.startswith("Toward the")))
    # a row per scenario, a rule, the total
    head, body = lines[start + 1], [l for l in lines[start + 3:start + 3 + len(SCENARIOS) + 2] if not l.startswith("-")]
    end = head.index("Combined") + len("Combined")  # numbers are right-aligned to the column's end
    assert [l[end - 2:end] for l in body] == ["t "] * len(SCENARIOS) + ["Mt"]  # units in a 2-wide slot at the column end
    assert {l[end - 7] for l in body} == {"."}  # the decimal points line up, t and Mt alike


def test_json_keeps_every_existing_key_and_adds_the_new_ones():
    data = json.loads(render(hand_rows(), "json"))
    for key in ("as_of", "goal_t", "cumulative_t", "share_of_goal", "remaining_t", "days_remaining",
                "required_t_per_year", "trailing_365d_t", "on_track", "scenarios",
                "combined_cumulative_t", "reported_cumulative_t", "projected_linear_t", "projected_growth_t",
                "growth_method", "fiscal_year_to_date_t", "latest_run_status"):
        assert key in data, key
    green = data["scenarios"]["green_trip"]
    for key in ("cumulative_t", "day_t", "events", "trailing_365d_t", "share_of_goal", "methodology_versions",
                "combined_cumulative_t", "projected_growth_t", "latest_run_quarantined_share"):
        assert key in green, key
    assert data["combined_cumulative_t"] == 82_125_000.0 and as_json(hand_rows())["as_of"] == "2026-11-07"


def s3p(*args):
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("report",), "the following arguments are required: --out"),
    (("report", "--out", "x", "--as-of", "2026-02-30"), "not a date YYYY-MM-DD: '2026-02-30'"),
    (("report", "--lake", "/nonexistent/lake", "--out", "x"), "no progress table at /nonexistent/lake/gold/progress"),
    (("report", "--lake", "/nonexistent/lake", "--out", "x", "--as-of", "2026-11-07"),
     "no daily summary under /nonexistent/lake"),
    (("aggregates",), "required: ACTION"),
    (("aggregates", "load", "--file", "/nonexistent.yaml"), "reported aggregates file not found: /nonexistent.yaml"),
])
def test_report_and_aggregates_commands_fail_in_one_line(args, message):
    out = s3p(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


# Written into the page's copy (the report itself carries no script): after load, what the browser laid out.
MEASURE = """<script>addEventListener("load", () => {
  const page = document.documentElement, width = window.innerWidth;
  page.setAttribute("data-measured", JSON.stringify({
    width: width, scroll_width: page.scrollWidth,
    overflowing: [...document.querySelectorAll("main *")].filter(e => e.getBoundingClientRect().right > width + 0.5)
                   .map(e => e.tagName + "." + e.className),
    images: [...document.images].map(i => i.complete ? i.naturalWidth : 0)}));
});</script>"""
CHROMIUM_FLAGS = [*HEADLESS_CHROMIUM, "--window-size=1280,1600"]


def test_the_page_renders_in_a_browser(report, tmp_path, tmp_path_factory):
    """Open the page as a person would, in headless Chromium (installed by `make test`): nothing wider than
    the window, every chart loaded, the headline figures those of `s3p progress --format json`; the
    screenshot is kept in the pytest base temp directory."""
    chromium = find_chromium()  # installed by `make test`; a missing one fails here, it does not skip
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(report["html"].read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                             encoding="utf-8")
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'dom-profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", measured_page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[:2000]
    measured = json.loads(html.unescape(found.group(1)))
    assert measured["scroll_width"] <= measured["width"] and measured["overflowing"] == [], measured
    assert len(measured["images"]) == 2 and all(w > 0 for w in measured["images"]), measured  # both charts

    expected = json.loads(render(hand_rows(), "json"))  # what `s3p progress --format json` prints for these rows
    figures = dict((key, (float(value), html.unescape(text))) for key, value, text in
                   re.findall(r'<dd data-key="(\w+)" data-value="([^"]+)">([^<]*)</dd>', dom))
    assert set(figures) == {"combined_cumulative_t", "combined_share_of_goal", "trailing_365d_t", "projected_linear_t"}
    for key, (value, _) in figures.items():
        assert value == expected[key], key
    # 3 significant figures: 82,125,000 t -> 82.1 Mt; 10,000 t -> 10,000 t; 82,216,000 t -> 82.2 Mt
    assert figures["combined_cumulative_t"][1] == "82.1 Mt"
    assert figures["trailing_365d_t"][1] == "10,000 t"
    assert figures["projected_linear_t"][1] == "82.2 Mt"
    assert "rests on 7 days of event data" in dom  # hand_rows: event data on 7 of the last 365 days
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))  # the data-quality section: the run and the tables named
    for said in ("run run-2026-11-07", "silver/green_trip, quarantine/green_trip", "range:distance_km: 7",
                 "malformed_json: 5", "1,000", "passed, 1.230% quarantined"):
        assert said in text, said

    shot = tmp_path_factory.getbasetemp() / "report-screenshot.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'shot-profile'}", f"--screenshot={shot}",
                    report["html"].resolve().as_uri()], capture_output=True, timeout=120, check=False)
    print(f"screenshot: {shot}")
    assert shot.exists() and shot.read_bytes().startswith(PNG_SIGNATURE)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1280) and pixels.std() > 0.05  # not a blank page


def test_the_pdf_is_printed_beside_the_page(report):
    pdf = write_pdf(report["html"], find_chromium())
    data = pdf.read_bytes()
    assert pdf == report["html"].parent / "progress.pdf" and data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) > 0  # at least one page
    assert not list(pdf.parent.glob(".*.partial"))


def test_report_pdf_without_chromium_fails_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "report", "--out", str(tmp_path / "out"), "--pdf",
                          "--lake", str(tmp_path / "lake")], capture_output=True, text=True,
                         env={**os.environ, "PATH": str(tmp_path)})  # a PATH with no chromium on it
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "s3p: error: --pdf needs chromium, which is not installed: run `make chromium` (apt-get install -y chromium)"]
    assert not (tmp_path / "out").exists()


def test_each_fiscal_year_against_the_previous_and_the_straight_line_path(report):
    years = hand_years(SERIES, AGGREGATES, load_config(None))
    # FY2021 (April 2020 - March 2021, the goal starts 1 January 2021) to FY2027, to date on 7 November 2026
    assert [y["label"] for y in years] == [f"FY{y}" for y in range(2021, 2027)] + ["FY2027 to date"]
    per_day = 1.5e9 / 5478  # 1 Jan 2021 - 31 Dec 2035: 15 × 365 + 3 leap days (2024, 2028, 2032)
    assert [y["path_t"] for y in years] == pytest.approx(
        [90 * per_day, 365 * per_day, 365 * per_day, 366 * per_day, 365 * per_day, 365 * per_day,
         221 * per_day])  # FY2021: 1 Jan - 31 Mar 2021; FY2024 holds 29 Feb 2024; FY2027: 1 Apr - 7 Nov 2026
    totals = {y["label"]: y["tonnes"][TOTAL] for y in years}
    assert totals == {"FY2021": 0.0, "FY2022": 0.0, "FY2023": 22_907_000.0, "FY2024": 0.0, "FY2025": 59_208_000.0,
                      "FY2026": 0.0, "FY2027 to date": 10_000.0}
    assert years[-1]["tonnes"]["green_trip"] == 10_000.0 and years[4]["tonnes"]["reported"] == 59_208_000.0
    page = report["html"].read_text(encoding="utf-8")
    # FY2023: 22,907,000 / (365 × 1.5e9 / 5478 = 99,945,235.5) = 22.920 %; FY2024 against FY2023: 0 / 22.907 Mt - 1
    assert "22.920% of the path" in page and "-100.0% vs previous FY" in page and "FY2027 to date" in page


def test_the_data_quality_page_renders_in_a_browser(tmp_path):
    """A run's dq/report.html (logged to MLflow): self-contained and styled, no image to break, the run
    id, the delivery and the tables checked named in what the browser shows."""
    from scope3plus.pipeline.quality import DataQuality, load_suites, row_rule_results

    suites = load_suites()
    checks = DataQuality(None, AS_OF, "run-2026-11-07-abc", suites=suites)
    checks.results = row_rule_results(suites[("green_trip", "silver")], {("range:distance_km",): 7, (): 0}, 1_000)
    checks.write_artifacts(tmp_path / "dq")
    page = (tmp_path / "dq" / "report.html").read_text(encoding="utf-8")
    assert "<style>" in page and not re.search(r"<(img|link|script)|src=|href=", page)  # nothing to fetch or break
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run([find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", measured_page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[:2000]
    measured = json.loads(html.unescape(found.group(1)))
    assert measured["images"] == [] and measured["overflowing"] == [], measured
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    for said in ("Data quality: run run-2026-11-07-abc", "silver/green_trip", "delivered 2026-11-07",
                 "7 of 1,000 lines quarantined (range:distance_km: 7)", "rows quarantined", "passed"):
        assert said in text, said
    assert "None" not in text and "__none__" not in text
