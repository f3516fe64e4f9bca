"""Localisation and classification metrics on hand-made inputs with known answers."""

import math

import pytest
import torch

from jna_fast.metrics import (confusion_matrix, localisation, mean_class_accuracy, per_class_accuracy,
                              snippets_in_window, topk_correct)


def test_localisation_on_hand_made_attention():
    # clip 0: snippets start at 0, 8, 16, 24; window [8, 20) holds snippets 1 and 2
    # clip 1: same starts, last snippet is padding; window [0, 4) holds snippet 0 only
    indices = torch.tensor([[0, 8, 16, 24], [0, 8, 16, 24]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    attention = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.2, 0.7, 0.1, 0.0]])
    scores = localisation(attention, indices, mask, [(8, 20), (0, 4)])
    torch.testing.assert_close(scores["attention_on_salient"], torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(scores["uniform_on_salient"], torch.tensor([0.5, 1 / 3]))
    torch.testing.assert_close(scores["top_snippet_in_window"], torch.tensor([1.0, 0.0]))


def test_padding_never_counts_as_inside_or_top():
    indices = torch.tensor([[0, 4, 4]])  # padding repeats the last start
    mask = torch.tensor([[True, True, False]])
    inside = snippets_in_window(indices, mask, [(4, 8)])
    assert inside.tolist() == [[False, True, False]]
    scores = localisation(torch.tensor([[0.4, 0.6, 0.0]]), indices, mask, [(4, 8)])
    assert scores["top_snippet_in_window"].item() == 1.0 and scores["uniform_on_salient"].item() == 0.5


def test_topk_and_class_accuracies():
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2, 1, 2])
    assert topk_correct(scores, labels, 1).tolist() == [True, False, False, True]
    assert topk_correct(scores, labels, 2).tolist() == [True, True, False, True]
    assert topk_correct(scores, labels, 5).all()  # k capped at the number of classes
    confusion = confusion_matrix(scores.argmax(1), labels, 4)
    assert confusion.tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    per_class = per_class_accuracy(confusion)
    assert per_class[:3].tolist() == [1.0, 0.0, 0.5] and math.isnan(per_class[3])
    assert mean_class_accuracy(confusion) == pytest.approx(0.5)  # classes without test clips are left out
