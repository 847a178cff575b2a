"""examples/notebooks/monitoring.ipynb runs headless (nbclient) against a live server: it
loads history over ADBC, writes its plot, and receives live windows."""

from __future__ import annotations

import os
import threading
import time

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

from dw_server import BIN, ROOT, Server, feed_past_windows, now_ms  # noqa: E402

NOTEBOOK = ROOT / "examples" / "notebooks" / "monitoring.ipynb"


@pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")
def test_notebook_executes_and_writes_plot(tmp_path, monkeypatch):
    server = Server(tmp_path)
    stop = threading.Event()
    try:
        feed_past_windows(server, seconds=4)
        time.sleep(3)

        def traffic():  # keeps windows closing while the notebook follows them
            while not stop.is_set():
                server.post_window((now_ms() // 1000) * 1000, n=10, shift=1.0)
                time.sleep(1.0)

        threading.Thread(target=traffic, daemon=True).start()
        out = tmp_path / "out"
        monkeypatch.setenv("DRIFTWATCH_FLIGHT_URI", server.uri)
        monkeypatch.setenv("DRIFTWATCH_MONITOR", "drift")
        monkeypatch.setenv("DRIFTWATCH_OUTPUT_DIR", str(out))
        monkeypatch.setenv("DRIFTWATCH_FOLLOW_WINDOWS", "2")
        nb = nbformat.read(NOTEBOOK, as_version=4)
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        png = out / "drift_per_feature.png"
        assert png.exists() and png.stat().st_size > 5_000
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []))
        assert "received 2 live result batches" in text
    finally:
        stop.set()
        server.stop()
