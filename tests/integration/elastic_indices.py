"""Removing what a test's monitor prefix created in Elasticsearch: indices, templates, ILM policies.

The cluster refuses wildcard deletes (``action.destructive_requires_name``) and a delete by a write
alias's name removes nothing, so the concrete indices are listed first, then deleted by name.
"""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch

from aimesh.monitor.documents import index_templates
from aimesh.monitor.lifecycle import ROLLED_KINDS


async def drop_monitor_indices(client: AsyncElasticsearch, prefix: str) -> None:
    """Delete every index named ``<prefix>-*``, the prefix's index templates and its ILM policies (if any)."""
    found = await client.indices.get(index=f"{prefix}-*", allow_no_indices=True, expand_wildcards="all")
    if found.body:
        await client.indices.delete(index=list(found.body), ignore_unavailable=True)
    for name in index_templates(prefix):
        await client.options(ignore_status=404).indices.delete_index_template(name=name)
    for kind in ROLLED_KINDS:
        await client.options(ignore_status=(400, 404, 405)).ilm.delete_lifecycle(name=f"{prefix}-{kind}")
