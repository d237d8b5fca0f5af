"""Entry point for ``python -m analytics_cli``."""

from analytics_cli.cli import main

main()
