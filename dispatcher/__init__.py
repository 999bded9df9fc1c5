"""dispatcher: a bulk newsletter and marketing mail dispatcher.

The public surface for code that embeds it: open a :class:`Store`, load a
:class:`Campaign`, and catch :class:`DispatcherError`. Everything else is
reached through the ``dispatcher`` command.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from dispatcher.errors import DispatcherError

if TYPE_CHECKING:
    from dispatcher.campaigns.loader import load_campaign
    from dispatcher.core.campaign import Campaign
    from dispatcher.store import Store

__version__ = "0.1.0"
__all__ = ["Campaign", "DispatcherError", "Store", "__version__", "load_campaign"]

# Loaded on first use (PEP 562): every import of a dispatcher module runs this file
# first, and the campaign loader alone cost each command that reads no campaign ~0.2 s.
_LAZY = {"Campaign": "dispatcher.core.campaign", "Store": "dispatcher.store",
         "load_campaign": "dispatcher.campaigns.loader"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dispatcher' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
