"""Throwaway TLS material for the security tests, made with the `openssl` command line (the `cryptography`
package is not a dependency of this project): a CA, a server certificate for 127.0.0.1/localhost, and client
certificates as OCPP security profile 3 wants them (CN = the charger's serial number, O = the operator).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"openssl {' '.join(args)} failed:\n{out.stderr}"


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=sitekeeper test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash", cwd=d)


def _leaf(d: Path, name: str, subject: str, ca: str, extensions: str) -> None:
    _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text("basicConstraints = critical, CA:FALSE\n"
                                   "keyUsage = critical, digitalSignature, keyEncipherment\n"
                                   "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid, issuer\n"
                                   + extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@dataclass
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def client(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a client certificate made by `make_pki`."""
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def client_context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client context that trusts only the throwaway CA (and checks the host name); with `cert`, it
        presents that client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if cert is not None:
            ctx.load_cert_chain(*(str(p) for p in self.client(cert)))
        return ctx

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(self.ca_cert))
        return ctx


# Client certificates: name → (subject, signed by). "rogue" is an outsider CA with a certificate that looks right.
CLIENTS = {
    "cp1": ("/O=Acme CPO/CN=CP1", "ca"),
    "cp2": ("/O=Acme CPO/CN=CP2", "ca"),
    "cp1-other-cpo": ("/O=Other CPO/CN=CP1", "ca"),
    "cp1-rogue": ("/O=Acme CPO/CN=CP1", "rogue"),
    "site": ("/O=Acme CPO/CN=site-depot-7", "ca"),
    "SIM0001": ("/O=Acme CPO/CN=SIM0001", "ca"),  # for `sitekeeper simulate --cert DIR/{id}.pem`
    "SIM0002": ("/O=Acme CPO/CN=SIM0002", "ca"),
}


def make_pki(d: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is needed to make the test certificates")
    _ca(d, "ca")
    _ca(d, "rogue")
    for name in ("server", "server-renewed"):
        _leaf(d, name, "/CN=localhost", "ca",
              "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n")
    for name, (subject, ca) in CLIENTS.items():
        _leaf(d, name, subject, ca, "extendedKeyUsage = clientAuth\n")
    return Pki(d)
