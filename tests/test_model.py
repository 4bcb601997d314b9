"""Transformer++: shapes, names, causality, RoPE/RMSNorm against independent formulas, losses,
hooks (capture and intervention) and KV-cached greedy decoding against full recomputation."""
import math

import numpy as np
import pytest
import torch

from qlf.model import (IGNORE, KVCache, ModelConfig, RMSNorm, Transformer, apply_rope, capture,
                       exact_match, forward_flops_per_sequence, greedy_decode, masked_loss,
                       masked_loss_per_example, masked_targets, rope_table)

V, T = 7, 12


def make_model(d=16, layers=2, heads=4, seed=0, seq_len=T, vocab=V, eps=1e-5, gain=1.0):
    """A random model; gain > 1 scales every matrix so that outputs depend strongly on the
    context (a freshly initialised model tends to predict one token everywhere)."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab, seq_len, d, layers, heads, norm_eps=eps))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "tok_embeddings" not in name:
                p.mul_(gain)
    return model


def random_ids(b=5, t=T, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


# -- configuration, names, shapes --------------------------------------------------------------

@pytest.mark.parametrize("d,hidden", [(8, 22), (16, 42), (32, 86), (64, 170), (128, 342),
                                      (256, 682), (512, 1366)])
def test_ffn_hidden_size_follows_the_reference_rule(d, hidden):
    cfg = ModelConfig(5, 10, d, 1, 4)
    assert cfg.ffn_hidden == hidden
    assert math.ceil(int(2 * 4 * d / 3) / 2) * 2 == hidden  # the rule, written independently


def test_parameter_names_and_shapes_are_stable():
    model = make_model(d=16, layers=2)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {"tok_embeddings.weight": (V, 16), "norm.weight": (16,), "output.weight": (V, 16)}
    for i in range(2):
        p = f"layers.{i}."
        expected.update({
            p + "attention.wq.weight": (16, 16), p + "attention.wk.weight": (16, 16),
            p + "attention.wv.weight": (16, 16), p + "attention.wo.weight": (16, 16),
            p + "feed_forward.w1.weight": (42, 16), p + "feed_forward.w2.weight": (16, 42),
            p + "feed_forward.w3.weight": (42, 16),
            p + "attention_norm.weight": (16,), p + "ffn_norm.weight": (16,)})
    assert shapes == expected  # no biases, untied head, no rope table in the state dict
    assert model.output.weight.data_ptr() != model.tok_embeddings.weight.data_ptr()


def test_default_pytorch_initialisation():
    model = make_model(d=64, layers=1)
    assert abs(model.tok_embeddings.weight.std().item() - 1.0) < 0.15  # N(0, 1)
    for w in (model.layers[0].attention.wq.weight, model.layers[0].feed_forward.w2.weight):
        assert w.abs().max().item() <= 1 / math.sqrt(w.shape[1])  # U(+-1/sqrt(fan_in))
    assert torch.equal(model.norm.weight, torch.ones(64))


def test_logits_shape_and_dtype():
    model = make_model()
    logits = model(random_ids(3, T))
    assert logits.shape == (3, T, V) and logits.dtype == torch.float32
    assert model(random_ids(3, 5)).shape == (3, 5, V)  # shorter prefixes are fine


@pytest.mark.parametrize("kwargs", [dict(d_model=18, n_heads=4), dict(d_model=12, n_heads=4),
                                    dict(d_model=16, n_heads=0), dict(d_model=16, n_heads=4,
                                                                      norm_eps=-1.0)])
def test_bad_configs_raise(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(vocab_size=5, seq_len=8, n_layers=1, **kwargs)


def test_bad_forward_calls_raise():
    model = make_model()
    with pytest.raises(ValueError, match="seq_len"):
        model(random_ids(2, T + 1))
    with pytest.raises(ValueError, match="hook"):
        model(random_ids(2, T), {"blocks.9.hook_resid_post": lambda x, s: None})
    with pytest.raises(ValueError, match="KVCache"):
        model(random_ids(2, 3), start=2)


# -- components against independent formulas -----------------------------------------------

def test_rmsnorm_matches_the_formula_and_uses_the_configured_eps():
    x = torch.randn(4, 3, 8, dtype=torch.float64).float() * 1e-3
    for eps in (1e-5, 1e-2):
        norm = RMSNorm(8, eps)
        with torch.no_grad():
            norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
        xd = x.double().numpy()
        want = xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + eps) * np.linspace(0.5, 2.0, 8)
        np.testing.assert_allclose(norm(x).detach().numpy(), want, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(RMSNorm(8, 1e-5)(x), RMSNorm(8, 1e-2)(x))  # eps matters here
    # bf16 input: normalised in fp32, rounded back to bf16, then scaled by the fp32 gain
    xb = x.bfloat16()
    xf = xb.double()
    rounded = (xf / (xf.pow(2).mean(-1, keepdim=True) + 1e-2).sqrt()).bfloat16().double()
    torch.testing.assert_close(norm(xb).double(), rounded * norm.weight.double(), rtol=1e-6,
                               atol=1e-8)


def test_rope_rotates_adjacent_pairs_by_position_times_frequency():
    cfg = ModelConfig(5, 6, 16, 1, 2)  # head_dim 8: four pairs
    x = torch.randn(2, 6, 2, 8)
    got = apply_rope(x, rope_table(cfg)).double().numpy()
    want = np.empty_like(got)
    xd = x.double().numpy()
    for t in range(6):
        for i in range(4):
            a = t * 1e4 ** (-2 * i / 8)
            c, s = math.cos(a), math.sin(a)
            x0, x1 = xd[:, t, :, 2 * i], xd[:, t, :, 2 * i + 1]
            want[:, t, :, 2 * i] = c * x0 - s * x1
            want[:, t, :, 2 * i + 1] = s * x0 + c * x1
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    cfg = ModelConfig(5, 20, 8, 1, 1)
    rope = rope_table(cfg)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(tq, tk):
        return (apply_rope(q, rope[tq:tq + 1]) * apply_rope(k, rope[tk:tk + 1])).sum().item()

    assert score(7, 3) == pytest.approx(score(14, 10), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-4)


def test_flops_count():
    cfg = ModelConfig(5, 10, 16, 2, 4)
    per_layer = 4 * 16 * 16 + 3 * 16 * 42
    want = 2 * (2 * per_layer + 16 * 5) * 10 + 2 * 2 * 2 * 16 * sum(range(1, 11))
    assert forward_flops_per_sequence(cfg, 10) == want


# -- causality and the KV cache --------------------------------------------------------------

def test_causal_later_tokens_do_not_change_earlier_logits():
    model = make_model()
    ids = random_ids(4, T)
    base = model(ids)
    for j in (3, 7, T - 1):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % V
        out = model(changed)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, j:], base[:, j:])


def test_cached_forward_in_pieces_equals_full_forward():
    model = make_model(layers=3)
    ids = random_ids(3, T)
    full = model(ids)
    cache = KVCache(3, T)
    pieces = [model(ids[:, :4], start=0, cache=cache),  # prefill
              model(ids[:, 4:5], start=4, cache=cache),  # one step
              model(ids[:, 5:9], start=5, cache=cache),  # several positions after a prefix
              model(ids[:, 9:], start=9, cache=cache)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-5, atol=1e-5)


# -- hooks -------------------------------------------------------------------------------------

def test_hook_names():
    model = make_model(layers=2)
    assert "hook_embed" in model.hook_names
    for i in range(2):
        for site in ("hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"):
            assert f"blocks.{i}.{site}" in model.hook_names


def test_identity_hooks_leave_logits_unchanged():
    model = make_model()
    ids = random_ids()
    base = model(ids)
    calls = []

    def same(x, start):
        calls.append(start)
        return x

    hooks = {name: same for name in model.hook_names}
    assert torch.equal(model(ids, hooks), base)
    assert len(calls) == len(model.hook_names) and set(calls) == {0}
    assert torch.equal(model(ids, {n: (lambda x, s: None) for n in model.hook_names}), base)


def test_capture_returns_the_residual_stream_at_the_right_positions():
    model = make_model(layers=2)
    ids = random_ids(4, T)
    full = capture(model, ids, ["blocks.1.hook_resid_post", "hook_embed"])
    resid = full["blocks.1.hook_resid_post"]
    assert resid.shape == (4, T, 16)
    # the last block's output is what the final norm and the head read
    torch.testing.assert_close(model.output(model.norm(resid)), model(ids), rtol=0, atol=1e-6)
    torch.testing.assert_close(full["hook_embed"], model.tok_embeddings(ids))

    pos = torch.tensor([0, 5, 11])
    shared = capture(model, ids, "blocks.1.hook_resid_post", pos)["blocks.1.hook_resid_post"]
    assert torch.equal(shared, resid[:, pos])

    per_row = torch.tensor([[1, 2], [3, -1], [-1, -1], [11, 0]])
    got = capture(model, ids, "blocks.1.hook_resid_post", per_row)["blocks.1.hook_resid_post"]
    assert got.shape == (4, 2, 16)
    for b in range(4):
        for r in range(2):
            p = int(per_row[b, r])
            want = resid[b, p] if p >= 0 else torch.zeros(16)
            assert torch.equal(got[b, r], want)
    with pytest.raises(ValueError):
        capture(model, ids, "hook_embed", torch.tensor([T]))
    with pytest.raises(ValueError):  # -1 marks absent rows only in per-row positions
        capture(model, ids, "hook_embed", torch.tensor([-1, 2]))


def projection_hook(w, b, positions, seen=None):
    """x <- x - (w_hat.x + b_hat) w_hat at absolute `positions` (the reference's operator)."""
    norm = w.norm()
    w_hat, b_hat = w / norm, b / norm

    def fn(x, start):
        x = x.clone()
        for p in positions:
            if start <= p < start + x.shape[1]:
                v = x[:, p - start]
                x[:, p - start] = v - (v @ w_hat + b_hat)[:, None] * w_hat
                if seen is not None:
                    seen.append((p, x[:, p - start].clone()))
        return x
    return fn


def test_projection_hook_zeroes_the_probe_logit_and_spares_earlier_positions():
    model = make_model(layers=3)
    ids = random_ids(6, T)
    gen = torch.Generator().manual_seed(5)
    w, b = torch.randn(16, generator=gen), torch.randn((), generator=gen)
    positions = [5, 8]
    name = "blocks.1.hook_resid_post"
    before = capture(model, ids, name)[name]
    assert (before[:, positions] @ w + b).abs().min() > 1e-3  # the probe logit is not 0 already

    seen = []
    logits = model(ids, {name: projection_hook(w, b, positions, seen)})
    for p, x in seen:
        torch.testing.assert_close(x @ w + b, torch.zeros(6), rtol=0, atol=1e-4)
    assert sorted(p for p, _ in seen) == positions
    base = model(ids)
    torch.testing.assert_close(logits[:, :5], base[:, :5], rtol=0, atol=1e-6)
    assert not torch.allclose(logits[:, 5], base[:, 5])  # the edit reaches the output
    assert not torch.allclose(logits[:, 6:], base[:, 6:])  # and later positions
    # a capture after the edited block sees the edited stream only from position 5 on
    after = {}
    hooks = {name: projection_hook(w, b, positions),
             "blocks.2.hook_resid_post": lambda x, s: after.setdefault("x", x.clone())}
    model(ids, hooks)
    full_after = capture(model, ids, "blocks.2.hook_resid_post")["blocks.2.hook_resid_post"]
    torch.testing.assert_close(after["x"][:, :5], full_after[:, :5], rtol=0, atol=1e-6)


# -- losses and exact match --------------------------------------------------------------------

def test_masked_losses_match_an_independent_computation():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 6, V, generator=gen)
    ids = torch.randint(0, V, (4, 6), generator=gen)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1],
                         [1, 1, 1, 1, 1, 1]])  # ragged: 3, 5, 2 and 5 scored targets
    lp = torch.log_softmax(logits.double(), -1).numpy()
    per_row, flat = [], []
    for r in range(4):
        terms = [-lp[r, j, ids[r, j + 1]] for j in range(5) if mask[r, j + 1] == 1]
        per_row.append(np.mean(terms))
        flat += terms
    assert masked_loss(logits, ids, mask).item() == pytest.approx(np.mean(flat), rel=1e-5)
    np.testing.assert_allclose(masked_loss_per_example(logits, ids, mask).numpy(), per_row,
                               rtol=1e-5)
    targets = masked_targets(ids, mask)
    assert targets.shape == (4, 5) and int((targets != IGNORE).sum()) == len(flat)
    with pytest.raises(ValueError, match="no scored"):
        masked_loss_per_example(logits, ids, torch.zeros_like(mask))


