#!/usr/bin/env python
"""Train a VAE with SVI: ``python scripts/svi_train.py [--cuda] [--likelihood ...]``.

See ``--help`` for the flags and README.md for what the run writes."""
import sys

from pyrovae.cli import main

if __name__ == "__main__":
    sys.exit(main())
