r"""The private Pyro names pyrovae uses, in one place: Pyro has no public API for them.

* :func:`compute_log_r`: ``pyro.infer.trace_elbo._compute_log_r(model_trace, guide_trace)``,
  the log-ratio :math:`\log p(x, z) - \log q(z|x)` by plate that multiplies a site's
  score-function term in ``Trace_ELBO``'s surrogate loss.
* :func:`get_traces`: ``ELBO._get_traces(model, guide, args, kwargs)``, the generator of one
  ``(model_trace, guide_trace)`` pair per particle (one pair for vectorized particles) behind
  every Pyro ELBO's loss.
* ``Messenger._process_message``: the hook an effect handler overrides
  (:class:`~pyrovae.infer.svi.ScaleLatent`, :class:`~pyrovae.infer.distributed.SharedNoise`).

They are checked for the pyro-ppl range that setup.py pins: :func:`problems` lists what the
installed Pyro lacks, and ``tests/test_pyro_internals.py`` fails naming the Pyro version.
Everything else pyrovae takes from Pyro is public (``pyro.poutine.util.site_is_subsample``
tells the plate's subsample site from a random variable).
"""
import inspect
from typing import List

import pyro
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger

try:
    from pyro.infer.trace_elbo import _compute_log_r
    from pyro.infer.traceenum_elbo import _compute_dice_elbo
except ImportError as error:  # say which Pyro lacks it, not only the name
    raise ImportError(f"pyrovae needs {error.name or 'a private name of pyro.infer'}, which pyro-ppl {pyro.__version__} "
                      "does not have; install the tested range: pip install 'pyro-ppl>=1.9,<1.10'") from error

#: each private name, with the parameters pyrovae passes it
SIGNATURES = {
    "pyro.infer.trace_elbo._compute_log_r": (_compute_log_r, ["model_trace", "guide_trace"]),
    "pyro.infer.traceenum_elbo._compute_dice_elbo": (_compute_dice_elbo, ["model_trace", "guide_trace"]),
    "pyro.infer.ELBO._get_traces": (getattr(ELBO, "_get_traces", None), ["self", "model", "guide", "args", "kwargs"]),
    "pyro.poutine.messenger.Messenger._process_message": (getattr(Messenger, "_process_message", None),
                                                          ["self", "msg"]),
}


def compute_log_r(model_trace, guide_trace):
    """Pyro's ``_compute_log_r``: a ``MultiFrameTensor`` of log p - log q by plate frame."""
    return _compute_log_r(model_trace, guide_trace)


def compute_dice_elbo(model_trace, guide_trace):
    """Pyro's ``_compute_dice_elbo``: the ELBO of one particle, enumerated sites summed out exactly."""
    return _compute_dice_elbo(model_trace, guide_trace)


def get_traces(elbo: ELBO, model, guide, args, kwargs):
    """Pyro's ``elbo._get_traces``: ``(model_trace, guide_trace)`` per particle."""
    return elbo._get_traces(model, guide, args, kwargs)


def problems() -> List[str]:
    """What the installed Pyro lacks of the private names above (empty when all is there)."""
    found = []
    for name, (fn, params) in SIGNATURES.items():
        if fn is None:
            found.append(f"{name} is missing")
        elif list(inspect.signature(fn).parameters) != params:
            found.append(f"{name}{inspect.signature(fn)} no longer takes ({', '.join(params)})")
    return found
