"""The ``mailgate`` entry point: ``ingest`` hands its message to a running ``serve`` first.

An MTA's pipe starts ``mailgate ingest`` once per message; importing the command line, the
settings and the store costs over a second and 70 MiB each time. So before any of that is
imported, this module (standard library only) recognises a plain ``ingest`` call, finds
the ingest socket by the same rule as ``Settings.ingest_socket_path`` and, when a ``serve``
answers there, hands the message over and prints the answer: the very output, exit code
and stderr line ``ingest`` would give in-process, decided by ``serve`` after its commit.
No socket, nobody listening, or anything it does not recognise (``--help``, a usage error,
an unreadable file or setting): the usual command line runs and decides in-process. Once
the message bytes are on their way, a broken connection is exit 75 (the MTA retries; the
retry is a ``duplicate`` if ``serve`` had decided), never a second, in-process decision.
The socket's path rule and the exchange on it are ``worker.ingest_socket``'s; nothing
imports this module (it is the entry point), and the arguments it reads as click would are
tested against click's own parser, case by case.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

from worker import ingest_socket as wire

TYPE_CHECKING = False  # typing itself costs a pipe process ~10 ms to import
if TYPE_CHECKING:
    from typing import Any, NoReturn

EX_TEMPFAIL = 75
PATH_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # pathlib's rule


class NotForHandoff(Exception):
    """The call is not a plain ``ingest``, or no ``serve`` took it: decide in-process."""


class ConnectionBroke(Exception):
    """The message was sent but its answer never came."""


def main() -> NoReturn:
    """``mailgate``: hand a plain ``ingest`` to ``serve``, else run the command line."""
    try:
        code: int | None = handoff(sys.argv[1:], os.environ)
    except NotForHandoff:
        code = None
    if code is None:
        from worker.cli import main as command_line

        command_line()  # exits with the command's code
    raise SystemExit(code)


def handoff(argv: list[str], environ: os._Environ[str] | dict[str, str]) -> int:
    """The exit code of ``ingest`` as ``serve`` decided it; ``NotForHandoff`` if it did not."""
    call = IngestCall.parse(argv)
    path = call.socket(environ)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            client.settimeout(wire.ANSWER_SECONDS)
            client.connect(path)
        except (OSError, ValueError):  # no serve there (or a stale socket): in-process
            raise NotForHandoff from None
        stream = client.makefile("rwb")
        try:
            return call.exchange(stream)
        except ConnectionBroke as exc:
            sys.stderr.write(f"mailgate: not answered, retry later: {exc} ({path})\n")
            return EX_TEMPFAIL
    finally:
        client.close()


class IngestCall:
    """``mailgate [--config FILE] ingest [FILE|-] [RECIPIENT...] [--sender A]
    [--recipient A]... [--json]``, read as click would; anything else is not for us."""

    def __init__(self) -> None:
        self.config: str | None = None
        self.positional: list[str] = []
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.json = False

    @classmethod
    def parse(cls, argv: list[str]) -> IngestCall:
        call = cls()
        rest = call._global_options(argv)
        options = True
        while rest:
            arg = rest.pop(0)
            if not options or arg == "-" or not arg.startswith("-"):
                call.positional.append(arg)
            elif arg == "--":
                options = False
            elif arg == "--json":
                call.json = True
            else:
                name, equals, value = arg.partition("=")
                if name not in ("--sender", "--recipient"):
                    raise NotForHandoff  # --help, an unknown option: typer answers
                if not equals:
                    if not rest:
                        raise NotForHandoff
                    value = rest.pop(0)  # click takes the next word, whatever it is
                if name == "--sender":
                    call.sender = value
                else:
                    call.recipients.append(value)
        return call

    def _global_options(self, argv: list[str]) -> list[str]:
        rest = list(argv)
        while rest and rest[0] != "ingest":
            arg = rest.pop(0)
            if arg == "--config" and rest:
                self.config = rest.pop(0)
            elif arg.startswith("--config="):
                self.config = arg.partition("=")[2]
            else:
                raise NotForHandoff
        if not rest:
            raise NotForHandoff
        return rest[1:]

    def socket(self, environ: os._Environ[str] | dict[str, str]) -> str:
        """The ingest socket as Settings finds it: environment, then ``--config``, then the
        default under the data dir."""
        env = {key.lower(): value for key, value in environ.items()}  # pydantic's rule
        file = self._config_values()
        values = {}
        for name in ("ingest_socket", "data_dir"):
            value = env.get(f"mailgate_{name}", file.get(name))
            if value is not None and not isinstance(value, str):
                raise NotForHandoff  # a bad setting: the command line says which
            values[name] = value
        data_dir = wire.DEFAULT_DATA_DIR if values["data_dir"] is None else values["data_dir"]
        path = wire.socket_path(values["ingest_socket"], data_dir)
        if path is None:
            raise NotForHandoff
        return path

    def _config_values(self) -> dict[str, Any]:
        if self.config is None:
            return {}
        import tomllib

        try:
            with open(self.config, "rb") as handle:
                values = tomllib.load(handle)
        except (OSError, ValueError):
            raise NotForHandoff from None  # the command line names the problem
        return {key.lower().removeprefix("mailgate_"): value for key, value in values.items()}

    def exchange(self, stream: Any) -> int:
        """Send the call, then what ``serve`` asks to read; print and return its answer."""
        header = {
            "v": wire.PROTOCOL,
            "arguments": [[value, _exists(value)] for value in self.positional],
            "sender": self.sender,
            "recipients": self.recipients,
            "json": self.json,
        }
        try:
            stream.write(wire.line(header))
            stream.flush()
            plan = wire.read_line(stream.readline())
        except (OSError, ValueError):
            raise NotForHandoff from None  # nothing sent but the arguments: in-process
        if "read" in plan:
            raw = _read(str(plan["read"]))
            try:
                stream.write(wire.length_line(len(raw)))
                stream.write(raw)
                stream.flush()
                plan = wire.read_line(stream.readline())
            except (OSError, ValueError) as exc:
                raise ConnectionBroke("mailgate serve did not answer") from exc
            if "exit" not in plan:
                raise ConnectionBroke("mailgate serve did not answer")
        if "exit" not in plan:
            raise NotForHandoff  # {"fallback": why}: nothing read yet, in-process decides
        sys.stdout.write(plan["stdout"])
        sys.stdout.flush()
        sys.stderr.write(plan["stderr"])
        return int(plan["exit"])


def _exists(value: str) -> bool:
    """Whether ``value`` names a file, as ``PipeDelivery`` tells FILE from a recipient; only
    an address can be a recipient, so only those are looked up."""
    if value == "-" or "@" not in value:
        return False
    from pathlib import Path

    try:
        return Path(value).exists()
    except OSError:
        raise NotForHandoff from None  # in-process meets the same error


def _read(source: str) -> bytes:
    """The message: a file (unreadable: in-process says why) or all of standard input."""
    if source != "-":
        try:
            with open(source, "rb") as handle:
                return handle.read()
        except (OSError, ValueError):
            raise NotForHandoff from None
    chunks = []
    try:
        while chunk := os.read(0, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        if not chunks:
            raise NotForHandoff from None  # nothing consumed: in-process reports it
        sys.stderr.write(f"mailgate: standard input: {exc.strerror}\n")
        raise SystemExit(EX_TEMPFAIL) from None
    return b"".join(chunks)
