"""A MySQL/MariaDB platform on the first try: a starter in the source's dialect, a failing
metric's own error (not the query it runs inside), and the store grants checked."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from analytics_cli.engines.mysql.snapshot import own_text
from tests.conftest import Databases, cli
from tests.mariadb_server import MySQLPlatform


def test_the_starter_follows_the_source_and_passes_its_check_on_mariadb(
    mysql_platform: MySQLPlatform, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", mysql_platform.url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    path = tmp_path / "c.toml"
    written = cli("config", "init", str(path))
    assert written.exit_code == 0, written.stderr
    text = path.read_text()
    assert "FROM `user`" in text
    assert '"user"' not in text
    assert 'dsn = "mysql://' in text
    check = cli("-c", str(path), "config", "check")
    assert check.exit_code == 0, check.stdout + check.stderr
    assert "  ".join(["ok", "registeredUsers", "0"]) in check.stdout, check.stdout


def test_a_failing_metric_shows_its_own_error_not_the_wrapper(
    mysql_platform: MySQLPlatform, dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYTICS_SOURCE_DSN", mysql_platform.url)
    monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
    path = tmp_path / "c.toml"
    # The PostgreSQL starter on a MySQL source: double-quoted names are strings there.
    assert cli("config", "init", "--dialect", "postgresql", str(path)).exit_code == 0
    check = cli("-c", str(path), "config", "check")
    assert check.exit_code == 1
    shown = check.stdout + check.stderr
    assert "AS q" not in shown and "LIMIT 2" not in shown and "; WHERE" not in shown, shown
    lines = [line for line in shown.splitlines() if "registeredUsers" in line]
    assert any(
        'near \'"user" WHERE "isGuest" = false AND "isDeactivated" IS NOT TRUE\' at line 2' in line
        for line in lines
    ), shown


def test_own_text_cuts_the_wrapper_at_any_length() -> None:
    message = "You have an error in your SQL syntax; check the manual ... near '{}' at line {}"
    assert own_text(message.format("FORM x\n) AS q LIMIT 2) AS m", 3)) == message.format(
        "FORM x", 2
    )
    # The server quotes 80 characters at most: the wrapper's tail may be cut anywhere.
    for tail in ("\n)", "\n) ", "\n) A", "\n) AS", "\n) AS q L"):
        assert own_text(message.format("FORM\n  x" + tail, 2)) == message.format("FORM x", 1)
    assert own_text(message.format("\n) AS q LIMIT 2) AS m", 4)).endswith(
        "at the end of the query at line 3"
    )
    assert own_text("Table 'p.usr' doesn't exist") == "Table 'p.usr' doesn't exist"


def test_config_check_reports_the_mysql_store_privileges(
    mysql_platform: MySQLPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's account for the platform's own table, with only what collect needs.
    user = f"ck_{uuid.uuid4().hex[:8]}"
    db = mysql_platform.name
    with mysql_platform.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'ck-pw-1'")
        cur.execute(f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
        cur.execute(f"GRANT INSERT ON `{db}`.analytics TO '{user}'@'%'")
    try:
        url = mysql_platform.server.url(db, user, "ck-pw-1")
        monkeypatch.setenv("ANALYTICS_DSN", url)
        config = tmp_path / "c.toml"
        config.write_text('[store]\ntable = "analytics"\nlayout = "ir-engine"\n')
        check = cli("-c", str(config), "config", "check")
        assert check.exit_code == 0, check.stdout + check.stderr
        lines = check.stdout.split("store privileges missing on analytics:\n", 1)[1].splitlines()
        assert lines == [
            "  collect --replace  collect --replace needs UPDATE and DELETE on "
            f"{db}.analytics: GRANT UPDATE, DELETE ON {db}.analytics TO '{user}'@'%'",
            f"  prune              prune needs DELETE on {db}.analytics: "
            f"GRANT DELETE ON {db}.analytics TO '{user}'@'%'",
        ]
        with mysql_platform.connect() as conn, conn.cursor() as cur:
            cur.execute(f"REVOKE INSERT ON `{db}`.analytics FROM '{user}'@'%'")
        refused = cli("-c", str(config), "config", "check")
        assert refused.exit_code == 1
        assert refused.stderr == "error: the store account lacks INSERT: collect would fail\n"
        assert (
            f"  collect            collect needs INSERT on {db}.analytics: "
            f"GRANT INSERT ON {db}.analytics TO '{user}'@'%'"
        ) in refused.stdout
        with mysql_platform.connect() as conn, conn.cursor() as cur:
            cur.execute(f"GRANT INSERT, UPDATE, DELETE ON `{db}`.analytics TO '{user}'@'%'")
        granted = cli("-c", str(config), "config", "check")
        assert granted.exit_code == 0, granted.stderr
        assert "store privileges" not in granted.stdout
    finally:
        with mysql_platform.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def _readme_mysql_accounts(database: str, user: str, password: str) -> str:
    """The manual's SQL that creates the collector's MySQL account, for this server."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "mysql.md").read_text()
    section = page[page.index("## From nothing to the crontab line") :]
    block = section[section.index("```sql\n") + 7 :]
    block = block[: block.index("```")]
    return (
        block.replace("platform.", f"`{database}`.")
        .replace("'analytics'", f"'{user}'")
        .replace("'change-me'", f"'{password}'")
    )


def test_the_readme_account_logs_in_on_a_fresh_mariadb_install_db_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dbs: Databases
) -> None:
    from tests.mariadb_server import server

    # A server as mariadb-install-db sets it up by default: anonymous ''@'localhost'.
    with server(tls=False, fresh=True) as fresh, fresh.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user = ''")
        assert cur.fetchone()[0] >= 1
        cur.execute("CREATE DATABASE platform")
        sql = _readme_mysql_accounts("platform", "analytics", "change-me")
        assert "'analytics'@'localhost'" in sql
        socket_url = f"mysql://analytics@localhost/platform?unix_socket={fresh.socket}"
        monkeypatch.setenv("ANALYTICS_SOURCE_DSN", socket_url)
        monkeypatch.setenv("ANALYTICS_STORE_DSN", dbs.store)
        monkeypatch.setenv("MYSQL_PASSWORD", "change-me")
        config = tmp_path / "c.toml"
        config.write_text(
            '[collect]\nmetrics = []\n[[metric]]\ntype = "one"\nsql = "SELECT 1 AS `count`"\n'
        )
        # Only the '%' account: the anonymous one takes the local login, and the hint says so.
        cur.execute(sql.split(";")[0])
        cur.execute("GRANT SELECT ON platform.* TO 'analytics'@'%'")
        refused = cli("-c", str(config), "config", "check")
        assert refused.exit_code == 3
        assert "Access denied for user 'analytics'@'localhost'" in refused.stderr
        assert (
            "hint: if the account is 'analytics'@'%': an anonymous ''@'localhost' account takes "
            "local logins first; create 'analytics'@'localhost' too"
        ) in refused.stderr
        assert "change-me" not in refused.stderr
        # The README's statements as printed: the local login works.
        cur.execute("DROP USER 'analytics'@'%'")
        for statement in [s for s in sql.split(";") if s.strip()]:
            cur.execute(statement)
        check = cli("-c", str(config), "config", "check")
        assert check.exit_code == 0, check.stdout + check.stderr
        assert "ok  one  1" in check.stdout
