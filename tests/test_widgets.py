"""widgets: each widget is sliders wired to a viz function; moving a slider redraws with the new values."""

import ipywidgets
import pytest
from matplotlib.figure import Figure

from mistral_mini.lessons import viz, widgets


def controls(box):
    """The sliders of a widget built by widgets._wire (the HBox above the output)."""
    row = next(c for c in box.children if isinstance(c, ipywidgets.HBox))
    return {c.description: c for c in row.children}


@pytest.mark.parametrize("make", [widgets.mask_explorer, widgets.rope_explorer, widgets.gqa_explorer,
                                  widgets.receptive_field_explorer])
def test_builds_with_a_figure(make):
    box = make()
    assert isinstance(box, ipywidgets.VBox)
    assert isinstance(box.figure, Figure)
    assert any(isinstance(c, ipywidgets.Output) for c in box.children)


def test_mask_explorer_redraws_with_slider_values(monkeypatch):
    calls = []
    monkeypatch.setattr(viz, "mask_pair", lambda causal, window, w: calls.append((causal, window, w)) or Figure())
    box = widgets.mask_explorer(seq_len=10, window=3)
    sliders = controls(box)
    sliders["W"].value = 5
    sliders["T"].value = 7
    assert [c[2] for c in calls] == [3, 5, 5]
    causal, window, _ = calls[-1]
    assert causal.shape == (7, 7) and window.sum() == sum(min(i + 1, 5) for i in range(7))


def test_rope_explorer_passes_position_and_frequencies(monkeypatch):
    calls = []
    monkeypatch.setattr(viz, "rope_rotation", lambda f, n, p: calls.append((f, n, p)) or Figure())
    box = widgets.rope_explorer(head_dim=8, n_positions=12, position=2)
    controls(box)["position"].value = 9
    assert [c[2] for c in calls] == [2, 9]
    assert calls[-1][0].shape == (4,) and calls[-1][1] == 12


def test_gqa_explorer_offers_only_divisors():
    box = widgets.gqa_explorer(n_heads=12, n_kv_heads=3)
    assert list(controls(box)["KV heads"].options) == [1, 2, 3, 4, 6, 12]
    controls(box)["KV heads"].value = 12
    assert box.figure.axes[0].get_title().startswith("MHA")
    with pytest.raises(ValueError, match="must divide"):
        widgets.gqa_explorer(n_heads=8, n_kv_heads=3)


def test_receptive_field_explorer_follows_layers_and_window():
    box = widgets.receptive_field_explorer(seq_len=20, n_layers=2, window=4)
    assert box.figure.axes[1].get_title() == "2 layers: 6 back"
    controls(box)["layers L"].value = 4
    controls(box)["window W"].value = 3
    assert box.figure.axes[1].get_title() == "4 layers: 8 back"
    assert box.figure.axes[1].images[0].get_array()[19].sum() == 9  # row 19 sees 19 - 8 .. 19
