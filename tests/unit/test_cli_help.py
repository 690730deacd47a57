"""The command lines as a user meets them: every flag explains itself and names its default,
`--version` answers, and the help renders without any library warning."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from langmerge.merger import cli as merge_cli
from langmerge.merger import evaluate as eval_cli
from langmerge.operator import cli as operator_cli
from langmerge.trainer import cli as train_cli

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "langmerge-train": train_cli.build_parser,
    "langmerge-merge": merge_cli.build_parser,
    "langmerge-eval": eval_cli.build_parser,
    "langmerge": operator_cli.build_parser,
}
NO_DEFAULT = (None, False, [], argparse.SUPPRESS)


def _parsers(
    name: str, parser: argparse.ArgumentParser
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _parsers(f"{name} {sub}", subparser)


@pytest.mark.parametrize("program", sorted(PARSERS))
def test_every_flag_has_help_that_names_its_default(program: str) -> None:
    for name, parser in _parsers(program, PARSERS[program]()):
        shows_defaults = parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help, f"{name} {flag}: no help text"
            if action.default not in NO_DEFAULT and action.option_strings:
                assert shows_defaults or "default" in action.help, (
                    f"{name} {flag}: the help does not name the default {action.default!r}"
                )
            if action.metavar is None and action.option_strings and action.nargs != 0:
                assert not action.dest.endswith("_"), f"{name} {flag}: metavar {action.dest}"
        parser.format_help()  # every %(default)s and metavar renders


def _answer(module: str, flag: str) -> subprocess.CompletedProcess[str]:
    """The command line's answer to one flag, with every warning shown (-W default)."""
    return subprocess.run(
        [sys.executable, "-W", "default", "-m", module, flag],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("program", "module"),
    [
        ("langmerge-train", "langmerge.trainer.cli"),
        ("langmerge-merge", "langmerge.merger.cli"),
        ("langmerge-eval", "langmerge.merger.evaluate"),
        ("langmerge", "langmerge.operator.cli"),
    ],
)
def test_version_and_help_answer_quietly(program: str, module: str) -> None:
    version = _answer(module, "--version")
    assert version.stdout.strip() == f"{program} 0.1.0"
    assert version.stderr == ""
    shown = _answer(module, "--help")
    assert shown.stdout.startswith(f"usage: {program}") and shown.stderr == ""


def test_the_operator_refuses_a_bad_configuration_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANGMERGE_TRAIN_JOBS", "perhaps")
    assert operator_cli.main(["operator"]) == 2  # before kopf starts
    assert "LANGMERGE_TRAIN_JOBS" in capsys.readouterr().err
