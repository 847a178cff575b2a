#!/usr/bin/env python3
"""How a broker's group coordinator handles a member killed with -9 (issue 15: scale-out
relies on it). Two confluent-kafka consumers join one group over a fresh 6-partition topic
(session.timeout.ms 6 s); one is killed with SIGKILL; prints how long until the survivor owns
all 6 partitions (or that it still does not after 90 s).

    ~/.cache/driftwatch/venv/bin/python scripts/group-failover.py 127.0.0.1:9092

Measured 2026-12-02: tansu 0.6.0 keeps the survivor on its 3 partitions for 90 s and more;
nisshi 0.6.0 (DRIFTWATCH_BROKER=nisshi scripts/kafka.sh start) hands it all 6 after 9 s."""
import json, os, signal, subprocess, sys, time
from confluent_kafka.admin import AdminClient, NewTopic

broker = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
if len(sys.argv) > 2 and sys.argv[2] == "member":
    from confluent_kafka import Consumer
    out = sys.argv[3]
    c = Consumer({"bootstrap.servers": broker, "group.id": "failover-" + sys.argv[4], "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest"})
    c.subscribe([sys.argv[4]])
    while True:
        c.poll(0.2)
        with open(out + ".tmp", "w") as f:
            json.dump(sorted(p.partition for p in c.assignment()), f)
        os.replace(out + ".tmp", out)

topic = f"grp-topic-{os.getpid()}"
a = AdminClient({"bootstrap.servers": broker})
for f in a.create_topics([NewTopic(topic, 6, 1)]).values():
    try: f.result()
    except Exception as e: print("create:", e)
state = [f"/tmp/{topic}-{i}.json" for i in range(2)]
procs = [subprocess.Popen([sys.executable, __file__, broker, "member", state[i], topic])
         for i in range(2)]
def owned(i):
    try: return json.load(open(state[i]))
    except Exception: return None
t0 = time.time()
while time.time() - t0 < 60:
    o = [owned(0), owned(1)]
    if o[0] is not None and o[1] is not None and len(o[0]) + len(o[1]) == 6 and o[0] and o[1]:
        break
    time.sleep(0.5)
print("formed", round(time.time() - t0, 1), "s:", owned(0), owned(1))
procs[1].send_signal(signal.SIGKILL)
t1 = time.time()
while time.time() - t1 < 90:
    if len(owned(0) or []) == 6:
        print("survivor owns 6 after", round(time.time() - t1, 1), "s")
        break
    time.sleep(0.5)
else:
    print("survivor still owns", owned(0), "after 90 s")
procs[0].kill()
for path in state:
    if os.path.exists(path): os.remove(path)
