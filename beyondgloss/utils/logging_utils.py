"""Logging set-up shared by every `beyondgloss` command."""

import logging
import sys

__all__ = ["setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = True) -> None:
    """Sends the package's log records to stderr, at INFO when `verbose` (else WARNING).

    A root logger that already has handlers (an application, a notebook or pytest that set up logging) is left as
    it is; only the `beyondgloss` logger's level is set. transformers stays at WARNING, so a command's own progress
    is not lost among the library's INFO lines.

    Args:
        verbose (`bool`): INFO records too; training commands pass `TrainingArguments.should_log`, so that in a
            multi-process run only the main process logs progress.
    """
    import transformers

    level = logging.INFO if verbose else logging.WARNING
    # basicConfig does nothing when the root logger already has handlers, which is the wanted behaviour.
    logging.basicConfig(format=LOG_FORMAT, level=level, stream=sys.stderr)
    logging.getLogger("beyondgloss").setLevel(level)
    transformers.utils.logging.set_verbosity(logging.WARNING)
