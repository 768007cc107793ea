"""Streaming drift windows: counts per input and for the score, missing values, categorical decoding,
closing by count and by time, duplicates, shadows and the bound on tracked versions."""

from __future__ import annotations

import numpy as np

from aimesh.core.distribution import bin_counts
from aimesh.monitor.drift_windows import DriftWindows

from . import drift_fixtures as fx  # type: ignore[attr-defined]


def windows(count: int = 1000, *, window_s: float = 3600.0, min_samples: int = 1, versions: int = 8) -> DriftWindows:
    catalog = fx.catalog_with(fx.registered("m", 1), fx.registered("m", 2), fx.registered("other", 1))
    return DriftWindows(catalog, window_s=window_s, window_count=count, min_samples=min_samples, max_versions=versions)


def test_a_full_window_holds_the_bin_counts_of_every_input_and_of_the_score() -> None:
    rows = fx.predictions(1000)
    (closed,) = windows(1000).observe(rows)
    assert (closed.model_name, closed.model_version, closed.predictions) == ("m", 1, 1000)
    tallies = {t.profile.feature: t for t in closed.inputs}
    assert list(tallies) == [*fx.NUMERIC, fx.CATEGORICAL]
    a = tallies["v:a"]
    assert a.counts.tolist() == bin_counts(a.profile, np.array([p.features["v:a"] for p in rows])).tolist()
    assert a.missing == 0 and tallies["v:b"].missing == 100 and int(tallies["v:b"].counts.sum()) == 900
    kinds = tallies[fx.CATEGORICAL]
    labels = [fx.VOCABULARY[int(p.features[fx.CATEGORICAL]) - 1] for p in rows]
    assert kinds.counts.tolist() == bin_counts(kinds.profile, labels).tolist() and kinds.missing == 0
    assert closed.score is not None and int(closed.score.counts.sum()) == 1000
    assert closed.end >= closed.start


def test_duplicates_count_once_and_shadows_and_unknown_versions_not_at_all() -> None:
    w = windows(1000)
    assert w.observe(fx.predictions(600)) == []
    assert w.observe(fx.predictions(600)) == []  # the same 600 event ids again
    assert w.observe(fx.predictions(50, shadow=True, prefix="s")) == []
    assert w.observe(fx.predictions(50, version=9, prefix="u")) == []
    assert w.tracked == [("m", 1)]
    (closed,) = w.observe(fx.predictions(400, prefix="f"))
    assert closed.predictions == 1000 and w.tracked == []


def test_a_batch_over_the_window_fills_it_and_opens_the_next() -> None:
    w = windows(1000)
    closed = w.observe(fx.predictions(2500))
    assert [c.predictions for c in closed] == [1000, 1000] and w.tracked == [("m", 1)]
    assert [int(c.inputs[0].counts.sum()) for c in closed] == [1000, 1000]


def test_a_window_closes_by_time_once_it_holds_min_samples() -> None:
    w = windows(10_000, window_s=0.0, min_samples=100)
    w.observe(fx.predictions(99))
    assert w.due() == [] and w.tracked == [("m", 1)]  # too few: it stays open
    w.observe(fx.predictions(1, prefix="more"))
    (closed,) = w.due()
    assert closed.predictions == 100 and w.tracked == []


def test_the_least_recently_fed_version_is_dropped_over_the_bound() -> None:
    w = windows(1000, versions=2)
    w.observe(fx.predictions(10, version=1))
    w.observe(fx.predictions(10, version=2))
    w.observe(fx.predictions(10, model="other"))
    assert w.tracked == [("m", 2), ("other", 1)]


def test_a_profile_whose_bins_do_not_match_its_shares_is_left_out() -> None:
    event = fx.registered("m", 1)
    event.input_profiles[0].ClearField("bin_edges")  # numeric shares without edges
    del event.input_profiles[3].categories[:]  # categorical shares without categories
    w = DriftWindows(fx.catalog_with(event), window_s=3600.0, window_count=10, min_samples=1, max_versions=2)
    (closed,) = w.observe(fx.predictions(10))
    assert [t.profile.feature for t in closed.inputs] == ["v:b", "v:c"]
