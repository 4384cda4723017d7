import torch
from transformers.models.mistral.modeling_mistral import MistralRMSNorm

from mistral_mini.norm import RMSNorm


def test_rmsnorm_is_its_formula_and_matches_transformers():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 32) * 4
    norm = RMSNorm(32, eps=1e-5)
    torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    reference = MistralRMSNorm(32, eps=1e-5)
    reference.weight.data.copy_(norm.weight.data)
    torch.testing.assert_close(norm(x), reference(x), rtol=0, atol=0)


def test_rmsnorm_keeps_bf16_and_computes_in_float32():
    x = (torch.randn(4, 64) * 300).bfloat16()
    out = RMSNorm(64).bfloat16()(x)
    assert out.dtype == torch.bfloat16
    rms = out.float().pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones(4), atol=1e-2, rtol=0)
