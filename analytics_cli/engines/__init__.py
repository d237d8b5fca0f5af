"""Everything that knows one database engine, one sub-package each.

The engine is chosen once, from the connection string's scheme, through the registry
in `analytics_cli.dsn`; below that choice nothing asks which engine it is.
"""
