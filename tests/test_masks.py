import torch

from mistral_mini.masks import causal_mask, sliding_window_mask


def test_window_is_zero_le_i_minus_j_lt_w():
    pos = torch.arange(10)
    mask = sliding_window_mask(pos, pos, 3)
    for i in range(10):
        for j in range(10):
            assert bool(mask[i, j]) == (0 <= i - j < 3)
    assert mask.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]  # W keys, the query itself included


def test_masks_follow_positions_not_indices():
    q = torch.tensor([10])
    slots = torch.tensor([8, 9, 10, 7])  # a rolling buffer's slots hold positions out of order
    assert sliding_window_mask(q, slots, 3).tolist() == [[True, True, True, False]]


def test_empty_slots_are_never_attended():
    assert causal_mask(torch.tensor([2]), torch.tensor([0, -1, 2, -1])).tolist() == [[True, False, True, False]]
    assert not sliding_window_mask(torch.tensor([0]), torch.tensor([-1]), 5).any()