def test_exact_match_looks_at_masked_positions_only():
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0]])
    gen = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 0], [9, 9, 3, 0]])
    assert exact_match(gen, ids, mask).tolist() == [True, False, True]


# -- greedy decoding ---------------------------------------------------------------------------

def naive_greedy(model, ids, eq_pos, hooks=None):
    """Full recomputation of the whole prefix for every new token (the reference's way)."""
    out = ids.clone()
    eq = torch.as_tensor(eq_pos)
    with torch.no_grad():
        for pos in range(int(eq.min()), ids.shape[1]):
            guess = model(out[:, :pos], hooks)[:, -1].argmax(-1)
            out[:, pos] = torch.where(pos < eq, ids[:, pos], guess)
    return out


@pytest.mark.parametrize("eq_pos", [[6, 6, 6, 6, 6], [3, 9, 6, 1, 11]])
@pytest.mark.parametrize("intervene", [False, True])
def test_cached_greedy_decode_equals_full_recompute(eq_pos, intervene):
    model = make_model(layers=2, seed=7, gain=3.0)
    ids = random_ids(5, T, seed=8)
    hooks = None
    if intervene:
        gen = torch.Generator().manual_seed(9)
        hooks = {"blocks.0.hook_resid_post": projection_hook(
            torch.randn(16, generator=gen), torch.tensor(0.3), [2, 7, 10])}
    cached = greedy_decode(model, ids, eq_pos, hooks)
    naive = naive_greedy(model, ids, eq_pos, hooks)
    assert torch.equal(cached, naive)
    assert len(torch.unique(cached[:, 6:])) > 2  # the model generates varied tokens
    for r, e in enumerate(eq_pos):
        assert torch.equal(cached[r, :e], ids[r, :e])  # the prompt is kept
    if intervene:  # the intervention changes what is generated (so it was applied)
        assert not torch.equal(cached, greedy_decode(model, ids, eq_pos))


