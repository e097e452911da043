"""A training run: settings, the run itself (:mod:`.trainer`), checkpoints, TensorBoard, figures."""
