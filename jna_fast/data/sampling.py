"""TSN snippet sampling (docs/design.md §6.4).

A video of ``num_frames`` frames has ``num_frames - 1`` flow fields (flow i goes from frame i to frame i+1, all
0-based here). A snippet starting at frame i is the RGB frame i and the flow stack i .. i+L-1. Starts are drawn
from the ``span = max(num_frames - 1 - L + 1, 1)`` positions where a whole stack fits (TSN's convention), so that
RGB and flow snippets stay aligned.

- train: the span is cut into T equal segments ``[floor(t*span/T), floor((t+1)*span/T))`` and one start is drawn
  uniformly in each;
- test: the T evenly spaced starts ``floor((t + 0.5) * span / T)``.

Short videos (policy): when ``span < T`` there are only ``span`` distinct snippets. They fill the first ``span``
slots in order; the remaining slots repeat the last real snippet and are marked False in the mask, so the model's
masked attention ignores them (no zeros are fed, and no snippet is counted twice by the attention).
"""

from __future__ import annotations

import numpy as np


def snippet_span(num_frames: int, flow_length: int) -> int:
    """Number of admissible snippet starts: frames where a flow stack of ``flow_length`` fits (at least 1).

    Args:
        num_frames: the video's frame count (it has ``num_frames - 1`` flow fields).
        flow_length: L, flow fields per stack.

    Returns:
        ``max(num_frames - 1 - L + 1, 1)``.

    Raises:
        ValueError: ``num_frames`` < 2 (no flow pair).
    """
    if num_frames < 2:
        raise ValueError(f"a video needs at least 2 frames (one flow pair), got num_frames={num_frames}")
    return max(num_frames - 1 - flow_length + 1, 1)


def tsn_snippet_starts(num_frames: int, num_segments: int, flow_length: int, train: bool,
                       rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Snippet start frames ``[T]`` (int64, 0-based) and the mask ``[T]`` (bool) for one video (see the module doc).

    Args:
        num_frames: the video's frame count (>= 2).
        num_segments: T, the snippets to draw (>= 1).
        flow_length: L, flow fields per stack.
        train: draw one random start per segment (True) or take the segments' centres (False).
        rng: the generator of the training draws; unused at test.

    Returns:
        ``(starts, mask)``: int64 ``[T]`` start frames and bool ``[T]``, False on the slots that repeat the last
        real snippet of a video too short for T distinct snippets.

    Raises:
        ValueError: ``num_segments`` < 1, ``num_frames`` < 2, or training sampling without ``rng``.
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    span = snippet_span(num_frames, flow_length)
    if span < num_segments:
        real = np.arange(span, dtype=np.int64)
        starts = np.concatenate([real, np.full(num_segments - span, span - 1, dtype=np.int64)])
        mask = np.arange(num_segments) < span
        return starts, mask
    if train:
        if rng is None:
            raise ValueError("train sampling needs rng")
        bounds = (np.arange(num_segments + 1, dtype=np.int64) * span) // num_segments
        starts = bounds[:-1] + (rng.random(num_segments) * (bounds[1:] - bounds[:-1])).astype(np.int64)
    else:
        starts = ((np.arange(num_segments) + 0.5) * span / num_segments).astype(np.int64)
    return starts, np.ones(num_segments, dtype=bool)


def flow_stack_indices(starts: np.ndarray, flow_length: int, num_flows: int) -> np.ndarray:
    """0-based flow indices ``[T, L]`` of the stacks at ``starts``: i .. i+L-1, clamped to the last flow.

    Args:
        starts: ``[T]`` snippet start frames (:func:`tsn_snippet_starts`).
        flow_length: L, flow fields per stack.
        num_flows: the video's flow fields (its frame count - 1).

    Returns:
        int64 ``[T, L]`` flow indices.
    """
    return np.minimum(np.asarray(starts)[:, None] + np.arange(flow_length)[None, :], num_flows - 1)