def test_decode_hooks_see_every_new_position_once_with_its_start():
    model = make_model()
    ids = random_ids(3, T)
    starts = []

    def record(x, start):
        starts.append((start, x.shape[1]))

    greedy_decode(model, ids, [4, 6, 5], {"blocks.1.hook_resid_post": record})
    assert starts[0] == (0, 4)  # prefill up to the smallest '=' position
    assert starts[1:] == [(p, 1) for p in range(4, T - 1)]


def test_greedy_decode_rejects_bad_eq_positions():
    model = make_model()
    ids = random_ids(2, T)
    with pytest.raises(ValueError):
        greedy_decode(model, ids, [-1, 3])
    with pytest.raises(ValueError):
        greedy_decode(model, ids, [3, T + 1])
    with pytest.raises(ValueError):
        greedy_decode(model, ids, [3, 3, 3])


def test_a_row_that_starts_with_eq_is_decoded_from_its_eq():
    """eq_pos 0 (an empty input, e.g. the edgeless graph): the '=' is given, as a prompt of one."""
    model = make_model()
    ids = random_ids(2, T)
    assert torch.equal(greedy_decode(model, ids, [0, 4])[0], greedy_decode(model, ids, [1, 4])[0])
    assert torch.equal(greedy_decode(model, ids, [0, 4])[0, :1], ids[0, :1])


def test_given_positions_are_fed_from_the_data_not_generated():
    """A second segment's prompt (repeated_addition) is teacher-forced: `given` positions are the
    data's tokens, and what follows them is decoded from those tokens."""
    model = make_model()
    ids = random_ids(3, T)
    given = torch.zeros(3, T, dtype=torch.bool)
    given[:, 7:9] = True
    out = greedy_decode(model, ids, [4, 4, 4], given=given)
    assert torch.equal(out[:, 7:9], ids[:, 7:9]) and torch.equal(out[:, :4], ids[:, :4])
    free = greedy_decode(model, ids, [4, 4, 4])
    assert torch.equal(out[:, :7], free[:, :7])  # before the given span nothing changes
    assert torch.equal(greedy_decode(model, ids, [9, 9, 9])[:, 9], out[:, 9])


def test_greedy_decode_runs_under_bf16_autocast():
    model = make_model()
    ids = random_ids(3, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = greedy_decode(model, ids, [5, 5, 7])
    assert out.shape == ids.shape and torch.equal(out[:, :5], ids[:, :5])
