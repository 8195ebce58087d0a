"""`beyondgloss ablate [--output_dir ablate_output] [--seeds 0 1 2] [--rows full no_hand ...] ...`: the paper's
ablation rows trained with several seeds, as a table (mean +/- std of BLEU-4 and ROUGE-L) and a plot.

The ablation itself is `beyondgloss.training.ablate` ([`run_ablation`], settings: [`AblateArguments`]); this module
reads its flags (or one YAML/JSON file of the same names). Exit codes: `beyondgloss.cli`.
"""

import logging
import os

from ._arguments import parse_arguments
from ._common import CommandError, run_command

__all__ = ["ablate"]


def ablate(argv: list) -> int:
    """`beyondgloss ablate`: trains the ablation rows (flags: `beyondgloss ablate --help`)."""
    return run_command("ablate", _ablate, argv)


def _ablate(argv: list) -> int:
    import torch

    from ..training.ablate import AblateArguments, AblateError, run_ablation

    (args,) = parse_arguments(argv, (AblateArguments,), command="ablate", description=AblateArguments.__doc__)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    torch.set_num_threads(args.threads)
    try:
        run_ablation(args)
    except AblateError as error:
        raise CommandError(str(error)) from error
    return 0
