"""The exercise checks of notebooks 00-05 pass right answers and fail wrong ones with a useful message; the
student command stubs solutions and clears outputs."""

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mistral_mini.lessons import classroom
from mistral_mini.lessons import exercises as ex

# ---------------------------------------------------------------------------------------------------------
# right answers, written the way a learner might
# ---------------------------------------------------------------------------------------------------------


def block_parameters(args):
    attention = 2 * args.dim * args.n_heads * args.head_dim + 2 * args.dim * args.n_kv_heads * args.head_dim
    return attention + 3 * args.dim * args.hidden_dim + 2 * args.dim


def memory_needed(args, dtype):
    itemsize = torch.tensor([], dtype=dtype).element_size()
    params = args.n_layers * block_parameters(args) + 2 * args.vocab_size * args.dim + args.dim
    cache = 2 * args.n_layers * args.sliding_window * args.n_kv_heads * args.head_dim
    return (params + cache) * itemsize


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def embedding_lookup(ids, weight):
    return F.one_hot(ids, weight.shape[0]).float() @ weight


def byte_pieces(char):
    return [f"<0x{b:02X}>" for b in char.encode("utf-8")]


def rope(x, positions, theta):
    D = x.shape[-1]
    freqs = theta ** (-torch.arange(0, D, 2).float() / D)
    angle = positions.float()[:, None, None] * freqs  # [T, 1, D/2]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * angle.cos() - x1 * angle.sin(), x0 * angle.sin() + x1 * angle.cos()), -1).flatten(-2)


def half_split(w, n_heads):
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def wavelengths(head_dim, theta):
    return 2 * math.pi * theta ** (torch.arange(0, head_dim, 2).float() / head_dim)


def window_mask(T, W):
    offset = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    return (offset >= 0) & (offset < W)


def attention(q, k, v, mask):
    scores = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    weights = scores.exp() / scores.exp().sum(-1, keepdim=True)
    return weights @ v


def allowed_pairs(T, W):
    return sum(min(i + 1, W) for i in range(T))


def repeat_kv(x, n_rep):
    B, Hkv, T, D = x.shape
    return x[:, :, None].expand(B, Hkv, n_rep, T, D).reshape(B, Hkv * n_rep, T, D)


def kv_bytes_per_token(args, nbytes):
    return 2 * args.n_layers * args.n_kv_heads * args.head_dim * nbytes


def kv_head_of(h, n_heads, n_kv_heads):
    return h // (n_heads // n_kv_heads)


def reach(L, W):
    return L * (W - 1)


def receptive_field(T, L, W):
    offset = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    return (offset >= 0) & (offset <= L * (W - 1))


def layers_needed(distance, W):
    return math.ceil(distance / (W - 1))


RIGHT = [
    (ex.check_block_parameters, block_parameters),
    (ex.check_memory_needed, memory_needed),
    (ex.check_rms_norm, rms_norm),
    (ex.check_embedding_lookup, embedding_lookup),
    (ex.check_byte_pieces, byte_pieces),
    (ex.check_rope, rope),
    (ex.check_half_split, half_split),
    (ex.check_wavelengths, wavelengths),
    (ex.check_window_mask, window_mask),
    (ex.check_attention, attention),
    (ex.check_allowed_pairs, allowed_pairs),
    (ex.check_repeat_kv, repeat_kv),
    (ex.check_kv_bytes_per_token, kv_bytes_per_token),
    (ex.check_kv_head_of, kv_head_of),
    (ex.check_reach, reach),
    (ex.check_receptive_field, receptive_field),
    (ex.check_layers_needed, layers_needed),
]


@pytest.mark.parametrize("check, answer", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_right_answer_passes(check, answer, capsys):
    result = check(answer)
    out = capsys.readouterr().out
    assert result is None
    assert out.startswith("PASS") and "FAIL" not in out


@pytest.mark.parametrize("check", [c for c, _ in RIGHT], ids=[c.__name__ for c, _ in RIGHT])
def test_unfinished_exercise_fails_without_raising(check, capsys):
    def unfinished(*args):
        raise NotImplementedError()

    result = check(unfinished)
    out = capsys.readouterr().out
    assert result is None
    assert out.startswith("FAIL") and "not implemented yet" in out


# ---------------------------------------------------------------------------------------------------------
# wrong answers: each must fail with a message that says what differed
# ---------------------------------------------------------------------------------------------------------


def fail_output(check, answer, capsys):
    """What ``check(answer)`` prints, after asserting that it reports FAIL and returns nothing."""
    result = check(answer)
    out = capsys.readouterr().out
    assert result is None
    assert out.startswith("FAIL: "), out
    return out


def test_layer_norm_instead_of_rms_norm_is_recognised(capsys):
    out = fail_output(ex.check_rms_norm, lambda x, w, eps: F.layer_norm(x, x.shape[-1:], eps=eps) * w, capsys)
    assert "max difference" in out and "first wrong position" in out
    assert "LayerNorm" in out


def test_missing_weight_is_recognised(capsys):
    out = fail_output(ex.check_rms_norm, lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps),
                      capsys)
    assert "multiply by weight" in out


