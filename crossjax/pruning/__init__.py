"""Pruning for crossbars: unstructured, C/F, XCS/XRS/tile, group lasso, D.U.B., masks, reports.

See the submodules for the math: :mod:`.structured` (magnitude and group
pruning, group lasso), :mod:`.dub` (D.U.B. regularizer and projection),
:mod:`.masks` (fixed masks in training), :mod:`.report` (crossbar counts, dense
vs sparse mapping), :mod:`.model` (Flax NNX model wrappers).
"""

from crossjax.pruning.dub import dub_levels, dub_project, dub_regularizer, dub_tile_levels, hoyer_square
from crossjax.pruning.masks import apply_masks, masked_updates
from crossjax.pruning.model import (
    METHODS,
    apply_model_masks,
    crossbar_kernels,
    crossbar_layer_paths,
    model_dub_regularizer,
    model_group_lasso,
    model_report,
    prune_channels,
    prune_model,
)
from crossjax.pruning.report import (
    Compaction,
    CrossbarReport,
    compact_columns,
    compacted_matmul,
    crossbar_report,
    scatter_outputs,
)
from crossjax.pruning.structured import (
    channel_mask,
    channel_scores,
    crossbar_column_mask,
    crossbar_row_mask,
    group_lasso,
    input_channel_mask,
    magnitude_mask,
    tile_mask,
)
from crossjax.tiling import flatten_kernel, unflatten_kernel

__all__ = [
    "flatten_kernel",
    "unflatten_kernel",
    "magnitude_mask",
    "channel_scores",
    "channel_mask",
    "input_channel_mask",
    "crossbar_column_mask",
    "crossbar_row_mask",
    "tile_mask",
    "group_lasso",
    "hoyer_square",
    "dub_regularizer",
    "dub_levels",
    "dub_tile_levels",
    "dub_project",
    "apply_masks",
    "masked_updates",
    "CrossbarReport",
    "crossbar_report",
    "Compaction",
    "compact_columns",
    "scatter_outputs",
    "compacted_matmul",
    "METHODS",
    "crossbar_layer_paths",
    "crossbar_kernels",
    "prune_model",
    "prune_channels",
    "apply_model_masks",
    "model_report",
    "model_group_lasso",
    "model_dub_regularizer",
]
