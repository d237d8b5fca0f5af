"""MySQL and MariaDB (PyMySQL): connection strings, connecting, the snapshot, the store."""
