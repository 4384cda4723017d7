"""Shared helpers: small random models, transformers' Mistral built from the same weights, exercise verdicts."""

import torch

from mistral_mini import ModelArgs, Transformer
from mistral_mini.hf import to_transformers
from mistral_mini.lessons.exercises import ExerciseFailed, ExerciseNotDone


def small_args(**overrides) -> ModelArgs:
    base = dict(dim=64, n_layers=2, head_dim=16, hidden_dim=96, n_heads=4, n_kv_heads=2, norm_eps=1e-5,
                vocab_size=97, sliding_window=8, rope_theta=10000.0)
    return ModelArgs(**{**base, **overrides})


def random_model(args: ModelArgs, seed: int = 0, dtype: torch.dtype = torch.float32) -> Transformer:
    """A model whose every weight, norms included, is random, so no parameter can hide behind a default."""
    torch.manual_seed(seed)
    model = Transformer(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.5 if "tok_embeddings" in name else 1 / p.shape[-1] ** 0.5)
    return model.to(dtype).eval()


def hf_reference(model: Transformer, attn_implementation: str = "eager"):
    """transformers' MistralForCausalLM holding exactly ``model``'s weights."""
    return to_transformers(model, attn_implementation)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


def verdict(check, answer, capsys) -> tuple[str, str]:
    """Run an exercise check on ``answer``: ("pass" | "fail" | "not done", what it printed).

    Also asserts the protocol every check follows: PASS returns None, a failure prints its report and then
    raises ExerciseFailed carrying that same report (ExerciseNotDone for a NotImplementedError).
    """
    try:
        result = check(answer)
    except ExerciseNotDone as err:
        out = capsys.readouterr().out
        assert out.startswith("NOT DONE: ") and out.strip() == err.report, out
        return "not done", out
    except ExerciseFailed as err:
        out = capsys.readouterr().out
        assert out.startswith("FAIL: ") and out.strip() == err.report, out
        return "fail", out
    out = capsys.readouterr().out
    assert result is None and out.startswith("PASS: "), out
    return "pass", out


def assert_check_passes(check, right, capsys) -> None:
    status, out = verdict(check, right, capsys)
    assert status == "pass", out


def assert_check_fails(check, wrong, expected_lines: list[str], capsys) -> None:
    """An exercise check given a wrong answer fails (raises ExerciseFailed) and prints each of ``expected_lines``."""
    status, out = verdict(check, wrong, capsys)
    assert status == "fail", out
    for line in expected_lines:
        assert line in out, f"{line!r} not in:\n{out}"


def assert_mistake_named(check, wrong, says: str, capsys) -> None:
    """A wrong answer that makes a known mistake fails, and the report names that mistake in its own words."""
    assert_check_fails(check, wrong, ["mistake: " + says], capsys)


def assert_check_not_done(check, capsys) -> None:
    """A stub that raises NotImplementedError is reported as not done, whatever arguments the check passes."""
    def stub(*args, **kwargs):
        raise NotImplementedError()

    status, out = verdict(check, stub, capsys)
    assert status == "not done", out
