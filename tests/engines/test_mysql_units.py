"""The MySQL source's pieces that need no server: connection strings, the query check,
the MySQL 8 branches, plans and index suggestions, the MySQL pack."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_cli.dsn import redact_dsn
from analytics_cli.engines.mysql.flavor import flavor_of
from analytics_cli.engines.mysql.guard import Refused, check_query, table_aliases, tokens
from analytics_cli.engines.mysql.params import parse
from analytics_cli.engines.mysql.snapshot import (
    _cost,
    _table_accesses,
    bound_parameters,
    suggest_index,
)
from analytics_cli.errors import ConfigError
from analytics_cli.metrics import builtin_metrics

# ---------------------------------------------------------------------------- connection strings


def test_a_full_url() -> None:
    p = parse("mysql://ana%40lytics:p%40ss%2Fw@db.example.com:3307/plat%2Dform", env={})
    assert (p.user, p.password, p.host, p.port, p.database) == (
        "ana@lytics",
        "p@ss/w",
        "db.example.com",
        3307,
        "plat-form",
    )
    assert p.describe() == "ana@lytics@db.example.com:3307/plat-form"
    assert {"p%40ss%2Fw", "p@ss/w"} <= p.secrets
    assert p.ssl is None and p.unix_socket is None
    assert p.connect_args() == {
        "host": "db.example.com",
        "port": 3307,
        "user": "ana@lytics",
        "password": "p@ss/w",
        "database": "plat-form",
        "charset": "utf8mb4",
    }


def test_mariadb_scheme_defaults_and_socket() -> None:
    p = parse("mariadb://reader@/platform?unix_socket=/run/mysqld/mysqld.sock", env={})
    assert (p.host, p.port, p.unix_socket, p.password) == (
        "localhost",
        3306,
        "/run/mysqld/mysqld.sock",
        None,
    )
    assert p.describe() == "reader@[/run/mysqld/mysqld.sock]/platform"
    assert p.connect_args()["unix_socket"] == "/run/mysqld/mysqld.sock"
    assert p.connect_args()["password"] == ""


def test_mysql_variables_fill_what_the_url_leaves_out() -> None:
    env = {
        "MYSQL_HOST": "mysql.internal",
        "MYSQL_PORT": "3310",
        "MYSQL_USER": "server",
        "MYSQL_PASSWORD": "env-pw",
        "MYSQL_DATABASE": "ir-engine",
    }
    p = parse("mysql://", env=env)
    assert (p.host, p.port, p.user, p.password, p.database) == (
        "mysql.internal",
        3310,
        "server",
        "env-pw",
        "ir-engine",
    )
    assert "env-pw" in p.secrets
    # The URL wins for what it names; the environment's password stays a secret anyway.
    q = parse("mysql://analytics:url-pw@db:3306/platform", env=env)
    assert (q.host, q.port, q.user, q.password, q.database) == (
        "db",
        3306,
        "analytics",
        "url-pw",
        "platform",
    )
    assert {"url-pw", "env-pw"} <= q.secrets


def test_option_file_between_url_and_environment(tmp_path: Path) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        "# the platform's client settings\n"
        "!includedir /etc/mysql/conf.d/\n"
        "[mysqld]\nport = 1\n"
        "[client]\nuser = fileuser\npassword = 'file pw'\nport = 3399\n"
        "ssl-ca = " + str(cnf) + "\nskip-ssl\n"
        "[analytics]\nhost = from-group\n"
    )
    env = {"MYSQL_HOST": "envhost", "MYSQL_USER": "envuser", "MYSQL_DATABASE": "envdb"}
    p = parse(f"mysql://urluser@/?option_file={cnf}&option_group=analytics", env=env)
    assert (p.user, p.password, p.host, p.port, p.database) == (
        "urluser",
        "file pw",
        "from-group",
        3399,
        "envdb",
    )
    assert "file pw" in p.secrets
    assert p.option_file == str(cnf)
    assert p.ssl == {"verify_mode": True, "check_hostname": True, "ca": str(cnf)}


def test_home_my_cnf_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / ".my.cnf").write_text("[client]\npassword=home-pw\n")
    p = parse("mysql://u@h/db", env={"HOME": str(tmp_path)})
    assert p.password == "home-pw"
    assert p.option_file == str(tmp_path / ".my.cnf")
    assert parse("mysql://u@h/db", env={"HOME": str(tmp_path / "none")}).password is None


@pytest.mark.parametrize(
    ("query", "ssl"),
    [
        ("ssl=true", {"verify_mode": False, "check_hostname": False}),
        ("ssl_verify_cert=true", {"verify_mode": True, "check_hostname": False}),
        ("ssl_ca={ca}", {"verify_mode": True, "check_hostname": True, "ca": "{ca}"}),
        (
            "ssl_ca={ca}&ssl_verify_identity=false",
            {"verify_mode": True, "check_hostname": False, "ca": "{ca}"},
        ),
        (
            "ssl_ca={ca}&ssl_verify_cert=0",
            {"verify_mode": False, "check_hostname": False, "ca": "{ca}"},
        ),
        (
            "ssl=on&ssl_cert={ca}&ssl_key={ca}",
            {"verify_mode": False, "check_hostname": False, "cert": "{ca}", "key": "{ca}"},
        ),
        ("ssl=false", None),
    ],
)
def test_tls_parameters(tmp_path: Path, query: str, ssl: dict[str, object] | None) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    p = parse(f"mysql://u@h/db?{query.format(ca=ca)}", env={})
    assert p.ssl_disabled is (query == "ssl=false")
    assert ("ssl_disabled" in p.connect_args()) is (query == "ssl=false")
    expected = None if ssl is None else {k: str(v).format(ca=ca) if isinstance(v, str) else v
                                         for k, v in ssl.items()}  # fmt: skip
    assert p.ssl == expected


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        (
            "mysql://u:secret-1@h/db?password=secret-2",
            "invalid source connection string: unknown parameter 'password'",
        ),
        ("mysql://u@h:99999/db", "invalid source connection string: Port out of range 0-65535"),
        ("mysql://u@h/", "the MySQL source names no database (mysql://user@host:3306/DATABASE)"),
        (
            "mysql://u@h/db?ssl=maybe",
            "invalid source connection string: ssl must be true or false, got 'maybe'",
        ),
        (
            "mysql://u@h/db?ssl_ca=/no/such/ca.pem",
            "invalid source connection string: ssl_ca /no/such/ca.pem is not a file",
        ),
        (
            "mysql://u@h/db?ssl_verify_cert=false&ssl_verify_identity=true",
            "invalid source connection string: ssl_verify_identity needs ssl_verify_cert",
        ),
        (
            "mysql://u@h/db?option_file=/no/such/my.cnf",
            "cannot read MySQL option file /no/such/my.cnf: No such file or directory",
        ),
    ],
)
def test_bad_connection_strings_are_config_errors(dsn: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(dsn, env={})
    assert str(info.value) == message
    assert "secret" not in str(info.value) + str(info.value.hint)


def test_bad_port_in_the_environment_and_a_garbled_option_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse("mysql://u@h/db", env={"MYSQL_PORT": "33o6"})
    assert str(info.value) == "MYSQL_PORT must be a port number (1-65535), got '33o6'"
    bad = tmp_path / "bad.cnf"
    bad.write_text("password = leaked-pw\n")  # a key before any [group]
    with pytest.raises(ConfigError) as garbled:
        parse(f"mysql://u@h/db?option_file={bad}", env={})
    assert str(garbled.value) == f"MySQL option file {bad} is not valid (line 1)"


def test_mysql_urls_are_redacted() -> None:
    assert redact_dsn("mysql://u:pw-9@h:3306/db?ssl=true") == "mysql://u:***@h:3306/db?ssl=true"
    assert redact_dsn("mariadb://u:p%40w@h/db") == "mariadb://u:***@h/db"


# ---------------------------------------------------------------------------- the query check


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1 AS count",
        "select 1 as count;",
        "  -- a comment first\nSELECT 1 AS count ;  ",
        "# a hash comment\nSELECT 1 AS count",
        "/* a comment */ SELECT 1 AS count",
        "/*+ MAX_EXECUTION_TIME(1000) */ SELECT 1 AS count",
        "WITH x AS (SELECT 1 AS c) SELECT c AS count FROM x",
        "(SELECT 1 AS count) UNION (SELECT 2)",
        "SELECT ';' AS count",
        "SELECT 'it''s; COMMIT' AS count",
        "SELECT 'a\\'; COMMIT' AS count",
        'SELECT "a; b" AS count',
        "SELECT 1 AS `count;`",
        "SELECT 1 AS count FROM `for update`",
        "SELECT 'LOCK IN SHARE MODE' AS count",
        "SELECT 1--1 AS count",
        "SELECT COUNT(*) AS count FROM t WHERE `createdAt` > '2026-01-01 00:00:00' - INTERVAL 1 DAY",
    ],
)
def test_plain_queries_are_accepted(text: str) -> None:
    assert check_query(text) == text.strip().removesuffix(";").strip()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("UPDATE t SET a = 1", "this one starts with UPDATE"),
        ("  -- SELECT\nDELETE FROM t", "this one starts with DELETE"),
        ("/* SELECT */ COMMIT", "this one starts with COMMIT"),
        ("(COMMIT)", "this one starts with COMMIT"),
        ("SET SESSION TRANSACTION READ WRITE", "this one starts with SET"),
        ("LOCK TABLES t WRITE", "this one starts with LOCK"),
        ("VALUES (1)", "this one starts with VALUES"),
        ("'SELECT'", "this one starts with 'SELECT'"),
        ("", "the metric's text holds no statement"),
        (" ; ", "the metric's text holds no statement"),
        ("SELECT 1 AS count; COMMIT", "its text holds a ';' between two"),
        ("SELECT 1 AS count;; SELECT 2", "its text holds a ';' between two"),
        ("SELECT 1 AS count /*! , 2 */", "executable comments"),
        ("SELECT 1 AS count /*M!100000 , 2 */", "executable comments"),
        ("SELECT 1 AS count /* open", "unterminated /* comment"),
        ("SELECT 'open AS count", "unterminated string"),
        ("SELECT 1 AS `open", "unterminated quoted name"),
        ("SELECT 'a\\' AS count", "unterminated string"),
        ("SELECT 1 AS count) AS q, (SELECT 1", "closes a parenthesis it never opened"),
        ("SELECT (1 AS count", "leaves a parenthesis open"),
        ("SELECT * FROM t FOR UPDATE", "locking reads (FOR UPDATE)"),
        ("SELECT * FROM t for share skip locked", "locking reads (FOR SHARE)"),
        ("SELECT * FROM t LOCK  IN\nSHARE MODE", "locking reads (LOCK IN SHARE MODE)"),
        ("SELECT 1 AS count INTO @x", "SELECT ... INTO is not allowed"),
        ("SELECT 1 AS count INTO DUMPFILE '/tmp/x'", "SELECT ... INTO is not allowed"),
    ],
)
def test_everything_else_is_refused(text: str, reason: str) -> None:
    with pytest.raises(Refused) as info:
        check_query(text)
    assert reason in str(info.value)


def test_comment_rules_follow_the_server() -> None:
    # "--" starts a comment only before whitespace or a control character.
    assert [t.text for t in tokens("SELECT 1--1")] == ["SELECT", "1", "-", "-", "1"]
    assert [t.text for t in tokens("SELECT 1-- 1\n+2")] == ["SELECT", "1", "+", "2"]
    assert [t.text for t in tokens("SELECT 1--\t1")] == ["SELECT", "1"]
    assert [t.text for t in tokens("SELECT 1 -- x")] == ["SELECT", "1"]


def test_sql_modes_change_the_lexer() -> None:
    # NO_BACKSLASH_ESCAPES: a backslash is a plain character, so the string ends early.
    text = "SELECT 'a\\' AS count"
    assert check_query(text, backslash_escapes=False) == text
    with pytest.raises(Refused, match="its text holds a ';'"):
        check_query("SELECT 'a\\'; COMMIT; SELECT '' AS count", backslash_escapes=False)
    # ANSI_QUOTES: a double quote quotes a name, where backslashes escape nothing.
    assert [t.kind for t in tokens('SELECT "a\\" x', ansi_quotes=True)] == [
        "word",
        "quoted",
        "word",
    ]
    with pytest.raises(Refused, match="unterminated string"):
        tokens('SELECT "a\\" x')


_LITERAL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(_LITERAL)
def test_any_string_literal_is_one_token(value: str) -> None:
    quoted = "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    text = f"SELECT {quoted} AS count"
    assert check_query(text) == text.strip()
    assert [t.kind for t in tokens(text)] == ["word", "string", "word", "word"]


@given(st.sampled_from(["UPDATE", "DELETE", "INSERT", "DROP", "CREATE", "COMMIT", "CALL", "DO"]),
       _LITERAL)  # fmt: skip
def test_no_comment_or_literal_hides_a_statement(keyword: str, value: str) -> None:
    block = value.replace("*/", "")
    line = value.replace("\n", " ")
    for text in (f"/* {block} */ {keyword} x", f"-- {line}\n{keyword} x", f"#{line}\n{keyword}"):
        with pytest.raises(Refused, match=f"starts with {keyword}"):
            check_query(text)


def test_table_aliases() -> None:
    text = (
        "SELECT COUNT(*) AS count FROM `instance-attendance` AS a "
        "JOIN instance i ON i.id = a.`instanceId` LEFT JOIN db.location l ON l.id = i.x "
        "WHERE a.ended = 0"
    )
    assert table_aliases(text) == {
        "instance-attendance": "instance-attendance",
        "a": "instance-attendance",
        "instance": "instance",
        "i": "instance",
        "location": "location",
        "l": "location",
    }
    assert table_aliases("SELECT 1 FROM t WHERE x") == {"t": "t"}


# ---------------------------------------------------------------------------- MariaDB and MySQL 8


@pytest.mark.parametrize(
    ("version", "comment", "mariadb"),
    [
        ("10.11.19-MariaDB-0+deb12u1", "Debian 12", True),
        ("5.5.5-10.6.12-MariaDB", "MariaDB Server", True),
        ("11.4.2-MariaDB-log", "", True),
        ("8.0.36", "MySQL Community Server - GPL", False),
        ("8.4.0-commercial", "MySQL Enterprise Server - Commercial", False),
        ("8.0.35-27", "Percona Server (GPL), Release 27", False),
    ],
)
def test_flavor_detection(version: str, comment: str, mariadb: bool) -> None:
    assert flavor_of(version, comment).mariadb is mariadb


def test_mariadb_statements() -> None:
    flavor = flavor_of("10.11.19-MariaDB", "")
    assert flavor.name == "MariaDB"
    assert (
        flavor.timeout_statement(timedelta(seconds=30)) == "SET SESSION max_statement_time = 30.000"
    )
    assert flavor.timeout_statement(timedelta(milliseconds=1500)) == (
        "SET SESSION max_statement_time = 1.500"
    )
    assert (flavor.read_only_variable, flavor.isolation_variable) == (
        "@@tx_read_only",
        "@@tx_isolation",
    )
    assert flavor.is_timeout(1969) and not flavor.is_timeout(3024)
    assert flavor.explain_prefix == "ANALYZE FORMAT=JSON "


def test_mysql8_statements() -> None:
    flavor = flavor_of("8.0.36", "MySQL Community Server - GPL")
    assert flavor.name == "MySQL"
    assert (
        flavor.timeout_statement(timedelta(seconds=30)) == "SET SESSION max_execution_time = 30000"
    )
    # Zero would mean "no limit" on MySQL: the smallest limit is 1 ms.
    assert flavor.timeout_statement(timedelta(microseconds=10)) == (
        "SET SESSION max_execution_time = 1"
    )
    assert (flavor.read_only_variable, flavor.isolation_variable) == (
        "@@transaction_read_only",
        "@@transaction_isolation",
    )
    assert flavor.is_timeout(3024) and not flavor.is_timeout(1969)
    assert flavor.explain_prefix == "EXPLAIN FORMAT=JSON "


# A MySQL 8 EXPLAIN FORMAT=JSON document (shape from MySQL 8.0), aliases as in the pack.
MYSQL8_PLAN = {
    "query_block": {
        "select_id": 1,
        "cost_info": {"query_cost": "52311.40"},
        "table": {
            "table_name": "q",
            "access_type": "ALL",
            "rows_examined_per_scan": 2,
            "materialized_from_subquery": {
                "query_block": {
                    "select_id": 2,
                    "nested_loop": [
                        {
                            "table": {
                                "table_name": "a",
                                "access_type": "ALL",
                                "rows_examined_per_scan": 498721,
                                "filtered": "1.00",
                                "cost_info": {"read_cost": "49700.00"},
                                "attached_condition": "((`platform`.`a`.`ended` = 0) and "
                                "(`platform`.`a`.`createdAt` > TIMESTAMP'2026-11-28 10:00:00'))",
                            }
                        }
                    ],
                }
            },
        },
    }
}


def test_mysql8_plans_are_read() -> None:
    accesses = _table_accesses(MYSQL8_PLAN)
    assert [a["table_name"] for a in accesses] == ["q", "a"]
    assert _cost(MYSQL8_PLAN, accesses) == 52311.40
    condition = str(accesses[1]["attached_condition"])
    assert suggest_index("instance-attendance", ["id", "ended", "createdAt"], condition) == (
        "ALTER TABLE `instance-attendance` ADD INDEX (`ended`, `createdAt`), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )


def test_mariadb_plans_and_suggestions() -> None:
    plan = {"query_block": {"nested_loop": [{"table": {"table_name": "t", "access_type": "ALL", "rows": 7}},
                                            {"table": {"table_name": "u", "access_type": "ref", "rows": 3}}]}}  # fmt: skip
    assert _cost(plan, _table_accesses(plan)) == 10.0
    assert _cost({"query_block": {"cost": 0.25}}, []) == 0.25
    columns = ["id", "ended", "isChannel", "createdAt", "userId"]
    assert suggest_index("instance-attendance", columns, "") is None
    assert suggest_index("instance-attendance", columns, "x.nope = 1") is None
    assert suggest_index(
        "instance-attendance",
        columns,
        "`instance-attendance`.createdAt > '2026-11-28 10:00:00' and "
        "`instance-attendance`.createdAt <= '2026-11-29 10:00:00' and `instance-attendance`.ended = 0",
    ) == (
        "ALTER TABLE `instance-attendance` ADD INDEX (`ended`, `createdAt`), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
    assert suggest_index("t`x", ["a"], "t.a <> 1 and t.a between 1 and 2") == (
        "ALTER TABLE `t``x` ADD INDEX (`a`), ALGORITHM=INPLACE, LOCK=NONE"
    )


def test_bound_parameters_are_naive_utc() -> None:
    slot = datetime(2026, 11, 29, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert bound_parameters(slot, timedelta(minutes=15)) == {
        "slot": datetime(2026, 11, 29, 10, 0),
        "interval_seconds": 900,
    }
    assert (
        bound_parameters(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))["slot"].tzinfo
        is None
    )


# ---------------------------------------------------------------------------- the MySQL pack


def test_every_builtin_sql_metric_has_a_mysql_text() -> None:
    for spec in builtin_metrics():
        text = spec.sql_for("mysql")
        if spec.http is not None:
            assert text is None, spec.type
            continue
        assert text is not None, spec.type
        assert check_query(text) == text.strip()
        assert set(re.findall(r"%\((\w+)\)s", text)) <= {"slot", "interval_seconds"}
        assert '"' not in text  # names in backticks, never double quotes
        assert spec.sql_for("postgresql") == spec.sql
