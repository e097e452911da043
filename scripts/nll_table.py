#!/usr/bin/env python
"""The test-NLL table: python scripts/nll_table.py RUN_DIR [RUN_DIR ...] [--out runs/nll_table]"""
import sys

try:
    from pyrovae.cli import nll_table_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(nll_table_main())
