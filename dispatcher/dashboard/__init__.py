"""``dispatcher dashboard``: a Textual app that watches and steers every campaign."""

from dispatcher.dashboard.app import DashboardApp
from dispatcher.dashboard.source import DataSource, Overview, StoreSource

__all__ = ["DashboardApp", "DataSource", "Overview", "StoreSource"]
