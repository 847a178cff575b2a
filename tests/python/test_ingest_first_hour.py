"""What a user meets in the first hour of HTTP ingest (issue 11), against the real binary:
unknown fields counted in system.sources and logged once per name, compressed bodies,
a gzip bomb under --http-body-limit, and 415 for bodies that are not JSON."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pyarrow.flight as fl
import pytest

from dw_server import BIN, Server, command_statement_query, iso, now_ms, wait_for

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("ingest-first-hour"),
               extra=["--http-body-limit", "64KiB"])
    yield s
    s.stop()


def post(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/ingest/s", data=body,
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def unknown_fields(server: Server) -> int:
    c = fl.connect(server.uri)
    sql = "SELECT unknown_fields FROM system.sources WHERE name = 's'"
    info = c.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query(sql)))
    return c.do_get(info.endpoints[0].ticket).read_all().column(0)[0].as_py()


def rows_with_typo(n: int) -> bytes:
    base = now_ms()
    return "\n".join(json.dumps({"id": f"r{i}", "ts": iso(base + i), "x": 1.0, "yy": 2.0})
                     for i in range(n)).encode()


def test_unknown_fields_are_counted_and_logged_once_per_name(server):
    before = unknown_fields(server)
    for _ in range(2):
        status, answer = post(server, gzip.compress(rows_with_typo(3)),
                              {"content-type": "application/x-ndjson",
                               "content-encoding": "gzip"})
        assert (status, answer) == (200, {"accepted": 3, "unknown_fields": 3})
    wait_for(lambda: unknown_fields(server) == before + 6, what="unknown_fields counter")
    warnings = [line for line in server.logs().splitlines()
                if "field matches no column" in line and "yy" in line]
    assert len(warnings) == 1, warnings
    assert "did you mean 'y'" in warnings[0]


def test_gzip_bomb_gets_413_naming_the_limit(server):
    bomb = gzip.compress(b" " * (32 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    status, answer = post(server, bomb, {"content-encoding": "gzip"})
    assert status == 413
    for part in ("65536 bytes (64 KiB)", "decoded from Content-Encoding gzip",
                 "--http-body-limit"):
        assert part in answer["error"], answer


def test_xml_and_unknown_encodings_get_415(server):
    status, answer = post(server, b"<rows/>", {"content-type": "application/xml"})
    assert status == 415 and "application/x-ndjson" in answer["error"], answer
    status, answer = post(server, rows_with_typo(1), {"content-encoding": "br"})
    assert status == 415 and "gzip, deflate, zstd" in answer["error"], answer
