"""The checks of notebook 04: right answers pass, each classic mistake is named, nothing crashes on a wrong type."""

import numpy as np
import pytest
import torch

from mistral_mini import ModelArgs
from mistral_mini.lessons import exercises as ex
from tests.helpers import assert_check_fails, assert_check_passes, verdict

# ---------------------------------------------------------------------------------------------------------
# right answers, written without the package
# ---------------------------------------------------------------------------------------------------------


def repeat_kv_tokens_first(x, n_rep):
    return torch.stack([x[:, :, h // n_rep] for h in range(x.shape[2] * n_rep)], dim=2)


def tokens_that_fit(args, budget, batch, nbytes):
    return budget // (2 * args.n_layers * args.n_kv_heads * args.head_dim * nbytes * batch)


def folded_index(h, t, n_heads, n_kv_heads, n_tokens):
    n_rep = n_heads // n_kv_heads
    return h // n_rep, (h % n_rep) * n_tokens + t


def mean_pool_kv(w, n_heads, n_kv_heads):
    D, n_rep = w.shape[0] // n_heads, n_heads // n_kv_heads
    heads = [w[h * D:(h + 1) * D] for h in range(n_heads)]
    return torch.cat([sum(heads[g * n_rep:(g + 1) * n_rep]) / n_rep for g in range(n_kv_heads)])


CHECKS = [(ex.check_repeat_kv_tokens_first, repeat_kv_tokens_first), (ex.check_tokens_that_fit, tokens_that_fit),
          (ex.check_folded_index, folded_index), (ex.check_mean_pool_kv, mean_pool_kv)]
IDS = [check.__name__ for check, _ in CHECKS]


@pytest.mark.parametrize("check, right", CHECKS, ids=IDS)
def test_right_answer_passes(check, right, capsys):
    assert_check_passes(check, right, capsys)


@pytest.mark.parametrize("check, wrong, says", [
    (ex.check_repeat_kv_tokens_first, lambda x, n: x.numpy(), "got a numpy.ndarray"),
    (ex.check_repeat_kv_tokens_first, lambda x, n: repeat_kv_tokens_first(x, n).tolist(), "got a list"),
    (ex.check_tokens_that_fit, lambda a, b, n, v: [tokens_that_fit(a, b, n, v)], "expected one number, got a list"),
    (ex.check_tokens_that_fit, lambda a, b, n, v: str(tokens_that_fit(a, b, n, v)), "expected one number, got str"),
    (ex.check_folded_index, lambda h, t, H, Hkv, T: folded_index(h, t, H, Hkv, T)[0], "expected a list or tuple"),
    (ex.check_folded_index, lambda h, t, H, Hkv, T: np.array(folded_index(h, t, H, Hkv, T)) + 1,
     "first wrong position [0]"),
    (ex.check_mean_pool_kv, lambda w, H, Hkv: mean_pool_kv(w, H, Hkv).numpy(), "got a numpy.ndarray"),
    (ex.check_mean_pool_kv, lambda w, H, Hkv: mean_pool_kv(w.numpy(), H, Hkv), "your code raised"),
], ids=["repeat numpy", "repeat list", "tokens list", "tokens str", "index int", "index numpy", "pool numpy",
        "pool raises"])
def test_wrong_types_fail_with_a_message(check, wrong, says, capsys):
    assert_check_fails(check, wrong, [says], capsys)


@pytest.mark.parametrize("check, other_type", [
    (ex.check_tokens_that_fit, lambda a, b, n, v: np.int64(tokens_that_fit(a, b, n, v))),
    (ex.check_tokens_that_fit, lambda a, b, n, v: torch.tensor(tokens_that_fit(a, b, n, v))),
    (ex.check_folded_index, lambda h, t, H, Hkv, T: np.array(folded_index(h, t, H, Hkv, T))),
    (ex.check_folded_index, lambda h, t, H, Hkv, T: list(folded_index(h, t, H, Hkv, T))),
    (ex.check_folded_index, lambda h, t, H, Hkv, T: torch.tensor(folded_index(h, t, H, Hkv, T))),
], ids=["tokens numpy", "tokens tensor", "index numpy", "index list", "index tensor"])
def test_right_numbers_in_another_container_pass(check, other_type, capsys):
    """The old kv_head_of check crashed on a numpy answer; numbers are numbers, whatever holds them."""
    assert_check_passes(check, other_type, capsys)


# ---------------------------------------------------------------------------------------------------------
# repeat_kv in [B, T, Hkv, D]
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda x, n: x.repeat(1, 1, n, 1), "wrong repeat order"),
    (lambda x, n: x[:, :, None].expand(-1, -1, n, -1, -1).flatten(2, 3), "wrong repeat order"),
    (lambda x, n: x.repeat_interleave(n, dim=1), "you repeated the tokens"),
    (lambda x, n: repeat_kv_tokens_first(x, n).transpose(1, 2), "heads-first"),
], ids=["tiled", "new axis before the heads", "token axis", "heads first"])
def test_repeat_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_repeat_kv_tokens_first, wrong, [says, "mistake: "], capsys)


def test_the_tiled_order_is_right_only_for_mqa_and_mha():
    x = torch.randn(1, 3, 2, 4)
    assert not torch.equal(x.repeat(1, 1, 2, 1), repeat_kv_tokens_first(x, 2))  # GQA: the orders differ
    for x, n_rep in [(torch.randn(1, 3, 1, 4), 4), (torch.randn(1, 3, 4, 4), 1)]:  # MQA, MHA
        assert torch.equal(x.repeat(1, 1, n_rep, 1), repeat_kv_tokens_first(x, n_rep))


