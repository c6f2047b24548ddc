"""Whole-process cost of ``mailgate ingest`` (what an MTA's pipe starts once per message).

One command: ``.venv/bin/python bench/ingest_bench.py [--source DIR] [--runs N]``.
``--source`` runs the ``worker`` package of another checkout (an export of an older
commit) with this virtualenv, so before and after are measured in the same run.

A data dir with tickets is set up once (SQLite, the shipped policies), then each kind of
message is piped ``--runs`` times, each a new process with a new Message-ID (so every run
decides and commits; none is a duplicate), after one warm-up run. The baseline is a bare
``python -c pass`` timed the same way in the same run. Printed per kind: median wall
seconds and peak RSS (the kernel's ``ru_maxrss`` of the finished process), and both as a
difference over the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef-0123456789"
KINDS = {
    # kind: (sender, subject, body); the body is what the language rule would read
    "new ticket (reply spooled)": ("someone@customer.example", "my PBX is down", "It is down."),
    "technical follow-up": ("bob@partner.example", "Re: [Ticket#1001] trunk", "Still failing."),
    "Customer Care follow-up (language rule)": (
        "carla@customer.example",
        "Re: [Ticket#2002] invoice",
        "Hello, the invoice for last month still shows the old number of licences, "
        "could you please send a corrected one to our accounting department?",
    ),
}


def environment(source: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env.update(
        PYTHONPATH=str(source),
        MAILGATE_DATA_DIR=str(data),
        MAILGATE_POLICY_DIR=str(source / "policies"),
        MAILGATE_REPLY_SECRET=SECRET,
        MAILGATE_SUPPORT_DOMAINS="wildix.com",
    )
    return env


def message(kind: str, number: int) -> bytes:
    sender, subject, body = KINDS[kind]
    return (
        f"From: {sender}\r\nTo: support@wildix.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <ingest-{time.time_ns()}-{number}@customer.example>\r\n\r\n{body}\r\n"
    ).encode()


def timed(command: list[str], env: dict[str, str], cwd: Path, stdin: bytes) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    process.stdin.write(stdin)
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, f"{command} exited {process.returncode}"
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def series(runs: int, command: list[str], env: dict[str, str], cwd: Path, kind: str | None):  # type: ignore[no-untyped-def]
    figures = [
        timed(command, env, cwd, message(kind, n) if kind else b"") for n in range(runs + 1)
    ][1:]  # the first run is a warm-up
    return statistics.median(f[0] for f in figures), statistics.median(f[1] for f in figures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    source: Path = args.source.resolve()
    data = Path(tempfile.mkdtemp(prefix="mailgate-ingest-"))
    env = environment(source, data)
    mailgate = [sys.executable, "-m", "worker"]
    for ticket in (
        ["1001", "--kind", "technical", "--participant", "bob@partner.example"],
        ["2002", "--kind", "customer_care", "--participant", "carla@customer.example"],
    ):  # cwd: ``-m`` puts the working directory first on sys.path, before PYTHONPATH
        subprocess.run([*mailgate, "tickets", "add", *ticket], env=env, cwd=data, check=True,
                       capture_output=True)  # fmt: skip
    try:
        base_s, base_mib = series(args.runs, [sys.executable, "-c", "pass"], env, data, None)
        print(f"source: {source}; {args.runs} runs each after a warm-up; medians")
        print(f"baseline `python -c pass`: {base_s:.3f} s, {base_mib:.0f} MiB")
        print("| message | wall s | over baseline s | peak RSS MiB | over baseline MiB |")
        print("|---|---:|---:|---:|---:|")
        for kind in KINDS:
            ingest = [*mailgate, "ingest", "-", "--sender", KINDS[kind][0]]
            wall, mib = series(args.runs, ingest, env, data, kind)
            print(f"| {kind} | {wall:.3f} | {wall - base_s:.3f} | {mib:.0f} "
                  f"| {mib - base_mib:.0f} |")  # fmt: skip
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
