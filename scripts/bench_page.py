"""Measures the live page with many features (run by scripts/bench-page.sh).

Starts `driftwatch run` on a generated monitor file (an HTTP source of FEATURES numeric
columns f000.., a baseline of the same columns, a drift monitor over `features(src)` in a
1 s TUMBLE with `wasserstein_norm`, a drift flag and `histogram(...) AS hist`), posts rows at
a steady rate (the first DRIFTING features shift after DRIFT_AFTER s), opens the page in
headless Chromium and measures in the page: long tasks, requestAnimationFrame gaps, JS heap,
server-sent events, the heat map painted; and the server's RSS. Prints one table.

Exit status: 0 when the page worked (whatever the timings), 1 when it broke (JS errors, no
heat map, not every feature on it), 2 when the setup failed (server did not start).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

# The browser tests' flags (tests/python/test_web_page.py), plus precise heap figures
# (without it performance.memory is rounded and only updated every few seconds).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-precise-memory-info"]

# Installed before the page's own script: observers for long tasks and frames, and an
# EventSource that counts the `result` events it delivers.
INIT_JS = """
(() => {
  const b = window.__bench = { longtasks: [], gaps: [], sse: 0, sseBytes: 0, maxGapAt: 0 };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { b.noLongtask = String(e); }
  let last = 0;
  const tick = (t) => {
    if (last) b.gaps.push(t - last);
    last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const Orig = window.EventSource;
  window.EventSource = class extends Orig {
    constructor(...args) {
      super(...args);
      this.addEventListener('result', (ev) => { b.sse++; b.sseBytes += ev.data.length; });
    }
  };
})();
"""

HEAP_JS = "() => performance.memory ? performance.memory.usedJSHeapSize : null"

HEAT_JS = """(name) => {
  const s = window.driftwatch && window.driftwatch.heatmap.state(name);
  if (!s) return null;
  const last = s.windows.length - 1;
  const driftedLast = last < 0 ? [] : s.features.filter((f) => s.drifted[f][last] === true);
  const c = window.driftwatch.heatmap.canvas(name);
  return { features: s.features.length, windows: s.windows.length, driftedLast,
           canvas: c ? [c.width, c.height] : null };
}"""

MONITOR = "drift"


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_inputs(work: Path, features: int, threshold: float) -> tuple[Path, list[str]]:
    """The baseline CSV (feature i ~ N(i % 7, 1 + (i % 3) / 2)) and the monitor file."""
    names = [f"f{i:03d}" for i in range(features)]
    rng = np.random.default_rng(7)
    mean, sd = feature_params(features)
    base = rng.normal(mean, sd, size=(2000, features))
    with open(work / "baseline.csv", "w") as f:
        f.write(",".join(names) + "\n")
        np.savetxt(f, base, delimiter=",", fmt="%.5f")
    cols = "".join(f"    {n} DOUBLE,\n" for n in names)
    sql = work / "monitors.sql"
    sql.write_text(f"""
CREATE SOURCE src (
    id VARCHAR,
    ts TIMESTAMP,
{cols}    WATERMARK FOR ts AS ts - INTERVAL '500 milliseconds'
) WITH (connector = 'http', idle_timeout = '1 second');

CREATE BASELINE b FROM 'baseline.csv';

CREATE MONITOR {MONITOR} AS
SELECT window_start, window_end, feature, count(*) AS n,
       wasserstein_norm(value, 'b', feature) AS w_norm,
       wasserstein_norm(value, 'b', feature) > {threshold} AS drift,
       histogram(value, 'b', feature) AS hist
FROM TUMBLE(features(src), ts, INTERVAL '1 second')
GROUP BY window_start, window_end, feature;
""")
    return sql, names


def feature_params(features: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(features)
    return (i % 7).astype(float), 1.0 + (i % 3) / 2.0


class Poster(threading.Thread):
    """Posts `rate` rows/s in batches every `tick` s for `seconds`; the first `drifting`
    features shift by `shift` sd after `drift_after` s."""

    def __init__(self, url: str, names: list[str], rate: int, seconds: float, drifting: int,
                 drift_after: float, shift: float, history: int = 0, history_rate: int = 10,
                 history_delay: float = 0.0, tick: float = 0.2):
        super().__init__(daemon=True)
        self.history, self.history_rate, self.history_delay = history, history_rate, history_delay
        self.url, self.names, self.rate, self.seconds = url, names, rate, seconds
        self.drifting, self.drift_after, self.shift, self.tick = drifting, drift_after, shift, tick
        self.posted = 0
        self.errors: list[str] = []
        self.max_post_ms = 0.0

    def post(self, rows: list[dict]) -> None:
        req = urllib.request.Request(self.url, data=json.dumps(rows).encode(),
                                     headers={"content-type": "application/json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
            self.posted += len(rows)
        except (OSError, urllib.error.HTTPError) as e:
            self.errors.append(str(e))

    def rows(self, rng, mean, sd, ms: int, n: int, step_ms: int, drifted: bool) -> list[dict]:
        vals = rng.normal(mean, sd, size=(n, len(self.names)))
        if drifted:
            vals[:, :self.drifting] += self.shift * sd[:self.drifting]
        return [{"id": f"r{ms}-{j}", "ts": iso(ms + j * step_ms),
                 **dict(zip(self.names, map(float, v)))} for j, v in enumerate(vals)]

    def post_history(self, rng, mean, sd) -> None:
        """`history` seconds of past traffic (the second half drifted), 10 s per POST: the
        page gets a burst of that many closed windows."""
        time.sleep(self.history_delay)
        first = (int(time.time()) - self.history - 1) * 1000
        step = 1000 // self.history_rate
        for s0 in range(0, self.history, 10):
            n = min(10, self.history - s0) * self.history_rate
            self.post(self.rows(rng, mean, sd, first + s0 * 1000, n, step,
                                s0 >= self.history // 2))

    def run(self) -> None:
        rng = np.random.default_rng(11)
        mean, sd = feature_params(len(self.names))
        if self.history:
            self.post_history(rng, mean, sd)
        per_tick = max(1, round(self.rate * self.tick))
        start = time.time()
        k = 0
        while True:
            due = start + k * self.tick
            now = time.time()
            if now - start >= self.seconds:
                return
            if due > now:
                time.sleep(due - now)
            t0 = time.time()
            self.post(self.rows(rng, mean, sd, int(t0 * 1000), per_tick, 1,
                                t0 - start >= self.drift_after))
            self.max_post_ms = max(self.max_post_ms, (time.time() - t0) * 1000)
            k += 1


class Rss(threading.Thread):
    """Samples VmRSS of `pid` every 0.5 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append(int(line.split()[1]) / 1024)
            except OSError:
                return
            self.stop.wait(0.5)


CPU_METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def cpu_metrics(cdp) -> dict[str, float]:
    """The renderer's cumulative busy seconds (Chrome DevTools Performance.getMetrics)."""
    got = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {k: got.get(k, 0.0) for k in CPU_METRICS}


def print_profile(profile: dict, top: int) -> None:
    """The `top` JS functions by inclusive sampled time (stderr): where the page's time goes."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    dt_ms = {}
    for nid, d in zip(profile.get("samples", []), profile.get("timeDeltas", [])):
        dt_ms[nid] = dt_ms.get(nid, 0.0) + d / 1000
    total = sum(dt_ms.values()) or 1.0
    incl: dict[str, float] = {}
    selfs: dict[str, float] = {}

    def name(n):
        cf = n["callFrame"]
        return f"{cf['functionName'] or '(anonymous)'} {cf['url'].rsplit('/', 1)[-1]}:{cf['lineNumber'] + 1}"

    def walk(nid: int, stack: frozenset) -> float:
        n = nodes[nid]
        t = dt_ms.get(nid, 0.0) + sum(walk(c, stack | {name(n)}) for c in n.get("children", []))
        k = name(n)
        selfs[k] = selfs.get(k, 0.0) + dt_ms.get(nid, 0.0)
        if k not in stack:
            incl[k] = incl.get(k, 0.0) + t
        return t

    walk(profile["nodes"][0]["id"], frozenset())
    print(f"JS profile ({total / 1000:.1f} s sampled), top {top} by inclusive time:", file=sys.stderr)
    for k, t in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {t:8.0f} ms incl {selfs.get(k, 0):8.0f} ms self  {k}", file=sys.stderr)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--chromium", default=os.environ.get("DRIFTWATCH_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--features", type=int, default=300)
    ap.add_argument("--rate", type=int, default=50, help="source rows per second")
    ap.add_argument("--seconds", type=float, default=60, help="how long rows are posted")
    ap.add_argument("--drifting", type=int, default=30)
    ap.add_argument("--drift-after", type=float, default=20)
    ap.add_argument("--shift", type=float, default=1.5, help="drift, in baseline sd")
    ap.add_argument("--threshold", type=float, default=0.5, help="w_norm above it is drift")
    ap.add_argument("--page-after", type=float, default=5, help="open the page after N s")
    ap.add_argument("--history", type=int, default=0,
                    help="first post N s of past traffic (10 rows/s) once the page is open:"
                         " a burst of N windows (500 fills the page's window limit)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="sample the page's JS (DevTools profiler) and list the top N functions")
    ap.add_argument("--init-js", metavar="FILE",
                    help="more JavaScript to run before the page's own (experiments)")
    ap.add_argument("--work", help="work dir (default: a temp dir, removed)")
    ap.add_argument("--screenshot", help="write a full-page screenshot here at the end")
    a = ap.parse_args()
    if (not 1 <= a.features <= 999 or a.drifting > a.features or a.rate < 1 or a.seconds <= 0
            or not 0 <= a.history <= 3600):
        ap.error("need 1 <= features <= 999, drifting <= features, rate >= 1, seconds > 0,"
                 " 0 <= history <= 3600")
    if not Path(a.chromium).exists():
        print(f"no Chromium at {a.chromium}", file=sys.stderr)
        return 2

    tmp = None if a.work else tempfile.TemporaryDirectory(prefix="bench-page-")
    work = Path(a.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    sql, names = write_inputs(work, a.features, a.threshold)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "driftwatch.log", "w")
    proc = subprocess.Popen(
        [a.bin, "run", str(sql), "--data-dir", str(work / "data"), "--http-listen",
         f"127.0.0.1:{port}", "--no-flight", "--quiet", "--status-every", "0"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
    rss = Rss(proc.pid)
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                print(f"driftwatch exited; log: {work / 'driftwatch.log'}", file=sys.stderr)
                print((work / "driftwatch.log").read_text()[-3000:], file=sys.stderr)
                return 2
            try:
                with urllib.request.urlopen(base + "/api/monitors", timeout=2) as r:
                    if any(m["name"] == MONITOR for m in json.load(r)["monitors"]):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                print("driftwatch did not start", file=sys.stderr)
                return 2
            time.sleep(0.3)
        rss.start()
        poster = Poster(base + "/ingest/src", names, a.rate, a.seconds, a.drifting,
                        a.drift_after, a.shift, history=a.history,
                        history_delay=a.page_after + 3)
        poster.start()
        time.sleep(a.page_after)
        return measure(a, base, work, poster, rss)
    finally:
        rss.stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if tmp:
            tmp.cleanup()


def measure(a, base: str, work: Path, poster: Poster, rss: Rss) -> int:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    warnings: list[str] = []
    heap_samples: list[float] = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(work / "chromium-profile"), executable_path=a.chromium, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
            # A failed fetch of the page's own resources or API is a break; the favicon the
            # browser asks for on its own is not.
            page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
                    and errors.append(f"{r.status} for {r.url}"))
            page.on("console", lambda m: m.type == "error"
                    and not m.text.startswith("Failed to load resource") and errors.append(m.text))
            page.add_init_script(INIT_JS)
            if a.init_js:
                page.add_init_script(Path(a.init_js).read_text())
            opened = time.time()
            page.goto(base + "/")
            heat = None
            try:
                page.wait_for_function(f"() => ({HEAT_JS})('{MONITOR}')?.windows > 0",
                                       timeout=60_000)
                first_heat_s = time.time() - opened
            except Exception as e:  # noqa: BLE001 - reported as a broken page below
                errors.append(f"no heat map within 60 s: {e}")
                first_heat_s = float("nan")
            heap0 = page.evaluate(HEAP_JS)
            cdp = ctx.new_cdp_session(page)
            cdp.send("Performance.enable")
            cpu0 = cpu_metrics(cdp)
            if a.profile:
                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
                cdp.send("Profiler.start")
            cpu_t0 = time.time()
            # Follow until the traffic stops and the last windows closed.
            while poster.is_alive():
                page.wait_for_timeout(5000)
                heap_samples.append(page.evaluate(HEAP_JS) or 0)
            page.wait_for_timeout(4000)
            heap1 = page.evaluate(HEAP_JS)
            heat = page.evaluate(f"({HEAT_JS})('{MONITOR}')")
            cpu1 = cpu_metrics(cdp)
            if a.profile:
                print_profile(cdp.send("Profiler.stop")["profile"], a.profile)
            cpu_span = time.time() - cpu_t0
            bench = page.evaluate(
                "() => { const b = window.__bench; return { longtasks: b.longtasks, gaps: b.gaps,"
                " sse: b.sse, sseBytes: b.sseBytes, noLongtask: b.noLongtask || null,"
                " now: performance.now() }; }")
            if a.screenshot:
                page.screenshot(path=a.screenshot, full_page=True)
        finally:
            ctx.close()
    watched_s = time.time() - opened
    lt = [d for _, d in bench["longtasks"]]
    gaps = bench["gaps"]
    mib = lambda b: f"{b / 2**20:.1f} MiB" if b else "n/a"  # noqa: E731
    rows = [
        ("setup", f"{a.features} features, {a.rate} rows/s for {a.seconds:.0f} s "
                  f"({poster.posted} rows posted, {a.drifting} drift after {a.drift_after:.0f} s)"
                  + (f"; {a.history} s of history posted first" if a.history else "")),
        ("page watched", f"{watched_s:.1f} s (opened {a.page_after:.0f} s in); "
                         f"first heat map after {first_heat_s:.1f} s"),
        ("long tasks", "observer unavailable: " + bench["noLongtask"] if bench["noLongtask"] else
         f"{len(lt)}, total {sum(lt):.0f} ms, max {max(lt, default=0):.0f} ms"),
        ("frame gaps (rAF)", f"{len(gaps)} frames, p50 {pct(gaps, 0.5):.1f} ms, "
                             f"p99 {pct(gaps, 0.99):.1f} ms, max {max(gaps, default=0):.0f} ms"),
        ("JS heap used", f"start {mib(heap0)}, end {mib(heap1)}, max sampled "
                         f"{mib(max(heap_samples, default=0))}"),
        ("main thread busy", ", ".join(
            f"{k} {(cpu1[k] - cpu0[k]) / cpu_span * 100:.1f} %" for k in CPU_METRICS)
            + f" (of {cpu_span:.0f} s)"),
        ("SSE result events", f"{bench['sse']} ({bench['sseBytes'] / 2**20:.1f} MiB of data)"),
        ("heat map", "none" if not heat else
         f"{heat['windows']} windows x {heat['features']} features "
         f"(canvas {heat['canvas'][0]}x{heat['canvas'][1]} px), "
         f"{len(heat['driftedLast'])} drifted in the last window"),
        ("server RSS", f"start {rss.samples[0]:.0f} MiB, end {rss.samples[-1]:.0f} MiB, "
                       f"peak {max(rss.samples):.0f} MiB" if rss.samples else "n/a"),
        ("ingest", f"slowest POST {poster.max_post_ms:.0f} ms, {len(poster.errors)} failed"),
        ("page errors", str(len(errors)) + (f" ({len(warnings)} console warnings)" if warnings else "")),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'figure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    broke = list(errors)
    if not heat:
        broke.append("no heat map painted")
    elif heat["features"] != a.features:
        broke.append(f"heat map has {heat['features']} features, want {a.features}")
    elif heat["windows"] < 2:
        broke.append(f"heat map has only {heat['windows']} windows")
    if bench["sse"] == 0:
        broke.append("no server-sent result events reached the page")
    for w in warnings[:5]:
        print(f"console warning: {w[:300]}", file=sys.stderr)
    if heat and heat["driftedLast"]:
        wrong = [f for f in heat["driftedLast"] if int(f[1:]) >= a.drifting]
        print(f"drifted in the last window: {len(heat['driftedLast'])} "
              f"({len(wrong)} outside f000..f{a.drifting - 1:03d})")
    if broke:
        for b in broke:
            print(f"PAGE BROKE: {b[:500]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
