"""`python -m beyondgloss.cli <command> ...`, as the `beyondgloss` console script (e.g. under `torchrun`)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
