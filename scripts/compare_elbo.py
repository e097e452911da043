#!/usr/bin/env python
"""Trace_ELBO vs TraceMeanField_ELBO: ``python scripts/compare_elbo.py [--cuda] [--data-dir DIR]``.

Writes <out>/{table.md,metrics.json,curves.png,grad_variance.png} (default --out runs/elbo_comparison)."""
import sys

try:
    from pyrovae.cli import compare_main
except KeyboardInterrupt:  # Ctrl-C while torch and Pyro load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(compare_main())
