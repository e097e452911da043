#!/usr/bin/env python
"""Trace_ELBO vs TraceMeanField_ELBO: ``python scripts/compare_elbo.py [--cuda] [--data-dir DIR]``.

Writes <out>/{table.md,metrics.json,curves.png,grad_variance.png} (default --out runs/elbo_comparison)."""
import sys

from pyrovae.cli import compare_main

if __name__ == "__main__":
    sys.exit(compare_main())
