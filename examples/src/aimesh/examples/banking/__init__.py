"""The banking scenario: a seeded, streamed generator of card transactions and chargebacks, and its publisher.

See docs/scenario-fraud.md for the upstream formats; ``generate_events`` is the entry point.
"""

from aimesh.examples.banking.generator import GeneratorConfig, generate_events
from aimesh.examples.banking.model import EXPECTED_REASON, GeneratedEvent, MalformedKind, Stream

__all__ = ["EXPECTED_REASON", "GeneratedEvent", "GeneratorConfig", "MalformedKind", "Stream", "generate_events"]
