"""Cold start and memory at rest of ``mailgate serve``, with one and with two workers.

One command: ``.venv/bin/python bench/serve_rest_bench.py [--source DIR]``. ``--source``
runs the ``worker`` package of another checkout (e.g. an export of an older commit) with
this virtualenv, so before and after are measured in the same run on the same machine.

For each worker count: start ``serve`` (embedded default, SQLite, its own data dir, a
Customer Care ticket), time start-up until the ``mailgate_started`` line, then send four
Customer Care follow-ups in English from the ticket's participant, each on a new
connection, one after the other, and time each whole SMTP transaction (connect to
``QUIT``): the first is the one that used to wait for the language models inside DATA. At
rest afterwards, the memory of the whole process tree: the sum of RSS and of PSS (shared
pages divided among the processes that share them: what two workers really cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef-0123456789"
BODY = (
    "Hello Carla here again. The phones in our second office still lose their registration "
    "every morning after the nightly reboot, could you please have another look at it?"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(source: Path, data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env.update(
        PYTHONPATH=str(source),
        MAILGATE_DATA_DIR=str(data),
        MAILGATE_POLICY_DIR=str(source / "policies"),
        MAILGATE_REPLY_SECRET=SECRET,
        MAILGATE_SMTP_LISTEN=f"127.0.0.1:{port}",
        MAILGATE_HTTP_LISTEN="off",
        MAILGATE_SUPPORT_DOMAINS="wildix.com",
    )
    return env


def follow_up(number: int) -> bytes:
    return (
        "From: carla@customer.example\r\nTo: support@wildix.com\r\n"
        f"Subject: Re: [Ticket#2002] phones\r\nMessage-ID: <rest-{number}@customer.example>\r\n"
        f"\r\n{BODY}\r\n"
    ).encode()


def tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid] + [p for child in children for p in tree(int(child))]


def memory_mib(pid: int) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) of the process and its descendants, in MiB."""
    rss = pss = 0
    for process in tree(pid):
        for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def run(source: Path, workers: int) -> dict[str, object]:
    data = Path(tempfile.mkdtemp(prefix="mailgate-rest-"))
    port = free_port()
    env = environment(source, data, port)
    command = [sys.executable, "-m", "worker"]
    ticket = ["tickets", "add", "2002", "--kind", "customer_care"]
    # cwd: ``-m`` puts the working directory first on sys.path, before PYTHONPATH.
    subprocess.run([*command, *ticket, "--participant", "carla@customer.example"], env=env,
                   cwd=data, check=True, capture_output=True)  # fmt: skip
    started = time.perf_counter()
    serve = subprocess.Popen([*command, "serve", "--workers", str(workers)], env=env,
                             cwd=data, stderr=subprocess.PIPE)  # fmt: skip
    assert serve.stderr is not None
    for line in serve.stderr:
        if json.loads(line).get("event") == "mailgate_started":
            break
    startup = time.perf_counter() - started
    threading.Thread(target=serve.stderr.read, daemon=True).start()
    latencies = []
    try:
        for number in range(4):
            sent = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.sendmail("carla@customer.example", ["support@wildix.com"], follow_up(number))
            latencies.append((time.perf_counter() - sent) * 1000)
        rss, pss = memory_mib(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        shutil.rmtree(data, ignore_errors=True)
    return {"workers": workers, "startup_s": startup, "ms": latencies, "rss": rss, "pss": pss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    args = parser.parse_args()
    print(f"source: {args.source}")
    print("| workers | start-up s | 1st follow-up ms | 2nd–4th ms | RSS sum MiB | PSS sum MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for workers in (1, 2):
        r = run(args.source.resolve(), workers)
        ms = r["ms"]
        assert isinstance(ms, list)
        rest = ", ".join(f"{m:.0f}" for m in ms[1:])
        print(f"| {workers} | {r['startup_s']:.2f} | {ms[0]:.0f} | {rest} | {r['rss']:.0f} "
              f"| {r['pss']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
