#!/usr/bin/env python
"""Speed and memory benchmark; the same as `beyondgloss benchmark` (see `beyondgloss/benchmark.py`)."""

import sys

from beyondgloss.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
