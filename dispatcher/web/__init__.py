"""The HTTP surface: unsubscribe pages, RFC 8058 one-click, open and click tracking."""

from dispatcher.web.app import create_app
from dispatcher.web.server import RunningServer, start_server

__all__ = ["RunningServer", "create_app", "start_server"]
