"""The rollups of the PostgreSQL store (``Store.rollups``): rebuilt by ``db rollup
--rebuild`` and ``db init``, kept through ``prune``, expired by [retention], their reach for
``status``. The iR Engine's table has none: it answers NOT_APPLICABLE."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics_cli.engines.base import Layout
from analytics_cli.engines.postgresql import layouts, rollup
from analytics_cli.engines.postgresql.native import NativeLayout
from analytics_cli.engines.shapes import NOT_APPLICABLE, Reach, Rebuilt
from analytics_cli.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    import psycopg

    from analytics_cli.config.schema import Settings


class PostgresRollups:
    """The hourly and daily rollups of a native table, on the Store's session."""

    def __init__(self, conn: psycopg.Connection[Any], settings: Settings) -> None:
        self.conn = conn
        self.settings = settings

    def _native(self) -> NativeLayout | None:
        layout = layouts.detect(self.conn, self.settings)
        if layout is not None and not isinstance(layout, NativeLayout):
            raise ConfigError(NOT_APPLICABLE)
        return layout

    def rebuild(self, progress: Callable[[int, int], None] | None) -> Rebuilt:
        """A month of rows per transaction; finished months stay when a later one fails."""
        import psycopg

        from analytics_cli.engines.postgresql.connect import database_error, grant_hint

        settings = self.settings
        layout = self._native()
        if layout is None:
            return Rebuilt(0, 0)
        chunks = 0

        def counted(done: int, total: int) -> None:
            nonlocal chunks
            chunks = total
            if progress is not None:
                progress(done, total)

        try:
            if not rollup.ensure(self.conn, settings.table, settings.interval) and (
                rollup.state(self.conn, settings.table) is None
            ):
                self.conn.rollback()
                t = settings.table
                raise DatabaseError(
                    "rollup rebuild: this role may not create or read the rollup tables",
                    hint=f"run db init as the owner of {t}, or GRANT SELECT, INSERT, DELETE "
                    f"ON {t}{rollup.HOURLY}, {t}{rollup.DAILY} and SELECT, UPDATE ON "
                    f"{t}{rollup.STATE} to this role",
                )
            written = rollup.rebuild(
                self.conn, settings.table, layout.relation(), settings.interval, counted
            )
        except psycopg.Error as exc:
            raise database_error(
                exc,
                settings.store_dsn,
                doing="rollup rebuild stopped (finished months are kept)",
                refused=grant_hint(
                    "db rollup",
                    "CREATE, SELECT, INSERT, DELETE",
                    settings.table,
                    settings.store_dsn,
                ),
            ) from None
        return Rebuilt(written, chunks)

    def init_built(self, progress: Callable[[int, int], None] | None) -> bool:
        """Only a native table whose rollups are missing, unbuilt or of another slot."""
        if not isinstance(layouts.detect(self.conn, self.settings), NativeLayout):
            return False
        st = rollup.state(self.conn, self.settings.table)
        if st is None:
            # No rollup tables yet, or this role may not read them. One that may not create
            # them either (a collector with SELECT and INSERT) leaves them to the owner.
            rollup.ensure(self.conn, self.settings.table, self.settings.interval)
            st = rollup.state(self.conn, self.settings.table)
        self.conn.commit()
        if st is None or (st.built and st.slot == self.settings.interval):
            return False
        self.rebuild(progress)
        return True

    def before_prune(self, layout: Layout, cutoff: datetime) -> None:
        """The hours of the rows about to go keep their rollups; the cut is recorded."""
        if not isinstance(layout, NativeLayout):
            return
        conn, settings = self.conn, self.settings
        st = rollup.state(conn, settings.table)
        conn.commit()
        if st is None:  # none, or this role may not read them: the rows go as before
            return
        if not st.built or st.slot != settings.interval:
            rollup.rebuild(conn, settings.table, layout.relation(), settings.interval)
        rollup.pruned_raw(conn, settings.table, cutoff)
        conn.commit()

    def prune_grain(self, grain: str, cutoff: datetime) -> int:
        """Buckets before ``cutoff`` deleted; 0 where there are none."""
        layout = layouts.detect(self.conn, self.settings)
        if not isinstance(layout, NativeLayout) or not rollup.exists(
            self.conn, self.settings.table
        ):
            return 0
        return rollup.prune_grain(self.conn, self.settings.table, grain, cutoff)

    def reach(self, layout: Layout) -> Reach | None:
        """None on the iR Engine's table, or where the rollups are missing."""
        if not isinstance(layout, NativeLayout):
            return None
        return rollup.reach(self.conn, self.settings.table)
