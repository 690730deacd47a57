"""What every langmerge command line has: `--version`, and library warnings that say nothing
to a user kept out of its output."""

from __future__ import annotations

import argparse
import warnings
from importlib.metadata import PackageNotFoundError, version


def add_version(parser: argparse.ArgumentParser, distribution: str) -> None:
    """`--version` prints the program and the installed distribution's version."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:  # run from a source tree that is not installed
        installed = "unknown"
    parser.add_argument(
        "--version",
        action="version",
        version=f"{parser.prog} {installed}",
        help="print the version and exit",
    )


def quiet_library_warnings() -> None:
    """transformers deprecation notices raised inside peft's and transformers' own calls: the
    user can do nothing about them, and they hide the one line that matters."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"peft(\.|$)")