def test_wrong_shape_is_reported(capsys):
    out = fail_output(ex.check_rms_norm, lambda x, w, eps: rms_norm(x, w, eps)[..., :-1], capsys)
    assert "shape: got (2, 5, 15), expected (2, 5, 16)" in out


def test_code_that_raises_is_reported_with_the_hint(capsys):
    out = fail_output(ex.check_embedding_lookup, lambda ids, w: w @ ids, capsys)
    assert "your code raised" in out and "hint:" in out


def test_lowercase_byte_pieces(capsys):
    out = fail_output(ex.check_byte_pieces, lambda c: [f"<0x{b:02x}>" for b in c.encode()], capsys)
    assert "first wrong position [0]: got '<0xf0>', expected '<0xF0>'" in out
    assert "upper case" in out


def test_rope_rotating_backwards(capsys):
    out = fail_output(ex.check_rope, lambda x, p, t: rope(x, -p, t), capsys)
    assert "wrong way" in out


def test_rope_half_split_layout(capsys):
    def hf_style(x, positions, theta):
        D = x.shape[-1]
        freqs = theta ** (-torch.arange(0, D, 2).float() / D)
        angle = torch.cat([positions.float()[:, None] * freqs] * 2, -1)[:, None]  # [T, 1, D]
        rotated = torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1)
        return x * angle.cos() + rotated * angle.sin()

    out = fail_output(ex.check_rope, hf_style, capsys)
    assert "half-split" in out


