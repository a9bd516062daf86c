"""Client MAC -> keyed daily pseudonym, so clients can be counted without keeping who they are.

Contract: ``Pseudonymiser.pid(mac, day)`` is ``HMAC-SHA256(day_key, mac)`` cut to 16 bytes (32 hex
digits), where ``mac`` is the 6 address bytes (so ``AA-BB-CC-DD-EE-FF``, ``aa:bb:cc:dd:ee:ff`` and
``aabb.ccdd.eeff`` are one client) and ``day_key = HMAC-SHA256(secret, "city-telemetry/pid/v1/" +
local date)``. Hence:

- every process holding the same secret (the workers of a shared subscription, a recompute) gives
  the same pseudonym to the same MAC on the same local day, so distinct counts merge in storage;
- pseudonyms of two days cannot be linked without the secret; the secret is bytes from a key file
  the operator provides and is never written beside the data (a 48-bit MAC hashed without a secret
  is reversible by brute force, which is why the key is secret and not a salt);
- with no secret configured, each local day gets a random key held in this process's memory only:
  pseudonyms are then consistent within one process and one day, not across processes or
  restarts. That suits a single collector and a live count, not several workers or a recompute.

Keys of past days can be forgotten (``forget_before``), after which even this process cannot
recompute those pseudonyms. The MAC itself is never returned, logged or kept; an input that is not
a MAC is refused with a reason that does not quote it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from collector.kpi.windows import TZ, local_date

if TYPE_CHECKING:
    from _hashlib import HASH

PID_BYTES = 16
MIN_SECRET_BYTES = 16
_DOMAIN = b"city-telemetry/pid/v1/"
_HEX = frozenset("0123456789abcdef")
_SEPARATORS = str.maketrans("", "", ":-. ")
_BLOCK = 64  # SHA-256's block size: HMAC pads its key to it (RFC 2104)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class PseudonymError(ValueError):
    """A key file that cannot be used (the message names the file, never the key)."""


@dataclass(frozen=True, slots=True)
class NotAMac:
    """Why an identifier was not pseudonymised. ``detail`` never contains the input."""

    reason: str
    detail: str


def normalise_mac(text: str) -> bytes | NotAMac:
    """The 6 bytes of a MAC written with ``:``, ``-``, ``.`` or no separators, in any case.

    Called for every client of every client report, so the usual spellings (colons or none) take
    two C calls: 12 characters left that ``fromhex`` reads as 6 bytes are 12 hex digits. Anything
    else takes the general path, which also says why a text is refused."""
    digits = text.replace(":", "")
    if len(digits) == 12:
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            pass
        else:
            if len(raw) == 6:
                return raw
    digits = text.strip().lower().translate(_SEPARATORS)
    if len(digits) != 12 or not _HEX.issuperset(digits):
        return NotAMac("not_a_mac", f"expected 12 hex digits, got {len(digits)} characters")
    return bytes.fromhex(digits)


def load_secret(path: Path) -> bytes:
    """The secret from an operator's key file: its raw bytes, at least 16 of them (a file of random
    bytes, or a long passphrase; surrounding whitespace of a text file is not part of it)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise PseudonymError(f"pseudonym key file {path}: {error.strerror}") from None
    secret = raw.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise PseudonymError(f"pseudonym key file {path}: {len(secret)} bytes; at least {MIN_SECRET_BYTES} needed")
    return secret


class Pseudonymiser:
    """Daily keyed pseudonyms (see the module docstring). ``secret=None``: a random key per day,
    in memory only."""

    __slots__ = ("_keys", "_secret", "_states", "_tz")

    def __init__(self, secret: bytes | None, tz: ZoneInfo = TZ) -> None:
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise PseudonymError(f"pseudonym secret: at least {MIN_SECRET_BYTES} bytes needed")
        self._secret = secret
        self._tz = tz
        self._keys: dict[date, bytes] = {}
        self._states: dict[date, tuple[HASH, HASH]] = {}  # the day key's HMAC inner and outer SHA-256 states

    @classmethod
    def from_key_file(cls, path: Path | None, tz: ZoneInfo = TZ) -> Pseudonymiser:
        return cls(load_secret(path) if path is not None else None, tz)

    @property
    def shared(self) -> bool:
        """True when another process with the same secret gives the same pseudonyms."""
        return self._secret is not None

    def __repr__(self) -> str:  # never the secret, never a key
        return f"Pseudonymiser(shared={self.shared}, days_held={len(self._keys)})"

    def _day_key(self, day: date) -> bytes:
        key = self._keys.get(day)
        if key is None:
            if self._secret is None:
                key = secrets.token_bytes(32)
            else:
                key = hmac.digest(self._secret, _DOMAIN + day.isoformat().encode(), hashlib.sha256)
            self._keys[day] = key
        return key

    def _hmac_states(self, day: date) -> tuple[HASH, HASH]:
        """SHA-256 states that have already absorbed the day key's inner and outer pads.

        HMAC-SHA256(k, m) = SHA256((k ^ opad) + SHA256((k ^ ipad) + m)), k padded to 64 bytes:
        the two padded-key blocks are the same for every MAC of a day, so they are hashed once and
        each pseudonym costs two copies and two short updates. ``hmac.digest`` redid the key blocks
        for every client (1.6 against 0.6 us per MAC, docs/performance.md); the result is the same
        bytes (tests/kpi/test_pseudonym.py compares them with ``hmac``)."""
        states = self._states.get(day)
        if states is None:
            key = self._day_key(day)
            assert len(key) <= _BLOCK  # 32 bytes: a SHA-256 output or 32 random bytes
            padded = key.ljust(_BLOCK, b"\0")
            states = (hashlib.sha256(padded.translate(_IPAD)), hashlib.sha256(padded.translate(_OPAD)))
            self._states[day] = states
        return states

    def pid(self, mac: str, day: date) -> str | NotAMac:
        """The pseudonym of ``mac`` on local ``day``."""
        raw = normalise_mac(mac)
        if isinstance(raw, NotAMac):
            return raw
        inner_state, outer_state = self._hmac_states(day)
        inner = inner_state.copy()
        inner.update(raw)
        outer = outer_state.copy()
        outer.update(inner.digest())
        return outer.digest()[:PID_BYTES].hex()

    def pid_at(self, mac: str, ts_ns: int) -> str | NotAMac:
        """The pseudonym of ``mac`` on the local day of the instant ``ts_ns``."""
        return self.pid(mac, local_date(ts_ns, self._tz))

    def forget_before(self, day: date) -> int:
        """Drop the keys of days before ``day`` (retention); returns how many were dropped."""
        old = [d for d in self._keys if d < day]
        for d in old:
            del self._keys[d]
            self._states.pop(d, None)
        return len(old)
