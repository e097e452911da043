#!/usr/bin/env python
"""A run's latent explorer, a web page that decodes z in the browser: python scripts/explore.py RUN_DIR --out DIR"""
import sys

from _startup import run  # scripts/ is the first entry of sys.path when a script runs

if __name__ == "__main__":
    sys.exit(run("pyrovae.cli.explore", "explore_main"))
