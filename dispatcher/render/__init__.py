"""Turning a campaign and a recipient into the bytes that go on the wire."""

from dispatcher.render.message import Recipient, RenderedMessage, Renderer, dkim_signers

__all__ = ["Recipient", "RenderedMessage", "Renderer", "dkim_signers"]
