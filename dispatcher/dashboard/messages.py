"""What screens ask of the app: open a campaign, steer one."""

from __future__ import annotations

from textual.message import Message


class OpenCampaign(Message):
    def __init__(self, campaign_id: int) -> None:
        super().__init__()
        self.campaign_id = campaign_id


class Steer(Message):
    def __init__(self, campaign_id: int, action: str) -> None:
        super().__init__()
        self.campaign_id = campaign_id
        self.action = action
