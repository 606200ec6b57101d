"""A real SMTP server for the collector's email tests (aiosmtpd from PyPI).

Usage: smtp_receiver.py CERT KEY USER PASSWORD OUTDIR STARTTLS_PORT TLS_PORT

Listens on 127.0.0.1: STARTTLS_PORT requires STARTTLS before anything else, TLS_PORT speaks
TLS from the first byte; both require AUTH (USER, PASSWORD) over TLS. Each message is saved
as OUTDIR/NNNN.eml (written to a temporary name, then renamed), with the port it came on in
an X-Received-On-Port header line first. Prints "ready" once both listen; runs until killed.
"""

import os
import pathlib
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, user, password, outdir, starttls_port, tls_port = sys.argv[1:8]
lock = threading.Lock()


class Save:
    def __init__(self, port):
        self.port = port

    async def handle_DATA(self, server, session, envelope):
        with lock:
            n = len([p for p in os.listdir(outdir) if p.endswith(".eml")])
            path = pathlib.Path(outdir) / f"{n:04d}.eml"
            tmp = path.with_suffix(".tmp")
            body = envelope.original_content or envelope.content
            if isinstance(body, str):
                body = body.encode()
            tmp.write_bytes(f"X-Received-On-Port: {self.port}\r\n".encode() + body)
            tmp.rename(path)
        return "250 OK saved"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: aiosmtpd answers a refusal (535) itself.
    return AuthResult(success=ok, handled=False)


def context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


common = dict(
    hostname="127.0.0.1",
    authenticator=authenticate,
    auth_required=True,
)
starttls = Controller(
    Save(starttls_port),
    port=int(starttls_port),
    tls_context=context(),
    require_starttls=True,
    auth_require_tls=True,
    **common,
)
# The whole connection is TLS here; aiosmtpd only counts STARTTLS as TLS for AUTH.
implicit = Controller(
    Save(tls_port),
    port=int(tls_port),
    ssl_context=context(),
    server_hostname="localhost",
    auth_require_tls=False,
    **common,
)
starttls.start()
implicit.start()
print("ready", flush=True)
threading.Event().wait()
