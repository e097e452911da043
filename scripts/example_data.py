#!/usr/bin/env python
"""Real data at hand written as a user's own sources (.npy, .csv, a PNG folder):
python scripts/example_data.py OUT_DIR [--mnist-test ../shared/datasets/mnist_test]"""
import sys

try:
    from pyrovae.experiments.example_data import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has run or been written
    sys.exit(print("interrupted while loading; nothing was run or written", file=sys.stderr) or 130)

if __name__ == "__main__":
    sys.exit(main())
