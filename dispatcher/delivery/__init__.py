"""The send queue and the engine that drains it: claim, render, send, record."""

from dispatcher.delivery.engine import SendSummary, send_campaign
from dispatcher.delivery.queue import campaign_counts, enqueue, prepare_campaign

__all__ = ["SendSummary", "campaign_counts", "enqueue", "prepare_campaign", "send_campaign"]
