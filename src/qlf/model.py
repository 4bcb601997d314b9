"""Transformer++ (a small Llama-2): the model every run trains, probes read and ablations edit.

    tokens -> tok_embeddings -> [hook_embed]
           -> n_layers x Block:  h   = x + Attention(RMSNorm(x))     [hook_attn_out, hook_resid_mid]
                                 out = h + SwiGLU(RMSNorm(h))        [hook_mlp_out, hook_resid_post]
           -> RMSNorm -> output (untied linear head) -> float32 logits

RoPE on queries and keys (Meta layout: adjacent pairs (2i, 2i+1), theta 1e4, positions from 0), no
positional embedding, no biases, no dropout, PyTorch's default initialisation (reference notes
ablations.md §11). Parameter names follow the reference's Meta layout (`tok_embeddings`,
`layers.{i}.attention.wq`, `layers.{i}.feed_forward.w1`, `norm`, `output`), so its state dicts
load; hook names follow TransformerLens (`blocks.{i}.hook_resid_post`).

Members: a sweep trains K models of one shape as one stacked model (qlf.train). Its parameters
carry a leading member dimension (K, ...) and are passed in with torch.func.functional_call; the
rows of the batch are then K equal blocks, one per member. Only the layers that hold weights
(Linear, Embedding, RMSNorm) need to know: attention, RoPE and the losses act per row anyway.
With plain (unstacked) parameters every layer is the ordinary one.

Hooks: `forward(ids, hooks={name: fn})` calls `fn(x, start)` at each named point, where x is the
(B, t, d) activation of the positions being computed and `start` is the absolute position of
x[:, 0] (0 in a full forward, the current position in cached decoding). A fn returns a replacement
tensor (intervention) or None (capture, or nothing to do here). One mechanism serves probes and
ablations, in the teacher-forced pass and in every decoding step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Hook = Callable[[torch.Tensor, int], "torch.Tensor | None"]
IGNORE = -100  # target id of unscored positions (F.cross_entropy's ignore_index)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    seq_len: int  # longest sequence the model sees (the task's padded length)
    d_model: int
    n_layers: int
    n_heads: int
    norm_eps: float = 1e-5  # stored, so training and evaluation use the same eps
    rope_theta: float = 1e4
    multiple_of: int = 2  # the FFN hidden size is rounded up to a multiple of this

    def __post_init__(self):
        for name in ("vocab_size", "seq_len", "d_model", "n_layers", "n_heads", "multiple_of"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head size d_model/n_heads = {self.head_dim} must be even for RoPE")
        if not self.norm_eps >= 0:
            raise ValueError(f"norm_eps must be >= 0, got {self.norm_eps}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        """int(2 * 4d / 3) rounded up to a multiple of `multiple_of` (d=8 -> 22, 512 -> 1366)."""
        hidden = 2 * 4 * self.d_model // 3
        return -(-hidden // self.multiple_of) * self.multiple_of

    def to_dict(self) -> dict:
        return asdict(self)


def forward_flops_per_sequence(cfg: ModelConfig, length: int) -> int:
    """Matmul FLOPs of one forward pass over `length` tokens (2 per multiply-add).

    Counts every weight matrix but the embedding lookup, and causal attention scores and values
    (position t attends to t+1 keys). Training costs 3x this (forward + backward).
    """
    d, L = cfg.d_model, cfg.n_layers
    weights = L * (4 * d * d + 3 * d * cfg.ffn_hidden) + d * cfg.vocab_size
    attention = L * 2 * d * length * (length + 1)  # (QK^T and AV) * sum over t of (t+1)
    return 2 * weights * length + attention


def _member_blocks(x: torch.Tensor, members: int) -> torch.Tensor:
    """x (K*B, ..., d) as (K, B*..., d): the rows of member k are the k-th block of the batch."""
    if x.shape[0] % members:
        raise ValueError(f"a batch of {x.shape[0]} rows does not split into {members} members")
    return x.reshape(members, -1, x.shape[-1])


class Linear(nn.Linear):
    """nn.Linear (no bias) whose weight may be stacked (K, out, in): then one batched matmul
    applies member k's weight to the k-th block of rows. K = 1 is the plain matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if w.dim() == 2:
            return F.linear(x, w)
        if w.shape[0] == 1:
            return F.linear(x, w[0])
        out = torch.bmm(_member_blocks(x, w.shape[0]), w.transpose(1, 2))
        return out.reshape(*x.shape[:-1], w.shape[1])


class Embedding(nn.Embedding):
    """nn.Embedding whose table may be stacked (K, vocab, d): row block k reads table k."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if w.dim() == 2:
            return F.embedding(ids, w)
        members, vocab = w.shape[:2]
        if len(ids) % members:
            raise ValueError(f"a batch of {len(ids)} rows does not split into {members} members")
        offset = torch.arange(members, device=ids.device).repeat_interleave(len(ids) // members)
        return F.embedding(ids + vocab * offset.view(-1, *[1] * (ids.dim() - 1)),
                           w.reshape(members * vocab, -1))


class RMSNorm(nn.Module):
    """x / rms(x) computed in float32, cast back to x's dtype, times a learnable gain (stacked
    gains (K, d) scale the K row blocks)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).type_as(x)
        w = self.weight
        if w.dim() == 1:
            return y * w
        return (_member_blocks(y, w.shape[0]) * w[:, None]).reshape(y.shape)


