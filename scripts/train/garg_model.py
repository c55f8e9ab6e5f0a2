"""The transformer layout of Garg et al. 2022 ("What can transformers learn in-context?", public
repository dtsip/in-context-learning, src/models.py TransformerModel) in plain torch.nn, with the
state_dict names of that model, so weights move between the two unchanged.

Why plain torch.nn and not HuggingFace's GPT2Model: `transformers` is not packaged in Debian 12,
and iclbench uses Debian's packages only; besides, every operation of the forward pass is spelled
out here, which is what the C++ engine has to reproduce.

Shapes: B prompts, n context pairs, m queries, d input dimension (n_dims), D width (n_embd),
H heads, dh = D / H, L layers, P = n_positions (pairs), T tokens.

The forward pass (f32 unless the module is cast):
  tokens   x_1, y_1, x_2, y_2, ..., x_n, y_n; the y token of label y_i is (y_i, 0, ..., 0) in R^d
  h_0[t]   = tokens[t] W_in^T + b_in + wpe[t]          (_read_in is torch.nn.Linear: W_in [D, d])
  per layer i (pre-LayerNorm GPT-2 block):
    a      = LN(h; ln_1)              LN(z) = (z - mean) / sqrt(var + 1e-5) * gain + bias, biased var
    q|k|v  = a W_attn + b_attn        Conv1D: W_attn [D, 3D], columns 0..D-1 -> q, D..2D-1 -> k,
                                      2D..3D-1 -> v; head j uses columns j*dh..(j+1)*dh-1 of each
    s      = q_j k_j^T / sqrt(dh)     causal: token t sees tokens 0..t (masked keys get weight 0)
    o      = concat_j(softmax(s) v_j) W_aproj + b_aproj        (W_aproj [D, D])
    h      = h + o
    a      = LN(h; ln_2)
    h      = h + gelu_new(a W_fc + b_fc) W_mproj + b_mproj      (W_fc [D, 4D], W_mproj [4D, D])
  out      = LN(h; ln_f)
  score[t] = out[t] W_out^T + b_out   (_read_out is torch.nn.Linear: W_out [1, D])
The prediction for x_i is score at x_i's token t = 2(i - 1) (0-based): it has seen i - 1 labelled
pairs. gelu_new(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))). Dropout is 0 everywhere.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import safetensors_np

LAYER_NORM_EPSILON = 1e-5


def gelu_new(z):
    """GPT-2's GELU, the tanh approximation (HuggingFace's "gelu_new")."""
    return 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z.pow(3))))


class Conv1D(nn.Module):
    """GPT-2's Conv1D: a linear map stored input-major, y = x W + b with W [n_in, n_out]
    (the transpose of torch.nn.Linear's layout)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):  # x: [..., n_in] -> [..., n_out]
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(width, 3 * width)
        self.c_proj = Conv1D(width, width)

    def forward(self, a, mask_bias):  # a: [B, T, D], mask_bias: [T, T], 0 where visible, -inf elsewhere
        B, T, D = a.shape
        H, dh = self.heads, D // self.heads
        qkv = self.c_attn(a).view(B, T, 3, H, dh).permute(2, 0, 3, 1, 4).reshape(3, B * H, T, dh)
        # scale * q k^T + mask in one batched GEMM (scores [B H, T, T]); the softmax gives masked
        # keys exactly 0 weight.
        scores = torch.baddbmm(mask_bias, qkv[0], qkv[1].transpose(1, 2), alpha=1.0 / math.sqrt(dh))
        out = torch.bmm(torch.softmax(scores, dim=-1), qkv[2])  # [B H, T, dh]
        return self.c_proj(out.view(B, H, T, dh).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = Conv1D(width, 4 * width)
        self.c_proj = Conv1D(4 * width, width)

    def forward(self, a):
        return self.c_proj(gelu_new(self.c_fc(a)))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=LAYER_NORM_EPSILON)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=LAYER_NORM_EPSILON)
        self.mlp = Mlp(width)

    def forward(self, h, mask_bias):
        h = h + self.attn(self.ln_1(h), mask_bias)
        return h + self.mlp(self.ln_2(h))


