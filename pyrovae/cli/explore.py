"""``scripts/explore.py RUN_DIR --out DIR``: the latent explorer, a static web page that decodes z in the browser."""
from typing import List, Optional

from .common import _checkpoint_flag, _command, _guarded, _Help, _Parser, _set_threads, _threads_flag


def explore_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/explore.py RUN_DIR --out DIR [--runtime PATH] [--no-fetch] [--sliders K] [--test-images N]``:
    the run's explorer page, via :func:`pyrovae.export.explore.build_explorer`."""
    from ..environment import cache_dir
    from ..export.runtime import SPEC, TARBALL

    p = _Parser(description="Write a latent explorer for a run trained on images: a folder with a web page that "
                "decodes z with the run's ONNX decoder in the browser (onnxruntime-web, WebAssembly; no Python runs "
                "while it is used): sliders for the latent dimensions with the most KL, a 2-D pad over two of them, "
                "the decoded mean image redrawn as they move, and test images that set z to their posterior mean "
                "when clicked. Runs of the vae, cvae and m2 (with a class picker feeding the decoder's class), and of the "
                "hvae (sliders of z2; z1 follows the mean of p(z1|z2), or z1 sliders set it); an m1m2 run is refused. "
                "Serve the folder with `python -m http.server` in it and open http://localhost:8000/. "
                f"The page's runtime, {SPEC}, comes from --runtime, else the cache "
                f"({cache_dir()}, or $PYROVAE_CACHE_DIR), else it is fetched once with `npm pack {SPEC}` into the "
                "cache. See docs/export.md.", formatter_class=_Help)
    p.add_argument("run_dir", help="a folder written by scripts/svi_train.py")
    p.add_argument("--out", required=True,
                   help="the folder to write: a new path (missing parent folders are made) or an empty folder; a "
                        "folder that holds anything is refused; it is written whole or not at all")
    p.add_argument("--runtime", default=None, metavar="PATH",
                   help=f"{SPEC} from here instead of the cache: the tarball `npm pack {SPEC}` writes ({TARBALL}), "
                        "the package's folder, or a folder holding its dist/ files ort.wasm.min.js, "
                        "ort-wasm-simd-threaded.mjs and ort-wasm-simd-threaded.wasm; each file is checked against "
                        "the checksum of that version")
    p.add_argument("--no-fetch", dest="fetch", action="store_false",
                   help="never run npm: a runtime that is neither given nor cached is refused")
    p.add_argument("--sliders", type=int, default=8, metavar="K",
                   help="sliders for the K latent dimensions with the most KL (all of them where z_dim is smaller); "
                        "the hvae: K of z2 and K of z1")
    p.add_argument("--test-images", type=int, default=16, metavar="N",
                   help="test images shown on the page, evenly spaced over the run's test set, with their posterior "
                        "means (0: none)")
    _checkpoint_flag(p)
    _threads_flag(p)
    args = p.parse_args(argv)
    if args.sliders <= 0:
        p.error(f"--sliders must be a positive integer, got {args.sliders}")
    if args.test_images < 0:
        p.error(f"--test-images must be 0 or more, got {args.test_images}")
    _set_threads(p, args.threads)
    command = _command("scripts/explore.py", argv)
    from ..export.explore import build_explorer  # the application loads only when its command runs

    return _guarded(lambda: build_explorer(args.run_dir, args.out, args.checkpoint, args.runtime, args.fetch,
                                           args.sliders, args.test_images, command=command), args.out)
