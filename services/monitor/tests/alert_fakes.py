"""An in-memory ``aimesh.monitor.alerting.AlertIndex`` for unit tests (what ``ElasticStore`` does for alerts)."""

from __future__ import annotations

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.monitor.alerting import OPEN_STATES
from aimesh.monitor.documents import Document, alert_from_document, alert_revision, index_names


class FakeAlertIndex:
    """Keeps each indexed document by (index, id); ``fail`` makes the next ``index_one`` calls raise."""

    def __init__(self, prefix: str = "t") -> None:
        self.indices = index_names(prefix)
        self.documents: dict[tuple[str, str], Document] = {}
        self.fail = 0

    async def index_one(self, index: str, doc_id: str, document: Document) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("elasticsearch down")
        self.documents[(index, doc_id)] = document

    async def open_alerts(self, page_size: int = 1000) -> list[tuple[monitor_events.Alert, int]]:
        found = [
            (alert_from_document(doc), alert_revision(doc))
            for (index, _), doc in self.documents.items()
            if index == self.indices["alerts"]
        ]
        found = [(a, r) for a, r in found if a.state in OPEN_STATES]
        return sorted(found, key=lambda ar: ar[0].time.ToNanoseconds(), reverse=True)

    def alert(self, alert_id: str) -> Document:
        return self.documents[(self.indices["alerts"], alert_id)]