class Backbone(nn.Module):
    """GPT-2 without its token embedding `wte` (Garg et al. feed inputs_embeds, so wte is never
    read) and without the attention-mask buffers some `transformers` versions store."""

    def __init__(self, n_tokens, width, layers, heads):
        super().__init__()
        self.wpe = nn.Embedding(n_tokens, width)
        self.h = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, eps=LAYER_NORM_EPSILON)

    def forward(self, embeds, positions, visible):
        """embeds: [B, T, D], positions: [T] int64, visible: [T, T] bool (row = the token that
        attends) -> [B, T, D]."""
        h = embeds + self.wpe(positions)
        mask_bias = torch.zeros(visible.shape, dtype=h.dtype).masked_fill(~visible, float("-inf"))
        for block in self.h:
            h = block(h, mask_bias)
        return self.ln_f(h)


class GargTransformer(nn.Module):
    def __init__(self, n_dims, n_positions, n_embd, n_layer, n_head):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError("n_embd %d is not a multiple of n_head %d" % (n_embd, n_head))
        self.config = dict(n_dims=n_dims, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                           n_head=n_head)
        self._read_in = nn.Linear(n_dims, n_embd)
        self._backbone = Backbone(2 * n_positions, n_embd, n_layer, n_head)
        self._read_out = nn.Linear(n_embd, 1)
        self._init_like_gpt2()

    def _init_like_gpt2(self):
        """GPT2Model's initialisation (as its post_init does): weights of Conv1D and embeddings
        ~ N(0, 0.02), biases 0, LayerNorm gain 1 and bias 0, and the two residual projections
        (attn.c_proj, mlp.c_proj) ~ N(0, 0.02 / sqrt(2 L)). _read_in and _read_out sit outside
        GPT2Model and keep torch.nn.Linear's default, as in Garg et al."""
        residual_std = 0.02 / math.sqrt(2 * self.config["n_layer"])
        for name, module in self._backbone.named_modules():
            if isinstance(module, (Conv1D, nn.Embedding)):
                nn.init.normal_(module.weight, std=residual_std if name.endswith("c_proj") else 0.02)
                if isinstance(module, Conv1D):
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embed(self, x, y):
        """Interleaved input tokens. x: [B, n, d], y: [B, n] -> [B, 2n, d]."""
        B, n, d = x.shape
        y_tokens = F.pad(y.unsqueeze(-1), (0, d - 1))  # (y_i, 0, ..., 0)
        return torch.stack((x, y_tokens), dim=2).reshape(B, 2 * n, d)

    def forward(self, x, y):
        """Scores at every x token of the interleaved prompt x_1, y_1, ..., x_n, y_n (the training
        forward; the score for x_i has seen pairs 1..i-1). x: [B, n, d], y: [B, n] -> [B, n]."""
        tokens = self.embed(x, y)
        T = tokens.shape[1]
        if T > self._backbone.wpe.num_embeddings:
            raise ValueError("%d tokens exceed the %d positions" % (T, self._backbone.wpe.num_embeddings))
        positions = torch.arange(T)
        visible = torch.ones(T, T, dtype=torch.bool).tril()
        out = self._backbone(self._read_in(tokens), positions, visible)
        return self._read_out(out[:, 0::2]).squeeze(-1)

    def score_queries(self, x, y, x_query):
        """Each query scored as if alone after the n context pairs, i.e. exactly the prompt
        x_1, y_1, ..., x_n, y_n, x_q (2n + 1 tokens, the query at position 2n), but m queries in
        one pass: every query token sits at position 2n and sees the 2n context tokens and
        itself only, so queries never influence each other.
        x: [B, n, d], y: [B, n], x_query: [B, m, d] -> [B, m]."""
        n, m = x.shape[1], x_query.shape[1]
        if 2 * n + 1 > self._backbone.wpe.num_embeddings:
            raise ValueError("2n + 1 = %d tokens exceed the %d positions"
                             % (2 * n + 1, self._backbone.wpe.num_embeddings))
        tokens = torch.cat((self.embed(x, y), x_query), dim=1)  # [B, 2n + m, d]
        positions = torch.cat((torch.arange(2 * n), torch.full((m,), 2 * n, dtype=torch.long)))
        visible = torch.ones(2 * n + m, 2 * n + m, dtype=torch.bool).tril()
        visible[2 * n:, 2 * n:] = torch.eye(m, dtype=torch.bool)
        out = self._backbone(self._read_in(tokens), positions, visible)
        return self._read_out(out[:, 2 * n:]).squeeze(-1)


# --- The file format: garg-gpt2 safetensors ------------------------------------------------------

