"""TSN sampling rule, flow stack indices, crop sampling."""

import numpy as np
import pytest

from jna_fast.data import (TRAIN_SCALES, centre_crop, flow_stack_indices, sample_train_crop, snippet_span,
                           tsn_snippet_starts)


@pytest.mark.parametrize("num_frames, segments, flow_length", [(40, 3, 5), (100, 7, 5), (12, 3, 1), (26, 25, 1)])
def test_train_starts_cover_each_segment(num_frames, segments, flow_length):
    span = num_frames - flow_length
    assert snippet_span(num_frames, flow_length) == span
    bounds = [(t * span // segments, (t + 1) * span // segments) for t in range(segments)]
    seen = [set() for _ in range(segments)]
    rng = np.random.default_rng(0)
    for _ in range(400):
        starts, mask = tsn_snippet_starts(num_frames, segments, flow_length, True, rng)
        assert mask.all()
        for t, (start, (low, high)) in enumerate(zip(starts, bounds)):
            assert low <= start < high
            seen[t].add(int(start))
    # every frame of every segment is drawn (the draw is uniform over the segment, not a fixed offset)
    assert [len(s) for s in seen] == [high - low for low, high in bounds]


def test_test_starts_are_evenly_spaced_segment_centres():
    starts, mask = tsn_snippet_starts(120, 25, 5, False)
    span = 120 - 5
    assert starts.tolist() == [int((t + 0.5) * span / 25) for t in range(25)]
    assert mask.all() and np.all(np.diff(starts) >= 4)


def test_short_video_masks_padding_snippets():
    starts, mask = tsn_snippet_starts(5, 6, 2, True, np.random.default_rng(0))
    # 4 flows, stacks of 2 fit at starts 0..2: three real snippets, then the last one repeated and masked
    assert starts.tolist() == [0, 1, 2, 2, 2, 2]
    assert mask.tolist() == [True, True, True, False, False, False]


def test_flow_stacks_are_consecutive_and_clamped():
    stacks = flow_stack_indices(np.array([0, 7, 9]), 3, num_flows=10)
    assert stacks.tolist() == [[0, 1, 2], [7, 8, 9], [9, 9, 9]]
    # a video shorter than one stack: every start is 0 and the stack repeats the last flow
    starts, _ = tsn_snippet_starts(3, 2, 5, False)
    assert flow_stack_indices(starts, 5, 2).tolist() == [[0, 1, 1, 1, 1], [0, 1, 1, 1, 1]]


def test_train_crops_are_tsn_multiscale_corner_or_centre():
    rng = np.random.default_rng(1)
    height, width = 240, 320
    sizes = [int(240 * s) for s in TRAIN_SCALES]
    flips, positions = [], set()
    for _ in range(300):
        crop = sample_train_crop(height, width, rng)
        i, j = sizes.index(crop.height), sizes.index(crop.width)
        assert abs(i - j) <= 1
        free_y, free_x = height - crop.height, width - crop.width
        corner = crop.top in (0, free_y) and crop.left in (0, free_x)
        centre = (crop.top, crop.left) == (free_y // 2, free_x // 2)
        assert corner or centre
        positions.add((crop.top == free_y // 2 and crop.left == free_x // 2, crop.top == 0, crop.left == 0))
        flips.append(crop.flip)
    assert 0.35 < np.mean(flips) < 0.65
    assert len(positions) >= 5


def test_centre_crop_and_relative_roi():
    crop = centre_crop(256, 340, 0.875)
    assert (crop.top, crop.left, crop.height, crop.width, crop.flip) == (16, 58, 224, 224, False)
    # the same window on a stream at half the resolution (RGB from a video, flow extracted at another size)
    assert crop.roi(128, 170) == (8.0, 29.0, 120.0, 141.0)
