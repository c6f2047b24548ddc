"""SMTP throughput and latency of ``mailgate serve`` against a do-nothing aiosmtpd sink.

One command: ``.venv/bin/python bench/smtp_bench.py`` (needs Postfix's ``smtp-source``,
Debian package ``postfix``). Both servers run on this machine, on loopback, and get the
same load from ``smtp-source``: 20 sessions (10 sending new-ticket mail, 10 sending
follow-ups on an existing ticket from its participant), ~4 KB messages with unique
Message-IDs, once with connection reuse and once with a new connection per message.
mailgate runs its embedded default: SQLite with ``synchronous=FULL``, so every ``250`` is a
durable commit. Then a paced client measures DATA→250 latency at half of mailgate's
maximum rate. Prints msg/s for each, the ratio mailgate/sink, the CPU each spent per message
(all of mailgate's processes: with ``--workers`` the workers and the writer), and p50/p99
latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SESSIONS = 20
SIZE = 4000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "sink.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def start_mailgate(
    port: int, data_dir: Path, workers: int, source: Path = ROOT
) -> subprocess.Popen[str]:
    """``mailgate serve`` of the code in ``source`` (this checkout unless ``--source``)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
        "MAILGATE_DATA_DIR": str(data_dir),
        "MAILGATE_POLICY_DIR": str(ROOT / "policies"),
        "MAILGATE_SMTP_LISTEN": f"127.0.0.1:{port}",
        "MAILGATE_REPLY_SECRET": "bench-secret-0123456789abcdef0123456789",
        "MAILGATE_LOG_LEVEL": "info",
    }
    mailgate = [PYTHON, "-m", "worker"]
    subprocess.run(
        [
            *mailgate,
            "tickets",
            "add",
            "1001",
            "--kind",
            "technical",
            "--participant",
            "bob@partner.example",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=source,
    )
    process = subprocess.Popen(
        [*mailgate, "serve", "--workers", str(workers)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=source,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if '"mailgate_started"' in line:
            break
    else:
        raise SystemExit(f"mailgate did not start: exit {process.wait()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe empty
    return process


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its live child processes (``serve
    --workers``: the workers and the writer), read from /proc."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    total = 0.0
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load(port: int, messages: int, reuse: bool) -> float:
    """Both halves of the load at once; returns messages per second."""
    half = SESSIONS // 2
    common = [
        "smtp-source",
        "-s",
        str(half),
        "-m",
        str(messages // 2),
        "-l",
        str(SIZE),
        "-t",
        "support@wildix.com",
    ]
    if reuse:
        common.insert(1, "-d")
    commands = [
        [
            *common,
            "-f",
            "alice@customer.example",
            "-S",
            "Our PBX does not boot",
            f"127.0.0.1:{port}",
        ],
        [
            *common,
            "-f",
            "bob@partner.example",
            "-S",
            "Re: [Ticket#1001] handsets",
            f"127.0.0.1:{port}",
        ],
    ]
    started = time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands]
    codes = [p.wait() for p in processes]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"smtp-source failed: {codes}")
    return messages / elapsed


def latency(port: int, rate: float, seconds: float) -> dict[str, float]:
    """Paced sends at ``rate`` msg/s over 20 connections; DATA→250 times in ms.

    Each connection sends as its own new sender, so its first message is the one that
    gets an automatic reply (spooled before the 250) and the rest are rate-limited: the
    p99 is given over all messages and, apart, over the others.
    """
    samples: list[float] = []
    unanswered: list[float] = []
    lock = threading.Lock()
    body = b"X" * 76 + b"\r\n"
    interval = SESSIONS / rate
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo()
            sequence = 0
            next_at = time.perf_counter() + number * interval / SESSIONS
            while next_at < deadline:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)  # pacing the load generator, not synchronising a test
                sequence += 1
                message = (
                    f"From: c{number}@customer.example\r\nTo: support@wildix.com\r\n"
                    f"Subject: latency probe\r\nMessage-ID: <lat-{number}-{sequence}-"
                    f"{time.time_ns()}@bench>\r\n\r\n"
                ).encode() + body * 50
                smtp.mail(f"c{number}@customer.example")
                smtp.rcpt("support@wildix.com")
                smtp.putcmd("data")
                code, _ = smtp.getreply()
                assert code == 354
                smtp.send(message + b".\r\n")
                started = time.perf_counter()
                code, _ = smtp.getreply()
                elapsed = (time.perf_counter() - started) * 1000
                assert code == 250, code
                with lock:
                    samples.append(elapsed)
                    if sequence > 1:
                        unanswered.append(elapsed)
                next_at += interval

    threads = [threading.Thread(target=client, args=(n,)) for n in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "rate": rate,
        "p50_ms": statistics.median(samples),
        "p99_ms": _p99(samples),
        "samples": len(samples),
        "p99_without_replies_ms": _p99(unanswered),
    }


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000, help="per load and server")
    parser.add_argument("--workers", type=int, default=2, help="mailgate serve --workers")
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="run the mailgate code in this directory (e.g. an export of main) instead",
    )
    args = parser.parse_args()
    if not shutil.which("smtp-source"):
        raise SystemExit("smtp-source not found: apt-get install postfix")
    results: dict[str, dict[str, float]] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    sink_port, mailgate_port = free_port(), free_port()
    sink = start_sink(sink_port)
    gate = start_mailgate(mailgate_port, data_dir, args.workers, args.source.resolve())
    try:
        for reuse in (True, False):
            name = "reuse" if reuse else "new-connection"
            load(sink_port, 200, reuse)  # warm-up
            before = cpu_seconds(sink.pid)
            sink_rate = load(sink_port, args.messages, reuse)
            sink_cpu = (cpu_seconds(sink.pid) - before) / args.messages
            before = cpu_seconds(gate.pid)
            gate_rate = load(mailgate_port, args.messages, reuse)
            gate_cpu = (cpu_seconds(gate.pid) - before) / args.messages
            results[name] = {
                "sink": sink_rate,
                "mailgate": gate_rate,
                "ratio": gate_rate / sink_rate,
                "sink_cpu_ms": sink_cpu * 1000,
                "mailgate_cpu_ms": gate_cpu * 1000,
            }
        half = max(results["reuse"]["mailgate"] / 2, 1.0)
        results["latency"] = latency(mailgate_port, half, args.latency_seconds)
    finally:
        for process in (gate, sink):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    # CPU per message (all of mailgate's processes; the sink is one) moves far less than
    # msg/s when other tenants share the machine: both columns come from the same run.
    print(
        f"{'load':<16}{'sink msg/s':>12}{'mailgate msg/s':>16}{'ratio':>8}"
        f"{'sink CPU ms/msg':>17}{'mailgate CPU ms/msg':>21}"
    )
    for name in ("reuse", "new-connection"):
        row = results[name]
        print(
            f"{name:<16}{row['sink']:>12.0f}{row['mailgate']:>16.0f}{row['ratio']:>8.2f}"
            f"{row['sink_cpu_ms']:>17.2f}{row['mailgate_cpu_ms']:>21.2f}"
        )
    lat = results["latency"]
    print(
        f"DATA->250 at {lat['rate']:.0f} msg/s (half of max): p50 {lat['p50_ms']:.1f} ms, "
        f"p99 {lat['p99_ms']:.1f} ms over {lat['samples']:.0f} messages; p99 of the "
        f"{lat['samples'] - SESSIONS:.0f} without a reply {lat['p99_without_replies_ms']:.1f} ms"
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
