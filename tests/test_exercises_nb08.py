"""The checks of notebook 08 (the whole model): right answers pass, each usual mistake is named, forbidden
shortcuts and wrong types get a message instead of a traceback, and the wrong answers that used to pass now
fail."""

import pytest
import torch
import torch.nn.functional as F

from mistral_mini import ModelArgs, Transformer
from mistral_mini.hf import hf_name_to_mistral
from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes, verdict
from tests.helpers import assert_mistake_named as named

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might, without the package
# ---------------------------------------------------------------------------------------------------------


def swiglu_hf(x, gate_proj, up_proj, down_proj, act=F.silu, gated=True):
    hidden = act(x @ gate_proj.T) * (x @ up_proj.T) if gated else act(x @ gate_proj.T)
    return hidden @ down_proj.T


def parameter_count(a, norms=2, final_norm=1, outputs=2, kv_heads=None, q_width=None, ff_matrices=3):
    """Written out by component; the keyword switches reproduce the usual mistakes."""
    q_width = a.n_heads * a.head_dim if q_width is None else q_width
    kv_width = (a.n_kv_heads if kv_heads is None else kv_heads) * a.head_dim
    layer = 2 * a.dim * q_width + 2 * a.dim * kv_width + ff_matrices * a.dim * a.hidden_dim + norms * a.dim
    return outputs * a.vocab_size * a.dim + a.n_layers * layer + final_norm * a.dim


# Hugging Face's name pieces -> Mistral's, written out here rather than taken from mistral_mini.hf.
HF_PIECES = {"model.embed_tokens.": "tok_embeddings.", "model.norm.": "norm.", "lm_head.": "output.",
             "model.layers.": "layers.", "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
             "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
             "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
             "mlp.up_proj": "feed_forward.w3", "post_attention_layernorm": "ffn_norm",
             "input_layernorm": "attention_norm"}


def hf_to_mistral(name, **changed):
    for hf, ours in {**HF_PIECES, **changed}.items():
        name = name.replace(hf, ours)
    return name


def parallel_block(block, x, cos, sin):
    normed = block.attention_norm(x)
    return x + block.attention(normed, cos, sin) + block.feed_forward(normed)




@pytest.mark.parametrize("check, right", [
    (ex.check_swiglu_hf, swiglu_hf),
    (ex.check_swiglu_hf, lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d)),
    (ex.check_parameter_count, parameter_count),
    (ex.check_parameter_count, lambda a: float(parameter_count(a))),
    (ex.check_hf_name, hf_to_mistral),
    (ex.check_parallel_block, parallel_block),
], ids=lambda x: getattr(x, "__name__", ""))
def test_a_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


# ---------------------------------------------------------------------------------------------------------
# each mistake is named
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda x, g, u, d: swiglu_hf(x, u, g, d), "SiLU on the wrong branch"),
    (lambda x, g, u, d: swiglu_hf(x, g, u, d, act=lambda h: h), "the gate has no SiLU"),
    (lambda x, g, u, d: swiglu_hf(x, g, u, d, gated=False), "no gating"),
    (lambda x, g, u, d: swiglu_hf(x, g, u, d, act=torch.relu), "ReLU instead of SiLU"),
    (lambda x, g, u, d: swiglu_hf(x, g, u, d, act=F.gelu), "GELU instead of SiLU"),
    (lambda x, g, u, d: swiglu_hf(x, g, u, d, act=torch.sigmoid), "sigmoid instead of SiLU"),
])
def test_swiglu_hf_names_the_mistake(wrong, says, capsys):
    named(ex.check_swiglu_hf, wrong, says, capsys)


@pytest.mark.parametrize("wrong, says", [
    (lambda a: parameter_count(a, norms=0, final_norm=0), "the norms are missing"),
    (lambda a: parameter_count(a, final_norm=0), "the final norm is missing"),
    (lambda a: parameter_count(a, norms=0), "the norms inside the layers are missing"),
    (lambda a: parameter_count(a, norms=1), "one norm per layer"),
    (lambda a: parameter_count(a, outputs=1), "the output layer was counted once with the embeddings"),
    (lambda a: parameter_count(a, kv_heads=a.n_heads), "wk and wv counted with n_heads"),
    (lambda a: parameter_count(a, q_width=a.dim), "wq and wo counted as dim x dim"),
    (lambda a: parameter_count(a, ff_matrices=2), "two feed-forward matrices"),
])
def test_parameter_count_names_the_mistake(wrong, says, capsys):
    named(ex.check_parameter_count, wrong, says, capsys)


@pytest.mark.parametrize("changed, says", [
    ({"self_attn.k_proj": "attention.wv", "self_attn.v_proj": "attention.wk"}, "k_proj and v_proj mixed up"),
    ({"mlp.gate_proj": "feed_forward.w3", "mlp.up_proj": "feed_forward.w1"}, "gate_proj and up_proj mixed up"),
    ({"mlp.up_proj": "feed_forward.w2", "mlp.down_proj": "feed_forward.w3"},
     "w1, w2, w3 numbered in Hugging Face's order"),
    ({"post_attention_layernorm": "attention_norm", "input_layernorm": "ffn_norm"},
     "the two norms of a layer mixed up"),
])
def test_hf_name_names_the_mistake(changed, says, capsys):
    named(ex.check_hf_name, lambda name: hf_to_mistral(name, **changed), says, capsys)


def keeps_the_prefix(name):
    return ("model." if name.startswith("model.") else "") + hf_to_mistral(name)


