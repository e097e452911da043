"""A training run: settings, the run itself (:mod:`.trainer`) and its parts (:mod:`.parts`, :mod:`.signals`),
set-up, checkpoints, TensorBoard and figures (:mod:`.report`)."""
