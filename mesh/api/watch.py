"""Waiting for files to change: the one watcher (``watchfiles``: inotify, or polling where the
file system sends no events), for the controller's manifest directory and the sidecar's config
file.

``changes(path)`` yields once per batch of changes at or below ``path`` (a directory, or one
file: its folder is watched, so a file replaced by rename, or by the kubelet's swap of a
ConfigMap volume's ``..data`` link, is still seen), and at least every
``rescan`` seconds even when nothing was reported, so a caller that compares what it read
(mtime, size, inode) never misses a change an event did not announce.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import watchfiles

#: in a ConfigMap or Secret volume each file is a link through ``..data``, which the kubelet swaps
#: (by rename) to update them all at once: the file itself sees no event
KUBERNETES_DATA_LINK = "..data"


async def changes(
    path: str | os.PathLike[str], poll: float = 0.2, rescan: float = 5.0
) -> AsyncIterator[None]:
    """``poll``: seconds between checks when polling (no inotify; ``WATCHFILES_FORCE_POLLING=1``
    forces it); ``rescan``: the longest wait between two wake-ups."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    wanted = None if path.is_dir() else path.name

    def relevant(_change: watchfiles.Change, changed: str) -> bool:
        return wanted is None or Path(changed).name in (wanted, KUBERNETES_DATA_LINK)

    async for _ in watchfiles.awatch(
        folder,
        watch_filter=relevant,
        debounce=50,
        step=20,
        poll_delay_ms=max(1, int(poll * 1000)),
        rust_timeout=max(1, int(rescan * 1000)),
        yield_on_timeout=True,
    ):
        yield
