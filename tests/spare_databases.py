"""Fresh test databases cloned ahead of the tests that take them.

``CREATE DATABASE ... TEMPLATE`` copies the migrated template (9 MB): 30 ms at best, but
0.3–0.5 s of the server's CPU at times on this shared host, and some 600 tests take one. A
thread of its own keeps :data:`AHEAD` clones ready, so the copy overlaps the test before
instead of adding to it. Each clone is still used by one test alone and dropped after it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import asyncpg

AHEAD = 3
FILLERS = 2  # copies made at once: a copy is mostly the server's CPU, and 2 cores


class SpareDatabases:
    """Clones of ``template`` made on a thread of their own; :meth:`take` hands out one."""

    def __init__(self, server_url: str, template: str) -> None:
        self._url = server_url
        self._template = template
        self._untaken: set[str] = set()  # made and not yet handed out (the loop's thread)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spare-databases", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._begin(), self._loop).result()

    async def _begin(self) -> None:
        self._ready: asyncio.Queue[str] = asyncio.Queue(maxsize=AHEAD)
        self._fillers = [asyncio.create_task(self._fill()) for _ in range(FILLERS)]

    async def _fill(self) -> None:
        admin = await asyncpg.connect(self._url)
        try:
            while True:
                name = f"t_{uuid.uuid4().hex[:16]}"
                self._untaken.add(name)  # before: a copy cancelled mid-way may still exist
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                await self._ready.put(name)  # waits while AHEAD are ready
        finally:
            await admin.close()

    async def _next(self) -> str:
        getter = asyncio.ensure_future(self._ready.get())
        await asyncio.wait({getter, *self._fillers}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():  # a filler failed: its error is the test's error
            getter.cancel()
            next(f for f in self._fillers if f.done()).result()
        name = getter.result()
        self._untaken.discard(name)
        return name

    async def take(self) -> str:
        """A fresh database's name (waits for the copy under way if none is ready)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._next(), self._loop))

    def close(self) -> list[str]:
        """Stop cloning; the names of the clones nobody took, for the caller to drop
        (``IF EXISTS``: the copy under way when cancelled may not have been made)."""

        async def stop() -> list[str]:
            for filler in self._fillers:
                filler.cancel()
            await asyncio.wait(self._fillers)  # their connections closed
            return sorted(self._untaken)

        names = asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        return names