def test_inverse_permutation(capsys):
    def inverse(w, n):
        rows, cols = w.shape
        return w.view(n, 2, rows // n // 2, cols).transpose(1, 2).reshape(rows, cols)

    out = fail_output(ex.check_half_split, inverse, capsys)
    assert "inverse" in out


def test_wavelength_without_two_pi(capsys):
    out = fail_output(ex.check_wavelengths, lambda d, t: wavelengths(d, t) / (2 * math.pi), capsys)
    assert "max difference" in out


def test_window_off_by_one(capsys):
    out = fail_output(ex.check_window_mask, lambda T, W: window_mask(T, W + 1), capsys)
    assert "first wrong position [3, 0]: got True, expected False" in out
    assert "off by one" in out


def test_transposed_window(capsys):
    out = fail_output(ex.check_window_mask, lambda T, W: window_mask(T, W).T, capsys)
    assert "rows are queries" in out


def test_attention_without_scaling(capsys):
    def unscaled(q, k, v, mask):
        return torch.softmax((q @ k.T).masked_fill(~mask, float("-inf")), -1) @ v

    out = fail_output(ex.check_attention, unscaled, capsys)
    assert "sqrt(D)" in out


def test_attention_without_mask(capsys):
    out = fail_output(ex.check_attention, lambda q, k, v, m: torch.softmax(q @ k.T / q.shape[-1] ** 0.5, -1) @ v,
                  capsys)
    assert "apply the mask" in out


def test_allowed_pairs_ignoring_the_start(capsys):
    out = fail_output(ex.check_allowed_pairs, lambda T, W: T * W, capsys)
    assert "got 18, expected 15" in out and "min(i + 1, W)" in out


def test_tiled_instead_of_repeated_heads(capsys):
    out = fail_output(ex.check_repeat_kv, lambda x, n: x.repeat(1, n, 1, 1), capsys)
    assert "tiled" in out and "first wrong position" in out


def test_kv_bytes_with_query_heads(capsys):
    out = fail_output(ex.check_kv_bytes_per_token, lambda a, n: 2 * a.n_layers * a.n_heads * a.head_dim * n, capsys)
    assert "got 524,288, expected 131,072" in out and "n_kv_heads" in out


def test_kv_head_taking_turns(capsys):
    out = fail_output(ex.check_kv_head_of, lambda h, H, Hkv: h % Hkv, capsys)
    assert "h // n_rep" in out


def test_paper_reach_is_recognised(capsys):
    out = fail_output(ex.check_reach, lambda L, W: L * W, capsys)
    assert "got 4,096, expected 4,095" in out and "131,072" in out


def test_receptive_field_counting_w_per_layer(capsys):
    out = fail_output(ex.check_receptive_field, lambda T, L, W: receptive_field(T, 1, L * W + 1), capsys)
    assert "W - 1 per layer" in out


def test_layers_needed_rounding_down(capsys):
    out = fail_output(ex.check_layers_needed, lambda d, W: d // (W - 1), capsys)
    assert "round up" in out


def test_layers_needed_counting_w_per_layer(capsys):
    out = fail_output(ex.check_layers_needed, lambda d, W: math.ceil(d / W), capsys)
    assert "W - 1 positions, not W" in out


def test_memory_without_the_cache(capsys):
    def weights_only(args, dtype):
        params = args.n_layers * block_parameters(args) + 2 * args.vocab_size * args.dim + args.dim
        return params * torch.tensor([], dtype=dtype).element_size()

    out = fail_output(ex.check_memory_needed, weights_only, capsys)
    assert "add the rolling cache" in out


def test_block_parameters_forgetting_the_norms(capsys):
    out = fail_output(ex.check_block_parameters, lambda a: block_parameters(a) - 2 * a.dim, capsys)
    assert "off by -8,192" in out


def test_not_a_function(capsys):
    out = fail_output(ex.check_reach, 42, capsys)
    assert "expected a function" in out


def test_tensor_difference_on_integers_and_nan():
    assert ex.tensor_difference(torch.tensor([1, 2]), torch.tensor([1, 2])) is None
    assert "first wrong position [1]" in ex.tensor_difference(torch.tensor([1, 3]), torch.tensor([1, 2]))
    assert "NaN" in ex.tensor_difference(torch.tensor([float("nan")]), torch.tensor([0.0]))
    assert "expected a torch.Tensor" in ex.tensor_difference([1.0], torch.tensor([1.0]))


# ---------------------------------------------------------------------------------------------------------
# the student command
# ---------------------------------------------------------------------------------------------------------

SOLUTION_CELL = """def rms_norm(x, weight, eps):
    \"\"\"Your RMSNorm.\"\"\"
    scale = 1.0
    ### BEGIN SOLUTION
    ms = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(ms + eps) * weight
    ### END SOLUTION

answer = 42"""


def test_strip_solutions_keeps_indentation_and_surrounding_lines():
    stripped = classroom.strip_solutions(SOLUTION_CELL)
    assert stripped == """def rms_norm(x, weight, eps):
    \"\"\"Your RMSNorm.\"\"\"
    scale = 1.0
    # YOUR CODE HERE
    raise NotImplementedError()

answer = 42"""


def test_strip_solutions_rejects_unbalanced_markers():
    with pytest.raises(ValueError, match="never closed"):
        classroom.strip_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without"):
        classroom.strip_solutions("x = 1\n### END SOLUTION")


def make_notebook():
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "Some prose."]},
            {"cell_type": "code", "execution_count": 3, "metadata": {"execution": {"x": 1}, "tags": ["t"]},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["PASS\n"]}],
             "source": SOLUTION_CELL.splitlines(keepends=True)},
            {"cell_type": "code", "execution_count": 4, "metadata": {},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}],
             "source": "print('hi')"},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "widgets": {"state": {}}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_student_command_writes_stubbed_copies(tmp_path):
    src, out = tmp_path / "teacher", tmp_path / "student"
    src.mkdir()
    (src / "01_demo.ipynb").write_text(json.dumps(make_notebook()))
    result = subprocess.run([sys.executable, "-m", "mistral_mini.lessons.classroom", "student", str(src), str(out)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "01_demo.ipynb" in result.stdout
    copy = json.loads((out / "01_demo.ipynb").read_text())
    code = copy["cells"][1]
    assert "# YOUR CODE HERE\n    raise NotImplementedError()" in code["source"]
    assert "ms = x.pow(2)" not in code["source"] and "scale = 1.0" in code["source"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in copy["cells"][1:])
    assert "execution" not in code["metadata"] and code["metadata"]["tags"] == ["t"]
    assert copy["cells"][0]["source"] == "# Title\nSome prose."
    assert "widgets" not in copy["metadata"]
    # The teacher's notebook is untouched.
    assert "ms = x.pow(2)" in (src / "01_demo.ipynb").read_text()


def test_student_command_refuses_to_overwrite_the_sources(tmp_path):
    (tmp_path / "a.ipynb").write_text(json.dumps(make_notebook()))
    assert classroom.main(["student", str(tmp_path), str(tmp_path)]) == 1


def test_student_command_on_a_missing_folder(tmp_path, capsys):
    assert classroom.main(["student", str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    assert "no folder" in capsys.readouterr().err
