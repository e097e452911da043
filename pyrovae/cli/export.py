"""``scripts/export.py RUN_DIR --format onnx|torchscript --out DIR``: a run's trained networks as files."""
from typing import List, Optional

from .common import _checkpoint_flag, _command, _guarded, _Help, _Parser, _set_threads, _threads_flag


def export_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/export.py RUN_DIR --format onnx|torchscript --out DIR [--checkpoint best|last]``: the run's
    networks (:meth:`pyrovae.Model.export_graphs`) with ``model.json``, via :func:`pyrovae.export.export_run`."""
    p = _Parser(description="Write the trained networks of a run as ONNX files (for onnxruntime: no torch or Pyro "
                "needed) or TorchScript files (torch.jit.load: no Pyro or pyrovae needed), with model.json saying what "
                "each input and output is: vae: encoder (x -> loc, scale of q(z|x)) and decoder (z -> the "
                "likelihood's parameters); hvae: encoder_z2, encoder_z1 (x, z2), prior_z1 (z2 -> p(z1|z2)) and "
                "decoder (z1, z2); cvae: encoder (x, y) and decoder (z, y), y an integer class; m2: the same and "
                "classifier (x -> q(y|x)); m1m2: classifier (x -> q(y|x) through M1's posterior mean), m2_decoder "
                "((z, y) -> M2's p(z1|z,y)) and m1_decoder (z1 -> M1's p(x|z1)). A table's standardization is part of the graphs: they take and give data "
                "units. An IAF guide's flow is written too (flow.onnx / flow.pt). See docs/export.md.",
                formatter_class=_Help)
    p.add_argument("run_dir", help="a folder written by scripts/svi_train.py")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="fmt",
                   help="onnx: encoder.onnx, decoder.onnx, ... (opset 17, any batch size); torchscript: encoder.pt, "
                        "decoder.pt, ...")
    p.add_argument("--out", required=True,
                   help="the folder to write: a new path (missing parent folders are made) or an empty folder; a "
                        "folder that holds anything is refused; it is written whole or not at all")
    _checkpoint_flag(p)
    _threads_flag(p)
    args = p.parse_args(argv)
    _set_threads(p, args.threads)
    command = _command("scripts/export.py", argv)
    from ..export import export_run  # the exporter loads only when its command runs

    return _guarded(lambda: export_run(args.run_dir, args.fmt, args.out, args.checkpoint, command=command), args.out,
                    ("export.py", "from pyrovae.export import export_run; "
                                  f"export_run({args.run_dir!r}, {args.fmt!r}, {args.out!r}, model=<that class>)"))
