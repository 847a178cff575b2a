"""Helpers of the crash tests: generated events, a real Kafka-protocol broker's topics
(confluent-kafka as the independent client), the driftwatch binary started, killed with
SIGKILL and restarted, and result tables and sink topics compared with an uninterrupted run.

Sizes come from the environment so that CI runs a short version and
`scripts/crash-test.sh` the long one:
  DRIFTWATCH_CRASH_EVENTS  events produced (CI default 60 000; the script uses 1 000 000)
  DRIFTWATCH_CRASH_KILLS   kill -9 moments (default 10)
  DRIFTWATCH_CRASH_SEED    seed of the data and of the kill moments (default 7)"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from dw_server import BIN

BROKERS = os.environ.get("DRIFTWATCH_KAFKA", "127.0.0.1:9092")
EVENTS = int(os.environ.get("DRIFTWATCH_CRASH_EVENTS", "60000"))
KILLS = int(os.environ.get("DRIFTWATCH_CRASH_KILLS", "10"))
SEED = int(os.environ.get("DRIFTWATCH_CRASH_SEED", "7"))
T0 = 1_767_225_600_000
#: Event time between consecutive events (over all partitions).
STEP_MS = 4


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topics(brokers: str, *names: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in futures.values():
        f.result(timeout=30)


def event(i: int, rng: random.Random) -> dict:
    """Event `i`: ordered in event time within its partition (`i % 3`); users are active in
    blocks of 5 000 events, so their sessions open and close."""
    block = i // 5_000
    return {
        "id": f"e{i:08d}",
        "ts": T0 + i * STEP_MS,
        "model": f"m{i % 5}",
        "user_id": f"u{(block * 7 + rng.randrange(4)) % 23}",
        "x": round(rng.gauss(0.0, 1.0), 6),
        "y": round(rng.uniform(-10.0, 10.0), 6),
    }


def produce_events(brokers: str, topic: str, n: int, seed: int = SEED) -> None:
    """Produces `n` events over 3 partitions (event `i` to partition `i % 3`), in order."""
    rng = random.Random(seed)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20,
                         "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000})
    for i in range(n):
        e = event(i, rng)
        while True:
            try:
                producer.produce(topic, json.dumps(e, separators=(",", ":")).encode(),
                                 key=e["id"].encode(), partition=i % 3)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 50_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "every event acknowledged"


def read_topic(brokers: str, topic: str, timeout: float = 60.0) -> list[tuple[str, str]]:
    """Every message of `topic` as (key, value), read with isolation.level=read_committed
    until each partition's end."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("reader"),
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    ends = {}
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    pending = {p for p, h in ends.items() if h > 0}
    out = []
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        out.append(((m.key() or b"").decode(), (m.value() or b"").decode()))
        if m.offset() + 1 >= ends[m.partition()]:
            pending.discard(m.partition())
    consumer.close()
    assert not pending, f"partitions {pending} of {topic} not read to their end"
    return out


class Driftwatch:
    """`driftwatch run FILE` in its own data dir, started, killed and restarted."""

    def __init__(self, sql: Path, data: Path, *extra: str, env: dict | None = None):
        self.sql, self.data, self.extra = sql, data, list(extra)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = data.parent / f"{data.name}.log"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(BIN), "run", str(self.sql), "--data-dir", str(self.data), "--no-flight",
             "--status-every", "0", *self.extra],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM, as systemd or Kubernetes stop a service; waits for the exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = 600) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        return code

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def query(self, sql: str) -> list[list[str]]:
        out = subprocess.run([str(BIN), "query", sql, "--data-dir", str(self.data),
                              "--format", "csv"], check=True, capture_output=True, text=True,
                             timeout=300)
        rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r]
        return rows[1:]


def checkpointed_progress(data: Path) -> int:
    """Sum of the source positions (Kafka offsets, file offsets, WAL sequence numbers) in the
    newest checkpoint of `data`: grows once a checkpoint covers consumed input (0 when there
    is no checkpoint, or when none covers any input yet)."""
    files = sorted((data / "checkpoints").glob("ckpt-*.dwc"))
    for path in reversed(files):
        head = path.read_bytes()[:1 << 20].decode("latin-1")
        start = head.find("{")
        try:
            manifest, _ = json.JSONDecoder().raw_decode(head, start)
        except ValueError:
            continue  # being written or damaged: the one before it counts
        total = 0
        for source in manifest.get("sources", {}).values():
            for pos in source.get("positions", {}).values():
                total += sum(v for k, v in pos.items() if k != "kind" and isinstance(v, int))
        return total
    return 0


def crash_repeatedly(dw: Driftwatch, kills: int, rng: random.Random,
                     alive: tuple[float, float], after_progress: bool = False) -> int:
    """Starts `dw` and kills it with SIGKILL after a random time in `alive` seconds, `kills`
    times (or until a run ends by itself); returns the number of kills done.

    With `after_progress`, the time alive is counted from the first checkpoint of the life
    that covers more input than the one it started from (at most 60 s after its start), so
    that every killed life leaves new state for the next one to restore however long a start
    (connecting, fetching) takes on a slow machine."""
    done = 0
    for _ in range(kills):
        before = checkpointed_progress(dw.data)
        dw.start()
        if after_progress:
            wait_until = time.time() + 60
            while (time.time() < wait_until and dw.running()
                   and checkpointed_progress(dw.data) <= before):
                time.sleep(0.02)
        deadline = time.time() + rng.uniform(*alive)
        while time.time() < deadline and dw.running():
            time.sleep(0.02)
        if not dw.running():
            assert dw.proc.returncode == 0, dw.tail()
            break
        dw.kill9()
        done += 1
    return done


def close(a: str, b: str) -> bool:
    """Cells are equal: text exactly, numbers to 1e-9 relative (floating-point sums depend
    on how rows of different Kafka partitions interleave)."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def assert_same_rows(got: list[list[str]], want: list[list[str]], what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} rows, expected {len(want)}"
    for g, w in zip(got, want):
        assert len(g) == len(w) and all(close(a, b) for a, b in zip(g, w)), \
            f"{what}: {g} != {w}"


def same_json(a: str, b: str) -> bool:
    x, y = json.loads(a), json.loads(b)
    if x.keys() != y.keys():
        return False
    return all(close(str(x[k]), str(y[k])) for k in x)


def assert_same_messages(got: list[tuple[str, str]], want: list[tuple[str, str]],
                         what: str) -> None:
    """The same messages, each as often: keys counted exactly, values compared per key."""
    g, w = Counter(k for k, _ in got), Counter(k for k, _ in want)
    dup = {k: n for k, n in g.items() if n > 1}
    assert not dup, f"{what}: duplicated keys {list(dup.items())[:5]}"
    missing = set(w) - set(g)
    extra = set(g) - set(w)
    assert not missing and not extra, \
        f"{what}: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}"
    by_key = defaultdict(list)
    for k, v in want:
        by_key[k].append(v)
    for k, v in got:
        assert any(same_json(v, x) for x in by_key[k]), f"{what}: {k}: {v} vs {by_key[k]}"
