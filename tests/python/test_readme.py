"""The README, run as written: the Quick start and the walkthrough.

The walkthrough's ```sh blocks run in order in one bash process (so a server started in the
background by one block is there for the next), with `set -euo pipefail`, from a directory
that links the checkout's examples. A ```text block right after a ```sh block is that block's expected standard
output, compared line by line. The only substitution: `cargo run --release --quiet --` in the
`driftwatch()` shell function becomes the binary under test, so CI does not build twice.

The SQL tour's code block must be statements of examples/iris/monitors.sql, which
`driftwatch check` compiles."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from dw_server import BIN, ROOT

README = (ROOT / "README.md").read_text()
CARGO_RUN = "cargo run --release --quiet --"


def section(title: str) -> str:
    """The text of the README section `## title` (up to the next `## `)."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def walkthrough_steps() -> list[tuple[str, str | None]]:
    """(shell commands, expected stdout or None) per ```sh block of the walkthrough."""
    steps: list[tuple[str, str | None]] = []
    for lang, body in fenced_blocks(section("Walkthrough")):
        if lang == "sh":
            steps.append((body, None))
        elif lang == "text" and steps and steps[-1][1] is None:
            steps[-1] = (steps[-1][0], body)
    return steps


def test_walkthrough_runs_as_written(tmp_path):
    steps = walkthrough_steps()
    assert len(steps) >= 4, "the walkthrough lost its commands"
    assert any(CARGO_RUN in cmd for cmd, _ in steps), "the walkthrough no longer defines driftwatch()"
    # A server the walkthrough started must not outlive a failed step.
    # Job control on, as in an interactive shell: `kill %1` signals the job's process group.
    script = ["set -euo pipefail", "set -m", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, (cmd, _) in enumerate(steps):
        script.append(f"echo '@@step {i}'")
        script.append(cmd.replace(CARGO_RUN, f'"{BIN}"'))
    script.append("echo '@@end'")
    env = dict(os.environ, NO_COLOR="1")
    env.pop("DRIFTWATCH_DATA_DIR", None)
    # The walkthrough runs "from the checkout": a scratch directory that links its examples,
    # so the files it writes (driftwatch.log) stay out of the repository.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    proc = subprocess.Popen(["bash", "-c", "\n".join(script) + "\n"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    log = tmp_path / "driftwatch.log"
    proc.stderr += "\ndriftwatch.log:\n" + (log.read_text() if log.exists() else "(none)")
    assert proc.returncode == 0, f"walkthrough failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    outputs = re.split(r"^@@step \d+\n", proc.stdout.split("@@end")[0], flags=re.M)[1:]
    assert len(outputs) == len(steps), proc.stdout
    for (cmd, expected), got in zip(steps, outputs):
        if expected is None:
            continue
        assert got.rstrip().splitlines() == expected.rstrip().splitlines(), (
            f"output of\n{cmd}\ndiffers from the README:\n--- got\n{got}\n--- README\n{expected}"
            f"\nstderr:\n{proc.stderr}")


def test_sql_tour_is_the_iris_example(tmp_path):
    """The tour's SQL is taken from examples/iris/monitors.sql (so it compiles: `check`)."""
    tour = [body for lang, body in fenced_blocks(section("SQL tour")) if lang == "sql"]
    assert tour, "the SQL tour has no sql block"
    example = (ROOT / "examples/iris/monitors.sql").read_text()

    def statements(sql: str) -> list[str]:
        no_comments = re.sub(r"--[^\n]*", "", sql)
        return [" ".join(s.split()) for s in no_comments.split(";") if s.strip()]

    known = statements(example)
    for stmt in statements(tour[0]):
        assert stmt in known, f"README statement not in examples/iris/monitors.sql:\n{stmt}"
    check = subprocess.run([str(BIN), "check", "examples/iris/monitors.sql"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


def test_quick_start_demo_and_query(tmp_path):
    """`cargo run --release -- demo` then the README's query, as in the Quick start (the demo
    writes ./driftwatch-data, so it runs in a scratch directory)."""
    quick = section("Quick start")
    commands = [line.split("#")[0].strip() for lang, body in fenced_blocks(quick) if lang == "sh"
                for line in body.splitlines() if line.startswith("cargo run --release -- ")]
    assert len(commands) == 2, commands
    env = dict(os.environ, NO_COLOR="1")
    env.pop("DRIFTWATCH_DATA_DIR", None)

    def run(command: str) -> subprocess.CompletedProcess:
        args = shlex.split(command.removeprefix("cargo run --release -- "))
        return subprocess.run([str(BIN), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=240)

    demo = run(commands[0])
    assert demo.returncode == 0, demo.stderr
    assert 'drift detected on: ["petal_length", "petal_width"]' in demo.stdout, demo.stdout
    flagged = re.search(r"outliers flagged: (\d+) \(readings in millimetres injected: (\d+)\)", demo.stdout)
    assert flagged and int(flagged.group(1)) > 0 and flagged.group(1) == flagged.group(2), demo.stdout
    assert re.search(r"^outlier ", demo.stdout, re.M), "the demo printed no outlier"
    query = run(commands[1])
    assert query.returncode == 0, query.stderr
    features = re.findall(r"^\| (\w+) +\| [0-9.]+ +\|$", query.stdout, re.M)
    assert sorted(features) == ["petal_length", "petal_width", "sepal_length", "sepal_width"], query.stdout
