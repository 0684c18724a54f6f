"""`fastnn info`: build and runtime configuration."""
import os

import fastnn
from fastnn import kernels
from fastnn._ext import _info
from fastnn.cli._common import print_json


def register(sub):
    p = sub.add_parser("info", help="print version, OpenMP, threads, vector code and BLAS")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def vector_code():
    """Which vector instructions the kernels run here, in words: a native build's own; a portable build's LSTM kernels,
    float32 softmax rows (softmax_xent, output_layer) and RNN LM segment products (rnnlm_segment) choose at run time
    among the paths this CPU has (FASTNN_VECTOR_PATH forces one), its other kernels keep the baseline."""
    paths, path = _info.vector_paths(), _info.vector_path()
    if len(paths) == 1:
        return f"{path} (compiled in)"
    how = "FASTNN_VECTOR_PATH" if os.environ.get("FASTNN_VECTOR_PATH") == path else "chosen at run time"
    return (f"{path} for the LSTM, the softmax rows and the RNN LM's products ({how}; this CPU: {', '.join(paths)}), "
            f"{paths[-1]} elsewhere")


def run(args):
    cfg = dict(fastnn.show_config())
    cfg["vector_code"] = vector_code()
    if "avx512" in _info.vector_paths():      # the products' register layout (the other paths have one)
        cfg["rnnlm_layout"] = kernels.rnnlm_mm_layout()
    # whether `lm train --arch nplm --output-precision bfloat16` can run here
    cfg["amx_bf16"] = "yes" if kernels.amx_bf16() else "no"
    if args.json:
        print_json(cfg)
    else:
        for k, v in cfg.items():
            print(f"{k:12s} {v}")
