"""What every `beyondgloss` command shares: its two kinds of error, its exit codes, and its flag spelling.

The policy itself is written in the `beyondgloss.cli` docstring; [`run_command`] is the only code that applies it,
and the only place that turns the errors a user can fix (a full disk, a folder without permission, a truncated
weights file) into one line.
"""

import argparse
import errno
import sys
import traceback
from typing import Callable

__all__ = ["CommandError", "UsageError", "accept_dashed_spellings", "command_parser", "expected_error_line",
           "one_line", "run_command"]

DEBUG_FLAG = "--debug"
DEBUG_HELP = "--debug (every command): show the full traceback of an error, not only its one line."
# What `--debug` is followed by when it is TrainingArguments' own flag (transformers.debug_utils.DebugOption).
_TRAINER_DEBUG_VALUES = ("underflow_overflow", "tpu_metrics_debug")
_OS_ERROR_FIXES = {
    errno.ENOSPC: "no space left on the device; free some space, or write to another disk",
    errno.EDQUOT: "the disk quota is exceeded; free some space, or write to another disk",
    errno.EACCES: "permission denied; choose a file or folder you may read and write, or change its permissions",
    errno.EPERM: "operation not permitted; choose a file or folder you may read and write",
    errno.EROFS: "the file system is read-only; choose a folder on a writable disk",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "it is a folder, not a file; give a file path",
}


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


def expected_error_line(error: BaseException) -> str | None:
    """The one line for an error the user can fix that is not a [`CommandError`] (an `OSError` such as a full disk,
    a denied permission, a read-only folder; a truncated `.safetensors` file; a saved config field of the wrong
    type), naming the file; `None` for any other error, a bug, which keeps its traceback."""
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    if isinstance(error, OSError) and error.errno is not None:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        fix = _OS_ERROR_FIXES.get(error.errno, error.strerror or one_line(error))
        return f"{names}: {fix}" if names else f"{one_line(error)} ({fix})"
    if isinstance(error, SafetensorError):
        return (f"a .safetensors weights file is truncated or not a safetensors file ({one_line(error)}); copy it "
                "again from where it was saved")
    if isinstance(error, StrictDataclassError):
        return f"a saved config has a value of the wrong type: {one_line(error)}"
    return None


def _pop_debug_flag(argv: list) -> tuple[list, bool]:
    """`argv` without the global `--debug`, and whether it was there. `--debug underflow_overflow` is
    TrainingArguments' own flag (transformers' debug modes) and stays."""
    kept, debug = [], False
    for index, token in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if token == DEBUG_FLAG and not following.startswith(_TRAINER_DEBUG_VALUES):
            debug = True
        else:
            kept.append(token)
    return kept, debug


def run_command(name: str, body: Callable[[list], object], argv) -> int:
    """Runs `body(argv)`, the command `beyondgloss <name>`, under the one error and exit-code policy.

    `--debug` anywhere in `argv` (taken out before `body` sees it) prints the traceback of an error before its line.

    Returns:
        `int`: 2 for a [`UsageError`] (usage line and message on stderr), 1 for a [`CommandError`] or another error
        the user can fix ([`expected_error_line`]; one line on stderr), the status `--help` exits with, else the
        body's own integer status (0 when it returns anything else, e.g. its metrics). Any other exception (a bug)
        propagates with its traceback.
    """
    argv, debug = _pop_debug_flag(list(argv))
    try:
        result = body(argv)
    except SystemExit as exit_:  # argparse's --help (0); its usage errors never get here (see command_parser)
        return exit_.code if isinstance(exit_.code, int) else 0
    except Exception as error:  # noqa: BLE001 -- sorted below; a bug is raised again
        line = one_line(error) if isinstance(error, CommandError) else expected_error_line(error)
        if line is None:
            raise
        if debug:
            traceback.print_exc()
        if isinstance(error, UsageError):
            sys.stderr.write(error.usage)
        print(f"beyondgloss {name}: error: {line}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
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
    kwargs.setdefault("epilog", DEBUG_HELP)
    return report_usage_errors(parser_class(*args, prog=f"beyondgloss {name}", description=description, **kwargs))
