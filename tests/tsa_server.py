"""A real RFC 3161 TSA on loopback: OpenSSL's ``openssl ts -reply`` behind a small HTTP server.

The server speaks RFC 3161's HTTP transport (POST ``application/timestamp-query``, answer
``application/timestamp-reply``). Its own CA and TSA certificate (extendedKeyUsage critical
timeStamping) are made by ``openssl`` in a temporary directory when it starts. ``replies``
counts the timestamps it issued; ``refuse`` makes it answer HTTP 503.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
other_policies = 1.3.6.1.4.1.99999.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ tsa_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_authority(directory: Path, name: str = "mailgate test TSA") -> None:
    """A CA (``ca.pem``) and a TSA certificate and key signed by it, in ``directory``."""
    (directory / "tsa.cnf").write_text(CONFIG.format(dir=directory))
    (directory / "serial").write_text("01\n")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", f"/CN={name} root", "-addext", "basicConstraints=critical,CA:true",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", f"/CN={name}",
             cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "tsa.pem", "-days", "30", "-extfile", "tsa.cnf",
             "-extensions", "tsa_ext", cwd=directory)  # fmt: skip


class TimestampAuthority:
    """``openssl ts -reply`` served over HTTP on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, name: str = "mailgate test TSA") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mailgate-tsa-")
        self.directory = Path(self._tmp.name)
        make_authority(self.directory, name)
        self.replies = 0
        self.refuse = False
        self._lock = threading.Lock()
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.headers.get("Content-Type", "")
                if authority.refuse or kind != "application/timestamp-query":
                    self.send_error(503 if authority.refuse else 415)
                    return
                reply = authority.stamp(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def stamp(self, query: bytes) -> bytes:
        # One at a time: ``openssl ts -reply`` reads and bumps one serial file.
        with self._lock, tempfile.TemporaryDirectory(dir=self.directory) as work:
            (Path(work) / "q.tsq").write_bytes(query)
            _openssl("ts", "-reply", "-config", str(self.directory / "tsa.cnf"),
                     "-queryfile", "q.tsq", "-out", "r.tsr", cwd=Path(work))  # fmt: skip
            self.replies += 1
            return (Path(work) / "r.tsr").read_bytes()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()
