"""The commands, one module per command group: option declarations → one core call → one render call."""
