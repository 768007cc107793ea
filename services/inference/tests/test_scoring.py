"""Scorer with in-memory fakes of the feature source, the model runner and the producer: routing by the
version's signature (request checks, inline keys, categorical encoding, vector outputs, freshness, the
Prediction key), GetModelSignature, and the publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.auth import Principal, bind_principal, reset_principal
from aimesh.core.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog, fallback_signature
from aimesh.core.spool import Spool, SpoolingSender
from aimesh.core.testing import RecordingSender
from aimesh.inference.features import FeatureLookup, OnlineFeatures, parse_online_response
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.scoring import Scorer

FEATURES = ("v:a", "v:b", "v:c")
NUMERIC = signature_pb2.INPUT_KIND_NUMERIC
CATEGORICAL = signature_pb2.INPUT_KIND_CATEGORICAL


class FakeFeatures:
    """Answers every lookup with ``result`` (or ``result(lookup)``) after ``delay`` seconds; records each
    lookup in ``calls`` and counts the calls in ``requests``."""

    def __init__(self, result: OnlineFeatures | Callable[[FeatureLookup], OnlineFeatures], delay: float = 0.0) -> None:
        self.result = result
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self.requests = 0

    async def online_features(
        self, lookups: Sequence[FeatureLookup], *, time_left: float | None
    ) -> list[OnlineFeatures]:
        self.calls.extend(
            {
                "service": lookup.feature_service,
                "ids": dict(lookup.entity_ids),
                "context": dict(lookup.context),
                "t": time_left,
            }
            for lookup in lookups
        )
        self.requests += 1
        await asyncio.sleep(self.delay)
        return [self.result(lookup) if callable(self.result) else self.result for lookup in lookups]


class FakeRunner:
    """Returns ``tensors(row)`` (default: ``OUTPUT__0`` = sum(row) / 100) and records every call."""

    def __init__(self, tensors: Callable[[list[float]], dict[str, list[float]]] | None = None) -> None:
        self.rows: list[list[float]] = []
        self.calls: list[dict[str, Any]] = []
        self.tensors = tensors or (lambda row: {"OUTPUT__0": [sum(row) / 100.0]})

    async def infer(
        self,
        model: str,
        version: int,
        rows: Sequence[Sequence[float]],
        *,
        input_tensor: str,
        outputs: Sequence[str],
        time_left: float | None,
    ) -> list[dict[str, list[float]]]:
        self.rows.extend(list(row) for row in rows)
        self.calls.append({"model": model, "version": version, "input": input_tensor, "outputs": list(outputs)})
        return [self.tensors(list(row)) for row in rows]


def registered(
    version: int, signature: signature_pb2.ModelSignature | None = None, features: Sequence[str] = FEATURES
) -> events_pb2.ModelEvent:
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name="risk",
        version=version,
        triton_model_name="risk_tr",
        triton_model_version=1,
        features=features,
        feature_service="risk_v1",
    )
    if signature is not None:
        event.signature.CopyFrom(signature)
    return event


def alias(version: int, name: str = "champion") -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name="risk",
        version=version,
        alias_change=training_pb2.AliasChange(alias=name, new_version=version),
    )


def catalog(*events: events_pb2.ModelEvent) -> ModelCatalog:
    """A catalog of ``events``; by default v3 without a signature (the fallback), champion -> 3."""
    c = ModelCatalog()
    for event in events or (registered(3), alias(3)):
        c.apply(event)
    return c


def signature(
    inputs: Sequence[signature_pb2.SignatureInput] = (),
    outputs: Sequence[signature_pb2.SignatureOutput] = (),
) -> signature_pb2.ModelSignature:
    """A signature with entity types account + user (key account) and a DOUBLE context field amount."""
    return signature_pb2.ModelSignature(
        inputs=inputs or [signature_pb2.SignatureInput(name=n, kind=NUMERIC, missing_value=-1.0) for n in FEATURES],
        outputs=outputs
        or [
            signature_pb2.SignatureOutput(
                name="score", tensor="OUTPUT__0", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1]
            )
        ],
        entity_types=["account", "user"],
        key_entity="account",
        context_fields=[
            signature_pb2.ContextField(name="amount", type=common_pb2.VALUE_TYPE_DOUBLE),
            signature_pb2.ContextField(name="channel", type=common_pb2.VALUE_TYPE_STRING),
        ],
        task=signature_pb2.TASK_BINARY_CLASSIFICATION,
        input_tensor="IN",
    )


def valid_request(**fields: Any) -> inference_pb2.ScoreRequest:
    request = inference_pb2.ScoreRequest(model="risk", entity_ids={"account": "a-1", "user": "u-1"}, **fields)
    request.context["amount"].double_value = 12.5
    request.context["channel"].string_value = "web"
    return request


def scorer_of(
    c: ModelCatalog, features: FakeFeatures | None = None, runner: FakeRunner | None = None
) -> tuple[Scorer, FakeFeatures, FakeRunner, RecordingSender, PredictionPublisher]:
    features = features or FakeFeatures(OnlineFeatures())
    runner = runner or FakeRunner()
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    return Scorer(c, features, runner, publisher), features, runner, producer, publisher


async def test_score_assembles_features_in_model_order_and_publishes() -> None:
    seen = datetime.now(UTC) - timedelta(seconds=30)
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0}, ("v:c",), {"v:a": seen, "v:b": seen}))
    scorer, features, runner, producer, publisher = scorer_of(catalog(), features)
    request = inference_pb2.ScoreRequest(
        request_id="r-1",
        model="risk",
        entity_ids={"account": "a-1", "user": "u-1"},
        features={"v:b": 5.0},
        context={"amount": common_pb2.Value(double_value=12.5)},
    )
    response = await scorer.score(request, time_left=2.0)
    await publisher.drain()
    assert runner.rows == [[1.0, 5.0, 0.0]]
    assert runner.calls[0] == {"model": "risk_tr", "version": 1, "input": "INPUT__0", "outputs": ["OUTPUT__0"]}
    assert response.score == pytest.approx(0.06)
    assert list(response.outputs) == ["score"] and list(response.outputs["score"].values) == [pytest.approx(0.06)]
    assert response.model_version == 3
    assert response.route == inference_pb2.ROUTE_CHAMPION
    assert list(response.missing_features) == ["v:c"]
    assert 29.0 < response.feature_freshness_seconds < 40.0
    assert features.calls[0]["service"] == "risk_v1"
    assert features.calls[0]["ids"] == {"account": "a-1", "user": "u-1"}
    assert features.calls[0]["context"]["amount"].double_value == 12.5
    assert 0 < features.calls[0]["t"] <= 2.0
    [(topic, prediction, key, _)] = producer.sent
    assert topic == "preds"
    assert key == "r-1", "a version without a signature has no key entity: the request id keys its predictions"
    assert isinstance(prediction, inference_events.Prediction)
    assert prediction.event_id == response.event_id
    assert prediction.request_id == "r-1"
    assert prediction.score == pytest.approx(0.06)
    assert dict(prediction.features) == {"v:a": 1.0, "v:b": 5.0, "v:c": 0.0}
    assert dict(prediction.entity_ids) == {"account": "a-1", "user": "u-1"}


async def test_all_features_inline_skips_the_feature_service() -> None:
    scorer, features, _, producer, publisher = scorer_of(catalog())
    response = await scorer.score(
        inference_pb2.ScoreRequest(model="risk", features={"v:a": 1, "v:b": 2, "v:c": 3}), time_left=None
    )
    await publisher.drain()
    assert features.calls == []
    assert response.request_id and response.feature_freshness_seconds == 0.0
    assert producer.sent[0][2] == response.request_id


async def test_the_prediction_names_the_callers_tenant() -> None:
    scorer, _, _, producer, publisher = scorer_of(catalog())
    request = inference_pb2.ScoreRequest(model="risk", features={"v:a": 1, "v:b": 2, "v:c": 3})
    token = bind_principal(Principal(subject="backend-1", tenant="acme", via="jwt"))
    try:
        await scorer.score(request, time_left=None)
    finally:
        reset_principal(token)
    await scorer.score(request, time_left=None)
    await publisher.drain()
    assert [sent[1].tenant for sent in producer.sent] == ["acme", ""]


async def test_no_entity_ids_and_missing_inline_features_is_invalid() -> None:
    scorer, *_ = scorer_of(catalog())
    with pytest.raises(InvalidArgument, match="v:b, v:c"):
        await scorer.score(inference_pb2.ScoreRequest(model="risk", features={"v:a": 1}), time_left=None)


async def test_deadline_spent_in_feature_lookup_is_unavailable_naming_it_without_a_fallback() -> None:
    scorer, *_ = scorer_of(catalog(), FakeFeatures(OnlineFeatures({"v:a": 1.0}), delay=0.5))
    with pytest.raises(Unavailable, match="feature service did not answer within") as raised:
        await scorer.score(inference_pb2.ScoreRequest(model="risk", entity_ids={"account": "a"}), time_left=0.05)
    assert isinstance(raised.value.__cause__, DeadlineExceeded)


async def test_signature_routes_tensors_fills_and_keys_the_prediction_by_its_key_entity() -> None:
    scorer, _, runner, producer, publisher = scorer_of(
        catalog(registered(4, signature()), alias(4)), FakeFeatures(OnlineFeatures({"v:a": 2.0}, ("v:b", "v:c")))
    )
    response = await scorer.score(valid_request(request_id="r-9"), time_left=None)
    await publisher.drain()
    assert runner.rows == [[2.0, -1.0, -1.0]], "numeric inputs without a value get the signature's missing_value"
    assert runner.calls[0]["input"] == "IN" and runner.calls[0]["outputs"] == ["OUTPUT__0"]
    assert list(response.missing_features) == ["v:b", "v:c"]
    assert producer.sent[0][2] == "a-1"


async def test_key_entity_absent_from_the_request_keys_by_request_id() -> None:
    sig = signature()
    del sig.entity_types[:]
    scorer, _, _, producer, publisher = scorer_of(catalog(registered(4, sig), alias(4)))
    request = valid_request(request_id="r-7", features={"v:a": 1.0, "v:b": 2.0, "v:c": 3.0})
    del request.entity_ids["account"]
    await scorer.score(request, time_left=None)
    await publisher.drain()
    assert producer.sent[0][2] == "r-7"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.entity_ids.pop("account"), "entity_ids['account'] is missing"),
        (lambda r: r.entity_ids.__setitem__("user", ""), "entity_ids['user'] is missing"),
        (
            lambda r: r.context.pop("amount"),
            "context['amount'] is missing (expected a number (double_value or int64_value))",
        ),
        (
            lambda r: r.context["amount"].CopyFrom(common_pb2.Value(string_value="12")),
            "context['amount'] is a string_value, expected a number (double_value or int64_value)",
        ),
        (
            lambda r: r.context["channel"].CopyFrom(common_pb2.Value(int64_value=3)),
            "context['channel'] is a int64_value, expected a string (string_value)",
        ),
        (
            lambda r: r.context["amount"].CopyFrom(common_pb2.Value(double_value=float("nan"))),
            "context['amount'] is nan, expected a finite number",
        ),
    ],
    ids=[
        "entity-missing",
        "entity-empty",
        "context-missing",
        "context-string-for-double",
        "context-int-for-string",
        "context-nan",
    ],
)
async def test_requests_the_signature_refuses_are_invalid_argument_naming_the_field(
    change: Callable[[inference_pb2.ScoreRequest], object], message: str
) -> None:
    scorer, features, runner, producer, _ = scorer_of(catalog(registered(4, signature()), alias(4)))
    request = valid_request()
    change(request)
    with pytest.raises(InvalidArgument) as refused:
        await scorer.score(request, time_left=None)
    assert message in refused.value.message
    assert features.calls == [] and runner.rows == [] and producer.sent == []


async def test_int64_context_is_accepted_for_a_double_field() -> None:
    scorer, *_ = scorer_of(catalog(registered(4, signature()), alias(4)))
    request = valid_request()
    request.context["amount"].CopyFrom(common_pb2.Value(int64_value=12))
    assert (await scorer.score(request, time_left=None)).model_version == 4


async def test_inline_keys_take_full_or_bare_names() -> None:
    scorer, features, runner, *_ = scorer_of(catalog(registered(4, signature()), alias(4)))
    await scorer.score(valid_request(features={"v:a": 1.0, "b": 2.0, "c": 3.0}), time_left=None)
    assert runner.rows == [[1.0, 2.0, 3.0]]
    assert features.calls == []


@pytest.mark.parametrize(
    ("inline", "message"),
    [
        ({"v:zz": 1.0, "q": 2.0}, "features 'q', 'v:zz' match no input of model 'risk' v4; its inputs: v:a, v:b, v:c"),
        ({"v:a": 1.0, "a": 2.0}, "features['v:a'] names input 'v:a' a second time"),
        ({"v:a": float("inf")}, "features['v:a'] is inf, expected a finite number"),
    ],
)
async def test_refused_inline_keys_are_invalid_argument(inline: dict[str, float], message: str) -> None:
    scorer, *_ = scorer_of(catalog(registered(4, signature()), alias(4)))
    with pytest.raises(InvalidArgument) as refused:
        await scorer.score(valid_request(features=inline), time_left=None)
    assert message in refused.value.message


async def test_bare_name_shared_by_two_inputs_must_be_given_in_full() -> None:
    inputs = [
        signature_pb2.SignatureInput(name="x:n", kind=NUMERIC),
        signature_pb2.SignatureInput(name="y:n", kind=NUMERIC),
    ]
    scorer, _, runner, *_ = scorer_of(catalog(registered(4, signature(inputs), ("x:n", "y:n")), alias(4)))
    with pytest.raises(InvalidArgument, match=r"features\['n'\] names several inputs \(x:n, y:n\): use the full name"):
        await scorer.score(valid_request(features={"n": 1.0}), time_left=None)
    await scorer.score(valid_request(features={"x:n": 1.0, "y:n": 2.0}), time_left=None)
    assert runner.rows == [[1.0, 2.0]]


async def test_categorical_inputs_encode_online_strings_by_vocabulary() -> None:
    inputs = [
        signature_pb2.SignatureInput(name="v:kind", kind=CATEGORICAL, vocabulary=["red", "green", "blue"]),
        signature_pb2.SignatureInput(name="v:other", kind=CATEGORICAL, vocabulary=["x"]),
        signature_pb2.SignatureInput(name="v:gone", kind=CATEGORICAL, vocabulary=["x"]),
        signature_pb2.SignatureInput(name="v:n", kind=NUMERIC, missing_value=0.5),
        signature_pb2.SignatureInput(name="v:flag", kind=NUMERIC, missing_value=0.5),
    ]
    names = [i.name for i in inputs]
    online = OnlineFeatures({"v:kind": "blue", "v:other": "never-seen", "v:n": 7, "v:flag": True}, ("v:gone",))
    scorer, _, runner, producer, publisher = scorer_of(
        catalog(registered(4, signature(inputs), names), alias(4)), FakeFeatures(online)
    )
    response = await scorer.score(valid_request(), time_left=None)
    await publisher.drain()
    assert runner.rows == [[3.0, 0.0, 0.0, 7.0, 1.0]]
    assert list(response.missing_features) == ["v:other", "v:gone"], "unknown and missing categories are fed 0"
    assert dict(producer.sent[0][1].features) == dict(zip(names, [3.0, 0.0, 0.0, 7.0, 1.0], strict=True))


async def test_inline_value_for_a_categorical_input_is_refused() -> None:
    inputs = [signature_pb2.SignatureInput(name="v:kind", kind=CATEGORICAL, vocabulary=["red"])]
    scorer, *_ = scorer_of(catalog(registered(4, signature(inputs), ["v:kind"]), alias(4)))
    with pytest.raises(InvalidArgument, match=r"features\['kind'\] is the categorical input 'v:kind'"):
        await scorer.score(valid_request(features={"kind": 1.0}), time_left=None)


def vector_signature() -> signature_pb2.ModelSignature:
    return signature(
        outputs=[
            signature_pb2.SignatureOutput(
                name="top_ids", tensor="OUTPUT__0", dtype=common_pb2.VALUE_TYPE_INT64, shape=[3]
            ),
            signature_pb2.SignatureOutput(
                name="top_scores", tensor="OUTPUT__1", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[3]
            ),
        ]
    )


async def test_vector_outputs_come_back_by_signature_name() -> None:
    runner = FakeRunner(lambda row: {"OUTPUT__0": [7.0, 3.0, 9.0], "OUTPUT__1": [0.5, 0.3, 0.2]})
    scorer, _, runner, producer, publisher = scorer_of(
        catalog(registered(4, vector_signature()), alias(4)), runner=runner
    )
    response = await scorer.score(valid_request(features={"a": 1, "b": 2, "c": 3}), time_left=None)
    await publisher.drain()
    assert runner.calls[0]["outputs"] == ["OUTPUT__0", "OUTPUT__1"]
    assert {k: list(v.values) for k, v in response.outputs.items()} == {
        "top_ids": [7.0, 3.0, 9.0],
        "top_scores": [0.5, 0.3, 0.2],
    }
    assert response.score == 0.0, "the first output is a vector: no single score"
    assert producer.sent[0][1].score == 0.0


async def test_score_is_the_first_output_when_it_has_one_value() -> None:
    sig = signature(
        outputs=[
            signature_pb2.SignatureOutput(name="p", tensor="P", shape=[1]),
            signature_pb2.SignatureOutput(name="embedding", tensor="E", shape=[2, 2]),
        ]
    )
    runner = FakeRunner(lambda row: {"P": [0.75], "E": [1.0, 2.0, 3.0, 4.0]})
    scorer, *_ = scorer_of(catalog(registered(4, sig), alias(4)), runner=runner)
    response = await scorer.score(valid_request(features={"a": 1, "b": 2, "c": 3}), time_left=None)
    assert response.score == 0.75
    assert list(response.outputs["embedding"].values) == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"OUTPUT__0": [1.0, 2.0, 3.0]}, "returned no tensor 'OUTPUT__1' (output 'top_scores')"),
        ({"OUTPUT__0": [1.0, 2.0], "OUTPUT__1": [0.1, 0.2, 0.3]}, "returned 2 values in 'OUTPUT__0'"),
    ],
)
async def test_outputs_not_matching_the_signature_are_failed_precondition(
    tensors: dict[str, list[float]], message: str
) -> None:
    scorer, *_ = scorer_of(catalog(registered(4, vector_signature()), alias(4)), runner=FakeRunner(lambda row: tensors))
    with pytest.raises(FailedPrecondition) as failed:
        await scorer.score(valid_request(features={"a": 1, "b": 2, "c": 3}), time_left=None)
    assert message in failed.value.message


async def test_freshness_is_the_age_of_the_newest_online_value_used() -> None:
    now = datetime.now(UTC)
    online = OnlineFeatures(
        {"v:a": 1.0, "v:b": 2.0, "v:c": 3.0},
        (),
        {"v:a": now - timedelta(seconds=300), "v:b": now - timedelta(seconds=120), "v:c": now - timedelta(seconds=5)},
    )
    scorer, *_ = scorer_of(catalog(registered(4, signature()), alias(4)), FakeFeatures(online))
    all_online = await scorer.score(valid_request(), time_left=None)
    assert 5.0 <= all_online.feature_freshness_seconds < 15.0
    c_inline = await scorer.score(valid_request(features={"c": 0.0}), time_left=None)
    assert 120.0 <= c_inline.feature_freshness_seconds < 130.0, "an overridden value's time does not count"
    no_times = OnlineFeatures({"v:a": 1.0, "v:b": 2.0, "v:c": 3.0})
    scorer, *_ = scorer_of(catalog(registered(4, signature()), alias(4)), FakeFeatures(no_times))
    assert (await scorer.score(valid_request(), time_left=None)).feature_freshness_seconds == 0.0


def test_parse_online_response_keeps_strings_and_times_of_present_values() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    present = feature_pb2.FEATURE_STATUS_PRESENT
    values = [
        feature_pb2.FeatureValue(value=common_pb2.Value(double_value=1.5), status=present),
        feature_pb2.FeatureValue(value=common_pb2.Value(string_value="blue"), status=present),
        feature_pb2.FeatureValue(value=common_pb2.Value(double_value=9.0), status=feature_pb2.FEATURE_STATUS_EXPIRED),
        feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING),
        feature_pb2.FeatureValue(status=present),
    ]
    values[0].event_time.FromDatetime(at)
    values[2].event_time.FromDatetime(at)
    response = feature_pb2.GetOnlineFeaturesResponse(
        feature_names=["v:n", "v:s", "v:old", "v:none", "v:null"], rows=[feature_pb2.OnlineFeatureRow(values=values)]
    )
    parsed = parse_online_response(response)
    assert parsed.values == {"v:n": 1.5, "v:s": "blue"}
    assert parsed.missing == ("v:old", "v:none", "v:null")
    assert parsed.event_times == {"v:n": at}
    assert parse_online_response(feature_pb2.GetOnlineFeaturesResponse(feature_names=["v:n"])).missing == ("v:n",)


def test_get_model_signature_resolves_like_score() -> None:
    c = catalog(registered(3), registered(4, signature()), alias(4), alias(3, "legacy"))
    scorer, *_ = scorer_of(c)
    champion = scorer.signature(inference_pb2.GetModelSignatureRequest(model="risk"))
    assert (champion.model_name, champion.model_version) == ("risk", 4)
    assert champion.signature == signature()
    pinned = scorer.signature(inference_pb2.GetModelSignatureRequest(model="risk", version=3))
    assert pinned.model_version == 3 and pinned.signature == fallback_signature(FEATURES)
    legacy = scorer.signature(inference_pb2.GetModelSignatureRequest(model="risk", alias="legacy"))
    assert legacy.model_version == 3
    with pytest.raises(NotFound, match="registered models: risk"):
        scorer.signature(inference_pb2.GetModelSignatureRequest(model="other"))
    with pytest.raises(NotFound, match="registered versions: 3, 4"):
        scorer.signature(inference_pb2.GetModelSignatureRequest(model="risk", version=9))
    with pytest.raises(NotFound, match="aliases: champion -> 4, legacy -> 3"):
        scorer.signature(inference_pb2.GetModelSignatureRequest(model="risk", alias="canary"))
    with pytest.raises(InvalidArgument, match="model is required"):
        scorer.signature(inference_pb2.GetModelSignatureRequest())


async def test_publisher_spools_what_kafka_fails_and_counts_only_real_losses(tmp_path: Path) -> None:
    kafka = RecordingSender(fail=True)
    spool = await Spool.open(tmp_path / "predictions.db", name="predictions", max_records=2)
    publisher = PredictionPublisher(SpoolingSender(kafka, spool, source="inference"), "p")
    for i in range(3):
        await publisher.submit(inference_events.Prediction(event_id=f"e{i}"), key="k")
    assert await publisher.drain(2.0) == 0
    assert (publisher.published, publisher.spooled, publisher.failed) == (0, 2, 1), "the third: spool full"
    assert [r.value for _, r in await spool.head(5)] == [
        inference_events.Prediction(event_id=f"e{i}").SerializeToString() for i in range(2)
    ]
    await spool.close()

    direct = PredictionPublisher(RecordingSender(), "p")
    await direct.submit(inference_events.Prediction(event_id="d"), key="k")
    assert await direct.drain(1.0) == 0
    assert (direct.published, direct.spooled, direct.failed) == (1, 0, 0)


async def test_publisher_bounds_in_flight_events() -> None:
    class SlowAcks(RecordingSender):
        def __init__(self) -> None:
            super().__init__()
            self.acks: list[asyncio.Future[Any]] = []

        async def send_event(
            self, topic: str, message: Message, *, key: Any, event_id: Any = None, extra_headers: Any = ()
        ) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.acks.append(fut)
            return fut

    producer = SlowAcks()
    publisher = PredictionPublisher(producer, "p", max_in_flight=2)
    await publisher.submit(inference_events.Prediction(event_id="1"), key="k")
    await publisher.submit(inference_events.Prediction(event_id="2"), key="k")
    third = asyncio.create_task(publisher.submit(inference_events.Prediction(event_id="3"), key="k"))
    await asyncio.sleep(0.05)
    assert not third.done() and publisher.in_flight == 2
    producer.acks[0].set_result(None)
    await asyncio.wait_for(third, 1.0)
    for ack in producer.acks[1:]:
        if not ack.done():
            ack.set_result(None)
    await asyncio.sleep(0)
    for ack in producer.acks:
        if not ack.done():
            ack.set_result(None)
    assert await publisher.drain(1.0) == 0
    assert publisher.published == 3
