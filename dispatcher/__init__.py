"""dispatcher: a bulk newsletter and marketing mail dispatcher.

The public surface for code that embeds it: open a :class:`Store`, load a
:class:`Campaign`, and catch :class:`DispatcherError`. Everything else is
reached through the ``dispatcher`` command.
"""

from dispatcher.campaigns.loader import load_campaign
from dispatcher.core.campaign import Campaign
from dispatcher.errors import DispatcherError
from dispatcher.store import Store

__version__ = "0.1.0"
__all__ = ["Campaign", "DispatcherError", "Store", "__version__", "load_campaign"]
