"""Rendering: the report, table and message text of each command (data in, text out)."""
