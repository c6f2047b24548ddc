"""Whole-process cost of ``mailgate ingest`` (what an MTA's pipe starts once per message).

One command: ``.venv/bin/python bench/ingest_bench.py [--source DIR] [--runs N]``.
``--source`` runs the ``worker`` package of another checkout (an export of an older
commit) with this virtualenv, so before and after are measured in the same run.

A data dir with tickets is set up once (SQLite, the shipped policies) and a ``serve`` of the
same source runs on it (listeners off but the ingest socket, language models preloaded).
Each round then times, as new processes: a bare ``python -c pass`` (the baseline), and for
each kind of message ``ingest`` handed off to that ``serve`` and ``ingest`` deciding
in-process (``MAILGATE_INGEST_SOCKET=off``), each with a new Message-ID (every run decides
and commits; none is a duplicate). The first round is a warm-up. Printed per kind and path:
median wall seconds and peak RSS (the kernel's ``ru_maxrss`` of the finished process), and
both as a difference over the baseline. A source without the ingest socket has no hand-off
row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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


def start_serve(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """``serve`` with every TCP listener off, running once its start-up line is out."""
    quiet = env | {"MAILGATE_SMTP_LISTEN": "off", "MAILGATE_HTTP_LISTEN": "off"}
    process = subprocess.Popen([*command, "serve"], env=quiet, cwd=cwd, stderr=subprocess.PIPE)
    assert process.stderr is not None
    for line in process.stderr:
        if b'"mailgate_started"' in line:
            # Drained, never read: a full pipe would stall serve's log lines.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process
    raise SystemExit(f"serve did not start: exit {process.wait()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    source: Path = args.source.resolve()
    root = Path(tempfile.mkdtemp(prefix="mg-ingest-"))  # short: a socket path fits sun_path
    data = root / "var"
    env = environment(source, data)
    mailgate = [sys.executable, "-m", "worker"]
    for ticket in (
        ["1001", "--kind", "technical", "--participant", "bob@partner.example"],
        ["2002", "--kind", "customer_care", "--participant", "carla@customer.example"],
    ):  # cwd: ``-m`` puts the working directory first on sys.path, before PYTHONPATH
        subprocess.run([*mailgate, "tickets", "add", *ticket], env=env, cwd=root, check=True,
                       capture_output=True)  # fmt: skip
    serve = start_serve(mailgate, env, root)
    paths = {"in-process": env | {"MAILGATE_INGEST_SOCKET": "off"}}
    if (data / "ingest.sock").exists():
        paths["handoff"] = env
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for round_number in range(args.runs + 1):
            counted = round_number > 0  # the first round is a warm-up
            base = timed([sys.executable, "-c", "pass"], env, root, b"")
            if counted:
                figures.setdefault(("baseline", ""), []).append(base)
            for kind in KINDS:
                ingest = [*mailgate, "ingest", "-", "--sender", KINDS[kind][0]]
                for path, path_env in paths.items():
                    result = timed(ingest, path_env, root, message(kind, round_number))
                    if counted:
                        figures.setdefault((kind, path), []).append(result)
    finally:
        serve.terminate()
        serve.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    report(source, args.runs, figures)


def report(
    source: Path, runs: int, figures: dict[tuple[str, str], list[tuple[float, float]]]
) -> None:
    def medians(key: tuple[str, str]) -> tuple[float, float]:
        values = figures[key]
        return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)

    base_s, base_mib = medians(("baseline", ""))
    print(f"source: {source}; {runs} rounds after a warm-up; medians; load {os.getloadavg()}")
    print(f"baseline `python -c pass`: {base_s:.3f} s, {base_mib:.1f} MiB")
    print("| message | path | wall s | over baseline s | peak RSS MiB | over baseline MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, path in figures:
        if kind == "baseline":
            continue
        wall, mib = medians((kind, path))
        print(f"| {kind} | {path} | {wall:.3f} | {wall - base_s:.3f} | {mib:.1f} "
              f"| {mib - base_mib:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
