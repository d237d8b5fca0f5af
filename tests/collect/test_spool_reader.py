"""The spool reader on its own: literal files of both versions read back exactly, anything
else refused as corrupt, files read oldest first (tests/faults/test_spool.py has the
outages end to end)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from analytics_cli import spool, spool_format
from analytics_cli.samples import Sample, Series

STORE = {"engine": "postgresql", "host": "db", "port": "5432", "dbname": "a", "user": "u",
         "table": "analytics"}  # fmt: skip
# A version 2 file as this version writes it, spelt out.
V2 = (
    '{"kind": "analytics-cli spooled cycle", "version": 2, "table": "analytics", '
    '"store": {"engine": "postgresql", "host": "db", "port": "5432", "dbname": "a", '
    '"user": "u", "table": "analytics"}, "slot": "2026-11-29T10:00:00Z", "replace": false, '
    '"batches": [{"source": "eu", "collected_at": "2026-11-29T10:00:07.25Z", "entries": ['
    '{"type": "activeInstances", "dimensional": false, "rows": [["7", {}]]}, '
    '{"type": "byLocation", "dimensional": true, "rows": [["0.10", {"location": "Zürich"}], '
    '["3", {"location": "Lobby"}]]}]}]}'
)
SLOT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_a_version_2_file_reads_back_exactly() -> None:
    cycle = spool_format.decode(V2)
    assert (cycle.table, cycle.slot, cycle.replace, cycle.store) == (
        "analytics",
        SLOT,
        False,
        STORE,
    )
    [batch] = cycle.batches
    assert batch.source == "eu"
    assert batch.collected_at == SLOT + timedelta(seconds=7.25)
    assert batch.outcomes() == [
        Sample("activeInstances", Decimal("7")),
        Series(
            "byLocation",
            (
                Sample("byLocation", Decimal("0.10"), {"location": "Zürich"}),
                Sample("byLocation", Decimal("3"), {"location": "Lobby"}),
            ),
        ),
    ]
    # Exact decimals: "0.10" keeps its digits.
    assert str(batch.entries[1].samples[0].count) == "0.10"
    assert [e.job[0].dimensional for e in batch.entries] == [False, True]
    assert cycle.rows == 3
    assert cycle.belongs(STORE)
    assert not cycle.belongs({**STORE, "host": "other"})
    # What the writer makes of it reads back the same.
    assert spool_format.decode(spool_format.encode(cycle)) == cycle


def test_a_version_1_file_names_only_its_table() -> None:
    doc = json.loads(V2)
    doc["version"] = 1
    del doc["store"]
    cycle = spool_format.decode(json.dumps(doc))
    assert cycle.store is None
    assert cycle.belongs({**STORE, "host": "anywhere"})
    assert not cycle.belongs({**STORE, "table": "other"})
    # A version 1 file's "store", if any, is not read.
    doc["store"] = "ignored"
    assert spool_format.decode(json.dumps(doc)).store is None


def _changed(**changes: Any) -> str:
    doc = json.loads(V2)
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "unreadable spool file (JSONDecodeError)"),
        ("[]", "not an analytics-cli spool file"),
        ('{"kind": "something else"}', "not an analytics-cli spool file"),
        (_changed(version=3), "spool format version 3, expected 2"),
        (_changed(version=True), "spool format version True, expected 2"),
        (_changed(version=None), "spool format version None, expected 2"),
        (_changed(store=None), "spool file names no store"),
        (_changed(store={"port": 5432}), "spool file names no store"),
        (_changed(slot="2026-11-29T10:00:00"), "unreadable spool file (ValueError)"),
        (_changed(slot="yesterday"), "unreadable spool file (ValueError)"),
        (_changed(batches=None), "unreadable spool file (KeyError)"),
        (_changed(batches=[{"source": None, "collected_at": "2026-11-29T10:00:00Z",
                            "entries": [{"type": "x", "dimensional": False,
                                         "rows": [["seven", {}]]}]}]),
         "type x: count 'seven' is not a number"),
        (_changed(batches=[{"source": None, "collected_at": "2026-11-29T10:00:00Z",
                            "entries": [{"type": "x", "dimensional": False,
                                         "rows": [["7", 5]]}]}]),
         "type x: metadata is not an object"),
        (_changed(batches=7), "unreadable spool file (TypeError)"),
        (V2[:-10], "unreadable spool file (JSONDecodeError)"),
    ],
)  # fmt: skip
def test_anything_else_is_corrupt(text: str, reason: str) -> None:
    with pytest.raises(spool_format.Corrupt) as caught:
        spool_format.decode(text)
    assert str(caught.value) == reason


def test_an_offset_other_than_utc_is_the_same_instant() -> None:
    cycle = spool_format.decode(_changed(slot="2026-11-29T11:00:00+01:00"))
    assert cycle.slot == SLOT
    assert cycle.slot.utcoffset() == timezone(timedelta(hours=1)).utcoffset(None)


def test_files_are_read_oldest_first_and_the_others_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    assert spool.pending(folder) == []  # no folder yet: nothing pending
    assert list(spool.readable(folder, print)) == []
    folder.mkdir()
    later = _changed(slot="2026-11-29T10:30:00Z")
    (folder / "20261129T103000Z-b.json").write_text(later)
    (folder / "20261129T100000Z-a.json").write_text(V2)
    (folder / "20261129T101500Z-bad.json").write_text("{")
    (folder / "20261129T101600Z-latin1.json").write_bytes(b'{"kind": "\xff"}')
    (folder / "notes.txt").write_text("not a spool file")
    (folder / ".spool-x.tmp").write_text(V2)  # a write that never finished
    (folder / "dir.json").mkdir()  # named like one: listed, then set aside, never read
    assert spool.summary(folder) == [
        spool.Listed(folder / "20261129T100000Z-a.json", SLOT, 3),
        spool.Listed(
            folder / "20261129T101500Z-bad.json",
            problem="unreadable spool file (JSONDecodeError)",
        ),
        spool.Listed(folder / "20261129T101600Z-latin1.json", problem="not UTF-8"),
        spool.Listed(folder / "20261129T103000Z-b.json", SLOT + timedelta(minutes=30), 3),
        spool.Listed(folder / "dir.json", problem="not a regular file"),
    ]
    warnings: list[str] = []
    found = [(path.name, cycle.slot) for path, cycle in spool.readable(folder, warnings.append)]
    assert found == [
        ("20261129T100000Z-a.json", SLOT),
        ("20261129T103000Z-b.json", SLOT + timedelta(minutes=30)),
    ]
    rejected_dir = folder / spool.REJECTED
    assert warnings == [
        "warning: spool file 20261129T101500Z-bad.json set aside in "
        f"{rejected_dir}: unreadable spool file (JSONDecodeError)",
        f"warning: spool file 20261129T101600Z-latin1.json set aside in {rejected_dir}: "
        "not UTF-8 text",
        f"warning: spool file dir.json set aside in {rejected_dir}: not a regular file",
    ]
    assert rejected_dir.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in rejected_dir.iterdir()) == [
        "20261129T101500Z-bad.json",
        "20261129T101600Z-latin1.json",
        "dir.json",
    ]
    assert (rejected_dir / "20261129T101500Z-bad.json").read_text() == "{"
    assert (rejected_dir / "dir.json").is_dir()
    assert [p.name for p in spool.pending(folder)] == [
        "20261129T100000Z-a.json",
        "20261129T103000Z-b.json",
    ]
    # What is not a spool file stays where it is, unread.
    assert (folder / "notes.txt").read_text() == "not a spool file"
    assert (folder / ".spool-x.tmp").read_text() == V2
