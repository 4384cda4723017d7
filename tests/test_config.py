import json

import pytest

from mistral_mini import ModelArgs
from mistral_mini.config import NO_WINDOW_CONTEXT

MISTRAL_7B_PARAMS = {"dim": 4096, "n_layers": 32, "head_dim": 128, "hidden_dim": 14336, "n_heads": 32,
                     "n_kv_heads": 8, "norm_eps": 1e-05, "sliding_window": 4096, "vocab_size": 32000}


def test_mistral_7b_preset_is_params_json_of_v0_1(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps(MISTRAL_7B_PARAMS))
    from_file = ModelArgs.from_params_json(tmp_path / "params.json")
    assert from_file == ModelArgs.from_name("mistral-7b")
    assert from_file.rope_theta == 10000.0  # absent from v0.1's params.json
    assert from_file.n_rep == 4


def test_unknown_keys_are_ignored_and_rope_theta_is_read(tmp_path):
    params = {**MISTRAL_7B_PARAMS, "rope_theta": 1e6, "moe": None, "max_batch_size": 3}
    (tmp_path / "params.json").write_text(json.dumps(params))
    assert ModelArgs.from_params_json(tmp_path / "params.json").rope_theta == 1e6


def test_null_or_missing_sliding_window_means_the_32k_context():
    v0_2 = {k: v for k, v in MISTRAL_7B_PARAMS.items() if k != "sliding_window"} | {"rope_theta": 1e6}
    assert ModelArgs.from_dict(v0_2).sliding_window == NO_WINDOW_CONTEXT
    assert ModelArgs.from_dict({**MISTRAL_7B_PARAMS, "sliding_window": None}).sliding_window == NO_WINDOW_CONTEXT


def test_round_trip_through_dict():
    args = ModelArgs.from_name("tiny")
    assert ModelArgs.from_dict(args.to_dict()) == args


@pytest.mark.parametrize("change, message", [
    (dict(n_kv_heads=3), "multiple of n_kv_heads"),
    (dict(head_dim=15), "head_dim must be even"),
    (dict(dim=0), "dim must be a positive integer"),
    (dict(sliding_window=-4), "sliding_window must be a positive integer"),
    (dict(n_layers=2.0), "n_layers must be a positive integer"),
    (dict(norm_eps=0), "norm_eps must be a positive number"),
])
def test_invalid_args_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        ModelArgs(**{**ModelArgs.from_name("tiny").to_dict(), **change})


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="mistral-7b"):
        ModelArgs.from_name("mistral-8x7b")


def test_params_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="params.json"):
        ModelArgs.from_params_json(tmp_path / "params.json")
    (tmp_path / "params.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelArgs.from_params_json(tmp_path / "params.json")
    (tmp_path / "params.json").write_text(json.dumps({"dim": 8, "n_layers": 2}))
    with pytest.raises(ValueError, match="missing"):
        ModelArgs.from_params_json(tmp_path / "params.json")
