"""A test STIR/SHAKEN authority: a CA, a service provider's certificate served over loopback HTTP, and
PASSporTs (RFC 8225/8588) signed with it, to put into the Identity header of a SIP INVITE.

What a verifier checks (Asterisk 22's res_stir_shaken, read from its source): the certificate at the x5u URL
is trusted by the configured CA file, within its dates, with a CN and a TNAuthList extension holding a
service provider code; the JWT's header has alg ES256, ppt shaken, typ passport; its `iat` is recent; its
`orig.tn` is the caller ID; `attest`, `dest` and `origid` are present; the SIP Date header is recent.
`passport(..., tamper=True)` breaks the signature, `iat` in the past makes it stale, and an `x5u` no one
serves makes the certificate unreachable.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import threading
import time
import uuid
from email.utils import formatdate
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_ia5(text: str) -> bytes:
    return bytes([0x16, len(text)]) + text.encode()


def tn_auth_list(spc: str) -> bytes:
    """TNAuthorizationList ::= SEQUENCE OF TNEntry, with one entry: spc [0] EXPLICIT ServiceProviderCode."""
    entry = bytes([0xA0, len(spc) + 2]) + _der_ia5(spc)
    return bytes([0x30, len(entry)]) + entry


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class Authority:
    """A CA and one service provider; `ca_file` is what the verifier trusts, `cert_pem` what x5u serves."""

    def __init__(self, directory: Path, spc: str = "1234") -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(_name("pbxguard test STI-CA")).issuer_name(_name("pbxguard test STI-CA"))
              .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
              .sign(self.ca_key, hashes.SHA256()))
        self.key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(f"SHAKEN {spc}")).issuer_name(ca.subject)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.UnrecognizedExtension(TN_AUTH_LIST, tn_auth_list(spc)), critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "sti-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    def passport(self, caller: str, called: str, x5u: str, attest: str = "A", iat: float | None = None,
                 tamper: bool = False) -> str:
        """The Identity header's value: a signed SHAKEN PASSporT and its parameters."""
        header = {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": x5u}
        claims = {"attest": attest, "dest": {"tn": [called.lstrip("+")]}, "iat": int(time.time() if iat is None else iat),
                  "orig": {"tn": caller.lstrip("+")}, "origid": str(uuid.uuid4())}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if tamper:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        return f"{signing_input}.{_b64(signature)};info=<{x5u}>;alg=ES256;ppt=shaken"


def sip_date(at: float | None = None) -> str:
    """A SIP Date header's value (RFC 1123, GMT)."""
    return formatdate(at, usegmt=True)


class CertificateServer:
    """The x5u URL: serves the provider's certificate at /sp.pem on a loopback port, in a thread."""

    def __init__(self, cert_pem: bytes) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                found = self.path == "/sp.pem"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/x-pem-file")
                self.end_headers()
                if found:
                    self.wfile.write(cert_pem)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sp.pem"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
