"""Metrics: FCN-score (confusion matrix, acc, IoU), image metrics, and the segmenter FCN-score uses."""
