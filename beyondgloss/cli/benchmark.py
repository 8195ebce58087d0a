"""`beyondgloss benchmark [--quick] [--rounds N] [--only ...]`: speed and memory (`beyondgloss.benchmark`).

This module only puts the benchmark's command line under the commands' exit-code policy (`beyondgloss.cli`).
"""

from ._common import report_usage_errors, run_command

__all__ = ["benchmark"]


def benchmark(argv: list) -> int:
    """`beyondgloss benchmark`: prints the JSON results; exit 2 for a bad flag, 1 when a measurement failed."""
    from ..benchmark.runner import build_parser, main

    return run_command("benchmark", lambda arguments: main(arguments, report_usage_errors(build_parser())), argv)