def rope_table(cfg: ModelConfig) -> torch.Tensor:
    """(seq_len, head_dim/2, 2) float32 (cos, sin) of angle t * theta^(-2i/head_dim)."""
    freqs = cfg.rope_theta ** -(torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)
    angles = torch.outer(torch.arange(cfg.seq_len).float(), freqs)
    return torch.stack((angles.cos(), angles.sin()), dim=-1)


def apply_rope(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (2i, 2i+1) of x (B, t, H, hd) by rope (t, hd/2, 2), in float32."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    rotated = pairs * torch.view_as_complex(rope).unsqueeze(1)
    return torch.view_as_real(rotated).flatten(-2).type_as(x)


class KVCache:
    """Keys and values of every layer for positions [0, length) of one batch, for decoding."""

    def __init__(self, batch: int, length: int):
        self.batch, self.length = batch, length
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int):
        """Store k, v (B, H, t, hd) at positions start..start+t-1; return those of 0..start+t-1."""
        if layer not in self.layers:  # allocated on first use, in the dtype autocast produces
            shape = (self.batch, k.shape[1], self.length, k.shape[3])
            self.layers[layer] = (k.new_zeros(shape), v.new_zeros(shape))
        keys, values = self.layers[layer]
        end = start + k.shape[2]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        d = cfg.d_model
        self.wq = Linear(d, d, bias=False)
        self.wk = Linear(d, d, bias=False)
        self.wv = Linear(d, d, bias=False)
        self.wo = Linear(d, d, bias=False)

    def forward(self, x, rope, start: int, cache: KVCache | None, layer: int):
        B, t, d = x.shape
        heads = (B, t, self.n_heads, self.head_dim)
        q = apply_rope(self.wq(x).view(heads), rope).transpose(1, 2)
        k = apply_rope(self.wk(x).view(heads), rope).transpose(1, 2)
        v = self.wv(x).view(heads).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v, start)
        if start == 0:  # queries and keys both start at position 0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif t == 1:  # one new query sees every cached key
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # t new queries after `start` cached keys: query i sees keys <= start + i
            mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, t, d))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, hidden = cfg.d_model, cfg.ffn_hidden
        self.w1 = Linear(d, hidden, bias=False)
        self.w2 = Linear(hidden, d, bias=False)
        self.w3 = Linear(d, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def _hook(hooks: dict[str, Hook] | None, name: str, x: torch.Tensor, start: int) -> torch.Tensor:
    if hooks is None or name not in hooks:
        return x
    out = hooks[name](x, start)
    return x if out is None else out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int):
        super().__init__()
        self.index = index
        self.prefix = f"blocks.{index}."
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, x, rope, start, cache, hooks):
        p = self.prefix
        attn = self.attention(self.attention_norm(x), rope, start, cache, self.index)
        h = x + _hook(hooks, p + "hook_attn_out", attn, start)
        h = _hook(hooks, p + "hook_resid_mid", h, start)
        mlp = _hook(hooks, p + "hook_mlp_out", self.feed_forward(self.ffn_norm(h)), start)
        return _hook(hooks, p + "hook_resid_post", h + mlp, start)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.output = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("rope", rope_table(cfg), persistent=False)
        sites = ("hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
        self.hook_names = ("hook_embed",) + tuple(
            f"blocks.{i}.{s}" for i in range(cfg.n_layers) for s in sites)

    def forward(self, ids: torch.Tensor, hooks: dict[str, Hook] | None = None, start: int = 0,
                cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, t, vocab) float32 for token ids (B, t) at positions start..start+t-1.

        start > 0 needs a `cache` that holds positions 0..start-1 (cached decoding).
        """
        t = ids.shape[1]
        if start + t > self.cfg.seq_len:
            raise ValueError(f"positions {start}..{start + t - 1} exceed seq_len "
                             f"{self.cfg.seq_len}")
        if start and cache is None:
            raise ValueError("start > 0 needs a KVCache holding the earlier positions")
        if hooks:
            unknown = set(hooks) - set(self.hook_names)
            if unknown:
                raise ValueError(f"unknown hook names {sorted(unknown)}; this model has "
                                 f"hook_embed and blocks.0..{self.cfg.n_layers - 1}.hook_*")
        rope = self.rope[start:start + t]
        x = _hook(hooks, "hook_embed", self.tok_embeddings(ids.long()), start)
        for block in self.layers:
            x = block(x, rope, start, cache, hooks)
        return self.output(self.norm(x)).float()


# -- losses and evaluation ----------------------------------------------------------------------

def masked_targets(ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Next-token targets (B, T-1): ids[:, 1:] where loss_mask[:, 1:] == 1, else IGNORE."""
    return torch.where(loss_mask[:, 1:].bool(), ids[:, 1:].long(), IGNORE)


def target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits[:, :-1] against `targets` (from masked_targets)."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def masked_loss(logits: torch.Tensor, ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean CE over all scored targets of the batch: the '=' prediction, the answer, the first EOS
    (targets ids[:, 1:] where loss_mask[:, 1:] == 1, reference §11.3)."""
    return target_loss(logits, masked_targets(ids, loss_mask))


def masked_loss_per_example(logits: torch.Tensor, ids: torch.Tensor,
                            loss_mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean CE over each row's own scored targets (correct for ragged answers)."""
    targets = masked_targets(ids, loss_mask)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE,
                         reduction="none")
    counts = (targets != IGNORE).sum(1)
    if bool((counts == 0).any()):
        raise ValueError("a row has no scored targets (loss_mask[:, 1:] is all zero)")
    return ce.sum(1) / counts


