"""The `beyondgloss` command: one entry point, one sub-command per job.

```
beyondgloss pretrain --dataset synthsign --data_dir synthsign --tiny --output_dir runs/pretrain
beyondgloss translate --model_name_or_path runs/ft --videos a.mp4 frames_dir/
beyondgloss <command> --help
```

One dialect. Every command spells its flags with underscores, as transformers' example scripts do (`--data_dir`,
`--output_dir`, `--batch_size`, `--trust_remote_code`, `--commit_message`). The dashed spellings of earlier versions
(`--data-dir`) are still accepted, so that old scripts keep working, but --help and error messages show only the
underscored ones. The commands built on argument dataclasses (pretrain, finetune, evaluate, translate, serve, demo)
also read all their flags from one `.yaml` or `.json` file whose keys are the flag names.

One error and exit-code policy, applied by `beyondgloss.cli._common.run_command` for every command:

- 0: everything asked for was done (`--help` included).
- 1: an input or a state the user can fix: a missing or unreadable file, a bad checkpoint, a corrupt video, a
  folder that would be overwritten, a bad configuration file. One line on stderr,
  `beyondgloss <command>: error: <what is wrong, naming the file, and what to do>`, and no traceback. Commands
  that work through many inputs (translate, describe, import-hands) do the good ones, name each bad one on its own
  line, and then exit 1.
- 2: the command line itself is wrong (an unknown or missing flag, a value of the wrong type or out of range, flags
  that contradict each other): argparse's usage line, then the same one-line message.

A failure that is not the user's to fix (a bug) keeps its traceback.

The dispatch table imports each command's module only when that command runs, so `beyondgloss --help` is cheap.
"""

import importlib
import sys

__all__ = ["main", "COMMANDS"]

# command -> ("module", "function", "one-line help"); the function takes the remaining argv and returns the status.
COMMANDS = {
    "pretrain": ("beyondgloss.cli.training", "pretrain", "stage 1: contrastive pre-training"),
    "finetune": ("beyondgloss.cli.training", "finetune", "stage 2: translation fine-tuning"),
    "evaluate": ("beyondgloss.cli.training", "evaluate", "score a translation model on a dataset split"),
    "translate": ("beyondgloss.cli.translate", "translate", "translate videos or frame folders"),
    "caption": ("beyondgloss.cli.caption", "caption", "live captions of a video on a sliding window (SRT, WebVTT)"),
    "preprocess": ("beyondgloss.cli.preprocess", "preprocess", "decode a corpus once into a dataset of frames"),
    "demo": ("beyondgloss.cli.demo", "demo", "the whole method on the built-in SynthSign corpus"),
    "ablate": ("beyondgloss.cli.ablate", "ablate", "the paper's ablation rows over several seeds: table and plot"),
    "describe": ("beyondgloss.cli.descriptor", "describe", "write hand-motion descriptions of videos"),
    "encode-descriptions": ("beyondgloss.cli.descriptor", "encode_descriptions",
                            "encode descriptions into the description feature store"),
    "import-hands": ("beyondgloss.cli.descriptor", "import_hands",
                     "import HaMeR hand features of the reference format"),
    "convert": ("beyondgloss.cli.convert", "convert", "convert a reference (Lightning) checkpoint"),
    "trim-mbart": ("beyondgloss.cli.convert", "trim_mbart", "trim an mBART vocabulary to a corpus"),
    "push": ("beyondgloss.cli.push", "push", "upload a saved model folder to the Hub"),
    "benchmark": ("beyondgloss.cli.benchmark", "benchmark", "measure speed and memory"),
    "serve": ("beyondgloss.cli.serve", "serve", "a web app to translate and inspect sign videos"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: beyondgloss <command> [options]   (beyondgloss <command> --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Runs `beyondgloss <command> [options]` (`argv` without the program name; default: `sys.argv[1:]`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{_usage()}\nbeyondgloss: error: unknown command {name!r}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    result = getattr(importlib.import_module(module), function)(rest)
    return int(result or 0)
