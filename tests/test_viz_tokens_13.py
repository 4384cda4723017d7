"""Issue 13's figures for notebooks 00-02: the norm panels share one scale; the architecture figure's numbers."""

import numpy as np
import torch

from mistral_mini import ModelArgs
from mistral_mini.lessons import viz


def test_norm_comparison_panels_share_one_y_scale():
    x = torch.tensor([3.0, 2.5, 4.0, 1.0, 2.0, 3.5])  # RMS about 2.9: bigger than any normalized output
    normed = x / x.pow(2).mean().sqrt()
    fig = viz.norm_comparison(x, {"RMSNorm": normed})
    first, second = fig.axes
    assert first.get_ylim() == second.get_ylim()  # one scale: the output's bars look smaller than the input's
    assert first.get_ylim()[1] >= 4.0  # the scale holds the input's largest feature
    heights = [bar.get_height() for bar in second.patches]
    np.testing.assert_allclose(heights, normed.numpy(), rtol=1e-6)  # the bars are the data
    rms = float(np.sqrt((x.numpy() ** 2).mean()))
    assert f"RMS {rms:.2f}" in first.get_title() and "RMS 1.00" in second.get_title()


def test_architecture_figure_counts_the_parameters_of_the_args_it_is_given():
    llama = ModelArgs(dim=4096, n_layers=32, head_dim=128, hidden_dim=11008, n_heads=32, n_kv_heads=32,
                      norm_eps=1e-5, vocab_size=32000, sliding_window=4096)
    (ax,) = viz.architecture_figure(llama).axes
    assert "6,738,415,616 parameters" in ax.get_title()  # Llama 2 7B's shapes give its published count
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "11,008" in texts and "32 heads x 128" in texts