def always_layer_zero(name):
    parts = hf_to_mistral(name).split(".")
    return ".".join(["layers", "0", *parts[2:]]) if parts[0] == "layers" else ".".join(parts)


@pytest.mark.parametrize("wrong, says", [
    (keeps_the_prefix, "the 'model.' prefix was kept"),
    (always_layer_zero, "the layer index was lost"),
])
def test_hf_name_names_a_prefix_or_index_mistake(wrong, says, capsys):
    named(ex.check_hf_name, wrong, says, capsys)


@pytest.mark.parametrize("wrong, says", [
    (lambda b, x, cos, sin: b(x, cos, sin), "that is Mistral's sequential block"),
    (lambda b, x, cos, sin: x + b.attention(b.attention_norm(x), cos, sin) + b.feed_forward(b.ffn_norm(x)),
     "the feed-forward read x through ffn_norm"),
    (lambda b, x, cos, sin: x + b.attention(b.attention_norm(x), cos, sin) + b.feed_forward(x),
     "the feed-forward read x unnormalized"),
    (lambda b, x, cos, sin: parallel_block(b, x, cos, sin) - x, "the residual is missing"),
    (lambda b, x, cos, sin: parallel_block(b, x, cos, sin) + x, "x was added twice"),
])
def test_parallel_block_names_the_mistake(wrong, says, capsys):
    named(ex.check_parallel_block, wrong, says, capsys)


# ---------------------------------------------------------------------------------------------------------
# the wrong answers that used to pass, the forbidden shortcuts, and the figure the notebook quotes
# ---------------------------------------------------------------------------------------------------------


def test_a_count_that_assumes_square_attention_fails(capsys):
    """The old cases all had n_heads * head_dim = dim, so counting wq and wo as dim x dim passed."""
    status, out = verdict(ex.check_parameter_count, lambda a: parameter_count(a, q_width=a.dim), capsys)
    assert status == "fail" and "on Mistral NeMo 12B" in out and "2 of 4 cases differ" in out, out


def test_a_count_that_ignores_kv_heads_fails_on_a_gqa_model(capsys):
    """The old cases included a model where n_kv_heads = n_heads; every case now shares key/value heads."""
    status, out = verdict(ex.check_parameter_count, lambda a: parameter_count(a, kv_heads=a.n_heads), capsys)
    assert status == "fail" and "4 of 4 cases differ" in out, out


def test_the_count_must_come_from_the_hyper_parameters(capsys):
    assert_check_fails(ex.check_parameter_count, lambda a: sum(p.numel() for p in Transformer(a).parameters()),
                       ["mistral_mini.transformer.Transformer is switched off"], capsys)
    assert Transformer.__name__ == "Transformer"  # restored once the check is over


def test_the_packages_name_map_is_switched_off(capsys):
    assert_check_fails(ex.check_hf_name, lambda name: hf_name_to_mistral(name),
                       ["mistral_mini.hf.hf_name_to_mistral is switched off"], capsys)


def test_nemo_count_quoted_in_the_notebook():
    """The notebook's answer to 'which component grows the most' quotes these numbers."""
    nemo = ModelArgs(dim=5120, n_layers=40, head_dim=128, hidden_dim=14336, n_heads=32, n_kv_heads=8,
                     norm_eps=1e-5, vocab_size=131072, sliding_window=32768, rope_theta=1e6)
    with torch.device("meta"):
        model = Transformer(nemo)
    count = {name: p.numel() for name, p in model.named_parameters()}
    assert sum(count.values()) == 12_247_782_400
    assert count["tok_embeddings.weight"] == count["output.weight"] == 671_088_640
    assert sum(n for name, n in count.items() if ".attention." in name) == 2_097_152_000
    assert sum(n for name, n in count.items() if ".feed_forward." in name) == 8_808_038_400
    assert tuple(model.layers[0].attention.wq.weight.shape) == (4096, 5120)


# ---------------------------------------------------------------------------------------------------------
# wrong types: a message, never a traceback
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_swiglu_hf, lambda x, g, u, d: swiglu_hf(x, g, u, d).tolist(), "expected a torch.Tensor of shape (5, 8)"),
    (ex.check_swiglu_hf, lambda x, g, u, d: swiglu_hf(x, g, d, u), "your code raised RuntimeError"),
    (ex.check_parameter_count, lambda a: parameter_count(a) + 0.5, "expected a whole number"),
    (ex.check_parameter_count, lambda a: [parameter_count(a)], "expected one number, got a list of 1 item"),
    (ex.check_parameter_count, lambda a: a.n_kv_head, "your code raised AttributeError"),
    (ex.check_hf_name, lambda name: name.split("."), "got ['model', 'embed_tokens', 'weight']"),
    (ex.check_hf_name, lambda name: None, "got None, expected 'tok_embeddings.weight'"),
    (ex.check_parallel_block, lambda b, x, cos, sin: parallel_block(b, x, cos, sin)[0],
     "shape: got (12, 64), expected (1, 12, 64)"),
    (ex.check_parallel_block, lambda b, x, cos, sin: b.attention(x), "your code raised TypeError"),
])
def test_a_wrong_type_gets_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)


@pytest.mark.parametrize("check, right", [(ex.check_swiglu_hf, swiglu_hf), (ex.check_parallel_block, parallel_block)])
def test_the_check_leaves_the_notebooks_random_state_alone(check, right, capsys):
    state = torch.random.get_rng_state()
    assert_check_passes(check, right, capsys)
    assert torch.equal(torch.random.get_rng_state(), state)
