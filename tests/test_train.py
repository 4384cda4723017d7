"""train.py: the loss falls on a learnable task, the run is reproducible, ignored targets teach nothing."""

import itertools

import pytest
import torch

from mistral_mini.train import IGNORE, lr_at, next_token_loss, train
from tests.helpers import random_model, small_args

ARGS = small_args(dim=32, n_layers=1, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2, vocab_size=12,
                  sliding_window=4)


def copy_task(distance: int, seed: int = 0, batch: int = 16, length: int = 16):
    """Random tokens; the target at position t is the input at t - distance (nothing before that)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        inputs = torch.randint(0, ARGS.vocab_size, (batch, length), generator=generator)
        targets = torch.full_like(inputs, IGNORE)
        targets[:, distance:] = inputs[:, :-distance]
        yield inputs, targets


def test_the_loss_falls_on_a_task_inside_the_window():
    model = random_model(ARGS)
    losses = train(model, copy_task(distance=2), steps=150, warmup=10)
    assert len(losses) == 150
    assert losses[0] > 2.0  # about ln(12) = 2.48: a guess
    assert sum(losses[-10:]) / 10 < 0.3 * losses[0]
    assert not model.training  # left in eval mode


def test_same_seed_same_data_same_losses():
    runs = [train(random_model(ARGS), copy_task(2), steps=20, warmup=5, seed=3) for _ in range(2)]
    assert runs[0] == runs[1]
    other_data = train(random_model(ARGS), copy_task(2, seed=1), steps=20, warmup=5, seed=3)
    assert other_data != runs[0]


def test_training_leaves_the_global_seed_alone():
    model = random_model(ARGS)  # it seeds torch itself
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train(model, copy_task(2), steps=2, warmup=0)
    assert torch.equal(torch.rand(3), expected)


def test_ignored_targets_carry_no_gradient():
    logits = torch.randn(2, 5, ARGS.vocab_size, requires_grad=True)
    inputs = torch.zeros(2, 5, dtype=torch.long)
    targets = torch.tensor([[IGNORE, 3, IGNORE, 1, 0], [IGNORE, IGNORE, 2, 2, IGNORE]])
    loss = next_token_loss(lambda _: logits, inputs, targets)
    loss.backward()
    ignored = targets == IGNORE
    assert (logits.grad[ignored] == 0).all() and (logits.grad[~ignored].abs().sum(-1) > 0).all()
    kept = torch.log_softmax(logits.detach(), -1)[~ignored].gather(-1, targets[~ignored][:, None])
    torch.testing.assert_close(loss.detach(), -kept.mean())  # the mean over the kept positions only


def test_warmup_then_cosine_down_to_a_tenth():
    rates = [lr_at(step, 100, 1.0, 10) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert rates[-1] == pytest.approx(0.1)


def test_batches_that_run_out_say_so():
    batches = itertools.islice(copy_task(2), 3)
    with pytest.raises(ValueError, match="batches ran out after 3 of 5 steps"):
        train(random_model(ARGS), batches, steps=5)


@pytest.mark.parametrize("batch, message", [
    ((torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)), "one shape"),
    ((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)), "long tensors"),
    (([1, 2], [2, 3]), "must be tensors"),
    ((torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), IGNORE)), "nothing to learn"),
])
def test_bad_batches(batch, message):
    with pytest.raises(ValueError, match=message):
        train(random_model(ARGS), [batch], steps=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps must be a positive integer"),
    (dict(steps=2.5), "steps must be a positive integer"),
    (dict(lr=0), "lr must be a positive number"),
    (dict(lr=float("nan")), "lr must be a positive number"),
    (dict(warmup=-1), "warmup must be an integer >= 0"),
    (dict(weight_decay=-0.1), "weight_decay must be a number >= 0"),
    (dict(grad_clip=0), "grad_clip must be a positive number or None"),
    (dict(seed=None), "seed must be an integer"),
])
def test_bad_arguments(kwargs, message):
    arguments = {"steps": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        train(random_model(ARGS), copy_task(2), **arguments)
