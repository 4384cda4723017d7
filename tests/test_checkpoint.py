"""checkpoint.py: every layout loads to the same logits, saving round-trips, bad input fails clearly."""

import builtins
import dataclasses
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

from mistral_mini import ModelArgs, checkpoint
from mistral_mini.checkpoint import load_model, main, save_model
from mistral_mini.checkpoint_reader import CheckpointError
from mistral_mini.gpu import preflight
from mistral_mini.hf import mistral_state_dict_to_hf
from mistral_mini.memory import format_bytes, memory_plan
from mistral_mini.safetensors_format import write_safetensors
from tests.helpers import hf_reference, random_model, relative_error, small_args

TOKENS = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        out = model(TOKENS)
    return out.logits if hasattr(out, "logits") else out


def assert_same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name


# --- Writing each layout ----------------------------------------------------------------------------------

def write_hf_single(model, folder):
    hf_reference(model).save_pretrained(folder, safe_serialization=True)


def write_hf_sharded(model, folder):
    hf_reference(model).save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    shards = sorted(p.name for p in folder.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2, shards  # the point of this layout: several files and an index
    assert (folder / "model.safetensors.index.json").is_file()


def write_mistral_safetensors(model, folder):
    save_model(model, folder)


def write_mistral_pth(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "consolidated.00.pth")
    (folder / "params.json").write_text(json.dumps(model.args.to_dict()))


WRITERS = {"hf_single": write_hf_single, "hf_sharded": write_hf_sharded,
           "mistral_safetensors": write_mistral_safetensors, "mistral_pth": write_mistral_pth}


@pytest.fixture
def model():
    return random_model(small_args())


# --- Every layout gives the same model --------------------------------------------------------------------

@pytest.mark.parametrize("layout", WRITERS)
def test_every_layout_loads_to_the_same_logits(layout, model, tmp_path):
    WRITERS[layout](model, tmp_path / layout)
    loaded = load_model(tmp_path / layout, progress=False)
    assert not loaded.training
    assert loaded.args == model.args
    assert relative_error(logits(loaded), logits(model)) < 1e-5
    if layout.startswith("hf"):
        assert relative_error(logits(loaded), logits(hf_reference(model))) < 1e-5
    assert_same_weights(loaded, model)  # names mapped and q/k rows un-permuted exactly


@pytest.mark.parametrize("layout", ["hf_sharded", "mistral_safetensors", "mistral_pth"])
def test_bf16_checkpoint_stays_bf16(layout, tmp_path):
    model = random_model(small_args(), dtype=torch.bfloat16)
    WRITERS[layout](model, tmp_path)
    loaded = load_model(tmp_path, progress=False)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert_same_weights(loaded, model)


@pytest.mark.parametrize("layout", ["hf_single", "mistral_safetensors"])
def test_dtype_converts_while_loading(layout, model, tmp_path):
    WRITERS[layout](model, tmp_path)
    loaded = load_model(tmp_path, dtype=torch.bfloat16, progress=False)
    assert_same_weights(loaded, model.to(torch.bfloat16))


def test_save_load_round_trip_is_exact(model, tmp_path):
    save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consolidated.safetensors", "params.json"]
    assert ModelArgs.from_params_json(tmp_path / "params.json") == model.args
    stored = load_file(tmp_path / "consolidated.safetensors")  # the reference reader agrees with our writer
    assert stored.keys() == model.state_dict().keys()
    assert all(torch.equal(stored[name], t) for name, t in model.state_dict().items())
    assert_same_weights(load_model(tmp_path, progress=False), model)


def test_saving_over_the_checkpoint_just_loaded(model, tmp_path):
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, progress=False)
    with torch.no_grad():
        loaded.norm.weight.mul_(2)
    save_model(loaded, tmp_path)
    assert_same_weights(load_model(tmp_path, progress=False), loaded)
    assert not list(tmp_path.glob("*.partial"))


def test_write_safetensors_mixed_dtypes_follow_the_format(tmp_path):
    tensors = {"odd": torch.arange(3, dtype=torch.int8), "half": torch.randn(5, dtype=torch.bfloat16),
               "wide": torch.randn(2, 3, dtype=torch.float64), "scalar": torch.tensor(1.5)}
    layout = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
    write_safetensors(tmp_path / "x.safetensors", layout, tensors.__getitem__)
    stored = load_file(tmp_path / "x.safetensors")
    assert all(torch.equal(stored[name], t) and stored[name].dtype == t.dtype for name, t in tensors.items())


def test_write_safetensors_never_leaves_a_broken_file(tmp_path):
    layout = {"a": torch.empty(4, device="meta")}
    with pytest.raises(ValueError, match=r"a: the header promised \(4,\) torch.float32, got \(5,\)"):
        write_safetensors(tmp_path / "x.safetensors", layout, lambda name: torch.zeros(5))
    assert list(tmp_path.iterdir()) == []


