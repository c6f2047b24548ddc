"""Memory growth of ``mailgate serve`` for one message near MAILGATE_MAX_MESSAGE_BYTES.

One command: ``.venv/bin/python bench/big_message_bench.py --runs 3 [--source DIR]``.
``--source`` runs the ``worker`` package of another checkout (an export of an older commit)
with this virtualenv, so before and after are measured in the same run on the same machine.

Each run starts ``serve`` (embedded default, SQLite, its own data dir, one worker,
MAILGATE_LANGUAGE_PRELOAD=false so the language models do not blur the figure) with a Tech
Support ticket, sends one small follow-up first (lazy imports and first-use caches are not
the big message's cost), then reads the process tree's RSS and VmHWM, sends one ~25 MB
follow-up (a random attachment, base64-encoded, just under the limit) with smtplib, and
reads them again. It prints the growth of RSS at rest and of the peak (VmHWM after minus
RSS before), each divided by the message size: issue 14 item 4 wants both ≤ 3.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from serve_rest_bench import environment, free_port, tree  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
HEAD = (
    "From: carla@customer.example\r\nTo: support@wildix.com\r\n"
    "Subject: Re: [Ticket#3003] logs\r\nMessage-ID: <{mid}@customer.example>\r\n"
    "MIME-Version: 1.0\r\n"
)


def message(attachment_bytes: int, mid: str) -> bytes:
    """A follow-up with a text part and a random (incompressible) attachment."""
    encoded = base64.encodebytes(os.urandom(attachment_bytes)).replace(b"\n", b"\r\n")
    return (
        HEAD.format(mid=mid).encode()
        + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        + b"--b1\r\nContent-Type: text/plain\r\n\r\nThe logs you asked for.\r\n"
        + b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;"
        + b' filename="pbx.log"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + encoded
        + b"--b1--\r\n"
    )


def memory(pid: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of VmHWM) over the process tree, in bytes."""
    rss = hwm = 0
    for process in tree(pid):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1]) * 1024
    return rss, hwm


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
        smtp.sendmail("carla@customer.example", ["support@wildix.com"], raw)


def run(source: Path, big: bytes) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="mailgate-big-"))
    port = free_port()
    env = environment(source, data, port)
    env["MAILGATE_LANGUAGE_PRELOAD"] = "false"
    command = [sys.executable, "-m", "worker"]
    ticket = ["tickets", "add", "3003", "--kind", "technical"]
    subprocess.run([*command, *ticket, "--participant", "carla@customer.example"], env=env,
                   cwd=data, check=True, capture_output=True)  # fmt: skip
    serve = subprocess.Popen([*command, "serve"], env=env, cwd=data, stderr=subprocess.PIPE)
    assert serve.stderr is not None
    for line in serve.stderr:
        if json.loads(line).get("event") == "mailgate_started":
            break
    threading.Thread(target=serve.stderr.read, daemon=True).start()
    try:
        send(port, message(3000, "warm-up"))
        rss_before, _ = memory(serve.pid)
        send(port, big)
        rss_after, hwm_after = memory(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        shutil.rmtree(data, ignore_errors=True)
    return {"rss_before": rss_before, "rss_after": rss_after, "hwm_after": hwm_after}


def run_sink(big: bytes) -> dict[str, float]:
    """The same measure on the do-nothing aiosmtpd sink: what receiving DATA alone costs."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(port)])
    try:
        for _ in range(500):  # wait for the listener: connect until it answers
            try:
                send(port, message(3000, "warm-up"))
                break
            except OSError:
                sink.wait(0.02) if sink.poll() is not None else threading.Event().wait(0.02)
        rss_before, _ = memory(sink.pid)
        send(port, big)
        rss_after, hwm_after = memory(sink.pid)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(60)
    return {"rss_before": rss_before, "rss_after": rss_after, "hwm_after": hwm_after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--attachment", type=int, default=18_000_000, help="bytes before base64")
    parser.add_argument("--sink", action="store_true", help="measure the do-nothing sink")
    args = parser.parse_args()
    big = message(args.attachment, "big")
    size = len(big)
    source = "aiosmtpd sink" if args.sink else args.source
    print(f"source: {source}; message {size} bytes ({size / MIB:.1f} MiB)")
    print("| run | RSS before MiB | RSS after MiB | VmHWM after MiB | growth ×size | peak ×size |")
    print("|---:|---:|---:|---:|---:|---:|")
    for number in range(1, args.runs + 1):
        r = run_sink(big) if args.sink else run(args.source.resolve(), big)
        grow = (r["rss_after"] - r["rss_before"]) / size
        peak = (r["hwm_after"] - r["rss_before"]) / size
        print(f"| {number} | {r['rss_before'] / MIB:.0f} | {r['rss_after'] / MIB:.0f} "
              f"| {r['hwm_after'] / MIB:.0f} | {grow:.2f} | {peak:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
