"""Activities `expand_batch` and `read_batch_items`: a batch's item list, kept in the store, not in history.

`expand_batch` lists a playlist (yt-dlp flat extraction, SSRF-guarded: clipper/media/playlist.py) or takes the
URLs a client read from a file, and writes them to `<storage>/jobs/<batch id>/items.json`; it returns only a
reference and a count. Each run of the batch then reads its next window with `read_batch_items`.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity

from activities.runtime import StageDeps, to_application_error
from clipper.errors import ClipperError, InvalidRequest
from clipper.job.batch import BATCH_STAGE, ITEMS_FILE, BatchEntry, BatchItems, ExpandInput, ExpandOutput, ReadItemsInput


class ExpandBatchActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="expand_batch")
    async def run(self, request: ExpandInput) -> ExpandOutput:
        try:
            items = await asyncio.to_thread(self._items, request)
            ref = self.deps.store.put_model(request.batch_id, ITEMS_FILE, items, BATCH_STAGE)
        except ClipperError as err:
            raise to_application_error(err) from None
        structlog.get_logger().info("batch.expanded", batch_id=request.batch_id, items=len(items.items))
        return ExpandOutput(items=ref, count=len(items.items), title=items.title)

    def _items(self, request: ExpandInput) -> BatchItems:
        from clipper.media.playlist import expand_playlist, item_url

        if request.source and request.urls:
            raise InvalidRequest("give a playlist URL (source) or a list of URLs (urls), not both")
        if request.source:
            return expand_playlist(request.source, self.deps.settings)
        if not request.urls:
            raise InvalidRequest("the batch has no items: give a playlist URL (source) or a list of URLs (urls)")
        return BatchItems(items=[BatchEntry(url=item_url(url)) for url in request.urls])


class ReadBatchItemsActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="read_batch_items")
    async def run(self, request: ReadItemsInput) -> list[BatchEntry]:
        try:  # sha256-verified: a list changed under a running batch is CorruptArtifact, not silently other items
            items = self.deps.store.read_model(request.batch_id, request.items, BatchItems)
        except ClipperError as err:
            raise to_application_error(err) from None
        return items.items[request.offset:request.offset + request.limit]
