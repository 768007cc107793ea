"""The ``sequence_next_item`` trainer on synthetic sequential data: it learns the next-item structure (and
beats the popularity baseline clearly), its export takes the top-k inside the model, its parameters are
checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aimesh.api.common.v1 import signature_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument
from aimesh.training import next_item
from aimesh.training.model import load_torchscript, predict_outputs, save_torchscript
from aimesh.training.trainers import trainer
from aimesh.training.trainers.base import Dataset, Fitted
from aimesh.training.trainers.sequence_next_item import TRAINER

from . import sequential  # type: ignore[attr-defined]

PARAMS = {**TRAINER.defaults, "epochs": "4", "embedding_dim": "16", "hidden": "32", "max_len": "8", "lr": "0.01"}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return sequential.dataset(200, 50, 25, max_len=8, seed=5)


@pytest.fixture(scope="module")
def fitted(data: Dataset) -> Fitted:
    losses: list[float] = []
    out = TRAINER.fit(data, PARAMS, threads=1, progress=lambda epoch, loss: losses.append(loss))
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8, losses  # one progress call per epoch, learning
    return out


def test_it_is_registered_as_a_next_item_trainer() -> None:
    assert trainer("sequence_next_item") is TRAINER and TRAINER.task == signature_pb2.TASK_NEXT_ITEM


def test_it_beats_popularity_clearly_on_data_with_sequential_structure(data: Dataset, fitted: Fitted) -> None:
    metrics, profile = next_item.evaluate(fitted, data, seed=1)
    print({k: round(v, 3) for k, v in metrics.items()})
    assert metrics["eval_ranked_rows"] == 200 and metrics["vocabulary_size"] == 50
    assert metrics["hr@10"] > metrics["popularity_hr@10"] + 0.2
    assert metrics["hr@10_full"] > metrics["popularity_hr@10_full"] + 0.2
    assert metrics["ndcg@10"] > metrics["popularity_ndcg@10"]
    assert metrics["hr@10"] > 0.7
    assert sum(profile.fractions) == pytest.approx(1.0) and profile.count == 200


def test_the_export_returns_the_top_k_indexes_and_descending_softmax_scores(
    data: Dataset, fitted: Fitted, tmp_path: Path
) -> None:
    k = 50  # export_k 100 is capped at the vocabulary
    assert [(o.name, o.tensor, list(o.shape)) for o in fitted.outputs] == [
        ("items", "OUTPUT__0", [k]),
        ("scores", "OUTPUT__1", [k]),
    ]
    assert fitted.outputs[0].indexes_vocabulary_of == sequential.FEATURE
    save_torchscript(fitted.module, tmp_path / "model.pt")
    scripted = load_torchscript(tmp_path / "model.pt")
    x = data.x_eval[:64]
    out = predict_outputs(scripted, x)
    np.testing.assert_allclose(out, predict_outputs(fitted.module, x), atol=1e-6)
    items, scores = out[:, :k], out[:, k:]
    assert items.min() >= 1 and items.max() <= 50 and np.all(items == np.round(items))
    assert all(len(set(row.tolist())) == k for row in items)
    assert np.all(np.diff(scores, axis=1) <= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    assert fitted.rank_scores is not None
    logits = fitted.rank_scores(x)
    assert logits.shape == (64, 51) and np.all(np.isneginf(logits[:, 0]))
    assert np.array_equal(items[:, 0].astype(np.int64), np.argmax(logits, axis=1))


def test_an_empty_history_still_ranks_items_and_never_padding(fitted: Fitted, data: Dataset) -> None:
    out = predict_outputs(fitted.module, np.zeros((1, data.x_eval.shape[1]), dtype=np.float32))
    assert out[0, :50].min() >= 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("embedding_dim", "0"), ("hidden", "x"), ("epochs", "0"), ("lr", "2"), ("max_len", "1001"), ("export_k", "0")],
)
def test_unusable_parameters_are_refused_by_name(name: str, value: str) -> None:
    TRAINER.check(TRAINER.defaults)
    with pytest.raises(InvalidArgument, match=name):
        TRAINER.check({**TRAINER.defaults, name: value})


def test_a_run_without_a_sequence_input_is_refused(data: Dataset) -> None:
    numeric = signature_pb2.SignatureInput(name="v:n", kind=signature_pb2.INPUT_KIND_NUMERIC)
    flat = Dataset((numeric,), data.x_train[:, :1], data.y_train, data.x_eval[:, :1], data.y_eval)
    with pytest.raises(FailedPrecondition, match="needs a sequence input"):
        TRAINER.fit(flat, PARAMS, threads=1, progress=lambda e, loss: None)
