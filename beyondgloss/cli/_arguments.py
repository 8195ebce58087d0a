"""Flags, or one YAML/JSON file of the same names, into argument dataclasses (`transformers.HfArgumentParser`).

The commands built on dataclasses (pretrain, finetune, evaluate, translate, serve, demo) read their arguments here,
and every value is checked here: its type by the parser, its range against one table
(`beyondgloss.training.arguments.VALUE_RANGES`, for every dataclass, TrainingArguments included), the names of
`--config_overrides` against the model config's settings. A bad value is exit status 2 with one line naming the flag,
the value and the valid range (docs/validation.md).
"""

import dataclasses
import difflib
import json
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from ..training.arguments import check_values
from ._common import CommandError, UsageError, accept_dashed_spellings, command_parser

__all__ = ["config_overrides", "parse_arguments"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def parse_arguments(argv: list, dataclass_types: tuple, preset: dict | None = None, command: str = "beyondgloss",
                    description: str | None = None) -> tuple:
    """Parses flags, a YAML/JSON file (`--config FILE`, or the file alone), or both (the flags override the file's
    values), into the dataclasses; `preset` supplies defaults under both.

    A file's keys become flags and go through the same parser, so that a file and the command line accept the same
    values with the same checks: `"no"` is false in both. A bad flag is a [`UsageError`] (exit 2, with the usage
    line); a bad file is a [`CommandError`] naming the file and its key (exit 1). Neither shows a traceback.
    """
    parser = accept_dashed_spellings(command_parser(command, description, dataclass_types,
                                                    parser_class=HfArgumentParser))
    parser.set_defaults(**dict(preset or {}))
    path, argv = _config_file(argv)
    flags = []
    if path is not None:
        flags = argv
        argv = _values_to_flags(_read_config_file(path), parser, dataclass_types, path) + flags

    def fail(message):
        if path is not None and not flags:
            raise CommandError(f"{path}: {message}")
        raise UsageError(message if path is None else f"{message} (with --config {path})", parser.format_usage())

    parser.error = fail
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
        for arguments in parsed:  # the classes of other modules (TrainingArguments, the demo's) by the same table
            check_values(arguments)
    except (ValueError, TypeError) as error:
        # Raised by the dataclasses' own checks (TrainingArguments.__post_init__, the argument classes); a JSON
        # error there does not say which flag held the text, so name the flags whose JSON does not parse.
        message = str(error)
        if isinstance(error, json.JSONDecodeError):
            message = f"{_bad_json_flags(argv)}: not valid JSON ({error})"
        fail(message)
    return parsed


def _config_file(argv: list) -> tuple[Path | None, list]:
    """The configuration file of the command line and the other flags: `--config FILE [flags]` (the flags override the
    file's values, as they come after them), or a lone `FILE.yaml`/`.json`."""
    argv = list(argv)
    for index, word in enumerate(argv):
        if word == "--config" and index + 1 < len(argv):
            return Path(argv[index + 1]), argv[:index] + argv[index + 2:]
        if word.startswith("--config="):
            return Path(word.split("=", 1)[1]), argv[:index] + argv[index + 1:]
    if len(argv) == 1 and argv[0].endswith(CONFIG_SUFFIXES):
        return Path(argv[0]), []
    return None, argv


def _read_config_file(path: Path) -> dict:
    if not path.is_file():
        raise CommandError(f"configuration file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            values = yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as error:  # json.JSONDecodeError is a ValueError
        raise CommandError(f"{path} is not a readable {path.suffix[1:].upper()} file: {error}") from error
    if not isinstance(values, dict):
        raise CommandError(f"{path} must hold a mapping of argument names to values, not a {type(values).__name__}")
    return values


def _bad_json_flags(argv: list) -> str:
    flags = []
    for flag, value in zip(argv, argv[1:]):
        if flag.startswith("--") and value.lstrip()[:1] in ("{", "["):
            try:
                json.loads(value)
            except json.JSONDecodeError:
                flags.append(f"{flag} {value}")
    return ", ".join(flags) or "a JSON value"


def _values_to_flags(values: dict, parser, dataclass_types: tuple, path: Path) -> list:
    """The flags that say what a configuration file's mapping says, for the command line's parser."""
    names = {field.name for kind in dataclass_types for field in dataclasses.fields(kind) if field.init}
    actions = {action.dest: action for action in parser._actions}
    flags = []
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CommandError(f"{path}: unknown key {key!r}{hint}; the keys are the command's flag names "
                               "(see --help)")
        if value is None:
            if parser.get_default(key) is None:
                continue
            raise CommandError(f"{path}: {key}: null is not a value of this setting; give a value or leave the key out")
        if isinstance(value, list):
            if actions[key].nargs not in ("+", "*"):
                raise CommandError(f"{path}: {key} takes one value, not a list ({value!r})")
            flags += [f"--{key}", *map(_flag_value, value)]
        else:
            flags += [f"--{key}", _flag_value(value)]
    return flags


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def config_overrides(text: str | None) -> dict:
    """'a=1,b=true,c=x' -> {'a': 1, 'b': True, 'c': 'x'} (values read as JSON when they parse, else strings).

    Raises:
        [`UsageError`]: an item that is not `name=value`, or a name that is not a `BeyondGlossConfig` setting (it
        would be stored on the config and read by nothing).
    """
    from ..configuration_beyondgloss import BeyondGlossConfig

    names = sorted(field.name for field in dataclasses.fields(BeyondGlossConfig))
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise UsageError(f"--config_overrides item {item!r} is not of the form name=value")
        key, value = (part.strip() for part in item.split("=", 1))
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(f"--config_overrides {item}: {key!r} is not a BeyondGlossConfig setting; {hint}the "
                             "settings are the fields of config.json (docs/validation.md)")
        try:
            overrides[key] = json.loads(value.lower() if value.lower() in ("true", "false", "null") else value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides
