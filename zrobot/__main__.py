"""Process entry point of the `zrobot` command."""

from __future__ import annotations

import sys


def main() -> None:
    """Set up gevent and gRPC before anything else, then run the CLI."""
    from zrobot._gevent import bootstrap

    bootstrap()
    from zrobot.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
