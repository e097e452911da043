"""The models pyrovae trains by name (``--model``): one registry, the key each checkpoint records.

* ``vae`` (:class:`~pyrovae.model.vae.VAE`): p(z) p(x|z), the default, with pluggable
  likelihood, prior, guide and networks;
* ``hvae`` (:class:`~pyrovae.model.hvae.HVAE`): two stochastic layers p(z2) p(z1|z2) p(x|z1,z2),
  the same pluggable parts (prior and guide on the top layer);
* ``cvae`` (:class:`~pyrovae.model.labelled.CVAE`): p(z) p(x|z, y), every row with its class;
* ``m2`` (:class:`~pyrovae.model.m2.M2`): the semi-supervised model, hidden labels summed out;
* ``m1m2`` (:class:`~pyrovae.model.m1m2.M1M2`): M2 on the posterior means of a trained VAE (M1).

A user's own :class:`~pyrovae.model.base.Model` subclass trains through the same machinery
(``pyrovae.train(config, model=MyModel(...))``) and is recorded as ``custom`` with its class's
name; loading it takes the class again (``pyrovae.load(path, model=MyModel)``).
"""
from typing import Dict, Type

from ..errors import CheckpointError, CustomModelError
from .base import Model
from .hvae import HVAE
from .labelled import CVAE
from .m1m2 import M1M2
from .m2 import M2
from .vae import VAE

MODELS: Dict[str, Type[Model]] = {"vae": VAE, "hvae": HVAE, "cvae": CVAE, "m2": M2, "m1m2": M1M2}
#: what a run of a user's own model records as its kind
CUSTOM = "custom"


def model_class(kind: str, given=None, where: str = "the checkpoint") -> Type[Model]:
    """The class of a recorded model ``kind``; a user's model needs its class ``given`` again."""
    if kind in MODELS and given is None:
        return MODELS[kind]
    if given is not None:
        if not (isinstance(given, type) and issubclass(given, Model)):
            raise CheckpointError(f"model= takes a subclass of pyrovae.Model, got {given!r}")
        return given
    if kind == CUSTOM:
        raise CustomModelError(where)
    raise CheckpointError(f"{where} records the model {kind!r}, which this pyrovae does not know "
                          f"({', '.join(MODELS)}); the file is damaged or from a newer pyrovae")


def describe(model: Model) -> str:
    """A model's kind as recorded: its registry name, or ``custom`` with its class's name."""
    return model.kind if model.kind in MODELS and type(model) is MODELS[model.kind] else \
        f"{CUSTOM} ({type(model).__module__}.{type(model).__qualname__})"
