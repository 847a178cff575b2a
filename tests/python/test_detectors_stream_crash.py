"""Streaming change detectors across kill -9: `page_hinkley_stream` and `adwin_stream` in a
row-level monitor over a 3-partition Kafka topic (one key per partition). The real binary is
killed with SIGKILL at random moments and restarted; its detections equal those of an
uninterrupted run, and both equal River's `drift.PageHinkley` / `drift.ADWIN` run over each
key's whole sequence (each change reported once, at River's sample count since its reset).

Needs the binary (DRIFTWATCH_BIN) and tansu (DRIFTWATCH_TANSU), as test_crash.py."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from confluent_kafka import Producer
from river import drift

import crash_support as cs
from test_crash import Broker

EVENTS = int(os.environ.get("DRIFTWATCH_DETECT_CRASH_EVENTS", "240000"))
KILLS = int(os.environ.get("DRIFTWATCH_DETECT_CRASH_KILLS", "4"))
#: Rows of one key between two mean shifts.
SEGMENT = 2_500


def event(i: int, rng: random.Random) -> dict:
    key = i % 3
    j = i // 3  # row of its key
    shift = (1.0 + 0.5 * key) * ((j // SEGMENT) % 2)
    return {"id": f"e{i:08d}", "ts": cs.T0 + i * cs.STEP_MS, "k": f"k{key}",
            "x": round(rng.gauss(0.0, 1.0) + shift, 6)}


def events(n: int) -> list[dict]:
    rng = random.Random(cs.SEED)
    return [event(i, rng) for i in range(n)]


def produce(brokers: str, topic: str, evs: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20,
                         "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000})
    for i, e in enumerate(evs):
        while True:
            try:
                producer.produce(topic, json.dumps(e, separators=(",", ":")).encode(),
                                 key=e["k"].encode(), partition=i % 3)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0


def sql(path: Path, topic: str, brokers: str) -> Path:
    path.write_text(f"""
CREATE SOURCE ev (id VARCHAR, ts TIMESTAMP, k VARCHAR, x DOUBLE,
                  WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}', group_id = 'dw-{path.stem}',
      time_format = 'epoch_ms', idle_timeout = '30 seconds', batch_size = '2000',
      linger = '20 ms', stop_at_end = 'true');
CREATE MONITOR changes AS
  SELECT id, ts, k, ph['position'] AS ph_pos, ph['row'] AS ph_row, ph['detection'] AS ph_n,
         ad['position'] AS ad_pos, ad['row'] AS ad_row, ad['detection'] AS ad_n
  FROM (SELECT id, ts, k, page_hinkley_stream(x, ts, k, 30, 0.005, 20.0) AS ph,
               adwin_stream(x, ts, k) AS ad FROM ev)
  WHERE ph IS NOT NULL OR ad IS NOT NULL;
""")
    return path


CHECK = "SELECT * FROM changes ORDER BY id"


def river_detections(evs: list[dict]) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Per detector, event id → (position since reset, row of the key, ordinal)."""
    out: dict[str, dict[str, tuple[int, int, int]]] = {"ph": {}, "ad": {}}
    for key in ("k0", "k1", "k2"):
        dets = {"ph": drift.PageHinkley(min_instances=30, delta=0.005, threshold=20.0),
                "ad": drift.ADWIN()}
        since = {"ph": 0, "ad": 0}
        count = {"ph": 0, "ad": 0}
        row = 0
        for e in (e for e in evs if e["k"] == key):
            row += 1
            for name, d in dets.items():
                if since[name] and d.drift_detected:
                    since[name] = 0  # River resets on the value after a detection
                d.update(e["x"])
                since[name] += 1
                if d.drift_detected:
                    count[name] += 1
                    out[name][e["id"]] = (since[name], row, count[name])
    return out


def test_stream_detectors_survive_kill_9(tmp_path):
    evs = events(EVENTS)
    with Broker(tmp_path / "broker") as broker:
        topic = cs.unique("detect-in")
        cs.create_topics(broker.addr, topic)
        produce(broker.addr, topic, evs)
        interval = ("--checkpoint-interval", "300ms")
        ref = cs.Driftwatch(sql(tmp_path / "ref.sql", topic, broker.addr), tmp_path / "ref",
                            *interval)
        started = time.monotonic()
        ref.start()
        assert ref.wait() == 0, ref.tail()
        # Each life is killed at a random moment after its first checkpoint that covers new
        # input, so every kill leaves detector state for the next life to restore however
        # slowly a life starts; the time alive after it is a small part of an uninterrupted
        # run's duration, so several kills land mid-input however fast this machine reads it.
        took = time.monotonic() - started
        alive = (0.05 * took, 0.15 * took)
        crashed = cs.Driftwatch(sql(tmp_path / "crash.sql", topic, broker.addr),
                                tmp_path / "crash", *interval)
        kills = cs.crash_repeatedly(crashed, KILLS, random.Random(cs.SEED), alive=alive,
                                    after_progress=True)
        assert kills >= 2, f"only {kills} kills before the input was consumed: use more events"
        crashed.start()
        assert crashed.wait() == 0, crashed.tail()
        log = crashed.log.read_text(errors="replace")
        assert log.count("streaming detector state restored") >= 1, "state was restored"

        want = ref.query(CHECK)
        got = crashed.query(CHECK)
        assert got == want, "kill -9 and restart change no detection"

    river = river_detections(evs)
    assert all(len(river[d]) >= 3 * (EVENTS // 3 // SEGMENT) // 2 for d in river), \
        {d: len(v) for d, v in river.items()}
    for name, pos, row, n in (("ph", 3, 4, 5), ("ad", 6, 7, 8)):
        ours = {r[0]: (int(r[pos]), int(r[row]), int(r[n])) for r in want if r[pos] != ""}
        assert ours == river[name], f"{name}: equal to River over each key's sequence"
