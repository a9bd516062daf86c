"""Certificates for the tests, made with the openssl command line the way docs/security.md tells an
operator to: a CA, a server certificate for the broker (valid for 127.0.0.1 and localhost) and client
certificates. EC P-256 keys, valid for two days."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from collector.harness.localservers import find_binary

DAYS = "2"


def openssl(*args: str | Path) -> None:
    result = subprocess.run(
        [find_binary("openssl"), *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.name = name
        self.identity = Identity(folder / f"{name}.crt", folder / f"{name}.key")
        openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            self.identity.key,
            "-out",
            self.identity.cert,
            "-days",
            DAYS,
            "-subj",
            f"/CN={name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )

    @property
    def cert(self) -> Path:
        return self.identity.cert

    def issue(self, name: str, server: bool = False) -> Identity:
        """A certificate signed by this CA: for a server on 127.0.0.1/localhost, or for a client."""
        identity = Identity(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        request = self.folder / f"{name}.csr"
        extensions = self.folder / f"{name}.ext"
        if server:
            extensions.write_text(
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
            )
        else:
            extensions.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        openssl(
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            identity.key,
            "-out",
            request,
            "-subj",
            f"/CN={name}",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            request,
            "-CA",
            self.cert,
            "-CAkey",
            self.identity.key,
            "-set_serial",
            f"0x{secrets.token_hex(8)}",
            "-days",
            DAYS,
            "-extfile",
            extensions,
            "-out",
            identity.cert,
        )
        identity.key.chmod(0o600)
        return identity


@dataclass(frozen=True, slots=True)
class Pki:
    ca: CertificateAuthority
    broker: Identity
    collector: Identity
    device: Identity  # the test publisher
    other_ca: CertificateAuthority  # a CA the broker does not trust, nor the collector
    rogue: Identity  # a client certificate from other_ca


def make_pki(folder: Path) -> Pki:
    ca = CertificateAuthority(folder / "city", "city-ca")
    other = CertificateAuthority(folder / "other", "other-ca")
    return Pki(
        ca=ca,
        broker=ca.issue("broker", server=True),
        collector=ca.issue("collector"),
        device=ca.issue("device"),
        other_ca=other,
        rogue=other.issue("rogue"),
    )
