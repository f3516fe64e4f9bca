"""Localisation and classification metrics on hand-made inputs with known answers."""

import json
import math

import pytest
import torch

from jna_fast.metrics import (confusion_matrix, localisation, mean_class_accuracy, per_class_accuracy,
                              predicted_classes, ranked_classes, snippets_in_window, topk_correct)


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


def test_ties_go_to_the_lower_class_index_in_top_k_predictions_and_the_confusion_matrix():
    # Row 0: classes 5, 17 and 31 tie for the top score (torch.topk picks 31 there, argmax 5); row 1: all tie.
    scores = torch.zeros(2, 40)
    scores[0, [5, 17, 31]] = 1.0
    labels = torch.tensor([5, 0])
    assert predicted_classes(scores).tolist() == [5, 0]
    assert ranked_classes(scores, 3).tolist() == [[5, 17, 31], [0, 1, 2]]
    assert topk_correct(scores, labels, 1).tolist() == [True, True]
    assert topk_correct(scores, torch.tensor([31, 39]), 1).tolist() == [False, False]
    assert topk_correct(scores, torch.tensor([31, 2]), 3).tolist() == [True, True]
    confusion = confusion_matrix(predicted_classes(scores), labels, 40)
    assert mean_class_accuracy(confusion) == 1.0 and int(confusion.diag().sum()) == 2


def test_evaluation_counts_a_tie_the_same_way_in_top1_predictions_and_per_class(tmp_path):
    from jna_fast.evaluation import Predictions, summarize, write_predictions

    scores = torch.zeros(3, 40)
    scores[:, [5, 31]] = 1.0  # every clip: a tie between classes 5 and 31
    predictions = Predictions(["a", "b", "c"], torch.tensor([5, 5, 31]), scores, None, None, torch.ones(3, 1),
                              torch.zeros(3, 1, dtype=torch.int64), torch.ones(3, 1, dtype=torch.bool))
    names = [f"class{index}" for index in range(40)]
    report = summarize(predictions, names, None)
    assert report["top1"] == pytest.approx(2 / 3)
    assert report["per_class"]["class5"] == 1.0 and report["per_class"]["class31"] == 0.0
    write_predictions(predictions, names, tmp_path / "predictions.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [line["prediction"] for line in lines] == [5, 5, 5]
