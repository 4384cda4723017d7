"""Figures for the notebooks: pure functions, data in, ``matplotlib.figure.Figure`` out.

Nothing here touches pyplot: a ``Figure`` built directly is not registered with pyplot's figure manager, so a
notebook shows it exactly once (as the value of the cell, or through ``display``) and never a second time when
the cell ends. In a notebook, run ``%matplotlib inline`` once so that Jupyter knows how to draw a Figure.

Each module answers one question, most named after the part of the model it draws:

    style            the colours and drawing helpers every figure shares
    architecture     the whole model, and the "you are here" strip at the top of each notebook  (00-11)
    memory           how big things are: bytes, parameter counts, int8 error  (00, 04, 06, 08, 09, 10)
    tokens           tokens, embedding rows, what a norm does                  (01)
    rope             rotary embeddings                                         (02)
    attention        masks, attention weights and cost, grouped-query heads    (03, 04)
    receptive_field  how far back L layers of a W-window see                   (05)
    cache            the rolling buffer and prefill in chunks                  (06, 07)
    feed_forward     activation functions                                      (08)
    generation       temperature and top-p                                     (09)
    training         trained to copy the token d back: accuracy, loss          (11)

Every figure is re-exported here: ``from mistral_mini.lessons import viz; viz.mask_pair(...)``.
"""

from .architecture import architecture_figure, you_are_here
from .attention import (
    attention_flow,
    attention_weights,
    banded_blocks,
    cost_curves,
    gqa_fold,
    kv_head_sharing,
    mask_pair,
    masks_figure,
    window_grid,
)
from .cache import chunk_masks_figure, prefill_cost_figure, prefill_timeline_figure, rolling_buffer_figure
from .feed_forward import activation_figure
from .generation import sampling_figure
from .memory import bytes_bars, bytes_per_item, cache_memory_figure, parameter_breakdown, quantization_error_figure
from .receptive_field import gradient_profile, receptive_field_growth
from .rope import offset_scores, rope_layouts, rope_rotation, rope_waves
from .style import ACCENT, IN_COLOR, OUT_COLOR
from .tokens import embedding_vectors, norm_comparison, token_pieces
from .training import copy_accuracy_figure, dependence_figure, loss_curves_figure

__all__ = [
    "ACCENT", "IN_COLOR", "OUT_COLOR",
    "activation_figure", "architecture_figure", "attention_weights", "bytes_bars", "bytes_per_item",
    "cache_memory_figure",
    "chunk_masks_figure", "copy_accuracy_figure", "cost_curves", "dependence_figure", "embedding_vectors",
    "gradient_profile", "kv_head_sharing", "loss_curves_figure", "mask_pair", "masks_figure",
    "norm_comparison", "offset_scores", "parameter_breakdown", "prefill_cost_figure",
    "quantization_error_figure",
    "receptive_field_growth", "rolling_buffer_figure", "rope_layouts", "rope_rotation", "rope_waves",
    "sampling_figure", "token_pieces", "window_grid", "you_are_here",
    "attention_flow", "banded_blocks", "gqa_fold",
    "prefill_timeline_figure",
]
