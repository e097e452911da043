"""Data sets as tensors: loading, splits, binarization and dequantization (:mod:`.datasets`)."""
