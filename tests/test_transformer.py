import pytest
import torch

from mistral_mini import ModelArgs, Transformer
from tests.helpers import hf_reference, random_model, relative_error, small_args

CONFIGS = {
    "mha (gqa 1)": small_args(n_heads=4, n_kv_heads=4),
    "gqa 2": small_args(n_heads=4, n_kv_heads=2),
    "gqa 4": small_args(n_heads=8, n_kv_heads=2, head_dim=8),
    "rope_theta 1e6": small_args(rope_theta=1e6, n_layers=3),
    "window 1": small_args(sliding_window=1),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seq_len", [5, 8, 70])
def test_matches_transformers_mistral(name, seq_len):
    args = CONFIGS[name]
    model = random_model(args, seed=seq_len)
    tokens = torch.randint(0, args.vocab_size, (2, seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf_reference(model)(tokens).logits
    assert ours.shape == (2, seq_len, args.vocab_size) and ours.dtype == torch.float32
    assert relative_error(ours, theirs) < 1e-4


def test_long_sequence_many_blocks_matches_transformers():
    """Far longer than both the window and a query block, with a window that does not divide either."""
    args = small_args(sliding_window=37, n_heads=8, n_kv_heads=2, head_dim=8)
    model = random_model(args, seed=3)
    tokens = torch.randint(0, args.vocab_size, (1, 600), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert relative_error(model(tokens), hf_reference(model)(tokens).logits) < 1e-4


def test_window_changes_the_output_only_past_the_window():
    args = small_args(sliding_window=6)
    windowed = random_model(args)
    full = Transformer(small_args(sliding_window=1000)).eval()
    full.load_state_dict(windowed.state_dict())
    tokens = torch.randint(0, args.vocab_size, (1, 20))
    with torch.no_grad():
        a, b = windowed(tokens), full(tokens)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().amax(-1).min() > 1e-3


def test_last_only_returns_the_last_position():
    model = random_model(small_args())
    tokens = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, last_only=True), model(tokens)[:, -1:])


def test_mistral_7b_on_meta_has_the_published_parameter_count():
    with torch.device("meta"):
        model = Transformer(ModelArgs.from_name("mistral-7b"))
    assert sum(p.numel() for p in model.parameters()) == 7_241_732_096
    assert model(torch.zeros(1, 3, dtype=torch.long, device="meta")).shape == (1, 3, 32000)


def test_parameter_names_are_mistral_checkpoint_keys():
    names = set(random_model(small_args(n_layers=1)).state_dict())
    assert names == {
        "tok_embeddings.weight", "norm.weight", "output.weight",
        *(f"layers.0.{n}.weight" for n in ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                                           "feed_forward.w1", "feed_forward.w2", "feed_forward.w3",
                                           "attention_norm", "ffn_norm")),
    }


@pytest.mark.parametrize("tokens, message", [
    (torch.zeros(1, 4), "integer ids"),
    (torch.zeros(4, dtype=torch.long), "2-D"),
    (torch.zeros(1, 0, dtype=torch.long), "at least one token"),
    (torch.tensor([[1, 2, 100]]), "outside the vocabulary"),
    (torch.tensor([[1, -1]]), "outside the vocabulary"),
])
def test_bad_tokens_are_rejected_clearly(tiny_model, tokens, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(tokens)
