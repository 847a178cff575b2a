#!/usr/bin/env bash
# Takes the README's screenshot of the live page: builds the binary, runs `driftwatch demo`
# on a free port, opens the page in headless Chromium (Debian's package, as the browser
# tests do) once the drift shows in the heat map and a drifted cell is clicked, and writes
# docs/live-page.png (override with the first argument).
#
#   scripts/screenshot.sh [OUT.png]
#
# Needs the test venv (scripts/test.sh creates it; Playwright from tests/python/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
CHROMIUM="${DRIFTWATCH_CHROMIUM:-/usr/bin/chromium}"
OUT="${1:-docs/live-page.png}"
mkdir -p "$(dirname "$OUT")"

cargo build -p driftwatch --bin driftwatch --locked
BIN="$CARGO_TARGET_DIR/debug/driftwatch"
WORK="$(mktemp -d)"
PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN" demo --duration 90 --drift-after 8 --data-dir "$WORK/data" \
    --http-listen "127.0.0.1:$PORT" --no-flight >"$WORK/demo.log" 2>&1 &
DEMO=$!
trap 'kill "$DEMO" 2>/dev/null; wait "$DEMO" 2>/dev/null; rm -rf "$WORK"' EXIT

"$VENV/bin/python" - "$PORT" "$OUT" "$CHROMIUM" "$WORK" <<'PY'
import sys, time, urllib.request
from playwright.sync_api import sync_playwright

port, out, chromium, work = sys.argv[1:5]
url = f"http://127.0.0.1:{port}/"
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen(url + "api/monitors", timeout=2).read()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("the demo did not start")
        time.sleep(0.3)
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as p:
    ctx = p.chromium.launch_persistent_context(f"{work}/profile", executable_path=chromium,
                                               headless=True, args=args,
                                               viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url)
    # Enough windows after the drift that the heat map shows it.
    page.wait_for_function(
        """() => { const s = window.driftwatch.heatmap.state('iris_drift');
                   return s && s.windows.length >= 8
                       && s.drifted['petal_width'].slice(-3).every(v => v === true); }""",
        timeout=120_000)
    rect = page.evaluate("window.driftwatch.heatmap.cellRect('petal_width', -1, 'iris_drift')")
    page.locator("[data-monitor='iris_drift'] canvas.heatmap").click(
        position={"x": rect["x"] + rect["w"] / 2, "y": rect["y"] + rect["h"] / 2})
    page.wait_for_function("() => { const d = window.driftwatch.heatmap.detail('iris_drift');"
                           " return d && d.window; }", timeout=10_000)
    page.wait_for_timeout(500)
    page.screenshot(path=out, full_page=True)
    ctx.close()
print(f"wrote {out}")
PY
