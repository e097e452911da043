#!/usr/bin/env python
"""Train a VAE with SVI: ``python scripts/svi_train.py [--cuda] [--likelihood ...]``.

See ``--help`` for the flags and README.md for what the run writes."""
import sys

try:
    from pyrovae.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(main())
