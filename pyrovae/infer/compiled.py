r"""The SVI step as a compiled graph (``svi_train.py --fast``).

An eager step runs Pyro's Python on every minibatch (effect handlers, traces, plates, score
parts): for an MNIST-sized VAE, much of the step. :class:`CompiledSVIStep` pays it once per shape:

1. **Capture.** ``torch.fx``'s ``make_fx`` runs the eager step's loss (Pyro's model, guide and
   ELBO, unchanged) and ``torch.autograd.grad`` once, the parameters as graph inputs, and records
   every tensor operation, forward and backward, in one graph.
2. **Compile.** Inductor (``torch._inductor.compile``) turns the graph into fused kernels;
   ``fallback_random=True`` keeps PyTorch's random-number operations, so the compiled step
   draws the eager step's :math:`z` from the same seed. On the CPU the graph's float32
   matrix products run on oneDNN's GEMM (custom operators ``pyrovae::onednn_mm`` and
   ``pyrovae::onednn_addmm``) or on the BLAS behind ``torch.mm``, whichever does the graph's
   own products faster on this machine (:mod:`pyrovae.infer.matmul`: timed once, cached): the
   same products summed in another order. Which is faster depends on the CPU (oneDNN was 2.2x
   faster on an AMD EPYC, where MKL takes a slow path; ``torch.mm`` the faster on an Intel
   Xeon with AVX-512 and AMX); ``matmul="onednn"`` or ``"mm"`` takes one without timing.
3. **Check.** Before its first use the graph runs beside the eager step (same minibatch, same
   random state); unless loss and gradients agree to float32 tolerance, or if capture or
   compile fails, the step falls back to the eager one with a warning.
4. **Replay (CUDA).** On a GPU, at MNIST sizes the kernel launches, not the arithmetic, are
   the step: the compiled call is recorded once more as a CUDA graph over static buffers
   (each step copies its minibatch and :math:`\beta` in and replays forward and backward with
   one launch; random draws come from the graph-safe Philox stream, so replay draws what the
   compiled call draws), checked against the compiled call, with a fallback on any difference.

The KL warm-up's :math:`\beta` enters the graph as an input, so one graph serves the whole run.
The graph is inductor's code called without TorchDynamo's guards (the step checks the
minibatch's shape, dtype, layout and device itself); after the first ``optimizer.step()``,
fused Adam runs through its functional form on the optimizer's own state (the same kernel):
7% off a CPU step of the 784-400-50 VAE (``results/bench/peers-amd-epyc.md``). Minibatches of another
shape (the last of an epoch) and validated steps run eagerly: the same computation.

Sound for models whose structure does not depend on data *values* (the VAE's, the HVAE's):
like ``pyro.infer.JitTrace_ELBO``, the capture records one path through the program."""
import importlib
import warnings
from typing import Callable, Optional

import pyro
import torch
import torch.nn as nn
from torch.fx.experimental.proxy_tensor import make_fx

from .matmul import MATMUL_BACKENDS, choose_matmul, describe_choice, onednn_available, onednn_matmuls  # noqa: F401 (onednn_available: imported from here by the benchmarks)
from .svi import SVIStep

_OPTIMIZER_MODULE = importlib.import_module("torch.optim.optimizer")  # where the global step hooks live
_ADAM = importlib.import_module("torch.optim.adam")  # Adam's functional form, adam(...)


class _LossModule(nn.Module):
    """The step's loss as a module of the VAE's parameters, for ``functional_call``."""

    def __init__(self, step: SVIStep):
        super().__init__()
        self.vae = step.vae
        self._loss = step.loss

    def forward(self, x, kl_scale):
        return self._loss(x, kl_scale)


