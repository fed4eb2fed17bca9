"""The ``pinnacle-ray`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinnacle-ray",
        description="Train models on Ray directly on the data in your database.",
    )
    parser.add_argument("--version", action="version", version=f"pinnacle-ray {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pinnacle-ray`` console script; returns the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
