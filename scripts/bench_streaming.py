"""Live captions, measured: `beyondgloss benchmark --only streaming` (beyondgloss/benchmark/streaming.py and
docs/streaming.md), run with this script's flags. Figures go to stdout as JSON; nothing here is a test.

    PYTHONPATH=. python scripts/bench_streaming.py --quick
    PYTHONPATH=. python scripts/bench_streaming.py --threads 2 --precision fp32 bf16 int8
"""

import sys

from beyondgloss.benchmark.runner import main

if __name__ == "__main__":
    sys.exit(main(["--only", "streaming", *sys.argv[1:]]))
