"""The Arrow Flight SQL server of `driftwatch run`, driven by real clients: ADBC
(adbc_driver_flightsql) for queries, parameters, metadata and DDL, pyarrow.flight for
handshakes, bad tokens, live follow streams and TLS."""

from __future__ import annotations

import queue
import threading
import time

import pyarrow as pa
import pyarrow.flight as fl
import pytest

adbc_flightsql = pytest.importorskip("adbc_driver_flightsql")
import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402
from adbc_driver_manager import ProgrammingError, DatabaseError, OperationalError  # noqa: E402

from dw_server import (  # noqa: E402
    ADMIN, BIN, READER, Server, adbc_connect, adbc_query, command_statement_query, fed_server,
    now_ms,
    self_signed_cert, wait_for,
)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

ADBC_ERRORS = (ProgrammingError, DatabaseError, OperationalError)


connect = adbc_connect
query = adbc_query


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with fed_server(tmp_path_factory.mktemp("flight"), auth=True) as s:
        yield s


@pytest.fixture(scope="module")
def admin(server):
    conn = connect(server)
    wait_for(lambda: query(conn, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 3,
             what="three closed windows in stats")
    yield conn
    conn.close()


def test_query_results_and_system_tables(admin):
    t = query(admin, "SELECT window_start, n, x_avg FROM stats ORDER BY window_start")
    assert t.num_rows >= 3
    assert t["n"].to_pylist()[:3] == [20, 20, 20]
    drift = query(admin, "SELECT DISTINCT feature FROM drift ORDER BY feature")
    assert drift["feature"].to_pylist() == ["x", "y"]
    mons = query(admin, "SELECT name, source, windows FROM system.monitors ORDER BY name")
    assert mons["name"].to_pylist() == ["drift", "stats"]
    assert all(w >= 3 for w in mons["windows"].to_pylist())
    src = query(admin, "SELECT name, rows_in, watermark, lag_ms FROM system.sources")
    assert src["rows_in"][0].as_py() == 60 and src["watermark"][0].as_py() is not None
    base = query(admin, "SELECT count(*) AS c FROM baselines.train")
    assert base["c"][0].as_py() == 200
    shown = query(admin, "SHOW MONITORS")
    assert "stats" in shown["name"].to_pylist()


def test_prepared_statement_with_parameters(admin):
    t = query(admin, "SELECT count(*) AS c FROM stats WHERE n >= $1", (20,))
    assert t["c"][0].as_py() >= 3
    t = query(admin, "SELECT count(*) AS c FROM stats WHERE n > $1", (20,))
    assert t["c"][0].as_py() == 0
    t = query(admin, "SELECT feature, max(w_norm) AS w FROM drift WHERE feature = $1 "
                     "GROUP BY feature", ("x",))
    assert t["feature"].to_pylist() == ["x"]


def test_metadata_for_adbc(admin):
    assert "Driftwatch" in str(admin.adbc_get_info())
    objects = admin.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = {
        (cat["catalog_name"], sch["db_schema_name"], tab["table_name"])
        for cat in objects for sch in cat["catalog_db_schemas"] or []
        for tab in sch["db_schema_tables"] or []
    }
    assert ("datafusion", "public", "stats") in tables
    assert ("datafusion", "public", "drift_late") in tables
    assert ("datafusion", "baselines", "train") in tables
    assert ("datafusion", "system", "monitors") in tables
    stats_cols = next(
        tab["table_columns"] for cat in objects for sch in cat["catalog_db_schemas"]
        for tab in sch["db_schema_tables"] if tab["table_name"] == "stats")
    assert [c["column_name"] for c in stats_cols] == ["window_start", "window_end", "n", "x_avg"]
    schema = admin.adbc_get_table_schema("stats")
    assert schema.names == ["window_start", "window_end", "n", "x_avg"]
    assert pa.types.is_timestamp(schema.field("window_start").type)
    assert "TABLE" in admin.adbc_get_table_types()


def test_ddl_by_admin_and_persistence(server, admin):
    ddl = ("CREATE MONITOR big_x AS SELECT window_start, window_end, max(x) AS x_max "
           "FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end")
    with admin.cursor() as cur:  # DDL as an update (DoPut CommandStatementUpdate)
        cur.adbc_statement.set_sql_query(ddl)
        cur.adbc_statement.execute_update()
    names = query(admin, "SELECT name FROM system.monitors")["name"].to_pylist()
    assert "big_x" in names
    assert query(admin, "SELECT count(*) AS c FROM big_x")["c"][0].as_py() == 0
    # DDL as a query returns a message row.
    msg = query(admin, "DROP MONITOR big_x")
    assert "big_x" in msg["message"][0].as_py()
    assert "big_x" not in query(admin, "SELECT name FROM system.monitors")["name"].to_pylist()
    catalog = (server.data_dir / "catalog.sql").read_text()
    assert "DROP MONITOR IF EXISTS \"big_x\"" in catalog
    # A bad DDL statement says what is wrong.
    with pytest.raises(ADBC_ERRORS, match="unknown source"):
        query(admin, "CREATE MONITOR bad AS SELECT count(*) FROM TUMBLE(nope, ts, "
                     "INTERVAL '1 second') GROUP BY window_start, window_end")


def test_reader_may_query_but_not_run_ddl(server, admin):
    reader = connect(server, READER)
    try:
        assert query(reader, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 1
        with pytest.raises(ADBC_ERRORS, match="(?i)admin|permission"):
            query(reader, "DROP MONITOR stats")
        with pytest.raises(ADBC_ERRORS, match="(?i)admin|permission"):
            with reader.cursor() as cur:
                cur.adbc_statement.set_sql_query("DROP MONITOR stats")
                cur.adbc_statement.execute_update()
    finally:
        reader.close()
    assert "stats" in query(admin, "SELECT name FROM system.monitors")["name"].to_pylist()


def test_rejected_credentials_and_tokens(server):
    client = fl.connect(server.uri)
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.authenticate_basic_token(ADMIN[0], "wrong")
    bad = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-token")])
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.do_get(fl.Ticket(b"follow:stats"), bad).read_chunk()
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.get_flight_info(
            fl.FlightDescriptor.for_command(command_statement_query("SELECT 1")))
    # A static token from the auth file works.
    ok = fl.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {server.tokens['dashboard']}".encode())])
    info = client.get_flight_info(
        fl.FlightDescriptor.for_command(command_statement_query("SELECT 1 AS one")), ok)
    assert client.do_get(info.endpoints[0].ticket, ok).read_all()["one"].to_pylist() == [1]
    with pytest.raises(ADBC_ERRORS):
        connect(server, (READER[0], "nope")).cursor().execute("SELECT 1")


def follow(client, ticket, options, out: queue.Queue, stop: threading.Event):
    reader = client.do_get(ticket, options)
    try:
        while not stop.is_set():
            chunk = reader.read_chunk()
            out.put((time.time(), chunk.data))
    except Exception as e:  # noqa: BLE001 - the stream is cancelled at the end
        out.put((time.time(), e))


_last_event_second = [0]


@pytest.mark.parametrize("how", ["ticket", "sql"])
def test_follow_receives_windows_as_they_close(server, how):
    client = fl.connect(server.uri)
    header = client.authenticate_basic_token(*READER)
    options = fl.FlightCallOptions(headers=[header])
    if how == "ticket":
        ticket = fl.Ticket(b"follow:stats")
    else:
        info = client.get_flight_info(fl.FlightDescriptor.for_command(
            command_statement_query("SELECT * FROM follow('stats')")), options)
        assert info.schema.names == ["window_start", "window_end", "n", "x_avg"]
        ticket = info.endpoints[0].ticket
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(client, ticket, options, out, stop), daemon=True)
    t.start()
    time.sleep(0.5)
    # Event time only moves forward across tests: earlier windows are closed already.
    start = max((now_ms() // 1000 + 1) * 1000, _last_event_second[0] + 2000)
    _last_event_second[0] = start + 2000
    received = []
    for k in range(3):
        server.post_window(start + k * 1000, n=7)
    deadline = time.time() + 30
    while len(received) < 3 and time.time() < deadline:
        try:
            _, item = out.get(timeout=1)
        except queue.Empty:
            continue
        assert not isinstance(item, Exception), item
        received.extend(item.to_pylist())
    stop.set()
    client.close()
    ours = [r for r in received if r["window_start"].timestamp() * 1000 >= start]
    assert [r["n"] for r in ours][:3] == [7, 7, 7], received


def test_unknown_follow_target(server):
    client = fl.connect(server.uri)
    options = fl.FlightCallOptions(headers=[client.authenticate_basic_token(*ADMIN)])
    with pytest.raises((fl.FlightError, KeyError), match="unknown monitor"):
        client.do_get(fl.Ticket(b"follow:nope"), options).read_all()


def test_restart_replays_catalog(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Server(tmp_path / "a", data_dir=tmp_path / "data")
    try:
        conn = flightsql.connect(first.uri, autocommit=True)
        query(conn, "CREATE MONITOR extra AS SELECT window_start, window_end, count(*) AS c "
                    "FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end")
        query(conn, "DROP MONITOR drift")
        conn.close()
    finally:
        first.stop()
    second = Server(tmp_path / "b", data_dir=tmp_path / "data")
    try:
        conn = flightsql.connect(second.uri, autocommit=True)
        names = query(conn, "SELECT name FROM system.monitors ORDER BY name")["name"].to_pylist()
        assert names == ["extra", "stats"]
        conn.close()
    finally:
        second.stop()


def test_tls(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    s = Server(tmp_path, tls=(cert, key))
    try:
        pem = cert.read_bytes()
        client = fl.connect(s.uri, tls_root_certs=pem)
        info = client.get_flight_info(
            fl.FlightDescriptor.for_command(command_statement_query("SELECT 42 AS x")))
        assert client.do_get(info.endpoints[0].ticket).read_all()["x"].to_pylist() == [42]
        conn = flightsql.connect(s.uri, db_kwargs={
            "adbc.flight.sql.client_option.tls_root_certs": pem.decode()}, autocommit=True)
        assert query(conn, "SELECT count(*) AS c FROM system.monitors")["c"][0].as_py() == 2
        conn.close()
        # Plaintext against a TLS server fails.
        plain = fl.connect(f"grpc://127.0.0.1:{s.flight_port}")
        with pytest.raises(fl.FlightError):
            plain.get_flight_info(
                fl.FlightDescriptor.for_command(command_statement_query("SELECT 1")))
    finally:
        s.stop()


def test_public_bind_without_auth_is_refused(tmp_path):
    import subprocess
    from dw_server import free_port, monitor_file
    r = subprocess.run([str(BIN), "run", str(monitor_file(tmp_path)), "--data-dir",
                        str(tmp_path / "d"), "--flight-listen", f"0.0.0.0:{free_port()}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "insecure-public" in r.stderr
