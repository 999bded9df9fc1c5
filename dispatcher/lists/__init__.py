"""Subscriber lists in and out of the store: CSV import and export."""