FORMAT = "garg-gpt2"
FORMAT_VERSION = 1
CONFIG_KEYS = ("n_dims", "n_positions", "n_embd", "n_layer", "n_head")


def tensor_shapes(config):
    """Every tensor of a garg-gpt2 file, in file order, with its shape. These are exactly the
    parameters of Garg et al.'s TransformerModel state_dict minus `_backbone.wte.weight` (GPT-2's
    token embedding [50257, D], never read with inputs_embeds) and minus the buffers
    `_backbone.h.{i}.attn.bias` / `.masked_bias` that transformers <= 4.2x stores (a constant
    causal mask and -1e4)."""
    d, P, D, L = config["n_dims"], config["n_positions"], config["n_embd"], config["n_layer"]
    shapes = {"_read_in.weight": [D, d], "_read_in.bias": [D], "_backbone.wpe.weight": [2 * P, D]}
    for i in range(L):
        prefix = "_backbone.h.%d." % i
        shapes.update({
            prefix + "ln_1.weight": [D], prefix + "ln_1.bias": [D],
            prefix + "attn.c_attn.weight": [D, 3 * D], prefix + "attn.c_attn.bias": [3 * D],
            prefix + "attn.c_proj.weight": [D, D], prefix + "attn.c_proj.bias": [D],
            prefix + "ln_2.weight": [D], prefix + "ln_2.bias": [D],
            prefix + "mlp.c_fc.weight": [D, 4 * D], prefix + "mlp.c_fc.bias": [4 * D],
            prefix + "mlp.c_proj.weight": [4 * D, D], prefix + "mlp.c_proj.bias": [D],
        })
    shapes.update({"_backbone.ln_f.weight": [D], "_backbone.ln_f.bias": [D],
                   "_read_out.weight": [1, D], "_read_out.bias": [1]})
    return shapes


def file_metadata(config, extra):
    """__metadata__ of a garg-gpt2 file: every value a string (safetensors requires it)."""
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "layer_norm_epsilon": repr(LAYER_NORM_EPSILON), "activation_function": "gelu_new"}
    metadata.update({key: str(int(config[key])) for key in CONFIG_KEYS})
    metadata.update(extra)
    return metadata


def save(model, path, extra_metadata):
    """Writes the model's parameters as F32 under their state_dict names (see tensor_shapes)."""
    state = model.state_dict()
    shapes = tensor_shapes(model.config)
    if set(state) != set(shapes):
        raise AssertionError("state_dict names differ from the format: %s" % sorted(set(state) ^ set(shapes)))
    tensors = {name: state[name].detach().to(torch.float32).numpy() for name in shapes}
    safetensors_np.write(path, tensors, file_metadata(model.config, extra_metadata))


def load(path):
    """-> (GargTransformer in eval mode with the file's weights, metadata). Raises
    safetensors_np.FormatError naming the file and the first violation."""
    metadata, tensors = safetensors_np.read(path)
    if metadata.get("format") != FORMAT:
        raise safetensors_np.FormatError("%s: __metadata__ format is %r, not %r" % (path, metadata.get("format"), FORMAT))
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise safetensors_np.FormatError("%s: format_version %r; this reader knows %d"
                                         % (path, metadata.get("format_version"), FORMAT_VERSION))
    try:
        config = {key: int(metadata[key]) for key in CONFIG_KEYS}
    except (KeyError, ValueError):
        raise safetensors_np.FormatError("%s: __metadata__ needs integer %s" % (path, ", ".join(CONFIG_KEYS))) from None
    shapes = tensor_shapes(config)
    for name in shapes:
        if name not in tensors:
            raise safetensors_np.FormatError("%s: missing tensor %s" % (path, name))
        if list(tensors[name].shape) != shapes[name] or tensors[name].dtype != np.float32:
            raise safetensors_np.FormatError("%s: tensor %s is %s %s, expected F32 %s"
                                             % (path, name, tensors[name].dtype, list(tensors[name].shape), shapes[name]))
        if not np.isfinite(tensors[name]).all():
            raise safetensors_np.FormatError("%s: tensor %s has a non-finite value" % (path, name))
    extra = sorted(set(tensors) - set(shapes))
    if extra:
        raise safetensors_np.FormatError("%s: unexpected tensor %s" % (path, extra[0]))
    model = GargTransformer(**config)
    model.load_state_dict({name: torch.from_numpy(tensors[name].copy()) for name in shapes})
    return model.eval(), metadata