# ---------------------------------------------------------------------------------------------------------
# tokens that fit a budget
# ---------------------------------------------------------------------------------------------------------


def per_token(args, nbytes, kv_heads=None, kv=2, layers=True):
    return kv * (args.n_layers if layers else 1) * (kv_heads or args.n_kv_heads) * args.head_dim * nbytes


@pytest.mark.parametrize("wrong, says", [
    (lambda a, b, n, v: b // (per_token(a, v, kv_heads=a.n_heads) * n), "kv bytes with query heads"),
    (lambda a, b, n, v: b // (per_token(a, v, kv=1) * n), "keys only"),
    (lambda a, b, n, v: b // (per_token(a, v, layers=False) * n), "one layer only"),
    (lambda a, b, n, v: b // per_token(a, v), "the batch is missing"),
    (lambda a, b, n, v: b / (per_token(a, v) * n), "round down to whole tokens"),
    (lambda a, b, n, v: round(b / (per_token(a, v) * n)), "not to the nearest"),
], ids=["query heads", "keys only", "one layer", "no batch", "fraction", "rounded"])
def test_budget_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_tokens_that_fit, wrong, [says, "mistake: "], capsys)


def test_the_budget_answers_of_the_notebook():
    seven_b = ModelArgs.from_name("mistral-7b")
    as_mha = ModelArgs(**{**seven_b.to_dict(), "n_kv_heads": seven_b.n_heads})
    assert tokens_that_fit(seven_b, 10**10, 8, 2) == 9_536 and tokens_that_fit(as_mha, 10**10, 8, 2) == 2_384
    window = [per_token(a, 2) * a.sliding_window for a in (seven_b, as_mha)]
    assert window == [512 * 2**20, 2 * 2**30]
    assert [10**10 // w for w in window] == [18, 4]


# ---------------------------------------------------------------------------------------------------------
# where the fold puts a query
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda h, t, H, Hkv, T: (h % Hkv, h // Hkv * T + t), "kv head taking turns"),
    (lambda h, t, H, Hkv, T: (h % Hkv, folded_index(h, t, H, Hkv, T)[1]), "kv head taking turns"),
    (lambda h, t, H, Hkv, T: (h // (H // Hkv), t * (H // Hkv) + h % (H // Hkv)), "token by token"),
    (lambda h, t, H, Hkv, T: (h // (H // Hkv), h * T + t), "restarts at 0 in every group"),
    (lambda h, t, H, Hkv, T: folded_index(h, t, H, Hkv, T)[::-1], "(row, group)"),
], ids=["turns", "turns, right row", "token-major", "global row", "swapped"])
def test_fold_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_folded_index, wrong, [says, "mistake: "], capsys)


def test_heads_that_take_turns_need_a_copy_to_fold():
    B, H, Hkv, T, D = 1, 8, 2, 3, 4
    q = torch.randn(B, H, T, D)
    turns = q.view(B, H // Hkv, Hkv, T, D).transpose(1, 2).reshape(B, Hkv, H // Hkv * T, D)  # copies
    for h in range(H):  # group g now holds query heads g, g + Hkv, ...
        assert torch.equal(turns[:, h % Hkv, (h // Hkv) * T:(h // Hkv + 1) * T], q[:, h])


# ---------------------------------------------------------------------------------------------------------
# mean pooling
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong, says", [
    (lambda w, H, Hkv: torch.stack([w.view(H, -1, w.shape[1])[g::Hkv].mean(0) for g in range(Hkv)]).flatten(0, 1),
     "kv head taking turns"),
    (lambda w, H, Hkv: w.view(H, -1, w.shape[1])[::H // Hkv].flatten(0, 1), "kept the first head"),
    (lambda w, H, Hkv: mean_pool_kv(w, H, Hkv) * (H // Hkv), "you summed"),
    (lambda w, H, Hkv: w.view(-1, Hkv, H // Hkv, w.shape[1]).mean(2).flatten(0, 1), "feature by feature"),
    (lambda w, H, Hkv: mean_pool_kv(w, H, Hkv).view(Hkv, -1, w.shape[1]), "[Hkv, D, dim]"),
], ids=["turns", "first head", "sum", "feature-major", "unflattened"])
def test_pooling_mistakes_are_named(wrong, says, capsys):
    assert_check_fails(ex.check_mean_pool_kv, wrong, [says, "mistake: "], capsys)


def test_a_pass_prints_what_the_conversion_costs(capsys):
    out = verdict(ex.check_mean_pool_kv, mean_pool_kv, capsys)[1]
    mean, first = ([float(v) for v in line.split()[-5:]] for line in out.splitlines()[-2:])
    assert mean[0] == first[0] == 0.0  # identical heads in a group: both conversions exact
    assert all(m < f for m, f in zip(mean[1:], first[1:], strict=True))  # averaging always loses less
    assert mean == sorted(mean) and first == sorted(first)  # the more the heads differ, the more it costs
    assert (mean[1], first[1], mean[-1], first[-1]) == (0.261, 0.373, 0.905, 1.224)  # the notebook's answer


def test_a_measurement_that_fails_does_not_fail_the_check(capsys):
    def only_small(w, H, Hkv):
        if w.shape[1] > 16:
            raise ValueError("too wide")
        return mean_pool_kv(w, H, Hkv)

    threads = torch.get_num_threads()
    status, out = verdict(ex.check_mean_pool_kv, only_small, capsys)
    assert status == "pass" and "could not be measured: ValueError: too wide" in out
    assert torch.get_num_threads() == threads  # the measurement's single thread is given back
