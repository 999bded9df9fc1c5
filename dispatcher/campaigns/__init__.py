"""Reading campaign definitions from the workspace."""
