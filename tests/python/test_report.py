"""`driftwatch report` opened in a real browser (headless Chromium with Playwright).

A drift monitor runs with the real binary over generated data (a file source) in which two
of four features drift in the second half; its report is then opened in Chromium with every
network request routed to a failing handler: the page must load nothing, log no console
error, draw its charts (SVG elements with non-zero boxes) and mark exactly the two drifted
features in the heat map. A screenshot goes to $DRIFTWATCH_ARTIFACTS (else pytest's tmp).

    cargo build --bin driftwatch
    pytest -s tests/python/test_report.py
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dw_server import BIN

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SECONDS, RATE, WINDOW_S = 240, 8, 10
FEATURES = ["age", "income", "score", "tenure"]
DRIFTING = {"income", "score"}

MONITORS = """
CREATE SOURCE s (ts TIMESTAMP, age DOUBLE, income DOUBLE, score DOUBLE, tenure DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '1 second')
  WITH (connector = 'file', path = 'events.csv', format = 'csv', time_format = 'epoch_ms');
CREATE BASELINE ref FROM 'train.csv';
CREATE MONITOR feature_drift AS
SELECT window_start, window_end, feature, count(*) AS n,
       ks_stat(value, 'ref', feature) AS ks,
       ks_pvalue(value, 'ref', feature) < 0.001 AS drift,
       histogram(value, 'ref', feature) AS hist
FROM TUMBLE(features(s), ts, INTERVAL '10 seconds')
GROUP BY window_start, window_end, feature;
"""


def write_inputs(d: Path) -> None:
    rng = np.random.default_rng(14)
    train = rng.normal(size=(2000, len(FEATURES)))
    np.savetxt(d / "train.csv", train, delimiter=",", header=",".join(FEATURES),
               comments="", fmt="%.6f")
    n = SECONDS * RATE
    ts = T0_MS + np.arange(n) * (1000 // RATE)
    x = rng.normal(size=(n, len(FEATURES)))
    late = np.arange(n) >= n // 2
    for j, f in enumerate(FEATURES):
        if f in DRIFTING:
            x[late, j] += 2.5  # mean shift of 2.5 standard deviations
    with open(d / "events.csv", "w") as fh:
        fh.write("ts," + ",".join(FEATURES) + "\n")
        for t, row in zip(ts, x):
            fh.write(f"{t}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    (d / "m.sql").write_text(MONITORS)


def browser_args() -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    if not Path(BIN).exists():
        pytest.skip(f"no driftwatch binary at {BIN} (cargo build --bin driftwatch)")
    d = tmp_path_factory.mktemp("report")
    write_inputs(d)
    data_dir = d / "dd"
    run = subprocess.run([str(BIN), "run", "m.sql", "--quiet", "--no-flight",
                          "--http-listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
                         cwd=d, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = d / "report.html"
    rep = subprocess.run([str(BIN), "report", "feature_drift", "--data-dir", str(data_dir),
                          "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert "24 windows" in rep.stdout, rep.stdout
    return out


def test_report_renders_offline_in_chromium_and_marks_the_drifted_features(
        report_file: Path, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    artifacts = Path(os.environ.get("DRIFTWATCH_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    console_errors: list[str] = []
    with playwright.sync_playwright() as p:
        # A fresh profile directory (Playwright passes it as --user-data-dir).
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=browser_args(), viewport={"width": 1100, "height": 900})
        try:

            def refuse(route):
                if route.request.url == report_file.as_uri():
                    route.continue_()  # the report itself, from disk
                    return
                requests.append(route.request.url)
                route.abort()

            context.route("**/*", refuse)
            page = context.new_page()
            page.on("console", lambda m: console_errors.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            # Every request besides the file itself (a stylesheet, an image, a font, a
            # script) is recorded and refused.
            seen: list[str] = []
            page.on("request", lambda r: seen.append(r.url))
            page.goto(report_file.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            requests.extend(u for u in seen if u != report_file.as_uri())

            assert page.title() == "driftwatch report: feature_drift"
            charts = page.locator("svg.line-chart")
            assert charts.count() == 2, "n and ks"
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 100 and box["height"] > 50, box
                assert charts.nth(i).locator("path.series").count() == len(FEATURES)
                path_box = charts.nth(i).locator("path.series").first.bounding_box()
                assert path_box and path_box["width"] > 50, path_box

            heat = page.locator("svg.heat-map")
            assert heat.count() == 1
            assert heat.bounding_box()["height"] > 40
            marked = set(page.eval_on_selector_all(
                "svg.heat-map rect.cell.drifted", "els => els.map(e => e.dataset.feature)"))
            assert marked == DRIFTING, marked
            per_feature = page.eval_on_selector_all(
                "svg.heat-map rect.cell",
                "els => els.reduce((m, e) => (m[e.dataset.feature] = (m[e.dataset.feature]||0)+1, m), {})")
            assert per_feature == {f: SECONDS // WINDOW_S for f in FEATURES}, per_feature
            cell = page.locator("svg.heat-map rect.cell.drifted").first.bounding_box()
            assert cell and cell["width"] > 1 and cell["height"] > 5, cell

            hist = page.locator("svg.histogram")
            assert {hist.nth(i).get_attribute("data-feature")
                    for i in range(hist.count())} == DRIFTING
            assert hist.first.locator("rect.bar").count() > 4
            drifted_rows = set(page.eval_on_selector_all(
                "table.drift-summary tr.drifted", "els => els.map(e => e.dataset.feature)"))
            assert drifted_rows == DRIFTING

            shot = artifacts / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            context.close()
    assert requests == [], f"the report made network requests: {requests}"
    assert console_errors == [], console_errors