@torch.no_grad()
def greedy_decode(model: Transformer, ids: torch.Tensor, eq_pos,
                  hooks: dict[str, Hook] | None = None,
                  given: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy completion with a KV cache: (B, T) ids whose positions >= eq_pos[row] are generated.

    Row r's prompt is ids[r, :eq_pos[r]] (the '=' excluded, as in the reference), so the model
    also predicts '=' (except at eq_pos 0, where the '=' itself is the prompt). Rows may have
    different eq_pos: the cache is filled up to min(eq_pos) in one pass, then one position at a
    time, feeding the true token to rows still in their prompt.
    given: (B, T) bool, positions after the prompt that are fed from ids too (teacher forcing,
    e.g. the next segment's prompt in a multi-answer task; pass ~loss_mask).
    Hooks fire on every newly computed position with its absolute `start`.
    """
    device = model.rope.device
    ids = torch.as_tensor(ids, device=device).long()
    B, T = ids.shape
    eq = torch.as_tensor(eq_pos, device=device).long().reshape(-1)
    if eq.shape != (B,):
        raise ValueError(f"eq_pos must have one entry per row ({B}), got shape {tuple(eq.shape)}")
    if B == 0:
        return ids.clone()
    if bool(((eq < 0) | (eq > T)).any()):
        raise ValueError(f"eq_pos must lie in 0..{T}, got {eq.tolist()}")
    # A row that starts with '=' (an empty input, e.g. the edgeless graph) has nothing to predict
    # it from: its '=' is given, as the first token of its prompt.
    eq = eq.clamp(min=1)
    first = int(eq.min())
    out = ids.clone()
    cache = KVCache(B, T)
    logits = model(out[:, :first], hooks, 0, cache)
    for pos in range(first, T):
        guess = logits[:, -1].argmax(-1)
        copy = pos < eq if given is None else (pos < eq) | given[:, pos].bool()
        out[:, pos] = torch.where(copy, ids[:, pos], guess)
        if pos + 1 < T:
            logits = model(out[:, pos:pos + 1], hooks, pos, cache)
    return out


def exact_match(generated: torch.Tensor, ids: torch.Tensor,
                loss_mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every scored position ('=', the answer, the first EOS) equals the truth."""
    wrong = (generated.long() != ids.long()) & loss_mask.bool()
    return ~wrong.any(1)


def capture(model: Transformer, ids: torch.Tensor, names,
            positions=None) -> dict[str, torch.Tensor]:
    """Activations at hook points `names` in one forward pass (no gradients).

    positions: None -> (B, T, d); 1-D (R,) absolute positions -> (B, R, d); 2-D (B, R) positions
    per row, -1 for absent rows -> (B, R, d) with zeros in absent rows (qlf.tasks FeatureLabels).
    """
    if isinstance(names, str):
        names = [names]
    device = model.rope.device
    ids = torch.as_tensor(ids, device=device)
    store: dict[str, torch.Tensor] = {}
    if positions is not None:
        positions = torch.as_tensor(positions, device=device).long()
        if positions.ndim not in (1, 2) or (positions.ndim == 2 and len(positions) != len(ids)):
            raise ValueError(f"positions must be (R,) or (B={len(ids)}, R), got "
                             f"{tuple(positions.shape)}")
        lowest = 0 if positions.ndim == 1 else -1  # -1 marks absent rows of per-row positions
        if bool((positions >= ids.shape[1]).any()) or bool((positions < lowest).any()):
            raise ValueError(f"positions must lie in 0..{ids.shape[1] - 1} (-1 allowed in per-row "
                             f"positions for absent rows)")

    def keep(name):
        def fn(x, start):
            if positions is None:
                store[name] = x.detach().clone()
            elif positions.ndim == 1:
                store[name] = x[:, positions].detach().clone()
            else:
                rows = torch.arange(len(x), device=x.device)[:, None]
                picked = x[rows, positions.clamp(min=0)].detach().clone()
                store[name] = picked.masked_fill_((positions < 0)[..., None], 0.0)
        return fn

    with torch.no_grad():
        model(ids, {n: keep(n) for n in names})
    return store


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
