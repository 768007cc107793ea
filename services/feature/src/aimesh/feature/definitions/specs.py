"""Feature definitions: entities, feature views and feature services, as pydantic models.

The agreed format (a "feature repo", YAML or the same structure built in Python)::

    entities:        [{name: user, key: entity_key}, {name: store, key: store_id}]
    feature_views:   [{name, entity, source, ttl: 30d, features: [{name, aggregation, field, window}],
                       transformations: [{name, expression: log1p(amount)}]}]
    feature_services: [{name, features: ["<view>:<feature>", "<view>:*"]}]

``parse_repo`` validates a document and raises InvalidArgument naming the path of each problem
(``feature_views[2].features[0].window: ...``), among them an on-demand expression whose bare name
several stream-fed views of the document define. Cross-references (entities of views, features of
services, names used by on-demand expressions) are checked by ``check_references`` against the
definitions they will live with (the registry's, when applying a partial repo).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.expressions import Expression, ExpressionError

REQUEST_SOURCE = "request"
"""Pseudo-source of on-demand views: their inputs come with the request."""
ENTITY_KEY = "entity_key"
"""An entity key naming the canonical record's own ``entity_key`` (any other key is an attribute)."""

NEWEST_ONLY = timedelta(microseconds=1)
"""The retention of a view with neither a ttl nor a windowed feature: only the newest event is kept."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_duration(value: Any) -> Any:
    """``"30d"``, ``"1h"``, ``"15m"``, ``"10s"`` (or a timedelta / seconds number) -> timedelta."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use <integer><unit> with unit s, m, h or d (e.g. 24h)")
        return _timedelta(int(match.group(1)) * _UNITS[match.group(2)])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _timedelta(value)
    return value


def _timedelta(seconds: float) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"duration of {seconds:g}s is out of range") from exc


def format_duration(value: timedelta) -> str:
    """The shortest exact ``<n><unit>`` text of ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


MAX_DURATION = timedelta(days=36500)
"""The longest window or ttl (100 years; event times are int64 microseconds)."""


def _usable(value: timedelta) -> timedelta:
    """A window or ttl that can keep a feature defined: positive (a window or ttl of 0 sees no event, so its
    feature would always be MISSING), whole seconds (what is stored) and at most ``MAX_DURATION``."""
    if value <= timedelta(0):
        raise ValueError(
            f"must be positive, got {value.total_seconds():g}s (a window of 0 holds no event, a ttl of 0 "
            "expires every value)"
        )
    if value % timedelta(seconds=1):
        raise ValueError(f"must be a whole number of seconds, got {value.total_seconds():g}s")
    if value > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_usable),
    PlainSerializer(format_duration, return_type=str),
]
Name = Annotated[str, Field(pattern=_NAME, max_length=100)]


class Aggregation(StrEnum):
    """How a feature is computed from an entity's events (``serving.aggregation`` implements each)."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    DISTINCT_COUNT = "distinct_count"
    SECONDS_SINCE_LAST = "seconds_since_last"
    IS_NEW = "is_new"
    ON_DEMAND = "on_demand"
    LAST_N = "last_n"


class ListType(StrEnum):
    """The element type of a ``last_n`` feature's list (its ``dtype``)."""

    STRING_LIST = "string_list"
    DOUBLE_LIST = "double_list"


