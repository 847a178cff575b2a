"""A new user's first hour with the Flight SQL server (issue 11), with the clients users
have: DB-API `?` parameters through ADBC (next to `$1`), `list_flights()` in pyarrow.flight
listing the tables with a ticket for their rows, and "did you mean …?" for a mistyped table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as fl
import pytest

adbc_flightsql = pytest.importorskip("adbc_driver_flightsql")
from adbc_driver_manager import DatabaseError, OperationalError, ProgrammingError  # noqa: E402

from dw_server import (  # noqa: E402
    ADMIN, BIN, READER, Server, adbc_connect, adbc_query, command_statement_query, fed_server,
    wait_for,
)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

ADBC_ERRORS = (ProgrammingError, DatabaseError, OperationalError)


def connect(server: Server, user=READER):
    return adbc_connect(server, user)


query = adbc_query


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with fed_server(tmp_path_factory.mktemp("first_hour"), auth=True) as s:
        yield s


@pytest.fixture(scope="module")
def conn(server):
    c = connect(server)
    wait_for(lambda: query(c, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 3,
             what="three closed windows in stats")
    yield c
    c.close()


@pytest.fixture(scope="module")
def flight(server, conn):
    client = fl.connect(server.uri)
    options = fl.FlightCallOptions(headers=[client.authenticate_basic_token(*READER)])
    yield client, options
    client.close()


# 1. Parameters: `?` as DB-API users write them, `$1` as before.

def test_question_mark_parameters(conn):
    assert query(conn, "SELECT ? + 1 AS v", (41,))["v"].to_pylist() == [42]
    t = query(conn, "SELECT ? AS s, ? AS i", ("hello", 7))
    assert t["s"].to_pylist() == ["hello"] and t["i"].to_pylist() == [7]
    # Several parameters in WHERE, bound in the order they appear.
    t = query(conn, "SELECT count(*) AS c FROM stats WHERE n >= ? AND n <= ?", (20, 20))
    assert t["c"][0].as_py() >= 3
    t = query(conn, "SELECT count(*) AS c FROM stats WHERE n >= ? AND n <= ?", (21, 30))
    assert t["c"][0].as_py() == 0
    t = query(conn, "SELECT feature, count(*) AS c FROM drift WHERE feature = ? AND n > ? "
                    "GROUP BY feature", ("y", 0))
    assert t["feature"].to_pylist() == ["y"] and t["c"][0].as_py() >= 3
    # A `?` inside a string or a quoted identifier is text, not a parameter.
    t = query(conn, "SELECT '?' AS \"q?\", ? AS v", (5,))
    assert t["q?"].to_pylist() == ["?"] and t["v"].to_pylist() == [5]


def test_question_mark_parameter_schema(conn):
    with conn.cursor() as cur:
        schema = cur.adbc_prepare(
            "SELECT * FROM stats WHERE n >= ? AND x_avg < ? AND window_start > ?")
    assert len(schema) == 3, schema
    assert schema.field(0).type == pa.int64()
    assert schema.field(1).type == pa.float64()
    assert pa.types.is_timestamp(schema.field(2).type)


def test_dollar_parameters_still_work_and_mixing_is_refused(conn):
    assert query(conn, "SELECT $1 + 1 AS v", (41,))["v"].to_pylist() == [42]
    assert query(conn, "SELECT $2 - $1 AS v, $1 * $1 AS sq", (3, 10)).to_pylist() == [
        {"v": 7, "sq": 9}]
    t = query(conn, "SELECT count(*) AS c FROM stats WHERE n >= $1", (20,))
    assert t["c"][0].as_py() >= 3
    with pytest.raises(ADBC_ERRORS, match="do not mix '\\?' and numbered placeholders"):
        query(conn, "SELECT ? + $1 AS v", (1, 2))
    with pytest.raises(ADBC_ERRORS, match="named placeholder \\$limit is not supported"):
        query(conn, "SELECT count(*) FROM stats WHERE n > $limit", (1,))
    # The connection stays usable.
    assert query(conn, "SELECT ? AS v", (1,))["v"].to_pylist() == [1]


# 2. ListFlights: the tables, each with its schema and a ticket for its rows.

def test_list_flights_lists_tables_with_schema_and_ticket(server, conn, flight):
    client, options = flight
    infos = {tuple(p.decode() for p in i.descriptor.path): i
             for i in client.list_flights(options=options)}
    for name in [("stats",), ("drift",), ("stats_late",), ("drift_late",),
                 ("baselines", "train"), ("system", "monitors"), ("system", "sources")]:
        assert name in infos, sorted(infos)
    assert not any(p[0] == "information_schema" for p in infos)
    stats = infos[("stats",)]
    assert stats.descriptor.descriptor_type == fl.DescriptorType.PATH
    assert stats.schema.names == ["window_start", "window_end", "n", "x_avg"]
    rows = client.do_get(stats.endpoints[0].ticket, options).read_all()
    assert rows.schema.names == stats.schema.names
    expected = query(conn, "SELECT count(*) AS c FROM stats")["c"][0].as_py()
    assert rows.num_rows >= expected >= 3
    base = infos[("baselines", "train")]
    assert base.schema.names == ["x", "y"]
    assert client.do_get(base.endpoints[0].ticket, options).read_all().num_rows == 200
    monitors = client.do_get(infos[("system", "monitors")].endpoints[0].ticket, options)
    assert sorted(monitors.read_all()["name"].to_pylist()) == ["drift", "stats"]
    # Every listed schema is what the ticket streams.
    for info in infos.values():
        assert client.do_get(info.endpoints[0].ticket, options).read_all().schema.equals(
            info.schema), info.descriptor


def test_list_flights_criteria_and_path_descriptors(flight):
    client, options = flight
    names = [tuple(p.decode() for p in i.descriptor.path)
             for i in client.list_flights(b"baselines.%", options=options)]
    assert names == [("baselines", "train")]
    names = [i.descriptor.path for i in client.list_flights(b"%_late", options=options)]
    assert sorted(names) == [[b"drift_late"], [b"stats_late"]]
    # A path descriptor names a table for get_flight_info too.
    info = client.get_flight_info(fl.FlightDescriptor.for_path("baselines", "train"), options)
    assert info.schema.names == ["x", "y"]
    assert client.do_get(info.endpoints[0].ticket, options).read_all().num_rows == 200
    with pytest.raises((fl.FlightError, pa.ArrowInvalid), match="did you mean 'stats'"):
        client.get_flight_info(fl.FlightDescriptor.for_path("stast"), options)


def test_list_flights_needs_authentication(server):
    client = fl.connect(server.uri)
    with pytest.raises(fl.FlightUnauthenticatedError):
        list(client.list_flights())
    bad = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-token")])
    with pytest.raises(fl.FlightUnauthenticatedError):
        list(client.list_flights(options=bad))
    model = fl.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {server.tokens['model']}".encode())])
    with pytest.raises(fl.FlightUnauthorizedError, match="ingest role"):
        list(client.list_flights(options=model))
    # A static read token from the auth file lists them.
    ok = fl.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {server.tokens['dashboard']}".encode())])
    assert [b"stats"] in [i.descriptor.path for i in client.list_flights(options=ok)]
    client.close()


# 3. A mistyped table: "did you mean …?".

def test_missing_table_gets_a_suggestion(conn, flight):
    with pytest.raises(ADBC_ERRORS, match="table '.*stast' not found; did you mean 'stats'\\?"):
        query(conn, "SELECT * FROM stast")
    with pytest.raises(ADBC_ERRORS, match="did you mean 'drift_late'\\?"):
        query(conn, "SELECT count(*) FROM drfit_late WHERE n > ?", (1,))
    with pytest.raises(ADBC_ERRORS, match="did you mean 'baselines.train'\\?"):
        query(conn, "SELECT * FROM train")
    with pytest.raises(ADBC_ERRORS, match="did you mean 'system.monitors'\\?"):
        query(conn, "SELECT * FROM system.monitor")
    client, options = flight
    with pytest.raises((fl.FlightError, pa.ArrowInvalid), match="did you mean 'drift'\\?"):
        client.get_flight_info(
            fl.FlightDescriptor.for_command(command_statement_query("SELECT * FROM drfit")),
            options)
    # Nothing close: the plain error, no guess.
    with pytest.raises(ADBC_ERRORS) as e:
        query(conn, "SELECT * FROM completely_unrelated")
    assert "not found" in str(e.value) and "did you mean" not in str(e.value)
