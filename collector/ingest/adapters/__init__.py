"""Vendor adapters: one folder per source format, each turning a vendor payload into canonical messages.

Each folder holds the adapter's code, a README (what is read, what is mapped, what is refused), a
``sample.toml`` and its test data (``testdata/``). A builtin adapter's package declares itself with an
``ADAPTER`` (:class:`AdapterInfo`); :func:`builtin_adapters` finds every such package, so adding an
adapter is adding a folder. ``mapping/`` is not builtin: its adapters are declared in the config.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from collector.ingest.adapters.base import Adapter, AdapterError, AdapterInfo, Reading, Source

__all__ = ["Adapter", "AdapterError", "AdapterInfo", "Reading", "Source", "builtin_adapters"]


@cache
def builtin_adapters() -> dict[str, AdapterInfo]:
    """Every adapter package below this one that declares an ``ADAPTER``, by name (sorted)."""
    found: dict[str, AdapterInfo] = {}
    for module in pkgutil.iter_modules(__path__, f"{__name__}."):
        if not module.ispkg:
            continue
        info = getattr(importlib.import_module(module.name), "ADAPTER", None)
        if isinstance(info, AdapterInfo):
            found[info.name] = info
    return dict(sorted(found.items()))
