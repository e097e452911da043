"""The compiled step's float32 CPU matrix products (:mod:`pyrovae.infer.compiled`) on oneDNN's GEMM
or on the BLAS behind ``torch.mm``: the custom operators ``pyrovae::onednn_mm`` and
``pyrovae::onednn_addmm`` (:func:`onednn_matmuls` points a graph's products at them), the graph's
products (:func:`matmul_products`), and which of the two runs them (:func:`choose_matmul`: a
setting, a resumed run's earlier choice, or the faster here, timed by :mod:`pyrovae.infer.choice`
on operands of the products' shapes)."""
from typing import Callable, Dict, List, Optional

import torch

from ..environment import cpu_model
from ..errors import one_line
from . import choice

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
    the run chose then, where that was on this CPU at this thread count for as many products
    (their shapes follow from the run's architecture and batch size, which a resume keeps): a
    resumed run multiplies as the interrupted one did, whatever the cache holds now.
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
        return {**record, "chosen_by": f"oneDNN failed on the products ({one_line(error, 100)})"}
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
