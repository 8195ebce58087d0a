"""What every `beyondgloss` command shares: its two kinds of error, its exit codes, and its flag spelling.

The policy itself is written in the `beyondgloss.cli` docstring; [`run_command`] is the only code that applies it.
"""

import argparse
import sys
from typing import Callable

__all__ = ["CommandError", "UsageError", "accept_dashed_spellings", "command_parser", "one_line", "run_command"]


class CommandError(ValueError):
    """An input the user can fix (a missing file, a bad checkpoint, a folder that must not be written): exit 1.

    The message says what is wrong, names the file, folder or flag, and says what to do.
    """


class UsageError(CommandError):
    """The command line itself is wrong (an unknown or missing flag, a value of the wrong type or range): exit 2,
    after argparse's usage line."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


def one_line(error) -> str:
    """`error` as one line: library messages may wrap, and the policy is one line on stderr."""
    return " ".join(str(error).split())


def run_command(name: str, body: Callable[[list], object], argv) -> int:
    """Runs `body(argv)`, the command `beyondgloss <name>`, under the one error and exit-code policy.

    Returns:
        `int`: 2 for a [`UsageError`] (usage line and message on stderr), 1 for a [`CommandError`] (one line on
        stderr), the status `--help` exits with, else the body's own integer status (0 when it returns anything
        else, e.g. its metrics).
    """
    try:
        result = body(list(argv))
    except UsageError as error:
        sys.stderr.write(error.usage)
        print(f"beyondgloss {name}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"beyondgloss {name}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except SystemExit as exit_:  # argparse's --help (0); its usage errors never get here (see command_parser)
        return exit_.code if isinstance(exit_.code, int) else 0
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def accept_dashed_spellings(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Makes `parser` accept `--data-dir` for `--data_dir`, as an alias that --help and error messages never show.

    The commands speak the underscored dialect of transformers' example scripts; older beyondgloss versions spelled
    some flags with dashes, and scripts written for them keep working. argparse looks flags up in
    `_option_string_actions` and prints `option_strings`, so an alias lives only in the former (HfArgumentParser
    registers dashed spellings in both: they are taken out of the latter here).
    """
    for action in parser._actions:
        shown = []
        for option in action.option_strings:
            if option.startswith("--") and "-" in option[2:]:
                continue  # a dashed spelling: parsed, not shown
            shown.append(option)
            if option.startswith("--") and "_" in option:
                parser._option_string_actions.setdefault("--" + option[2:].replace("_", "-"), action)
        action.option_strings[:] = shown
    return parser


def _raise_usage_error(parser: argparse.ArgumentParser, message: str):
    raise UsageError(message, parser.format_usage())


def report_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Makes `parser`'s errors [`UsageError`]s, for a parser built outside `cli/` (see [`run_command`])."""
    parser.error = lambda message: _raise_usage_error(parser, message)
    return parser


def command_parser(name: str, description: str | None, *args, parser_class=argparse.ArgumentParser, **kwargs):
    """An argument parser for `beyondgloss <name>` whose errors are [`UsageError`]s (see [`run_command`]).

    `args` and `kwargs` go to `parser_class` (e.g. the dataclasses of a `transformers.HfArgumentParser`). Call
    [`accept_dashed_spellings`] on it once every flag is added.
    """
    return report_usage_errors(parser_class(*args, prog=f"beyondgloss {name}", description=description, **kwargs))