WINDOWED = frozenset(
    {
        Aggregation.COUNT,
        Aggregation.SUM,
        Aggregation.MEAN,
        Aggregation.MIN,
        Aggregation.MAX,
        Aggregation.DISTINCT_COUNT,
        Aggregation.LAST_N,
    }
)
"""Aggregations over a sliding window (the whole retained history when the window is unset)."""
NEEDS_FIELD = WINDOWED - {Aggregation.COUNT} | {Aggregation.LAST, Aggregation.IS_NEW}
MAX_LAST_N = 1000
"""The most values a ``last_n`` feature's list holds."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntitySpec(_Model):
    """A kind of thing features describe; ``key`` is where a record carries its id."""

    name: Name
    key: str = ENTITY_KEY
    description: str = ""


class FeatureSpec(_Model):
    """One feature of a view.

    ``field`` is the record attribute (or transformation) aggregated; ``window`` bounds windowed
    aggregations (open interval (t - window, t)) and caps ``seconds_since_last``; ``expression`` is
    the formula of an ``on_demand`` feature over request-context fields and other features.
    ``is_new`` compares the request context's ``field`` with every value ``field`` took before t.
    ``last_n`` lists the newest ``n`` (1..``MAX_LAST_N``) values of ``field`` in the window, oldest first;
    ``dtype`` (``last_n`` only) is the element type: ``string_list`` (the default: every value as text)
    or ``double_list`` (numbers and bools as doubles; a value that is neither is left out). The feature
    service does not see the sources' schemas, so a numeric field's feature states ``double_list``.
    """

    name: Name
    aggregation: Aggregation
    field: str | None = None
    window: Duration | None = None
    expression: str | None = None
    n: int | None = None
    dtype: ListType | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_list_type(cls, data: Any) -> Any:
        """A ``last_n`` feature without a ``dtype`` gets ``string_list`` (so every form of it compares equal)."""
        last_n = isinstance(data, dict) and data.get("aggregation") in (Aggregation.LAST_N, "last_n")
        return {**data, "dtype": ListType.STRING_LIST} if last_n and data.get("dtype") is None else data

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        agg = self.aggregation
        if agg in NEEDS_FIELD and not self.field:
            raise ValueError(f"aggregation {agg.value} needs a field")
        if self.window is not None and agg not in WINDOWED | {Aggregation.SECONDS_SINCE_LAST}:
            raise ValueError(f"aggregation {agg.value} takes no window")
        if agg is Aggregation.SECONDS_SINCE_LAST and self.window is None:
            raise ValueError("aggregation seconds_since_last needs a window (the cap)")
        if agg is Aggregation.LAST_N:
            if self.n is None or not 1 <= self.n <= MAX_LAST_N:
                raise ValueError(f"aggregation last_n needs n in [1, {MAX_LAST_N}], got {self.n}")
        elif self.n is not None or self.dtype is not None:
            raise ValueError(f"aggregation {agg.value} takes no n or dtype (only last_n does)")
        if agg is Aggregation.ON_DEMAND:
            if not self.expression or self.field or self.window:
                raise ValueError("aggregation on_demand needs an expression and takes no field or window")
            _compile(self.expression)
        elif self.expression:
            raise ValueError(f"aggregation {agg.value} takes no expression (only on_demand does)")
        return self

    @cached_property
    def window_us(self) -> int | None:
        """The window in microseconds (None: unset)."""
        return self.window // timedelta(microseconds=1) if self.window is not None else None

    @cached_property
    def compiled(self) -> Expression:
        """The on-demand expression, compiled (only for ON_DEMAND)."""
        assert self.expression is not None
        return Expression(self.expression)

    @property
    def list_type(self) -> ListType | None:
        """The element type of a ``last_n`` feature (its ``dtype``); None for the other aggregations."""
        return self.dtype

    def behaviour(self) -> tuple[object, ...]:
        """What a stored version promises about this feature's values; changing it is a breaking change."""
        return (self.aggregation, self.field, self.window, self.expression, self.n, self.dtype)


class TransformationSpec(_Model):
    """A per-record derived field (``expression`` over the record's attributes), aggregated like one."""

    name: Name
    expression: str

    @model_validator(mode="after")
    def _parses(self) -> TransformationSpec:
        _compile(self.expression)
        return self

    @cached_property
    def compiled(self) -> Expression:
        return Expression(self.expression)


def _compile(text: str) -> Expression:
    try:
        return Expression(text)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc


class FeatureViewSpec(_Model):
    """Features of one entity from one source; or, with ``source: request``, on-demand features."""

    name: Name
    entity: str = ""
    source: str
    ttl: Duration | None = None
    features: list[FeatureSpec] = Field(min_length=1)
    transformations: list[TransformationSpec] = []
    description: str = ""
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _consistent(self) -> FeatureViewSpec:
        _unique("features", [f.name for f in self.features])
        _unique("transformations", [t.name for t in self.transformations])
        on_demand = [f.name for f in self.features if f.aggregation is Aggregation.ON_DEMAND]
        if self.source == REQUEST_SOURCE:
            if len(on_demand) != len(self.features) or self.transformations:
                raise ValueError("a view with source 'request' holds only on_demand features and no transformations")
        else:
            if not self.entity:
                raise ValueError("entity missing (only views with source 'request' have none)")
            if on_demand:
                raise ValueError(f"on_demand features belong in a view with source 'request': {', '.join(on_demand)}")
        return self

    @property
    def on_demand(self) -> bool:
        return self.source == REQUEST_SOURCE

    @cached_property
    def retention(self) -> timedelta:
        """How much history the view keeps: the events in ``(newest - retention, newest]`` of an entity's
        newest event. Its longest window or ttl (whichever is longer); ``NEWEST_ONLY`` (1 µs) when it has
        neither, so that the newest event (with any others of the same microsecond) is kept and served."""
        spans = [f.window for f in self.features if f.aggregation in WINDOWED and f.window is not None]
        if self.ttl is not None:
            spans.append(self.ttl)
        return max(spans, default=NEWEST_ONLY)

    @property
    def newest_only(self) -> bool:
        """Whether the view keeps only each entity's newest event (neither a ttl nor a windowed feature)."""
        return self.retention == NEWEST_ONLY

    @cached_property
    def retention_us(self) -> int:
        return self.retention // timedelta(microseconds=1)

    @cached_property
    def ttl_us(self) -> int | None:
        return self.ttl // timedelta(microseconds=1) if self.ttl is not None else None

    @cached_property
    def stored_fields(self) -> tuple[str, ...]:
        """Record fields (attributes or transformations) the view's aggregations read, sorted."""
        return tuple(sorted({f.field for f in self.features if f.field and f.aggregation is not Aggregation.IS_NEW}))

    @cached_property
    def seen_fields(self) -> tuple[str, ...]:
        """Fields whose every value is remembered with its first time (``is_new`` features)."""
        return tuple(sorted({f.field for f in self.features if f.field and f.aggregation is Aggregation.IS_NEW}))

    def storage_layout(self) -> tuple[object, ...]:
        """What the online state of this view depends on; when it changes the view is backfilled again."""
        transformations = tuple((t.name, t.expression) for t in self.transformations)
        return (self.entity, self.source, self.stored_fields, self.seen_fields, self.retention, transformations)


class FeatureServiceSpec(_Model):
    """A named, ordered list of feature references ``<view>:<feature>`` (or ``<view>:*``): a model's inputs."""

    name: Name
    features: list[str] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _references(self) -> FeatureServiceSpec:
        for i, ref in enumerate(self.features):
            if ref.count(":") != 1 or not all(ref.split(":")):
                raise ValueError(f"features[{i}]: {ref!r} is not a reference '<view>:<feature>' or '<view>:*'")
        return self


class FeatureRepo(_Model):
    """A set of definitions (a YAML file, an ApplyDefinitions request, or the registry's latest versions)."""

    entities: list[EntitySpec] = []
    feature_views: list[FeatureViewSpec] = []
    feature_services: list[FeatureServiceSpec] = []

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureRepo:
        _unique("entities", [e.name for e in self.entities])
        _unique("feature_views", [v.name for v in self.feature_views])
        _unique("feature_services", [s.name for s in self.feature_services])
        return self

    def merged_over(self, base: FeatureRepo) -> FeatureRepo:
        """``base`` with this repo's definitions added or replacing those of the same name."""

        def merge(old: list[Any], new: list[Any]) -> list[Any]:
            by_name = {item.name: item for item in old}
            by_name.update({item.name: item for item in new})
            return sorted(by_name.values(), key=lambda item: item.name)

        return FeatureRepo(
            entities=merge(base.entities, self.entities),
            feature_views=merge(base.feature_views, self.feature_views),
            feature_services=merge(base.feature_services, self.feature_services),
        )


