"""The data sets pyrovae knows by name, listed in one module that imports nothing: the
built-in MNIST variants (:mod:`pyrovae.data.builtin`, :mod:`pyrovae.data.idx_sets`) and the
torchvision sets (:mod:`pyrovae.data.vision`); :func:`pyrovae.data.datasets.load_dataset`
loads them."""

#: the built-in sets (:mod:`pyrovae.data.builtin`)
BUILT_IN = ("mnist", "binarized-mnist", "fashion-mnist", "mnist-test")
#: the built-in names without a test split of their own: the seeded split applies
SEEDED_SPLIT = ("mnist-test",)
#: the sets read through torchvision, each with its own split (:mod:`pyrovae.data.vision`)
VISION = ("cifar10", "svhn", "kmnist", "emnist-letters", "celeba")
#: every data set pyrovae knows by name
DATASETS = BUILT_IN + VISION
#: the data sets that come with their own validation split; the others get one held out
#: from their training set (:meth:`~pyrovae.data.dataset.Dataset.hold_out`)
WITH_VALIDATION_SPLIT = ("binarized-mnist", "celeba")
