"""Notebook 00's checks: a block's parameters and the memory to generate for a batch, counted from args alone.
Each passes a right answer written from the shapes, names each classic mistake, and never crashes."""

import pytest
import torch

from mistral_mini import Transformer
from mistral_mini.lessons import exercises as ex
from mistral_mini.memory import memory_plan
from mistral_mini.transformer import TransformerBlock
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might
# ---------------------------------------------------------------------------------------------------------


def block_parameters(args):
    q_and_o = 2 * args.dim * (args.n_heads * args.head_dim)
    k_and_v = 2 * args.dim * (args.n_kv_heads * args.head_dim)
    return q_and_o + k_and_v + 3 * args.dim * args.hidden_dim + 2 * args.dim


def model_parameters(args, block=block_parameters):
    return args.n_layers * block(args) + 2 * args.vocab_size * args.dim + args.dim


def cache_values(args, heads=None):
    return 2 * args.n_layers * args.sliding_window * (heads or args.n_kv_heads) * args.head_dim


def memory_needed(args, dtype, batch_size):
    itemsize = torch.tensor([], dtype=dtype).element_size()
    return (model_parameters(args) + batch_size * cache_values(args)) * itemsize


def test_right_answers_pass(capsys):
    assert_check_passes(ex.check_block_parameters, block_parameters, capsys)
    assert_check_passes(ex.check_memory_needed, memory_needed, capsys)


# ---------------------------------------------------------------------------------------------------------
# block_parameters: each classic mistake is named
# ---------------------------------------------------------------------------------------------------------


def test_forgetting_the_norms(capsys):
    assert_check_fails(ex.check_block_parameters, lambda a: block_parameters(a) - 2 * a.dim,
                       ["off by -8,192", "mistake: the two RMSNorm weight vectors"], capsys)


def test_one_norm_only(capsys):
    assert_check_fails(ex.check_block_parameters, lambda a: block_parameters(a) - a.dim,
                       ["mistake: only one RMSNorm counted"], capsys)


def test_wk_wv_counted_with_n_heads(capsys):
    def with_query_heads(a):
        return 4 * a.dim * a.n_heads * a.head_dim + 3 * a.dim * a.hidden_dim + 2 * a.dim

    assert_check_fails(ex.check_block_parameters, with_query_heads,
                       ["mistake: wk and wv counted with n_heads", "3 of 4 cases differ"], capsys)


def test_wq_wo_as_dim_by_dim_used_to_pass_and_now_fails(capsys):
    # Every configuration of the old check had n_heads * head_dim == dim, so this wrong answer passed.
    def square_q(a):
        return 2 * a.dim * a.dim + 2 * a.dim * a.n_kv_heads * a.head_dim + 3 * a.dim * a.hidden_dim + 2 * a.dim

    assert_check_fails(ex.check_block_parameters, square_q,
                       ["on a model with wide heads", "mistake: wq and wo counted as dim x dim"], capsys)


def test_two_feed_forward_matrices(capsys):
    assert_check_fails(ex.check_block_parameters, lambda a: block_parameters(a) - a.dim * a.hidden_dim,
                       ["mistake: the feed-forward has three matrices"], capsys)


def test_building_the_block_is_switched_off(capsys):
    def counted_on_meta(a):
        with torch.device("meta"):
            return sum(p.numel() for p in TransformerBlock(a).parameters())

    assert_check_fails(ex.check_block_parameters, counted_on_meta,
                       ["rules out", "mistral_mini.transformer.TransformerBlock is switched off"], capsys)
    # ... and switched back on afterwards
    with torch.device("meta"):
        assert isinstance(Transformer(ex.nb00_welcome.CONFIGS["the tiny preset"]), Transformer)


def test_an_unknown_mistake_gets_the_hint(capsys):
    status, out = verdict(ex.check_block_parameters, lambda a: block_parameters(a) + 1, capsys)
    assert status == "fail" and "hint: count each weight" in out and "mistake" not in out


@pytest.mark.parametrize("wrong, says", [
    (lambda a: "lots", "expected one number, got str 'lots'"),
    (lambda a: [1, 2], "expected one number, got a list of 2 items"),
    (lambda a: float(block_parameters(a)) + 0.5, "expected a whole number"),
    (lambda a: a.dim / 0, "your code raised ZeroDivisionError"),
])
def test_wrong_types_are_reported(wrong, says, capsys):
    assert_check_fails(ex.check_block_parameters, wrong, [says], capsys)


def test_a_whole_float_or_a_tensor_is_accepted(capsys):
    assert_check_passes(ex.check_block_parameters, lambda a: float(block_parameters(a)), capsys)
    assert_check_passes(ex.check_block_parameters, lambda a: torch.tensor(block_parameters(a)), capsys)


# ---------------------------------------------------------------------------------------------------------
# memory_needed: each classic mistake is named
# ---------------------------------------------------------------------------------------------------------


def _bytes(args, dtype, n_values):
    return n_values * torch.tensor([], dtype=dtype).element_size()


MEMORY_MISTAKES = {
    "weights once per sequence": (
        lambda a, d, b: _bytes(a, d, b * (model_parameters(a) + cache_values(a))),
        "mistake: the weights are counted once per sequence"),
    "no cache": (
        lambda a, d, b: _bytes(a, d, model_parameters(a)), "mistake: the rolling KV cache is missing"),
    "keys only": (
        lambda a, d, b: _bytes(a, d, model_parameters(a) + b * cache_values(a) // 2),
        "mistake: the cache holds keys only"),
    "cache with query heads": (
        lambda a, d, b: _bytes(a, d, model_parameters(a) + b * cache_values(a, heads=a.n_heads)),
        "mistake: the cache counted with n_heads"),
    "no output projection": (
        lambda a, d, b: _bytes(a, d, model_parameters(a) - a.vocab_size * a.dim + b * cache_values(a)),
        "mistake: the output projection is missing"),
    "two bytes always": (
        lambda a, d, b: 2 * (model_parameters(a) + b * cache_values(a)),
        "mistake: the bytes per value ignore dtype"),
}


@pytest.mark.parametrize("name", MEMORY_MISTAKES)
def test_memory_mistake_is_named(name, capsys):
    wrong, says = MEMORY_MISTAKES[name]
    assert_check_fails(ex.check_memory_needed, wrong, [says], capsys)


def test_memory_with_forgotten_final_norm_gets_the_hint(capsys):
    # Off by dim values: no named mistake explains it, so the hint (which names no formula) is printed.
    wrong = lambda a, d, b: memory_needed(a, d, b) - _bytes(a, d, a.dim)  # noqa: E731
    assert_check_fails(ex.check_memory_needed, wrong, ["4 of 4 cases differ", "hint: list what is stored"],
                       capsys)


def test_memory_plan_is_switched_off(capsys):
    assert_check_fails(ex.check_memory_needed, lambda a, d, b: memory_plan(a, d, batch_size=b).total_bytes,
                       ["mistral_mini.memory.memory_plan is switched off"], capsys)


def test_memory_wrong_type(capsys):
    assert_check_fails(ex.check_memory_needed, lambda a, d, b: torch.zeros(2),
                       ["expected one number, got a torch.Tensor of shape (2,)"], capsys)


def test_not_a_function(capsys):
    assert_check_fails(ex.check_memory_needed, 42, ["expected a function, got int 42"], capsys)
