"""TLS for a raftlab cluster: a cluster CA, one certificate per node and per client, and the contexts.

`raftlab cluster init --dir D` (`init_tls`) writes, under ``D/tls/``:

- ``ca.pem`` and ``ca-key.pem``: the cluster's own certificate authority (keep the key private: whoever
  holds it can add nodes; `raftlab cluster add` uses it to issue the new node's certificate);
- ``node-N.pem`` and ``node-N-key.pem`` for each node N: its name is ``raftlab-node-N`` (subject common
  name and DNS subject alternative name), for TLS server and client use;
- ``client-NAME.pem`` and ``client-NAME-key.pem`` for each client: ``raftlab-client-NAME``, client use only;
- ``client.token``: a random token, the other way for a client to authenticate (no certificate needed).

What the contexts enforce (the standard library's `ssl`, TLS 1.3 only):

- between nodes, mutual TLS: the dialer checks that the server's certificate names the node it dials
  (``raftlab-node-N``, verified against the cluster CA); the acceptor requires a certificate from the CA
  and the node checks that it names the node the hello claims to be (`certificate_name`), so a node's
  certificate cannot speak for another node, nor a client's for any node;
- on a node's client port: a certificate from the CA is asked for but optional; a connection without one
  must authenticate with the token before anything else (`{"op": "auth", "token": ...}`).

Keys are ECDSA P-256. Certificates are made with `cryptography` (``pip install 'raftlab[net]'``), which is
needed only to write them; nodes and clients read them with `ssl` alone.
"""

from __future__ import annotations

import datetime
import hmac
import os
import re
import secrets
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NODE_PREFIX = "raftlab-node-"
CLIENT_PREFIX = "raftlab-client-"
CA_DAYS = 3650  # the CA's validity
CERT_DAYS = 825  # a node's or client's (the most browsers accept; nothing here depends on it)
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def tls_folder(folder: str | Path) -> Path:
    """Where `init_tls` writes: ``folder/tls``."""
    return Path(folder) / "tls"


def node_name(node: int) -> str:
    """The name on node `node`'s certificate."""
    return f"{NODE_PREFIX}{node}"


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise ValueError("writing certificates needs `cryptography`: pip install 'raftlab[net]'") from None


def _issue(folder: Path, stem: str, name: str, *, server: bool) -> None:
    """Write ``stem.pem`` and ``stem-key.pem``: a certificate for `name`, signed by the folder's CA."""
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]  # (an EC key: the CA's own)
    _write(folder / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(folder / f"{stem}-key.pem", key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), private=True)


def init_tls(folder: str | Path, nodes: Iterable[int], clients: Iterable[str] = ("admin",)) -> Path:
    """Write a cluster CA, a certificate per node and per client, and a client token under ``folder/tls``
    (see the module's docstring); returns that folder. An existing CA is kept (and used for the new
    certificates); an existing certificate is replaced."""
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = list(clients)
    for client in names:
        if not _CLIENT_NAME.fullmatch(client):
            raise ValueError(f"clients: a client name is 1-64 of A-Z a-z 0-9 _ . -, not {client!r}")
    tls = tls_folder(folder)
    if not (tls / "ca.pem").exists():
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raftlab cluster CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write(tls / "ca-key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), private=True)
        _write(tls / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), private=False)
    for node in nodes:
        issue_node(folder, node)
    for client in names:
        _issue(tls, f"client-{client}", f"{CLIENT_PREFIX}{client}", server=False)
    if not (tls / "client.token").exists():
        _write(tls / "client.token", secrets.token_hex(32).encode() + b"\n", private=True)
    return tls


def issue_node(folder: str | Path, node: int) -> None:
    """Write node `node`'s certificate and key under ``folder/tls`` (its CA must be there)."""
    if type(node) is not int or node < 0:
        raise ValueError(f"node must be an int >= 0, not {node!r}")
    tls = tls_folder(folder)
    if not (tls / "ca-key.pem").exists():
        raise ValueError(f"{tls}: no cluster CA here (run `raftlab cluster init --dir {folder}` first)")
    _issue(tls, f"node-{node}", node_name(node), server=True)


def has_tls(folder: str | Path) -> bool:
    """True if ``folder/tls`` holds a cluster CA."""
    return (tls_folder(folder) / "ca.pem").exists()


def _context(side: ssl._SSLMethod, tls: Path, stem: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(side)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(tls / "ca.pem")
    if stem is not None:
        context.load_cert_chain(tls / f"{stem}.pem", tls / f"{stem}-key.pem")
    return context


def _files(folder: str | Path, stem: str | None) -> Path:
    """``folder/tls``, once it is checked to hold the CA (and `stem`'s certificate and key, if given)."""
    tls = tls_folder(folder)
    for name in ("ca.pem", *(() if stem is None else (f"{stem}.pem", f"{stem}-key.pem"))):
        if not (tls / name).exists():
            raise ValueError(f"tls: {tls / name} is missing (raftlab cluster init --dir {folder} writes it)")
    return tls


class NodeTls:
    """The TLS contexts of node `node`, from ``folder/tls``: `peer_server` (mutual TLS: a certificate from
    the CA required), `peer_client` (dialling a peer: `server_hostname` must be `node_name(peer)`), and
    `client_server` (the client port: a certificate optional, the token otherwise); `token` is the
    client token (None if the folder has none)."""

    __slots__ = ("client_server", "folder", "node", "peer_client", "peer_server", "token")

    def __init__(self, folder: str | Path, node: int) -> None:
        tls = _files(folder, f"node-{node}")
        self.node, self.folder = node, tls
        self.peer_server = _context(ssl.PROTOCOL_TLS_SERVER, tls, f"node-{node}")
        self.peer_server.verify_mode = ssl.CERT_REQUIRED
        self.peer_client = _context(ssl.PROTOCOL_TLS_CLIENT, tls, f"node-{node}")  # checks the hostname
        self.client_server = _context(ssl.PROTOCOL_TLS_SERVER, tls, f"node-{node}")
        self.client_server.verify_mode = ssl.CERT_OPTIONAL
        token = tls / "client.token"
        self.token: bytes | None = token.read_bytes().strip() if token.exists() else None

    def __repr__(self) -> str:
        return f"NodeTls(node={self.node}, folder={str(self.folder)!r})"

    def token_ok(self, token: Any) -> bool:
        """True if `token` (from a client's auth request) is this cluster's client token."""
        return (self.token is not None and type(token) is str
                and hmac.compare_digest(token.encode("utf-8", "replace"), self.token))


def client_context(folder: str | Path, client: str | None = None) -> ssl.SSLContext:
    """A client's TLS context: it trusts any node of the cluster (a certificate from the cluster CA made
    for a node: the server-use purpose is checked), and presents ``client-NAME.pem`` if `client` is
    given (else it must authenticate with the token)."""
    tls = _files(folder, None if client is None else f"client-{client}")
    context = _context(ssl.PROTOCOL_TLS_CLIENT, tls, None if client is None else f"client-{client}")
    context.check_hostname = False  # the client knows addresses, not ids: any node of this cluster will do
    return context


def read_token(folder: str | Path) -> str:
    """The client token written by `init_tls`."""
    path = tls_folder(folder) / "client.token"
    if not path.exists():
        raise ValueError(f"tls: {path} is missing (raftlab cluster init --dir {folder} writes it)")
    return path.read_text().strip()


def certificate_name(transport: Any) -> str | None:
    """The name (DNS subject alternative name, else common name) on the verified certificate the other
    end of `transport` presented, or None (no TLS, or no certificate)."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    for rdn in cert.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                return str(value)
    return None
