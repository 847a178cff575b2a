"""The live page in a real browser (headless Chromium, Debian's package) while the real
binary runs: `driftwatch demo` for the monitor list, charts, live updates, the drift heat map
and the histograms; `driftwatch run` with an auth file for the login.

Screenshots go to $DRIFTWATCH_ARTIFACTS (CI keeps them) or the test's tmp_path, never into
the repository."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dw_server import BIN, READER, Server, free_port, stop_process, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("DRIFTWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
MONITORS = ["iris_stats", "iris_drift", "iris_outliers"]
DRIFTED = ["petal_length", "petal_width"]
STEADY = ["sepal_length", "sepal_width"]
DRIFT_RGB = (0xD6, 0x27, 0x28)
OK_RGB = (0xCF, 0xE6, 0xCF)


def artifacts(tmp_path: Path) -> Path:
    root = os.environ.get("DRIFTWATCH_ARTIFACTS")
    out = Path(root) / "web" if root else tmp_path / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def browser_page(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            ctx.close()


@contextlib.contextmanager
def demo(tmp_path: Path, duration: int = 75, drift_after: int = 6):
    port = free_port()
    log = open(tmp_path / "demo.log", "w")
    proc = subprocess.Popen(
        [str(BIN), "demo", "--duration", str(duration), "--drift-after", str(drift_after),
         "--data-dir", str(tmp_path / "data"), "--http-listen", f"127.0.0.1:{port}",
         "--no-flight"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
    url = f"http://127.0.0.1:{port}/"

    def up():
        with urllib.request.urlopen(url + "api/monitors", timeout=2) as r:
            return len(json.load(r)["monitors"]) == 3
    try:
        wait_for(up, timeout=60, what="the demo's live page")
        yield url
    finally:
        stop_process(proc)
        log.close()


def pixel(page, monitor: str, feature: str, i: int) -> tuple[int, int, int]:
    """The colour at the centre of a heat-map cell, read from the canvas."""
    rgba = page.evaluate(
        """([m, f, i]) => {
            const dw = window.driftwatch.heatmap;
            const r = dw.cellRect(f, i, m), c = dw.canvas(m);
            if (!r) return null;
            const k = c.width / c.getBoundingClientRect().width;
            const d = c.getContext('2d').getImageData(Math.floor((r.x + r.w / 2) * k),
                                                       Math.floor((r.y + r.h / 2) * k), 1, 1).data;
            return [d[0], d[1], d[2]];
        }""", [monitor, feature, i])
    assert rgba is not None, f"no heat-map cell for {feature} at {i}"
    return tuple(rgba)


def close(rgb, want, tol=12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want))


def test_live_page_follows_the_demo(tmp_path):
    shots = artifacts(tmp_path)
    with demo(tmp_path) as url, browser_page(tmp_path) as (page, errors):
        page.goto(url)
        # The monitor list shows the demo's monitors.
        page.wait_for_selector("#monitors tbody tr[data-name='iris_outliers']", timeout=30_000)
        listed = page.eval_on_selector_all("#monitors tbody tr", "rs => rs.map(r => r.dataset.name)")
        assert sorted(listed) == sorted(MONITORS)
        page.evaluate("window.__sameDocument = 'yes'")

        # Charts render with data: points > 0 and a canvas that is not blank.
        page.wait_for_function(
            "() => window.driftwatch.charts('iris_drift').some(c => c.points > 0)"
            " && window.driftwatch.charts('iris_stats').some(c => c.points > 0)", timeout=60_000)
        charts = page.evaluate("window.driftwatch.charts('iris_drift')")
        assert {c["measure"] for c in charts} >= {"w_norm", "ks_p", "n"}
        assert all(c["series"] == 4 for c in charts), charts
        painted = page.evaluate(
            """() => {
                const c = document.querySelector("[data-monitor='iris_drift'] .chart[data-measure='w_norm'] canvas");
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
                return n;
            }""")
        assert painted > 500, f"the w_norm chart looks blank ({painted} painted pixels)"

        # A new window appears live, without a reload.
        before = page.evaluate("window.driftwatch.pointCount('iris_stats')")
        page.wait_for_function(
            f"() => window.driftwatch.pointCount('iris_stats') > {before}", timeout=30_000)
        assert page.evaluate("window.__sameDocument") == "yes", "the page was reloaded"

        # After the drift: the last windows mark the petal features, not the sepal ones.
        def drifted_last_two():
            s = page.evaluate("window.driftwatch.heatmap.state('iris_drift')")
            if not s or len(s["windows"]) < 3:
                return None
            last = {f: s["drifted"][f][-2:] for f in s["features"]}
            return s if all(v == [True, True] for f, v in last.items() if f in DRIFTED) else None
        state = wait_for(drifted_last_two, timeout=60, what="drifted petal windows")
        assert sorted(state["features"]) == sorted(DRIFTED + STEADY)
        for f in STEADY:
            assert state["drifted"][f][-1] is False, (f, state["drifted"][f])
        for f in DRIFTED:
            rgb = pixel(page, "iris_drift", f, -1)
            assert close(rgb, DRIFT_RGB), (f, rgb)
        for f in STEADY:
            rgb = pixel(page, "iris_drift", f, -1)
            assert close(rgb, OK_RGB), (f, rgb)
        # Before the drift (the first windows shown) nothing was marked.
        first = [state["drifted"][f][0] for f in DRIFTED + STEADY]
        assert True not in first, state["drifted"]
        page.screenshot(path=str(shots / "live-page.png"), full_page=True)

        # Clicking a drifted cell shows the window against the baseline: two histograms.
        rect = page.evaluate("window.driftwatch.heatmap.cellRect('petal_length', -1, 'iris_drift')")
        page.locator("[data-monitor='iris_drift'] canvas.heatmap").click(
            position={"x": rect["x"] + rect["w"] / 2, "y": rect["y"] + rect["h"] / 2})
        page.wait_for_function(
            "() => { const d = window.driftwatch.heatmap.detail('iris_drift');"
            " return d && d.baseline && d.window; }", timeout=10_000)
        detail = page.evaluate("window.driftwatch.heatmap.detail('iris_drift')")
        assert detail["feature"] == "petal_length"
        assert len(detail["baseline"]) == len(detail["window"]) > 1
        assert sum(detail["window"]) > 0 and sum(detail["baseline"]) > 0
        bars = page.eval_on_selector_all(
            "[data-monitor='iris_drift'] canvas.hist", "cs => cs.map(c => Number(c.dataset.bars))")
        assert len(bars) == 2 and all(b > 0 for b in bars), bars
        assert page.is_visible("[data-monitor='iris_drift'] .detail")
        page.screenshot(path=str(shots / "live-page-histograms.png"), full_page=True)
        assert not errors, errors


def get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_live_page_needs_login_with_an_auth_file(tmp_path):
    server = Server(tmp_path, auth=True)
    base = f"http://127.0.0.1:{server.http_port}"
    try:
        status, body = get(base + "/")
        assert status == 401 and 'action="/login"' in body
        status, body = get(base + "/api/monitors")
        assert status == 401 and "error" in json.loads(body)
        status, _ = get(base + "/api/events")
        assert status == 401
        # An ingest token may post, not look.
        status, _ = get(base + "/api/monitors",
                        {"authorization": f"Bearer {server.tokens['model']}"})
        assert status == 403
        status, body = get(base + "/api/monitors",
                           {"authorization": f"Bearer {server.tokens['dashboard']}"})
        assert status == 200 and {m["name"] for m in json.loads(body)["monitors"]} == {"stats", "drift"}

        with browser_page(tmp_path) as (page, errors):
            answer = page.goto(base + "/")
            assert answer.status == 401
            assert page.is_visible("form#login")
            page.fill("input[name=user]", READER[0])
            page.fill("input[name=password]", "wrong")
            page.click("button[type=submit]")
            page.wait_for_selector("p.error")
            assert "invalid" in page.inner_text("p.error")
            page.fill("input[name=user]", READER[0])
            page.fill("input[name=password]", READER[1])
            page.click("button[type=submit]")
            page.wait_for_selector("#monitors tbody tr[data-name='drift']", timeout=20_000)
            cookies = page.context.cookies()
            session = [c for c in cookies if c["name"] == "driftwatch_session"]
            assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
            page.screenshot(path=str(artifacts(tmp_path) / "live-page-login.png"))
            assert not errors, errors
    finally:
        server.stop()
