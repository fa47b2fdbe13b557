"""Weighted NMS takes all pairwise IoUs at once: each row must equal the one-box IoU exactly."""

from __future__ import annotations

import numpy as np

from edge.detector import _iou, _pairwise_iou


def test_pairwise_rows_equal_one_box_iou() -> None:
    rng = np.random.default_rng(3)
    for n in (2, 7, 40):
        centres = rng.uniform(0, 128, (n, 2)).astype(np.float32)
        sizes = rng.uniform(0, 40, (n, 2)).astype(np.float32)
        sizes[0] = 0  # a degenerate box too
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
        matrix = _pairwise_iou(boxes)
        for i in range(n):
            np.testing.assert_array_equal(matrix[i], _iou(boxes[i], boxes))
