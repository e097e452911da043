#!/usr/bin/env python
"""The test-NLL table: python scripts/nll_table.py RUN_DIR [RUN_DIR ...] [--out runs/nll_table]"""
import sys

from pyrovae.cli import nll_table_main

if __name__ == "__main__":
    sys.exit(nll_table_main())
