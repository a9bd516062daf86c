"""How devices write a client's MAC address, in one place: what the canonical schema accepts, what a
vendor adapter treats as personal data, and what dead letters mask.

The spellings equipment uses (collector/kpi/pseudonym.py reads all of them as the same 6 bytes):
``aa:bb:cc:dd:ee:ff`` (most), ``AA-BB-CC-DD-EE-FF`` (Windows, some controllers), ``aabbccddeeff``
(bare, e.g. hostapd's ubus keys without colons, some APIs) and ``aabb.ccdd.eeff`` (Cisco). Any of
them is personal data: none may reach storage, a log or a dead letter unmasked. A pattern that
knew fewer spellings than the devices use let a dotted MAC through the dead letters.

``MAC`` is a whole-text pattern without back-references, so that pydantic (Rust's regex) and
Python's ``re`` read it alike; with ``re``, match it with ``fullmatch`` (``$`` would also accept a
trailing newline). ``MAC_IN_TEXT`` finds MACs inside a longer text (a payload, a detail), with the
separators of one address alike, and not as part of a longer run of hex digits or groups (a
pseudonym, an IPv6 address).
"""

from __future__ import annotations

import re

_HEX2 = "[0-9A-Fa-f]{2}"
_HEX4 = "[0-9A-Fa-f]{4}"

# Two hex digits then five more pairs, each after an optional ':' or '-'; or three groups of four
# joined by '.'. (Mixed separators are let through here, as a typo of a MAC still is one.)
MAC = rf"^(?:{_HEX2}(?:[:-]?{_HEX2}){{5}}|{_HEX4}\.{_HEX4}\.{_HEX4})$"
MAC_WHOLE = re.compile(MAC)

# Not preceded by a hex digit or a separator, nor followed by a hex digit or a separator and a hex
# digit: the address stands alone (an IPv6 address's last groups are not one; a sentence's full stop
# or a JSON quote may end one).
_ALONE_BEFORE = r"(?<![0-9A-Fa-f:.-])"
_ALONE_AFTER = r"(?![0-9A-Fa-f])(?![:.-][0-9A-Fa-f])"
# Without separators a MAC is 12 hex digits, and so is a 12-digit number (a byte counter): the bare
# spelling is taken for a MAC when it has a hex letter, or stands alone in quotes (a JSON string).
_BARE = r'(?=[0-9]{0,11}[A-Fa-f])[0-9A-Fa-f]{12}|(?<=")[0-9]{12}(?=")'
_SEPARATED = rf"{_HEX2}([:-]){_HEX2}(?:\1{_HEX2}){{4}}"
MAC_IN_TEXT = rf"{_ALONE_BEFORE}(?:{_SEPARATED}|{_BARE}|{_HEX4}\.{_HEX4}\.{_HEX4}){_ALONE_AFTER}"


def is_mac(text: str) -> bool:
    """Whether ``text`` is a MAC address in one of the spellings above (surrounding space ignored)."""
    return MAC_WHOLE.fullmatch(text.strip()) is not None
