"""The programs a user runs on a finished run, one per script in ``scripts/``: evaluation
(test NLL and more), latent-space figures, the guide over a data set; and the real data sets at
hand written as a user's own files. The library never imports this package."""
