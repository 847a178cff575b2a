"""The Flight SQL surface as an attacker meets it (issue 10), with the clients users have:
ADBC (adbc_driver_flightsql) and pyarrow.flight, as reader and as admin. Each attack is
refused with a clear error and changes nothing; the legitimate uses next to it still work."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pyarrow as pa
import pyarrow.flight as fl
import pytest

adbc_flightsql = pytest.importorskip("adbc_driver_flightsql")
import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402
from adbc_driver_manager import DatabaseError, OperationalError, ProgrammingError  # noqa: E402

from dw_server import (  # noqa: E402
    ADMIN, BIN, READER, Server, command_statement_query, fed_server, free_port,
    monitor_file, self_signed_cert, varint, wait_for, write_users,
)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

ADBC_ERRORS = (ProgrammingError, DatabaseError, OperationalError)
SECRET = "top-secret-line-4242"


def connect(server: Server, user):
    return flightsql.connect(server.uri, db_kwargs={"username": user[0], "password": user[1]},
                             autocommit=True)


def query(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def update(conn, sql):
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with fed_server(tmp_path_factory.mktemp("secure"), auth=True) as s:
        yield s


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A directory outside every allowed one, with a file the server must not read."""
    d = tmp_path_factory.mktemp("outside")
    (d / "secret.csv").write_text(f"x\n{SECRET}\n")
    return d


