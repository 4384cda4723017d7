import pytest
import torch

from mistral_mini.masks import sliding_window_mask
from mistral_mini.receptive_field import (
    measured_receptive_field,
    reach,
    receptive_field_mask,
)
from tests.helpers import random_model, small_args


def test_reach_of_mistral_7b_counts_w_minus_one_per_layer():
    assert reach(1, 4096) == 4095
    assert reach(32, 4096) == 131_040  # a span of 131,041 tokens, not the paper's 32 * 4096 = 131,072
    assert reach(0, 8) == 0 and reach(5, 1) == 0


@pytest.mark.parametrize("n_layers, window", [(1, 1), (1, 5), (2, 3), (3, 4), (5, 2)])
def test_reach_is_how_far_back_stacked_windows_go(n_layers, window):
    # Independent of receptive_field_mask: compose the one-layer mask of masks.py n_layers times.
    T = n_layers * window + 3
    positions = torch.arange(T)
    one_layer = sliding_window_mask(positions, positions, window).long()
    field = torch.linalg.matrix_power(one_layer, n_layers) > 0  # [T, T]: some chain of hops j -> i
    oldest = int(field[-1].nonzero().min())
    assert (T - 1) - oldest == reach(n_layers, window)


def test_reach_rejects_nonsense():
    with pytest.raises(ValueError, match="window >= 1"):
        reach(3, 0)
    with pytest.raises(ValueError, match="n_layers >= 0"):
        reach(-1, 4)


def test_analytic_mask_by_hand():
    # Two layers of W = 2: each layer one step back, so i sees i, i-1, i-2.
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(receptive_field_mask(5, 2, 2), expected)


def test_analytic_mask_is_the_boolean_power_of_one_layer():
    T, W = 20, 3
    one = receptive_field_mask(T, 1, W).float()
    composed = one
    for L in range(2, 6):
        composed = (composed @ one) > 0
        assert torch.equal(composed, receptive_field_mask(T, L, W)), L
        composed = composed.float()


@pytest.mark.parametrize("n_layers, window, seq_len", [(1, 3, 12), (2, 3, 16), (3, 4, 24), (2, 8, 8)])
def test_measured_equals_analytic(n_layers, window, seq_len):
    # (2, 8, 8) has T <= W: the model takes its plain causal path, and the field is the causal triangle.
    model = random_model(small_args(n_layers=n_layers, sliding_window=window))
    measured = measured_receptive_field(model, seq_len)
    assert measured.dtype == torch.bool and measured.shape == (seq_len, seq_len)
    assert torch.equal(measured, receptive_field_mask(seq_len, n_layers, window))


def test_measured_with_the_first_layers_only():
    model = random_model(small_args(n_layers=3, sliding_window=3))
    for n in (1, 2, 3):
        assert torch.equal(measured_receptive_field(model, 14, n_layers=n), receptive_field_mask(14, n, 3))


def test_measured_field_can_disagree_with_a_wrong_analysis():
    model = random_model(small_args(n_layers=2, sliding_window=4))
    measured = measured_receptive_field(model, 16)
    assert not torch.equal(measured, receptive_field_mask(16, 2, 5))  # W one too large
    assert not torch.equal(measured, receptive_field_mask(16, 1, 4))  # one layer too few


def test_forward_from_embeddings_matches_the_model():
    model = random_model(small_args(n_layers=2, sliding_window=4))
    tokens = torch.randint(0, model.args.vocab_size, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.forward_embeddings(model.tok_embeddings(tokens))
        torch.testing.assert_close(ours, model(tokens))


def test_measurement_leaves_the_global_seed_alone():
    model = random_model(small_args(n_layers=1, sliding_window=3))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    measured_receptive_field(model, 6)
    assert torch.equal(torch.rand(3), expected)
