"""The HTTP ingest as an attacker meets it (issue 10): tokens, body and concurrency limits,
slow clients, hostile tensor shapes and floods of bad requests, against the real binary."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pyarrow.flight as fl
import pytest

from dw_server import (
    ADMIN, BIN, Server, command_statement_query, free_port, monitor_file, now_ms, iso, wait_for,
    write_users,
)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")


def post(server: Server, body: bytes, token: str | None = None, path: str = "/ingest/s",
         content_type: str = "application/json") -> tuple[int, str]:
    headers = {"content-type": content_type}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=body,
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def rows(n: int = 3) -> bytes:
    base = now_ms()
    return json.dumps([{"id": f"r{i}", "ts": iso(base + i), "x": 1.0, "y": 2.0}
                       for i in range(n)]).encode()


def system_query(server: Server, sql: str):
    c = fl.connect(server.uri)
    opts = fl.FlightCallOptions(headers=[c.authenticate_basic_token(*ADMIN)]) if server.tokens \
        else fl.FlightCallOptions()
    info = c.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query(sql)), opts)
    return c.do_get(info.endpoints[0].ticket, opts).read_all()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("ingest-auth"), auth=True)
    yield s
    s.stop()


def test_posting_needs_an_ingest_token(secured):
    status, body = post(secured, rows())
    assert status == 401 and "Bearer" in body
    status, body = post(secured, rows(), token="not-a-token")
    assert status == 401 and "invalid or expired token" in body
    status, body = post(secured, rows(), token=secured.tokens["dashboard"])
    assert status == 403 and "read role" in body
    status, body = post(secured, rows(), token=secured.tokens["model"])
    assert status == 200 and json.loads(body)["accepted"] == 3
    # Refused requests stored nothing.
    wait_for(lambda: system_query(secured, "SELECT rows_in FROM system.sources WHERE name = 's'")
             ["rows_in"][0].as_py() == 3, what="exactly the accepted rows counted")


def test_public_bind_rules(tmp_path):
    sql = monitor_file(tmp_path)
    base = [str(BIN), "run", str(sql), "--data-dir", str(tmp_path / "d"), "--no-flight",
            "--http-listen", f"0.0.0.0:{free_port()}"]
    r = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--insecure-public" in r.stderr, r.stderr
    users = tmp_path / "users.toml"
    write_users(users)
    r = subprocess.run(base + ["--auth-file", str(users)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "--insecure-plaintext" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("ingest-limits"),
               extra=["--http-body-limit", "64KiB", "--http-max-concurrent", "2",
                      "--http-timeout", "2s"])
    yield s
    s.stop()


def rss_kib(server: Server) -> int:
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_oversized_bodies_get_413(limited):
    status, body = post(limited, b"[" + b" " * (100 * 1024) + b"]")
    assert status == 413 and "65536 bytes" in body and "--http-body-limit" in body
    assert post(limited, rows())[0] == 200


def test_a_huge_tensor_shape_is_refused_without_allocating(limited):
    before = rss_kib(limited)
    for shape in ([2 ** 62, 4], [2 ** 32, 2 ** 32], [-1, 4], [2 ** 63 - 1, 2]):
        body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP64",
                                       "data": []}]}).encode()
        status, text = post(limited, body)
        assert status == 400, (shape, status, text)
        assert "shape" in text.lower(), text
    assert rss_kib(limited) - before < 100 * 1024, "the process grew by more than 100 MiB"
    assert limited.proc.poll() is None


def _slow_request(server: Server) -> socket.socket:
    """Opens a POST whose body never finishes."""
    s = socket.create_connection(("127.0.0.1", server.http_port))
    s.sendall(b"POST /ingest/s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: 1000\r\n\r\n[")
    return s


def test_slow_clients_time_out_and_cannot_hold_every_slot(limited):
    slow = [_slow_request(limited) for _ in range(2)]
    try:
        time.sleep(0.3)
        status, body = post(limited, rows())
        assert status == 503 and "--http-max-concurrent" in body
        for s in slow:
            s.settimeout(10)
            answer = s.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 408"), answer
            assert "--http-timeout" in answer
    finally:
        for s in slow:
            s.close()
    assert post(limited, rows())[0] == 200


def test_a_flood_of_bad_requests_is_counted_and_kept_in_few_files(tmp_path):
    s = Server(tmp_path, extra=["--checkpoint-interval", "1s"])
    try:
        n = 10_000
        bodies = [f'{{"id": "bad-{i}", "ts": "not a time"}}'.encode() for i in range(n)]
        started = time.time()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda b: post(s, b)[0], bodies))
        elapsed = time.time() - started
        assert statuses.count(400) == n
        wait_for(lambda: system_query(s, "SELECT count(*) AS c FROM s_errors")["c"][0].as_py()
                 == n, timeout=60, what="every rejected request kept")
        assert system_query(s, "SELECT rejected FROM system.sources WHERE name = 's'") \
            ["rejected"][0].as_py() == n
        files = list((s.data_dir / "tables" / "s_errors").glob("*.parquet"))
        # At most one file per second (plus one per checkpoint), not one per request.
        bound = 2 * (int(elapsed) + 5)
        assert len(files) <= bound, (len(files), elapsed)
        print(f"{n} bad requests in {elapsed:.1f} s -> {len(files)} dead-letter files")
    finally:
        s.stop()


def test_ingest_over_tls_with_tokens_on_a_public_address(tmp_path):
    import ssl
    from dw_server import self_signed_cert
    cert, key = self_signed_cert(tmp_path)
    s = Server(tmp_path, auth=True, extra=["--http-tls-cert", str(cert), "--http-tls-key",
                                           str(key)])
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        req = urllib.request.Request(
            f"https://localhost:{s.http_port}/ingest/s", data=rows(), method="POST",
            headers={"content-type": "application/json",
                     "authorization": f"Bearer {s.tokens['model']}"})
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            assert r.status == 200 and json.loads(r.read())["accepted"] == 3
        # Plain HTTP against the TLS port gets no answer.
        with pytest.raises(Exception):
            post(s, rows(), token=s.tokens["model"])
    finally:
        s.stop()
    # With TLS, tokens on a public address need no --insecure-plaintext.
    users = tmp_path / "users2.toml"
    write_users(users)
    port = free_port()
    proc = subprocess.Popen([str(BIN), "run", str(monitor_file(tmp_path)), "--data-dir",
                             str(tmp_path / "d2"), "--no-flight", "--auth-file", str(users),
                             "--http-listen", f"0.0.0.0:{port}", "--http-tls-cert", str(cert),
                             "--http-tls-key", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.time() < deadline, "the TLS ingest did not start"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
