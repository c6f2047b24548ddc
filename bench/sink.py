"""A do-nothing aiosmtpd server: the baseline mailgate's SMTP throughput is compared with.

It accepts every recipient and answers 250 to every DATA without looking at the message,
on the same event loop model and SMTP implementation mailgate uses.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), decode_data=False, enable_SMTPUTF8=True, hostname="sink"),
        host="127.0.0.1",
        port=port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
