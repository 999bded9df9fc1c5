"""``dispatcher serve``: starts scheduled campaigns and sends running ones, on its own."""