@pytest.fixture(scope="module", params=["reader", "admin"])
def conn(request, server):
    c = connect(server, READER if request.param == "reader" else ADMIN)
    wait_for(lambda: query(c, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 3,
             what="closed windows")
    yield c
    c.close()


def refused(conn, sql, *expected):
    with pytest.raises(ADBC_ERRORS) as e:
        query(conn, sql)
    text = str(e.value)
    assert SECRET not in text
    for word in expected:
        assert word.lower() in text.lower(), text
    return text


def test_files_cannot_be_read_or_written_by_any_role(conn, outside, tmp_path):
    secret = outside / "secret.csv"
    refused(conn, f"SELECT * FROM '{secret}'", "not found")
    refused(conn, f"SELECT * FROM baselines.\"{secret}\"", "not found")
    refused(conn, f"CREATE EXTERNAL TABLE p (x VARCHAR) STORED AS CSV LOCATION '{secret}'",
            "CREATE EXTERNAL TABLE", "not allowed")
    target = tmp_path / "f.csv"
    refused(conn, f"COPY (SELECT 1 AS a) TO '{target}'", "COPY", "not allowed")
    assert not target.exists()
    refused(conn, f"EXPLAIN COPY (SELECT 1 AS a) TO '{target}'", "COPY")
    # The legitimate reads next to them.
    assert query(conn, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 3
    assert query(conn, "EXPLAIN SELECT n FROM stats").num_rows >= 1
    assert "stats" in query(conn, "SHOW TABLES")["table_name"].to_pylist()
    assert "n" in query(conn, "DESCRIBE stats")["column_name"].to_pylist()


def test_results_cannot_be_forged_or_dropped_and_settings_stay_put(conn, server):
    before = query(conn, "SELECT count(*) AS c FROM stats")["c"][0].as_py()
    refused(conn, "INSERT INTO stats (n) VALUES (999999)", "INSERT", "not allowed")
    refused(conn, "DELETE FROM stats", "DELETE")
    refused(conn, "DROP TABLE stats", "DROP TABLE")
    refused(conn, "CREATE TABLE t AS SELECT 1", "CREATE TABLE")
    refused(conn, "CREATE VIEW v AS SELECT 1", "CREATE VIEW")
    refused(conn, "SET datafusion.execution.batch_size = 1", "SET")
    with pytest.raises(ADBC_ERRORS, match="(?i)not allowed|update"):
        update(conn, "INSERT INTO stats (n) VALUES (1)")
    # Another session sees the same tables and settings.
    other = connect(server, READER)
    try:
        assert query(other, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= before
        assert query(other, "SELECT max(n) AS m FROM stats")["m"][0].as_py() < 999999
        size = query(other, "SELECT value FROM information_schema.df_settings "
                            "WHERE name = 'datafusion.execution.batch_size'")["value"][0].as_py()
        assert size != "1"
    finally:
        other.close()


def test_reader_cannot_run_driftwatch_ddl(server, outside):
    reader = connect(server, READER)
    try:
        with pytest.raises(ADBC_ERRORS, match="(?i)only admins"):
            update(reader, f"CREATE BASELINE stolen FROM '{outside / 'secret.csv'}'")
    finally:
        reader.close()


def test_admin_ddl_reads_only_allowed_dirs_and_names_stay_inside(server, outside):
    admin = connect(server, ADMIN)
    try:
        with pytest.raises(ADBC_ERRORS, match="(?i)outside the directories.*--allow-dir"):
            update(admin, f"CREATE BASELINE stolen FROM '{outside / 'secret.csv'}'")
        with pytest.raises(ADBC_ERRORS, match="(?i)outside the directories"):
            update(admin, f"CREATE BASELINE stolen AS SELECT * FROM '{outside / 'secret.csv'}'")
        with pytest.raises(ADBC_ERRORS, match="(?i)outside the directories"):
            update(admin, "CREATE SOURCE f (x DOUBLE) WITH (connector = 'file', "
                          f"path = '{outside / 'secret.csv'}')")
        sneaky = server.tmp / ".." / outside.name / "secret.csv"
        with pytest.raises(ADBC_ERRORS, match="(?i)outside the directories"):
            update(admin, f"CREATE BASELINE stolen FROM '{sneaky}'")
        # `../` in a name: refused before anything touches the file system.
        escape = server.data_dir.parent / "evil"
        for name in ['"../../evil"', '"a/b"', '"..\\x"', '"x\ty"']:
            with pytest.raises(ADBC_ERRORS, match="(?i)name"):
                update(admin, f"CREATE BASELINE {name} FROM '{server.tmp / 'train.csv'}'")
        assert not escape.exists()
        assert not (server.data_dir / "evil").exists()
        names = query(admin, "SELECT name FROM system.baselines")["name"].to_pylist()
        assert "stolen" not in names
        # The legitimate use: a file under the monitor file's directory.
        update(admin, f"CREATE BASELINE train2 FROM '{server.tmp / 'train.csv'}'")
        assert "train2" in query(admin, "SELECT name FROM system.baselines")["name"].to_pylist()
    finally:
        admin.close()


def test_kafka_secrets_are_redacted_for_readers(server):
    admin = connect(server, ADMIN)
    reader = connect(server, READER)
    try:
        update(admin, "CREATE SOURCE k (x DOUBLE) WITH (connector = 'kafka', topic = 't', "
                      "brokers = '127.0.0.1:1', \"properties.security.protocol\" = 'SASL_PLAINTEXT', "
                      "\"properties.sasl.mechanism\" = 'PLAIN', \"properties.sasl.username\" = 'svc', "
                      "\"properties.sasl.password\" = 'hunter2-kafka')")
        for c in (reader, admin):
            shown = query(c, "SHOW SOURCES")["definition"].to_pylist()
            text = " ".join(shown + [repr(r) for r in
                                     query(c, "SELECT * FROM system.sources").to_pylist()])
            assert "hunter2-kafka" not in text
            assert "sasl.password" in text and "'***'" in text
        assert "hunter2-kafka" not in server.logs()
        catalog = server.data_dir / "catalog.sql"
        assert "hunter2-kafka" in catalog.read_text()  # the server needs it after a restart
        assert stat.S_IMODE(os.stat(catalog).st_mode) == 0o600
        update(admin, "DROP SOURCE k")
    finally:
        reader.close()
        admin.close()


def _any(type_name: str, payload: bytes) -> bytes:
    def field(num: int, data: bytes) -> bytes:
        return bytes([num << 3 | 2]) + varint(len(data)) + data
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()
    return field(1, url) + field(2, payload)


def _fields(buf: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a protobuf message."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        n, i = _read_varint(buf, i)
        out[key >> 3] = buf[i:i + n]
        i += n
    return out


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def test_prepared_statements_belong_to_their_session(server):
    def client():
        c = fl.connect(server.uri)
        return c, fl.FlightCallOptions(headers=[c.authenticate_basic_token(*READER)])

    a, a_opts = client()
    b, b_opts = client()
    request = _any("ActionCreatePreparedStatementRequest", bytes([1 << 3 | 2]) + varint(21)
                   + b"SELECT 7 AS seven    ")
    result = next(iter(a.do_action(fl.Action("CreatePreparedStatement", request), a_opts)))
    handle = _fields(_fields(result.body.to_pybytes())[2])[1]
    cmd = _any("CommandPreparedStatementQuery", bytes([1 << 3 | 2]) + varint(len(handle)) + handle)
    info = a.get_flight_info(fl.FlightDescriptor.for_command(cmd), a_opts)
    assert a.do_get(info.endpoints[0].ticket, a_opts).read_all()["seven"].to_pylist() == [7]
    with pytest.raises((fl.FlightError, KeyError), match="(?i)unknown or closed prepared statement"):
        b.get_flight_info(fl.FlightDescriptor.for_command(cmd), b_opts)


def test_ingest_tokens_cannot_use_flight(server):
    c = fl.connect(server.uri)
    opts = fl.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {server.tokens['model']}".encode())])
    with pytest.raises(fl.FlightError, match="(?i)ingest role"):
        c.get_flight_info(fl.FlightDescriptor.for_command(command_statement_query("SELECT 1")),
                          opts)


def _run(tmp_path, *args, users: str | None = None):
    sql = monitor_file(tmp_path)
    cmd = [str(BIN), "run", str(sql), "--data-dir", str(tmp_path / "d"),
           "--http-listen", f"127.0.0.1:{free_port()}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_plaintext_passwords_are_refused_at_startup_with_a_hint(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text('[[users]]\nname = "a"\npassword = "plain-pw"\nrole = "admin"\n')
    r = _run(tmp_path, "--auth-file", str(users), "--flight-listen", f"127.0.0.1:{free_port()}")
    assert r.returncode != 0
    assert "plaintext" in r.stderr and "driftwatch passwd" in r.stderr, r.stderr


def test_auth_on_a_public_address_needs_tls(tmp_path):
    users = tmp_path / "users.toml"
    write_users(users)
    r = _run(tmp_path, "--auth-file", str(users), "--flight-listen", f"0.0.0.0:{free_port()}")
    assert r.returncode != 0
    assert "without TLS" in r.stderr and "--insecure-plaintext" in r.stderr, r.stderr
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600


def test_auth_file_holds_only_hashes(tmp_path):
    users = tmp_path / "users.toml"
    tokens = write_users(users)
    text = users.read_text()
    assert ADMIN[1] not in text and READER[1] not in text
    assert all(t not in text for t in tokens.values())
    assert text.count("$argon2id$") == 2 and text.count("blake3:") == 2


def _ca_and_client_cert(tmp):
    """A CA, and a client certificate signed by it (PEM paths)."""
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dashboard")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: tmp / f"{n}.pem" for n in ("ca", "client", "client-key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["client"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["client-key"].write_bytes(pem_key(key))
    return paths


def test_mutual_tls_refuses_clients_without_a_certificate(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    ca = _ca_and_client_cert(tmp_path)
    s = Server(tmp_path, tls=(cert, key), extra=["--tls-client-ca", str(ca["ca"])])
    try:
        root = cert.read_bytes()
        descriptor = fl.FlightDescriptor.for_command(command_statement_query("SELECT 3 AS x"))
        anonymous = fl.connect(s.uri, tls_root_certs=root)
        with pytest.raises(fl.FlightError):
            anonymous.get_flight_info(descriptor)
        client = fl.connect(s.uri, tls_root_certs=root, cert_chain=ca["client"].read_bytes(),
                            private_key=ca["client-key"].read_bytes())
        info = client.get_flight_info(descriptor)
        assert client.do_get(info.endpoints[0].ticket).read_all()["x"].to_pylist() == [3]
    finally:
        s.stop()


def test_repeated_failed_logins_lock_the_address_out(tmp_path):
    s = Server(tmp_path, auth=True)
    try:
        c = fl.connect(s.uri)
        started = time.time()
        for _ in range(10):
            with pytest.raises(fl.FlightUnauthenticatedError):
                c.authenticate_basic_token(ADMIN[0], "guess-guess")
        # Argon2 makes guessing slow even before the lock-out.
        assert time.time() - started > 0.05
        with pytest.raises(pa.ArrowException, match="(?i)too many failed logins"):
            c.authenticate_basic_token(*ADMIN)
        # An unknown user is refused with the same message as a wrong password.
        other = fl.connect(s.uri)
        with pytest.raises(pa.ArrowException) as e:
            other.authenticate_basic_token("nobody", "x")
        assert "invalid user name or password" in str(e.value) or "too many" in str(e.value)
    finally:
        s.stop()
