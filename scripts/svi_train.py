#!/usr/bin/env python
"""Train a VAE with SVI: ``python scripts/svi_train.py [--cuda] [--likelihood ...]``.

See ``--help`` for the flags and docs/training.md for what the run writes."""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli", "main"))
