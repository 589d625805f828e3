"""``python -m ragstack``: the CLI."""

from ragstack.cli import main

main()
