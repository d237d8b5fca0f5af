"""PostgreSQL: connection strings, connecting, the snapshot, the store, the embedded server."""