class CompiledSVIStep(SVIStep):
    """:class:`~pyrovae.infer.svi.SVIStep` with loss and gradients replayed from a graph compiled for
    the first non-validated minibatch's shape (on CUDA with ``cuda_graph``, as a CUDA graph); ``log``
    gets one line when the step falls back to eager execution (or from the CUDA graph to the compiled call).

    ``matmul`` (:data:`MATMUL_BACKENDS`): how the graph's float32 CPU matrix products run,
    :func:`choose_matmul` (``onednn`` True or False takes ``"onednn"`` or ``"mm"`` in its place);
    the choice's record is :attr:`fast_step`, and ``note`` gets its line (:func:`describe_choice`)."""

    def __init__(self, vae, elbo, optimizer, log: Callable[[str], None] = None, cuda_graph: bool = True,
                 onednn: Optional[bool] = None, matmul: str = "auto", note: Callable[[str], None] = None):
        super().__init__(vae, elbo, optimizer)
        if matmul not in MATMUL_BACKENDS:
            raise ValueError(f"matmul must be one of {', '.join(MATMUL_BACKENDS)}, got {matmul!r}")
        self._want_cuda_graph = cuda_graph
        self._want_matmul = matmul if onednn is None else "onednn" if onednn else "mm"
        self._note = note or (lambda line: None)
        self.onednn_matmuls = 0  # matrix products of the graph that run on oneDNN
        self.fast_step: Optional[dict] = None  # how the CPU graph's matrix products run, and why (choose_matmul)
        self.earlier: Optional[dict] = None  # a resumed run's fast_step before it was interrupted (choose_matmul)
        self._cuda_graph: Optional[torch.cuda.CUDAGraph] = None
        self._static_in: Optional[tuple] = None  # (x, kl_scale) buffers the CUDA graph reads
        self._static_out: Optional[tuple] = None  # (loss, *grads) buffers it writes
        self.cuda_graph_fallback_reason: Optional[str] = None
        self._module = _LossModule(self)
        self._names = [name for name, _ in self._module.named_parameters()]
        self._params = [p for _, p in self._module.named_parameters()]
        self._shape: Optional[torch.Size] = None
        self._dtype: Optional[torch.dtype] = None
        self._device: Optional[torch.device] = None
        self._stepped = False  # whether optimizer.step() has run once
        self._graph = None
        self._one: Optional[torch.Tensor] = None
        self.fallback_reason: Optional[str] = None
        self._log = log or (lambda line: warnings.warn(line, stacklevel=2))

    @property
    def compiled(self) -> bool:
        return self._graph is not None

    @property
    def cuda_graph(self) -> bool:
        """True when steps replay a CUDA graph."""
        return self._cuda_graph is not None

    @property
    def mode(self) -> str:
        """``"cuda-graph"``, ``"compiled"`` or ``"eager"``: how a full minibatch runs."""
        return "cuda-graph" if self.cuda_graph else "compiled" if self.compiled else "eager"

    def _loss_and_grads(self, x, kl_scale, *params):
        with torch.enable_grad(), pyro.validation_enabled(False):
            loss = torch.func.functional_call(self._module, dict(zip(self._names, params)), (x, kl_scale))
            grads = torch.autograd.grad(loss, params)
        return (loss.detach(), *grads)

    def _capture(self, x: torch.Tensor, kl_scale: torch.Tensor) -> None:
        self._shape, self._dtype, self._device = x.shape, x.dtype, x.device
        try:
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):  # tracing runs the ops: draws too
                traced = make_fx(self._loss_and_grads)(x, kl_scale, *self._params)
            if x.device.type == "cpu":
                self.fast_step = choose_matmul(traced, self._want_matmul, self.earlier)
                self._note(describe_choice(self.fast_step))
                if self.fast_step["matmul"] == "onednn":
                    self.onednn_matmuls = onednn_matmuls(traced)
            graph = self._compile_graph(traced, [x, kl_scale, *(p.detach() for p in self._params)])
            with torch.random.fork_rng(devices=devices):
                expected = self._loss_and_grads(x, kl_scale, *self._params)
            with torch.random.fork_rng(devices=devices), torch.no_grad():  # the graph holds its backward
                got = graph(x, kl_scale, *self._params)
            self._compare("compiled", "eager", expected, got)
        except Exception as error:  # noqa: BLE001 - any failure means: run eagerly
            self.fallback_reason = _reason(error)
            self._log(f"--fast: the compiled step is not used, every step runs eagerly ({self.fallback_reason})")
            return
        self._graph = graph
        if self._want_cuda_graph and x.device.type == "cuda":
            self._capture_cuda_graph(x, kl_scale)

    def _compile_graph(self, traced: torch.fx.GraphModule, example: list) -> Callable:
        """Inductor's code for ``traced``, called without TorchDynamo's guards (``__call__`` checks
        shape, dtype, layout and device itself): an inference graph of fixed shapes, which holds
        its own backward."""
        with torch.no_grad():
            return torch._inductor.compile(traced, example, options={"fallback_random": True})

    def _compare(self, what: str, against: str, expected, got) -> None:
        for name, e, g in zip(["loss", *self._names], expected, got):
            if not torch.allclose(g, e, rtol=1e-3, atol=1e-4 * float(e.abs().max()) + 1e-6):
                raise RuntimeError(f"the {what} {name} differs from the {against} one by "
                                   f"{float((g - e).abs().max()):.3g}")

    def _capture_cuda_graph(self, x: torch.Tensor, kl_scale: torch.Tensor) -> None:
        """Record the compiled call as a CUDA graph over static buffers and check one
        replay against the compiled call from the same random state."""
        devices = [x.device]
        try:
            static_in = (x.clone(), kl_scale.clone())
            side = torch.cuda.Stream(x.device)  # warm-up off the default stream, as capture requires
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.random.fork_rng(devices=devices), torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):
                    self._graph(*static_in, *self._params)
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.random.fork_rng(devices=devices), torch.no_grad(), torch.cuda.graph(graph):
                static_out = tuple(self._graph(*static_in, *self._params))
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                expected = self._graph(x, kl_scale, *self._params)
            with torch.random.fork_rng(devices=devices):
                graph.replay()
                got = [t.clone() for t in static_out]
            self._compare("CUDA-graph", "compiled", expected, got)
        except Exception as error:  # noqa: BLE001 - any failure means: replay the compiled call
            self.cuda_graph_fallback_reason = _reason(error)
            self._log(f"--fast: the CUDA graph is not used, steps run the compiled call "
                      f"({self.cuda_graph_fallback_reason})")
            return
        self._cuda_graph, self._static_in, self._static_out = graph, static_in, static_out

    def __call__(self, x: torch.Tensor, validate: bool = False, kl_scale: Optional[torch.Tensor] = None,
                 indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        if validate:
            return super().__call__(x, validate=True, kl_scale=kl_scale)
        if kl_scale is None:  # the graph always scales the latent site; by 1 here
            if self._one is None or self._one.device != x.device:
                self._one = torch.ones((), device=x.device)
            kl_scale = self._one
        if self._shape is None:
            self._capture(x, kl_scale)
        if self._graph is None or x.shape != self._shape or x.dtype != self._dtype or not x.is_contiguous() \
                or x.device != self._device or kl_scale.device != self._device:
            return super().__call__(x, kl_scale=kl_scale)
        if self._cuda_graph is not None:
            self._static_in[0].copy_(x)
            self._static_in[1].copy_(kl_scale)
            self._cuda_graph.replay()
            loss, *grads = self._static_out  # overwritten by the next replay
            loss = loss.clone()
        else:
            with torch.no_grad():
                loss, *grads = self._graph(x, kl_scale, *self._params)
        for p, g in zip(self._params, grads):
            p.grad = g
        self._optimizer_step(grads)
        return loss

    def _optimizer_step(self, grads) -> None:
        """``optimizer.step()``; once that has run, for pyrovae's optimizer (one group of the
        graph's parameters, fused Adam, no hooks) the same kernel through Adam's functional form,
        ``torch.optim.adam.adam``, on the optimizer's own state tensors (so checkpoints and
        schedulers see every step), without the per-call bookkeeping of ``Optimizer.step``."""
        opt = self.optimizer
        group = opt.param_groups[0]
        states = [opt.state.get(p) for p in self._params]
        if not (self._stepped and self._plain_fused_adam() and all(st and "step" in st for st in states)):
            opt.step()  # the first step (it creates the state, and LR schedulers look for it), and any other optimizer
            self._stepped = True
            return
        options = {k: group[k] for k in ("lr", "weight_decay", "eps", "maximize", "decoupled_weight_decay")
                   if k in group}
        with torch.no_grad():
            _ADAM.adam([p.detach() for p in self._params], list(grads), [st["exp_avg"] for st in states],
                       [st["exp_avg_sq"] for st in states], [], [st["step"] for st in states],
                       fused=True, amsgrad=False, beta1=group["betas"][0], beta2=group["betas"][1], **options)

    def _plain_fused_adam(self) -> bool:
        opt = self.optimizer
        if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
            return False
        group = opt.param_groups[0]
        hooks = (opt._optimizer_step_pre_hooks, opt._optimizer_step_post_hooks,
                 getattr(_OPTIMIZER_MODULE, "_global_optimizer_pre_hooks", {}),
                 getattr(_OPTIMIZER_MODULE, "_global_optimizer_post_hooks", {}))
        return (bool(group.get("fused")) and not group["amsgrad"] and not group.get("differentiable")
                and not group.get("capturable") and not any(hooks)
                and len(group["params"]) == len(self._params)
                and all(a is b for a, b in zip(group["params"], self._params)))


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__
