#!/usr/bin/env python
"""Importance-sampled test NLL of a run: python scripts/evaluate.py RUN_DIR [--num-samples 5000] [--cuda]"""
import sys

from pyrovae.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