def _unique(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: duplicate names {', '.join(dupes)}")


def error_path(loc: Iterable[int | str]) -> str:
    """``("feature_views", 2, "features", 0, "window")`` -> ``feature_views[2].features[0].window``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_repo(document: Mapping[str, Any] | None) -> FeatureRepo:
    """Validate a definitions document; raises InvalidArgument naming every problem by its path.

    Once every definition is valid on its own, the document is refused (InvalidArgument naming the
    path) when an on-demand expression names a feature that several of its stream-fed views define (the
    bare name would be ambiguous), or when a feature could never see the history it aggregates (see
    ``_history_too_short``).
    """
    try:
        repo = FeatureRepo.model_validate(document or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-")))]
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{error_path(loc) or '<document>'}: {message}")
        raise InvalidArgument("invalid feature definitions: " + "; ".join(problems)) from exc
    if problems := _ambiguous_names(repo, repo) + _history_too_short(repo):
        raise InvalidArgument("invalid feature definitions: " + "; ".join(problems))
    return repo


def parse_yaml(text: str) -> FeatureRepo:
    """A repo from YAML text; raises InvalidArgument for bad YAML or bad definitions."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"invalid YAML: {exc}") from exc
    if document is not None and not isinstance(document, dict):
        raise InvalidArgument("invalid feature definitions: <document>: must be a mapping")
    return parse_repo(document)


def load_file(path: Path) -> FeatureRepo:
    """A repo from a YAML (or JSON) file; raises InvalidArgument (bad content) or OSError (unreadable)."""
    return parse_yaml(path.read_text(encoding="utf-8"))


def to_yaml(repo: FeatureRepo) -> str:
    """The repo as YAML in the agreed format (round-trips through ``parse_yaml``)."""
    return yaml.safe_dump(repo.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def check_references(request: FeatureRepo, merged: FeatureRepo) -> None:
    """Check that ``request``'s definitions refer only to things in ``merged`` (request over the registry).

    Raises InvalidArgument naming the request path: unknown entity of a view, unknown view / feature
    in a service, ambiguous name in an on-demand expression, a feature without the history it needs
    (``_history_too_short``; checked here too for repos not built by ``parse_repo``).
    """
    entities = {e.name for e in merged.entities}
    views = {v.name: v for v in merged.feature_views}
    problems: list[str] = []
    for i, view in enumerate(request.feature_views):
        if view.entity and view.entity not in entities:
            problems.append(
                f"feature_views[{i}].entity: unknown entity {view.entity!r}; known: {', '.join(sorted(entities))}"
            )
    problems += _ambiguous_names(request, merged) + _history_too_short(request)
    for i, service in enumerate(request.feature_services):
        for j, ref in enumerate(service.features):
            view_name, feature_name = ref.split(":")
            found = views.get(view_name)
            if found is None:
                problems.append(
                    f"feature_services[{i}].features[{j}]: unknown feature view {view_name!r}; "
                    f"known: {', '.join(sorted(views))}"
                )
            elif feature_name != "*" and feature_name not in {f.name for f in found.features}:
                problems.append(
                    f"feature_services[{i}].features[{j}]: view {view_name!r} has no feature {feature_name!r}; "
                    f"it has: {', '.join(f.name for f in found.features)}"
                )
    if problems:
        raise InvalidArgument("invalid feature definitions: " + "; ".join(problems))


def stream_features_named(repo: FeatureRepo, name: str) -> list[str]:
    """References (``<view>:<feature>``) of ``repo``'s stream-fed features called ``name``.

    A bare name in an on-demand expression means the one such feature; with none it is a request-context
    field; with several it is ambiguous (refused: by ``parse_repo`` / ``check_references`` for the
    expression's own document, by apply when a new feature would make a stored expression ambiguous).
    """
    return [f"{v.name}:{f.name}" for v in repo.feature_views if not v.on_demand for f in v.features if f.name == name]


def _ambiguous_names(request: FeatureRepo, universe: FeatureRepo) -> list[str]:
    """Problems, by ``request`` path, of on-demand expressions naming several stream features of ``universe``,
    or a ``last_n`` one (expressions compute over scalars, a list is none)."""
    lists = {f"{v.name}:{f.name}" for v in universe.feature_views for f in v.features if f.list_type is not None}
    problems = []
    for i, view in enumerate(request.feature_views):
        if not view.on_demand:
            continue
        for j, feature in enumerate(view.features):
            for name in sorted(feature.compiled.names):
                hits = stream_features_named(universe, name)
                where = f"feature_views[{i}].features[{j}].expression"
                if len(hits) > 1:
                    problems.append(f"{where}: {name!r} is ambiguous ({', '.join(hits)})")
                elif hits and hits[0] in lists:
                    problems.append(f"{where}: {name!r} is the list feature {hits[0]} (expressions read scalars)")
    return problems


def _history_too_short(request: FeatureRepo) -> list[str]:
    """Problems, by ``request`` path, of features whose view's retention leaves them nothing to aggregate.

    A windowed aggregation without a window reads the whole retained history; in a view with neither a
    ttl nor a windowed feature (``FeatureViewSpec.newest_only``) that is the newest event alone, so a
    count would be 1 and a mean the newest value, whatever the entity did before. Windows and ttls of 0
    are refused by the definitions themselves (``Duration``). Not checked when the registry loads stored
    versions, so definitions stored before this rule still load.
    """
    problems = []
    for i, view in enumerate(request.feature_views):
        if view.on_demand or not view.newest_only:
            continue
        for j, feature in enumerate(view.features):
            if feature.aggregation in WINDOWED and feature.window is None:
                problems.append(
                    f"feature_views[{i}].features[{j}].window: aggregation {feature.aggregation.value} without a "
                    f"window reads the view's retained history, and view {view.name} keeps only each entity's "
                    "newest event (it has neither a ttl nor a windowed feature): give the feature a window or "
                    "the view a ttl"
                )
    return problems