def test_convert_cli_round_trip(model, tmp_path):
    write_hf_sharded(model, tmp_path / "hf")
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "mistral"), "--quiet"])
    assert sorted(p.name for p in (tmp_path / "mistral").iterdir()) == ["consolidated.safetensors", "params.json"]
    converted = load_model(tmp_path / "mistral", progress=False)
    assert torch.equal(logits(converted), logits(load_model(tmp_path / "hf", progress=False)))
    assert_same_weights(converted, model)


def test_convert_cli_can_change_dtype(model, tmp_path):
    write_hf_single(model, tmp_path / "hf")
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "mistral"), "--dtype", "bfloat16", "--quiet"])
    assert_same_weights(load_model(tmp_path / "mistral", progress=False), model.to(torch.bfloat16))


def test_convert_cli_reports_errors(tmp_path):
    with pytest.raises(SystemExit, match="error: no such checkpoint folder"):
        main(["convert", str(tmp_path / "nothing"), str(tmp_path / "out"), "--quiet"])


def test_progress_bar(model, tmp_path, capsys):
    save_model(model, tmp_path)
    load_model(tmp_path, progress=True)
    assert f"loading {tmp_path.name}" in capsys.readouterr().err
    load_model(tmp_path, progress=False)
    assert capsys.readouterr().err == ""


# --- Memory ------------------------------------------------------------------------------------------------

def test_memory_plan_of_mistral_7b():
    args = ModelArgs.from_name("mistral-7b")
    plan = memory_plan(args, torch.bfloat16)
    assert plan.weights_bytes == 14_483_464_192 == 7_241_732_096 * 2
    assert plan.cache_bytes == 512 * 2**20
    assert plan.total_bytes == plan.weights_bytes + plan.cache_bytes
    assert str(plan) == "weights 13.49 GiB + rolling cache 512 MiB = 13.99 GiB"
    full = memory_plan(dataclasses.replace(args, sliding_window=32768), torch.bfloat16)
    assert full.cache_bytes == 4 * 2**30 == 8 * plan.cache_bytes
    assert memory_plan(args, torch.float32, batch_size=2).cache_bytes == 4 * plan.cache_bytes
    assert memory_plan(args, torch.float32).weights_bytes == 2 * plan.weights_bytes


def test_memory_plan_rejects_bad_input():
    args = ModelArgs.from_name("tiny")
    with pytest.raises(TypeError, match="dtype"):
        memory_plan(args, "bfloat16")
    with pytest.raises(ValueError, match="batch_size"):
        memory_plan(args, torch.bfloat16, batch_size=0)


def test_cuda_without_a_gpu_is_a_clear_error(model, tmp_path, monkeypatch):
    save_model(model, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device='cuda' asks for a CUDA GPU, but torch finds none.*'cpu'"):
        load_model(tmp_path, device="cuda", progress=False)


def test_cuda_out_of_memory_is_caught_before_loading(model, tmp_path, monkeypatch):
    save_model(model, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**16, 8 * 2**30))
    with pytest.raises(RuntimeError) as err:
        load_model(tmp_path, device="cuda", progress=False)
    message = str(err.value)
    check = preflight(model.args, torch.float32, 2**16)
    assert f"does not fit on cuda (8 GiB in all): float32 needs {format_bytes(check.total_bytes)}" in message
    assert f"activations {format_bytes(check.activation_bytes)} at chunk {model.args.sliding_window}" in message
    assert "this card has 64 KiB free; int8 would need" in message
    assert "bfloat16" in message and "free other GPU memory" in message and "device='cpu'" in message


def test_the_gpu_check_counts_activations_and_the_allowance(model, tmp_path, monkeypatch):
    save_model(model, tmp_path)
    needed = preflight(model.args, torch.float32, 0).total_bytes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def reached_reading(*args):
        raise LookupError("the check passed")

    monkeypatch.setattr(checkpoint, "_read_all", reached_reading)
    for free in (memory_plan(model.args, torch.float32).total_bytes, needed - 1):  # weights + cache are not enough
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 8 * 2**30))
        with pytest.raises(RuntimeError, match="does not fit on cuda"):
            load_model(tmp_path, device="cuda", progress=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (needed, 8 * 2**30))
    with pytest.raises(LookupError, match="the check passed"):
        load_model(tmp_path, device="cuda", progress=False)


def test_dtype_must_be_a_floating_torch_dtype(model, tmp_path):
    save_model(model, tmp_path)
    with pytest.raises(TypeError, match="torch.bfloat16"):
        load_model(tmp_path, dtype="bfloat16")


# --- Bad input ---------------------------------------------------------------------------------------------

