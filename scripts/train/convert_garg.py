#!/usr/bin/python3
"""Converts a checkpoint of Garg et al.'s code (dtsip/in-context-learning: a `state.pt` holding
"model_state_dict", or a bare TransformerModel state_dict) into a garg-gpt2 safetensors file.

usage: convert_garg.py CHECKPOINT.pt --n-head H --out FILE.safetensors [--force]

n_dims, n_embd, n_layer and n_positions are read off the tensor shapes (n_positions = rows of
`_backbone.wpe.weight` / 2, as their GPT2Config(n_positions = 2 * n_positions)); n_head is not
visible in any shape, so it must be given (their conf/models/*.yaml: standard 8, small 4, tiny 2).
Dropped on the way, because the forward pass never reads them: `_backbone.wte.weight` (GPT-2's
token embedding; Garg et al. feed inputs_embeds) and the `_backbone.h.{i}.attn.bias` /
`.attn.masked_bias` buffers (a constant causal mask and -1e4) that transformers 4.17 stores.
Any other tensor that the format does not know is an error.
"""
import pickle
import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_io  # noqa: E402
cli_io.require("numpy", "torch")
import torch  # noqa: E402
import garg_model  # noqa: E402

UNUSED = re.compile(r"^_backbone\.(wte\.weight|h\.\d+\.attn\.(bias|masked_bias))$")


class ConvertError(ValueError):
    pass


def convert(state_dict, n_head):
    """-> (GargTransformer holding the weights, names dropped). Raises ConvertError."""
    kept = {name: tensor for name, tensor in state_dict.items() if not UNUSED.match(name)}
    dropped = sorted(set(state_dict) - set(kept))
    for name in ("_read_in.weight", "_backbone.wpe.weight"):
        if name not in kept:
            raise ConvertError("missing tensor %s" % name)
    n_embd, n_dims = kept["_read_in.weight"].shape
    rows = kept["_backbone.wpe.weight"].shape[0]
    if rows % 2:
        raise ConvertError("_backbone.wpe.weight has %d rows; Garg et al.'s layout has 2 n_positions" % rows)
    layers = {int(m.group(1)) for m in (re.match(r"^_backbone\.h\.(\d+)\.", name) for name in kept) if m}
    n_layer = max(layers) + 1 if layers else 0
    if layers != set(range(n_layer)):
        raise ConvertError("blocks %s are not numbered 0..%d" % (sorted(layers), n_layer - 1))
    if n_head < 1 or n_embd % n_head:
        raise ConvertError("n_embd %d is not a multiple of --n-head %d" % (n_embd, n_head))
    config = dict(n_dims=n_dims, n_positions=rows // 2, n_embd=n_embd, n_layer=n_layer, n_head=n_head)
    shapes = garg_model.tensor_shapes(config)
    unknown = sorted(set(kept) - set(shapes))
    if unknown:
        raise ConvertError("unknown tensor %s" % unknown[0])
    for name, shape in shapes.items():
        if name not in kept:
            raise ConvertError("missing tensor %s" % name)
        if list(kept[name].shape) != shape:
            raise ConvertError("tensor %s has shape %s, expected %s" % (name, list(kept[name].shape), shape))
    # A NaN or inf weight would make every score non-finite; iclbench refuses such a model when it
    # loads it, so the converter refuses it before writing anything. Checked on the float32 values
    # the file will hold: an f64 weight of 1e300 is finite until the cast makes it inf.
    weights = {name: kept[name].to(torch.float32) for name in shapes}
    for name, tensor in weights.items():
        if not torch.isfinite(tensor).all():
            raise ConvertError("tensor %s has a non-finite value (NaN or inf)%s"
                               % (name, "" if not torch.isfinite(kept[name]).all() else " as float32 (beyond its range)"))
    model = garg_model.GargTransformer(**config)
    model.load_state_dict(weights)
    return model.eval(), dropped


def main(argv):
    return cli_io.run_main("convert_garg.py", convert_file, argv)


def convert_file(argv):
    p = cli_io.Parser(prog="convert_garg.py", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--n-head", type=cli_io.positive_int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing regular file")
    args = p.parse_args(argv)
    # --force replaces a regular file that is not the input, nothing else: the rename would turn
    # a device (/dev/null), a FIFO or a symbolic link into a regular file.
    cli_io.check_outputs([args.out], args.force, inputs=[args.checkpoint])
    if args.checkpoint == "":
        raise cli_io.Refused("the checkpoint is an empty path")
    try:
        # Opened without blocking and checked on the descriptor, then read from it: a FIFO (or a
        # file swapped for one after a check by name) would block the load forever.
        fd = os.open(args.checkpoint, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise cli_io.Refused("cannot read %s: %s" % (cli_io.one_line(args.checkpoint), error.strerror)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory with a traceback
        os.close(fd)
        raise cli_io.Refused("cannot read %s: not a regular file" % cli_io.one_line(args.checkpoint))
    with os.fdopen(fd, "rb") as checkpoint_file:
        os.set_blocking(fd, True)
        status, state, model, dropped = load_and_convert(checkpoint_file, args)
    if status:
        return status
    return write(model, dropped, state, args)


def load_and_convert(checkpoint_file, args):
    """-> (0, state, model, dropped), or (2, None, None, None) after one line on stderr."""
    try:
        # weights_only: a checkpoint from elsewhere is a pickle, and a full unpickle runs any code
        # it names; tensors, dicts and numbers are all a Garg checkpoint holds.
        state = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ConvertError("not a state_dict or a checkpoint dict (a %s)" % type(state).__name__)
        if isinstance(state, dict) and {"run", "model", "optimizer"} <= set(state):
            raise ConvertError("this is a checkpoint of iclbench's own train.py, not of Garg et al.'s code; "
                               "export it with export.py --run-dir (its directory)")
        state_dict = state["model_state_dict"] if "model_state_dict" in state else state
        model, dropped = convert(state_dict, args.n_head)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, AttributeError, EOFError, pickle.UnpicklingError,
            ConvertError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        print("convert_garg.py: %s: %s" % (args.checkpoint, first), file=sys.stderr)
        return 2, None, None, None
    return 0, state, model, dropped


def write(model, dropped, state, args):
    training = {"converted_from": os.path.basename(args.checkpoint), "dropped": dropped}
    if isinstance(state, dict) and "train_step" in state:
        training["train_step"] = int(state["train_step"])
    with cli_io.Staged() as staged:
        garg_model.save(model, staged.path(args.out), {"training": json.dumps(training, sort_keys=True),
                                                       "source": "Garg et al. 2022 checkpoint, scripts/train/convert_garg.py"})
        staged.commit()
    print("%s: %s, dropped %d unused tensors" % (args.out, model.config, len(dropped)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
