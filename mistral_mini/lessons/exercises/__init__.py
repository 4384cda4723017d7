"""Checks for the notebook exercises: ``exercises.check_rope(my_rope)`` prints PASS or FAIL.

Each ``check_*`` runs the learner's function on a few inputs, compares the result with the package, and
prints ``PASS`` or ``FAIL``. On failure it says what differed (shape, largest difference, first wrong
position) and gives a hint, often one that names the classic mistake it recognised. It never raises for the
learner's bugs, and it returns None, so a notebook cell shows only the message.

One module per notebook holds that notebook's checks (``nb07_prefill`` has those of notebook 07);
``compare`` holds what they share: running the learner's code, comparing, reporting. Everything a notebook
calls is re-exported here. Writing the student copies of the notebooks is ``mistral_mini.lessons.classroom``.
"""

from .compare import number_difference, tensor_difference, value_difference
from .nb00_welcome import check_block_parameters, check_memory_needed
from .nb01_tokens import check_byte_pieces, check_embedding_lookup, check_rms_norm
from .nb02_rope import check_half_split, check_rope, check_wavelengths
from .nb03_attention import check_allowed_pairs, check_attention, check_window_mask
from .nb04_gqa import check_kv_bytes_per_token, check_kv_head_of, check_repeat_kv
from .nb05_receptive_field import check_layers_needed, check_reach, check_receptive_field
from .nb06_cache import check_kv_cache_bytes, check_slot_and_evicted, check_slot_positions
from .nb07_prefill import check_chunk_bounds, check_chunk_mask, check_chunked_logits
from .nb08_model import check_hf_name, check_parameter_count, check_swiglu
from .nb09_generation import check_chat_ids, check_temperature, check_top_p
from .nb10_gpu import check_max_sequences, check_weight_bytes
from .nb11_training import check_accuracy, check_copy_batch, check_hop_chains

__all__ = [
    # 00 welcome
    "check_block_parameters", "check_memory_needed",
    # 01 tokens, embeddings, RMSNorm
    "check_rms_norm", "check_embedding_lookup", "check_byte_pieces",
    # 02 rotary embeddings
    "check_rope", "check_half_split", "check_wavelengths",
    # 03 attention and masks
    "check_window_mask", "check_attention", "check_allowed_pairs",
    # 04 grouped-query attention
    "check_repeat_kv", "check_kv_bytes_per_token", "check_kv_head_of",
    # 05 receptive field
    "check_reach", "check_receptive_field", "check_layers_needed",
    # 06 rolling-buffer cache
    "check_slot_and_evicted", "check_kv_cache_bytes", "check_slot_positions",
    # 07 pre-fill in chunks
    "check_chunk_bounds", "check_chunk_mask", "check_chunked_logits",
    # 08 the whole model
    "check_swiglu", "check_parameter_count", "check_hf_name",
    # 09 generation
    "check_temperature", "check_top_p", "check_chat_ids",
    # 10 Mistral 7B on a GPU
    "check_weight_bytes", "check_max_sequences",
    # 11 does the window stack?
    "check_copy_batch", "check_accuracy", "check_hop_chains",
    # comparisons, for learners who want to compare their own tensors and values
    "tensor_difference", "value_difference", "number_difference",
]
