"""Schema evolution rules: which changes to a source definition existing producers and consumers survive.

``breaking_changes(old, new)`` is a pure function; the registry refuses a new version when it returns
anything (``FailedPrecondition`` listing every reason). A change is compatible when every record the
old version accepted is still accepted and yields the same canonical attributes, and no PII that was
masked becomes visible:

- allowed: adding optional fields (appended CSV columns), widening allowed values, ranges, lengths or
  dropping a pattern, adding PII marks or token attributes, changing descriptions, undeclared fields
  from ``drop`` to ``keep`` (attributes are added), and the event-time plausibility overrides
  (``max_future_skew_seconds``, ``oldest_event_time``: operating bounds, not the record's meaning);
- refused: removing or renaming a field, changing its type, making an optional field required (there
  are no defaults) or a required one optional (consumers rely on it), adding a required field,
  narrowing allowed values, ranges, lengths or patterns, changing the entity key, entity type, event
  id or event time field, the event time unit, the format, the upstream topic or the CSV column order,
  dropping a PII mark or a PII token attribute, undeclared fields from ``keep`` to ``drop`` (attributes
  disappear) or to ``reject`` from anything else (records accepted before would be rejected).
"""

from __future__ import annotations

from aimesh.ingest.sources import FieldRule, SourceDefinition, UndeclaredFields


def breaking_changes(old: SourceDefinition, new: SourceDefinition) -> list[str]:
    """Every reason why ``new`` may not replace ``old`` (same source), in a stable order; empty when compatible."""
    reasons: list[str] = []
    roles = ("topic", "format", "entity_type", "entity_key", "event_id_field", "event_time_field", "event_time_unit")
    for role in roles:
        before, after = getattr(old, role), getattr(new, role)
        if before != after:
            reasons.append(f"{role} changes from {str(before)!r} to {str(after)!r}")
    if new.csv_columns[: len(old.csv_columns)] != old.csv_columns:
        reasons.append("CSV columns may only be appended, not removed or reordered")
    reasons.extend(_field_changes(old, new))
    reasons.extend(_pii_changes(old, new))
    before, after = old.undeclared_fields, new.undeclared_fields
    if before is not after and (after is UndeclaredFields.REJECT or before is UndeclaredFields.KEEP):
        reasons.append(f"undeclared_fields changes from {before.value} to {after.value}")
    return reasons


def _field_changes(old: SourceDefinition, new: SourceDefinition) -> list[str]:
    reasons: list[str] = []
    new_fields = {f.name: f for f in new.fields}
    old_names = {f.name for f in old.fields}
    for before in old.fields:
        after = new_fields.get(before.name)
        if after is None:
            reasons.append(f"field {before.name} is removed (or renamed)")
        else:
            reasons.extend(_rule_changes(before, after))
    for after in new.fields:
        if after.name not in old_names and after.required:
            reasons.append(f"field {after.name} is added as required (records without it would be rejected)")
    return reasons


def _rule_changes(before: FieldRule, after: FieldRule) -> list[str]:
    name = before.name
    if before.type is not after.type:
        return [f"field {name} changes type from {before.type.value} to {after.type.value}"]
    reasons: list[str] = []
    if after.required and not before.required:
        reasons.append(f"field {name} becomes required (records without it would be rejected)")
    if before.required and not after.required:
        reasons.append(f"field {name} becomes optional (consumers rely on it being present)")
    if after.allowed_values and (removed := sorted(set(before.allowed_values or ()) - set(after.allowed_values))):
        reasons.append(f"field {name} no longer allows {removed}")
    if after.allowed_values and not before.allowed_values:
        reasons.append(f"field {name} gets allowed values where any value was accepted")
    if _min_narrows(before, after):
        reasons.append(f"field {name} minimum narrows from {_low(before)} to {_low(after)}")
    if after.max is not None and (before.max is None or after.max < before.max):
        reasons.append(f"field {name} maximum narrows from {before.max} to {after.max}")
    if after.max_length is not None and (before.max_length is None or after.max_length < before.max_length):
        reasons.append(f"field {name} max_length narrows from {before.max_length} to {after.max_length}")
    if after.pattern and after.pattern != before.pattern:
        reasons.append(f"field {name} pattern changes to {after.pattern!r} (it may reject values accepted before)")
    return reasons


def _min_narrows(before: FieldRule, after: FieldRule) -> bool:
    if after.min is None:
        return False
    if before.min is None or after.min > before.min:
        return True
    return after.min == before.min and after.min_exclusive and not before.min_exclusive


def _low(rule: FieldRule) -> str:
    if rule.min is None:
        return "none"
    return f"{'>' if rule.min_exclusive else '>='} {rule.min}"


def _pii_changes(old: SourceDefinition, new: SourceDefinition) -> list[str]:
    reasons = [
        f"PII mark of {name} is dropped (its raw values would leave ingest)"
        for name in old.pii_fields
        if name not in new.pii_fields
    ]
    for name, attribute in old.pii_token_fields.items():
        if new.pii_token_fields.get(name) != attribute:
            reasons.append(f"token attribute {attribute} of PII field {name} is removed or renamed")
    return reasons
