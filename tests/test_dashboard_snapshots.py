"""Snapshots of the main and detail screens at 80x24 and 160x48 (data and clock frozen).

Accept a deliberate change with ``pytest tests/test_dashboard_snapshots.py --snapshot-update``
and look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from dispatcher.dashboard import DashboardApp, StoreSource
from dispatcher.store import Store
from tests.test_dashboard_support import NOW, prepare

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def prepared_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'snap.db'}")
    prepare(store)
    yield store
    store.close()


def _app(store: Store, theme: str = "textual-dark") -> DashboardApp:
    return DashboardApp(StoreSource(store, clock=lambda: NOW),
                        location="sqlite:///dispatcher.db", interval=0, theme=theme)


async def _loaded(pilot: Pilot[Any]) -> None:
    await pilot.app.reload()  # type: ignore[attr-defined]
    await pilot.pause()


async def _detail(pilot: Pilot[Any]) -> None:
    await _loaded(pilot)
    await pilot.press("enter")
    await pilot.pause()
    await pilot.app.reload()  # type: ignore[attr-defined]
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Callable[..., bool], prepared_store: Store,
                     size: tuple[int, int]) -> None:
    assert snap_compare(_app(prepared_store), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_detail_screen(snap_compare: Callable[..., bool], prepared_store: Store,
                       size: tuple[int, int]) -> None:
    assert snap_compare(_app(prepared_store), terminal_size=size, run_before=_detail)


def test_main_screen_light_theme(snap_compare: Callable[..., bool],
                                 prepared_store: Store) -> None:
    assert snap_compare(_app(prepared_store, "textual-light"), terminal_size=(80, 24),
                        run_before=_loaded)
