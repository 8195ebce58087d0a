"""The `beyondgloss` command: one entry point, one sub-command per job.

Each sub-command lives with the code it drives and takes the remaining arguments itself (most parse them
with `transformers.HfArgumentParser`), so that this module stays import-cheap.
"""

import importlib
import sys

__all__ = ["main", "COMMANDS"]

# command -> ("module", "function", "one-line help"); the function takes the remaining argv.
COMMANDS = {
    "pretrain": ("beyondgloss.training.commands", "pretrain", "stage 1: contrastive pre-training"),
    "finetune": ("beyondgloss.training.commands", "finetune", "stage 2: translation fine-tuning"),
    "evaluate": ("beyondgloss.training.commands", "evaluate", "score a translation model on a dataset split"),
    "translate": ("beyondgloss.training.commands", "translate", "translate videos or frame folders"),
    "demo": ("beyondgloss.training.demo", "main", "the whole method on the built-in SynthSign corpus"),
    "describe": ("beyondgloss.descriptor.commands", "describe", "write hand-motion descriptions of videos"),
    "encode-descriptions": ("beyondgloss.descriptor.commands", "encode_descriptions",
                            "encode descriptions into the description feature store"),
    "import-hands": ("beyondgloss.descriptor.commands", "import_hands",
                     "import HaMeR hand features of the reference format"),
    "convert": ("beyondgloss.convert.commands", "convert", "convert a reference (Lightning) checkpoint"),
    "trim-mbart": ("beyondgloss.convert.commands", "trim_mbart", "trim an mBART vocabulary to a corpus"),
    "push": ("beyondgloss.hub", "push_command", "upload a saved model folder to the Hub"),
    "benchmark": ("beyondgloss.benchmark", "main", "measure speed and memory"),
    "serve": ("beyondgloss.app", "serve", "a web app to translate and inspect sign videos"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: beyondgloss <command> [options]   (beyondgloss <command> --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"beyondgloss: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    result = getattr(importlib.import_module(module), function)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