class WritesAFile:
    """Unpickling this calls exec, which writes ``path``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.exec, (f"open({self.path!r}, 'w').write('pwned')",)


def test_a_pickle_never_runs_code(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(WritesAFile(proof)))  # the payload does work when a pickle is trusted...
    assert proof.exists()

    marker = tmp_path / "pwned"
    state = random_model(small_args()).state_dict()
    state["norm.weight"] = WritesAFile(marker)
    torch.save(state, tmp_path / "consolidated.00.pth")
    (tmp_path / "params.json").write_text(json.dumps(small_args().to_dict()))
    refused = r"consolidated.00.pth was refused by torch.load\(weights_only=True\).*code that loading would run"
    with pytest.raises(CheckpointError, match=refused):
        load_model(tmp_path, progress=False)
    assert not marker.exists()  # ...and load_model never trusts it


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no such checkpoint folder: {tmp_path / 'nope'}"):
        load_model(tmp_path / "nope")


def test_a_file_instead_of_a_folder(model, tmp_path):
    save_model(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="pass the folder"):
        load_model(tmp_path / "consolidated.safetensors")


def test_folder_without_a_checkpoint_says_what_it_looked_for(tmp_path):
    (tmp_path / "params.json").write_text("{}")  # a config alone is not a checkpoint
    with pytest.raises(FileNotFoundError) as err:
        load_model(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    for name in ("params.json", "consolidated.safetensors", "consolidated.00.pth", "config.json",
                 "model.safetensors", "model.safetensors.index.json"):
        assert name in message


def test_missing_shard(model, tmp_path):
    write_hf_sharded(model, tmp_path)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00003.safetensors"):
        load_model(tmp_path, progress=False)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def garble(path):
    path.write_bytes(b"\xff" * 64)


@pytest.mark.parametrize("layout, file, damage", [
    ("mistral_safetensors", "consolidated.safetensors", truncate),
    ("mistral_safetensors", "consolidated.safetensors", garble),
    ("mistral_pth", "consolidated.00.pth", truncate),
    ("mistral_pth", "consolidated.00.pth", garble),
    ("hf_sharded", "model-00002-of-00003.safetensors", truncate),
])
def test_corrupt_file_is_named(layout, file, damage, model, tmp_path):
    WRITERS[layout](model, tmp_path)
    damage(tmp_path / file)
    with pytest.raises(CheckpointError, match=f"{tmp_path / file} could not be read"):
        load_model(tmp_path, progress=False)


def test_params_json_that_does_not_match_the_weights(model, tmp_path):
    save_model(model, tmp_path)
    (tmp_path / "params.json").write_text(json.dumps({**model.args.to_dict(), "hidden_dim": 128}))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path, progress=False)
    message = str(err.value)
    assert ("layers.0.feed_forward.w1.weight (consolidated.safetensors): params.json implies (128, 64), "
            "the file holds (96, 64)") in message
    assert "layers.1.feed_forward.w2.weight" in message  # every mismatch, not just the first


def test_config_json_that_does_not_match_the_weights(model, tmp_path):
    write_hf_single(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 1}))
    with pytest.raises(CheckpointError, match=r"layers.0.attention.wk.weight \(model.layers.0.self_attn.k_proj"
                                              r".weight in model.safetensors\): config.json implies \(16, 64\), "
                                              r"the file holds \(32, 64\)"):
        load_model(tmp_path, progress=False)


def test_missing_and_unexpected_tensors_are_listed(model, tmp_path):
    state = model.state_dict()
    del state["norm.weight"], state["layers.1.attention.wv.weight"]
    state["lora.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "consolidated.00.pth")
    (tmp_path / "params.json").write_text(json.dumps(model.args.to_dict()))
    with pytest.raises(CheckpointError, match=r"missing tensors: layers.1.attention.wv.weight, norm.weight\n"
                                              r"  unexpected tensors: lora.weight"):
        load_model(tmp_path, progress=False)


def test_too_few_layers_for_the_config(model, tmp_path):
    save_model(model, tmp_path)
    (tmp_path / "params.json").write_text(json.dumps({**model.args.to_dict(), "n_layers": 4}))
    with pytest.raises(CheckpointError, match=r"(?s)\(4 layers\).*missing tensors: layers.2.attention.wq.weight, "
                                              r".* and 6 more\n  unexpected tensors: none"):
        load_model(tmp_path, progress=False)


def test_foreign_hugging_face_names_are_unexpected(model, tmp_path):
    hf_state = mistral_state_dict_to_hf(model.state_dict(), model.args)
    hf_state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    layout = {name: torch.empty_like(t, device="meta") for name, t in hf_state.items()}
    write_safetensors(tmp_path / "model.safetensors", layout, hf_state.__getitem__)
    write_hf_single(model, tmp_path / "reference")
    (tmp_path / "config.json").write_text((tmp_path / "reference" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="unexpected tensors: model.layers.0.self_attn.rotary_emb.inv_freq"):
        load_model(tmp_path, progress=False)


def test_format_bytes():
    assert format_bytes(512 * 2**20) == "512 MiB"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(100) == "100 B"
    assert format_bytes(14_483_464_192) == "13.49 GiB"
