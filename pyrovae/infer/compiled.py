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
   own products faster on this machine (:mod:`pyrovae.infer.choice`: timed once, cached): the
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
from typing import Callable, Dict, List, Optional

import pyro
import torch
import torch.nn as nn
from torch.fx.experimental.proxy_tensor import make_fx

from ..environment import cpu_model
from . import choice
from .svi import SVIStep

#: how ``--fast`` runs the graph's float32 CPU matrix products: the faster on this machine, oneDNN, ``torch.mm``
MATMUL_BACKENDS = ("auto", "onednn", "mm")
#: the names records and lines give them
MATMUL_NAMES = {"onednn": "oneDNN", "mm": "torch.mm"}


def _register_onednn_ops() -> bool:
    """Define ``pyrovae::onednn_mm(a, b) = a @ b`` and ``pyrovae::onednn_addmm(bias, a, b) =
    a @ b + bias`` (bias a row) on oneDNN's float32 GEMM, once per process; False where
    this torch build has no oneDNN."""
    if hasattr(torch.ops.pyrovae, "onednn_mm"):
        return True
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.library, "register_fake")):
        return False
    linear = torch.ops.mkldnn._linear_pointwise.default  # (x, w, bias, ...) -> x @ w.T + bias
    try:
        lib = torch.library.Library("pyrovae", "FRAGMENT")
        lib.define("onednn_mm(Tensor a, Tensor b) -> Tensor")
        lib.define("onednn_addmm(Tensor bias, Tensor a, Tensor b) -> Tensor")
        lib.impl("onednn_mm", lambda a, b: linear(a, b.t(), None, "none", [], ""), "CPU")
        lib.impl("onednn_addmm", lambda bias, a, b: linear(a, b.t(), bias, "none", [], ""), "CPU")
        for name in ("onednn_mm", "onednn_addmm"):  # shapes for tracing and compiling
            torch.library.register_fake(f"pyrovae::{name}",
                                        lambda *t: t[-2].new_empty(t[-2].shape[0], t[-1].shape[1]), lib=lib)
    except (RuntimeError, TypeError, AttributeError):  # a torch without these registration APIs: torch.mm
        return False
    _ONEDNN_LIBRARY.append(lib)  # the registrations live as long as the library object
    return True


_ONEDNN_LIBRARY: list = []
_OPTIMIZER_MODULE = importlib.import_module("torch.optim.optimizer")  # where the global step hooks live
_ADAM = importlib.import_module("torch.optim.adam")  # Adam's functional form, adam(...)


def onednn_available() -> bool:
    """Whether this torch build has oneDNN, so ``pyrovae::onednn_mm`` exists (defining it if not yet)."""
    return _register_onednn_ops()


def onednn_matmuls(gm: torch.fx.GraphModule) -> int:
    """Point the float32 CPU ``aten.mm`` and ``aten.addmm`` (bias a row, no scaling) nodes
    of ``gm`` at ``pyrovae::onednn_mm`` / ``pyrovae::onednn_addmm``; return how many.

    A left operand that is a transposed view (a weight gradient's ``grad_out.T``) is made
    contiguous in the graph first: oneDNN's entry copies it otherwise, slowly, and inductor
    writes the transpose in tiles, fused with the kernel that computes it where it can."""
    if not onednn_usable():  # oneDNN switched off: torch.mm
        return 0
    count = 0
    for node, vals in _float32_products(gm):
        node.target = getattr(torch.ops.pyrovae, _TO_ONEDNN[node.target]).default
        left = node.args[-2]
        if not vals[-2].is_contiguous():
            with gm.graph.inserting_before(node):
                copy = gm.graph.call_function(torch.ops.aten.clone.default, (left,),
                                              {"memory_format": torch.contiguous_format})
            copy.meta["val"] = vals[-2].contiguous()
            node.replace_input_with(left, copy)
        count += 1
    if count:
        gm.graph.lint()
        gm.recompile()
    return count


_TO_ONEDNN = {torch.ops.aten.mm.default: "onednn_mm", torch.ops.aten.addmm.default: "onednn_addmm"}


def onednn_usable() -> bool:
    """Whether the graph's products can go to oneDNN: this torch build has it, and it is switched on."""
    return bool(torch.backends.mkldnn.enabled) and _register_onednn_ops()


def _float32_products(gm: torch.fx.GraphModule) -> list:
    """``(node, operand values)`` of the float32 CPU ``aten.mm`` and ``aten.addmm`` (bias a row,
    no scaling) nodes of ``gm``: the products :func:`onednn_matmuls` moves to oneDNN."""
    found = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.kwargs or node.target not in _TO_ONEDNN:
            continue
        vals = [a.meta.get("val") if isinstance(a, torch.fx.Node) else None for a in node.args]
        if not all(isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dtype == torch.float32 for v in vals):
            continue
        if node.target is torch.ops.aten.addmm.default and tuple(vals[0].shape) != (vals[2].shape[1],):
            continue
        found.append((node, vals))
    return found


def matmul_products(gm: torch.fx.GraphModule) -> List[tuple]:
    """The graph's float32 CPU products as ``(name, operands)``: ``name`` ``"mm"`` or ``"addmm"``,
    ``operands`` ``(shape, stride)`` of each argument (an ``addmm``'s bias first), in graph order."""
    return [(_TO_ONEDNN[node.target].replace("onednn_", ""),
             tuple((tuple(v.shape), tuple(v.stride())) for v in vals)) for node, vals in _float32_products(gm)]


