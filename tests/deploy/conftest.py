"""Fixtures for tests/deploy.

``exposed_names``: every sample name a live netclock metrics endpoint serves, scraped over
HTTP from :func:`netclock.metrics.start_metrics_server` fed with a snapshot in which every
field is populated — the names a dashboard or rule may use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from deploy_helpers import full_snapshot, scrape


@pytest.fixture(scope="session")
def exposition() -> Iterator[str]:
    from netclock.metrics import start_metrics_server

    snap = full_snapshot()
    server = start_metrics_server(lambda: snap, "127.0.0.1", 0)
    try:
        yield scrape(server.url)
    finally:
        server.close()


@pytest.fixture(scope="session")
def exposed_names(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if m:
                names.add(m.group(0))
    return names
