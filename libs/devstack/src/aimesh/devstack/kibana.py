"""Importing the saved objects (deploy/kibana/*.ndjson) into a Kibana through its saved-objects import API.

``import_saved_objects`` posts the NDJSON file as the multipart field ``file`` to
``POST <url>[/s/<space>]/api/saved_objects/_import[?overwrite=true]`` with the ``kbn-xsrf`` header Kibana
requires of every API write. The local stack runs no Kibana (Elastic publishes it neither on Maven
Central nor on PyPI), so the URL is the operator's own Kibana 8 or 9.

Every failure is a ``DevstackError`` naming its cause: Kibana not reachable, an HTTP error with Kibana's
own message, or an import that refused some objects (each listed with its type, id, title and error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aimesh.devstack.errors import DevstackError

COMPONENT = "kibana"
XSRF_HEADER = {"kbn-xsrf": "aimesh"}


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What Kibana imported: how many objects, and each one's ``type/id``."""

    success_count: int
    imported: tuple[str, ...]


def import_url(url: str, space: str | None, overwrite: bool) -> str:
    """The import endpoint of ``url`` (in ``space`` when given), with ``overwrite=true`` when asked."""
    base = url.rstrip("/")
    if space:
        base = f"{base}/s/{space}"
    return f"{base}/api/saved_objects/_import" + ("?overwrite=true" if overwrite else "")


def _kibana_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500]
    return str(body)[:500]


def _describe(error: dict[str, Any]) -> str:
    detail = error.get("error", {})
    kind = str(detail.get("type", "unknown"))
    what = f"{error.get('type')} {error.get('id')} ({error.get('meta', {}).get('title') or error.get('title', '')})"
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail.get("references", []))
        return f"{what}: missing references {missing}"
    if kind == "conflict":
        return f"{what}: already exists"
    return f"{what}: {kind} {detail.get('message') or detail.get('reason') or ''}".rstrip()


def import_saved_objects(
    url: str,
    ndjson: Path,
    *,
    space: str | None = None,
    overwrite: bool = False,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout_s: float = 60.0,
) -> ImportResult:
    """Import ``ndjson`` into the Kibana at ``url``; raises ``DevstackError`` unless every object went in."""
    if not ndjson.is_file():
        fix = "pass --file, or generate it: python scripts/kibana_objects.py"
        raise DevstackError(COMPONENT, f"{ndjson} does not exist", fix)
    target = import_url(url, space, overwrite)
    files = {"file": (ndjson.name, ndjson.read_bytes(), "application/ndjson")}
    try:
        response = httpx.post(
            target, files=files, headers={**XSRF_HEADER, **(headers or {})}, auth=auth, timeout=timeout_s
        )
    except httpx.TransportError as exc:
        raise DevstackError(
            COMPONENT, f"Kibana at {url} is not reachable ({type(exc).__name__}: {exc})", "start Kibana or fix --url"
        ) from exc
    if response.status_code in (401, 403):
        raise DevstackError(
            COMPONENT,
            f"Kibana refused the import ({response.status_code}): {_kibana_message(response)}",
            "pass credentials (KIBANA_API_KEY, or KIBANA_USERNAME and KIBANA_PASSWORD) with saved-objects rights",
        )
    if response.status_code >= 400:
        raise DevstackError(
            COMPONENT,
            f"Kibana answered {response.status_code} to {target}: {_kibana_message(response)}",
            "check --url (the Kibana base URL) and --space",
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise DevstackError(
            COMPONENT, f"{target} answered with no JSON ({response.text[:200]!r})", "check that --url is a Kibana"
        ) from exc
    errors = body.get("errors") or []
    if not body.get("success", False) or errors:
        listed = "; ".join(_describe(e) for e in errors) or "no details"
        conflicts = any(e.get("error", {}).get("type") == "conflict" for e in errors)
        raise DevstackError(
            COMPONENT,
            f"{len(errors)} object(s) not imported ({body.get('successCount', 0)} imported): {listed}",
            "rerun with --overwrite to replace them" if conflicts else "regenerate the file and check Kibana's version",
        )
    imported = tuple(f"{r.get('type')}/{r.get('id')}" for r in body.get("successResults", []))
    return ImportResult(int(body.get("successCount", 0)), imported)
