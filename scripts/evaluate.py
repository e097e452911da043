#!/usr/bin/env python
"""Importance-sampled test NLL of a run: python scripts/evaluate.py RUN_DIR [--num-samples 5000] [--cuda]"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli", "evaluate_main"))
