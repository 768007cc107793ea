"""The retail scenario: a seeded, streamed generator of a retailer's catalogue and user sessions, and its publisher.

See docs/scenario-retail.md for the upstream formats; ``generate_events`` is the entry point, and
``aimesh.examples.retail.interactions`` replays an existing ``user item rating timestamp`` log instead.
"""

from aimesh.examples.retail.generator import GeneratorConfig, generate_events
from aimesh.examples.retail.model import EXPECTED_REASON, EventType, GeneratedEvent, MalformedKind, Stream

__all__ = [
    "EXPECTED_REASON",
    "EventType",
    "GeneratedEvent",
    "GeneratorConfig",
    "MalformedKind",
    "Stream",
    "generate_events",
]
