"""`beyondgloss demo [--output_dir demo_output] [--overwrite_output_dir] [--ablation] ...`: the whole method on the
built-in SynthSign corpus, on a CPU, in minutes.

The demo itself is `beyondgloss.training.demo` ([`run_demo`], settings: [`DemoArguments`]); this module reads its
flags (or one YAML/JSON file of the same names). Exit codes: `beyondgloss.cli`.
"""

import logging
import os

from ._arguments import parse_arguments
from ._common import CommandError, run_command

__all__ = ["demo"]


def demo(argv: list) -> int:
    """`beyondgloss demo`: runs the demo (flags: `beyondgloss demo --help`)."""
    return run_command("demo", _demo, argv)


def _demo(argv: list) -> int:
    import torch

    from ..training.demo import DemoArguments, DemoOutputDirError, run_demo

    (args,) = parse_arguments(argv, (DemoArguments,), command="demo", description=DemoArguments.__doc__)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The tokenizers' own threads would compete with the decoding workers and torch for the same cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    try:
        run_demo(args)
    except DemoOutputDirError as error:
        raise CommandError(str(error)) from error
    return 0
