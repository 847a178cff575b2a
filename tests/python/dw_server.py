"""Helpers for tests that drive a running `driftwatch run` process: free ports, monitor
files, starting/stopping the binary, posting rows to the HTTP ingest, Flight clients."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DRIFTWATCH_BIN", ROOT / "target" / "debug" / "driftwatch"))

ADMIN = ("admin", "admin-pw")
READER = ("reader", "reader-pw")

INGEST_SOURCES = ["s"]


def write_users(path: Path) -> dict[str, str]:
    """Writes an auth file with `driftwatch passwd` (as an operator would): the admin and
    reader users, a static `dashboard` token (read) and a `model` token (ingest, source s).
    Returns the static tokens by name."""
    for (user, password), role in ((ADMIN, "admin"), (READER, "read")):
        subprocess.run([str(BIN), "passwd", "--file", str(path), "--user", user, "--role", role],
                       input=password + "\n", text=True, check=True, capture_output=True)
    tokens = {}
    for name, role, extra in (("dashboard", "read", []),
                              ("model", "ingest", [a for s in INGEST_SOURCES for a in ("--source", s)])):
        r = subprocess.run([str(BIN), "passwd", "--file", str(path), "--token", name, "--role", role,
                            *extra], text=True, check=True, capture_output=True)
        tokens[name] = r.stdout.strip()
    return tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def monitor_file(tmp: Path) -> Path:
    """A source `s` over HTTP (1 s tumbling windows, 1 s idle timeout), a baseline and two
    monitors: `stats` (one row per window) and `drift` (one row per feature and window)."""
    train = tmp / "train.csv"
    train.write_text("x,y\n" + "\n".join(f"{i % 10},{(i * 7) % 13}" for i in range(200)) + "\n")
    sql = tmp / "monitors.sql"
    sql.write_text(
        f"""
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE, y DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '500 milliseconds')
WITH (connector = 'http', idle_timeout = '1 second');
CREATE BASELINE train FROM '{train}';
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
CREATE MONITOR drift AS
SELECT window_start, window_end, feature, count(*) AS n,
       wasserstein_norm(value, 'train', feature) AS w_norm
FROM TUMBLE(features(s), ts, INTERVAL '1 second')
GROUP BY window_start, window_end, feature;
"""
    )
    return sql


class Server:
    """A `driftwatch run` subprocess with its HTTP ingest and Flight SQL ports."""

    def __init__(self, tmp: Path, *, auth: bool = False, tls: tuple[Path, Path] | None = None,
                 data_dir: Path | None = None, extra: list[str] | None = None):
        self.tmp = tmp
        self.data_dir = data_dir or tmp / "data"
        self.http_port = free_port()
        self.flight_port = free_port()
        self.tls = tls
        self.tokens: dict[str, str] = {}
        args = [str(BIN), "run", str(monitor_file(tmp)), "--data-dir", str(self.data_dir),
                "--http-listen", f"127.0.0.1:{self.http_port}",
                "--flight-listen", f"127.0.0.1:{self.flight_port}", "--status-every", "0"]
        if auth:
            users = tmp / "users.toml"
            self.tokens = write_users(users)
            args += ["--auth-file", str(users)]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        args += extra or []
        self.log = open(tmp / f"driftwatch-{self.flight_port}.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "RUST_LOG": "info"})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"driftwatch exited: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.flight_port), timeout=0.5):
                    with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"driftwatch did not start: {self.logs()}")

    @property
    def uri(self) -> str:
        scheme = "grpc+tls" if self.tls else "grpc"
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{host}:{self.flight_port}"

    def logs(self) -> str:
        self.log.flush()
        return (self.tmp / f"driftwatch-{self.flight_port}.log").read_text()

    def post(self, rows: list[dict]) -> None:
        headers = {"content-type": "application/json"}
        if "model" in self.tokens:
            headers["authorization"] = f"Bearer {self.tokens['model']}"
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/ingest/s", data=json.dumps(rows).encode(),
            headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, resp.read()

    def post_window(self, start_ms: int, n: int = 20, shift: float = 0.0) -> None:
        """`n` rows with event times inside the second starting at `start_ms`."""
        self.post([{"id": f"r{start_ms}-{i}", "ts": iso(start_ms + i * (900 // n)),
                    "x": (i % 10) + shift, "y": float((i * 7) % 13)} for i in range(n)])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@contextlib.contextmanager
def fed_server(tmp: Path, seconds: int = 3, **kwargs):
    """A running [`Server`] with `seconds` closed windows of traffic; stopped afterwards."""
    s = Server(tmp, **kwargs)
    try:
        feed_past_windows(s, seconds=seconds)
        yield s
    finally:
        s.stop()


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return int(time.time() * 1000)


def feed_past_windows(server: Server, seconds: int = 3) -> None:
    """Posts a few whole seconds of traffic in the recent past; the idle timeout closes them."""
    base = (now_ms() // 1000 - seconds - 2) * 1000
    for k in range(seconds):
        server.post_window(base + k * 1000)


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (the binary checkpoints and exits), then SIGKILL after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (PEM cert and key paths)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def adbc_connect(server: "Server", user=ADMIN, **kwargs):
    """An ADBC Flight SQL connection to `server` as `user` (autocommit)."""
    import adbc_driver_flightsql.dbapi as flightsql

    db_kwargs = {"username": user[0], "password": user[1], **kwargs}
    return flightsql.connect(server.uri, db_kwargs=db_kwargs, autocommit=True)


def adbc_query(conn, sql, params=None):
    """Runs `sql` (with DB-API `params`) on an ADBC connection; the result as a pyarrow table."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()


def command_statement_query(sql: str) -> bytes:
    """A Flight SQL `CommandStatementQuery` packed in a protobuf `Any` (for pyarrow.flight)."""
    def field(num: int, payload: bytes) -> bytes:
        return bytes([num << 3 | 2]) + varint(len(payload)) + payload

    inner = field(1, sql.encode())
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, url) + field(2, inner)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