def describe_products(products: List[tuple]) -> str:
    """``"addmm(400,128x784,784x400) mm(784x128t,128x400) ..."``: each product's operands' shapes,
    ``t`` after one that is not contiguous (a transposed view)."""
    def operand(shape, stride):
        return "x".join(map(str, shape)) + ("" if torch.empty_strided(shape, stride, device="meta").is_contiguous()
                                            else "t")
    return " ".join(f"{name}({','.join(operand(*o) for o in operands)})" for name, operands in products)


def matmul_candidates(products: List[tuple]) -> Dict[str, Callable[[], None]]:
    """``{"onednn": f, "mm": g}`` (``"mm"`` alone where oneDNN is not usable): each computes every
    product of ``products`` once, as the graph would on that backend (on oneDNN, a left operand
    that is not contiguous made contiguous first, as :func:`onednn_matmuls` does in the graph), on
    operands of their shapes and strides filled from a generator of their own (the global random
    state is not drawn from)."""
    usable = onednn_usable()
    generator = torch.Generator().manual_seed(0)

    def tensor(shape, stride):
        t = torch.empty_strided(shape, stride)
        return t.copy_(torch.randn(shape, generator=generator))

    calls = [(name, [tensor(*o) for o in operands]) for name, operands in products]
    aten = {"mm": torch.ops.aten.mm.default, "addmm": torch.ops.aten.addmm.default}

    def on_mm():
        for name, args in calls:
            aten[name](*args)

    if not usable:
        return {"mm": on_mm}
    onednn = {"mm": torch.ops.pyrovae.onednn_mm.default, "addmm": torch.ops.pyrovae.onednn_addmm.default}

    def on_onednn():
        for name, args in calls:
            onednn[name](*args[:-2], args[-2].contiguous(), args[-1])

    return {"onednn": on_onednn, "mm": on_mm}


def choose_matmul(gm: torch.fx.GraphModule, want: str = "auto", earlier: Optional[dict] = None) -> dict:
    """How the graph's float32 CPU matrix products run: ``want`` ``"onednn"`` or ``"mm"`` as it
    says (``torch.mm`` where oneDNN is not usable), ``"auto"`` the faster of the two on these
    products here (:func:`pyrovae.infer.choice.choose`: cached, or timed for about a second) or,
    for a resumed run (``earlier``: the record this function gave the run before), the backend
    the run chose then, where that was on this CPU at this thread count for the same products:
    a resumed run multiplies as the interrupted one did, whatever the cache holds now.
    Returns the record: ``matmul`` (``"onednn"`` or ``"mm"``), ``chosen_by`` (``"measured"``,
    ``"cache"``, ``"setting"``, or why there was nothing to choose), ``ms`` (median milliseconds
    of each backend for all the products once; None where not timed), ``cpu``
    (:func:`~pyrovae.environment.cpu_model`), ``threads`` and ``products`` (how many)."""
    if want not in MATMUL_BACKENDS:
        raise ValueError(f"matmul must be one of {', '.join(MATMUL_BACKENDS)}, got {want!r}")
    products = matmul_products(gm)
    record = {"matmul": "mm", "chosen_by": "setting", "ms": None, "cpu": cpu_model(),
              "threads": torch.get_num_threads(), "products": len(products)}
    if not products:
        return {**record, "chosen_by": "no float32 matrix products"}
    if want != "mm" and not onednn_usable():
        return {**record, "chosen_by": "oneDNN is not available"}
    if want != "auto":
        return {**record, "matmul": want}
    if (isinstance(earlier, dict) and earlier.get("matmul") in ("onednn", "mm") and earlier.get("cpu") == record["cpu"]
            and earlier.get("threads") == record["threads"] and earlier.get("products") == record["products"]):
        return {**record, "matmul": earlier["matmul"], "chosen_by": "the run's own choice before it was interrupted",
                "ms": earlier.get("ms") if isinstance(earlier.get("ms"), dict) else None}
    try:
        made = choice.choose(f"matmul {describe_products(products)}", matmul_candidates(products))
    except RuntimeError as error:  # a product oneDNN refuses: the graph would fail on it too
        return {**record, "chosen_by": f"oneDNN failed on the products ({_reason(error)[:100]})"}
    return {**record, "matmul": made["choice"], "chosen_by": "cache" if made["from_cache"] else "measured",
            "ms": made["ms"], "cpu": made["cpu"], "threads": made["threads"]}


def describe_choice(record: dict) -> str:
    """The line that says how the graph's matrix products run, and why (a :func:`choose_matmul` record)."""
    on = f"--fast: the matrix products run on {MATMUL_NAMES[record['matmul']]}"
    threads = f"{record['threads']} thread{'s' * (record['threads'] != 1)}"
    if record["ms"] is None or record["chosen_by"] not in ("cache", "measured"):
        return f"{on} ({record['chosen_by']})"
    times = ", ".join(f"{MATMUL_NAMES[n]} {ms:.3g} ms" for n, ms in sorted(record["ms"].items(), key=lambda i: i[1]))
    how = "as cached from an earlier timing" if record["chosen_by"] == "cache" else "timed"
    return f"{on}, the faster on {record['cpu']} at {threads}, {how}: {times} for the step's {record['products']} products"


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
