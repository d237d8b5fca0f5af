"""Passwords the tool was never given: found by their shape alone, in URLs of any scheme,
key=value strings, query strings and the error texts of the drivers.

The tool removes the passwords of its own connection strings by value; a message can also
quote another one (a custom metric's text, a server's error echoing a string). Each case
below compares with literal expected text.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from analytics_cli.dsn import dsn_secrets, one_line, redact_dsn, redact_patterns, scrub
from analytics_cli.engines.mysql.connect import message
from tests.conftest import Databases, cli
from tests.helpers import write_config
from tests.mariadb_server import MySQLPlatform

NEVER_TOLD = "neverTold42"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "could not connect to postgresql://bob:neverTold42@db.example/x",
            "could not connect to postgresql://bob:***@db.example/x",
        ),
        (
            "mysql+pymysql://app:neverTold42@10.0.0.1:3306/ir",
            "mysql+pymysql://app:***@10.0.0.1:3306/ir",
        ),
        ("mariadb://app:neverTold42@db/ir", "mariadb://app:***@db/ir"),
        # A typo in the scheme hides nothing.
        ("postgresq://u:neverTold42@h/db", "postgresq://u:***@h/db"),
        ("see redis://:neverTold42@cache:6379/0", "see redis://:***@cache:6379/0"),
        (
            "postgresql://h/db?user=u&password=neverTold42&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        # In a query string a password runs to the next "&", quotes and ";" included.
        (
            "postgresql://h/db?user=u&password=se;cr'et42&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        ("host=h password=neverTold42 dbname=x", "host=h password=*** dbname=x"),
        ("host=h password='never told\\' 42' dbname=x", "host=h password=*** dbname=x"),
        ('host=h PASSWORD="neverTold42" dbname=x', "host=h PASSWORD=*** dbname=x"),
        ("Server=h;PWD=neverTold42;Database=x", "Server=h;PWD=***;Database=x"),
        ("passwd = neverTold42 next", "passwd = *** next"),
        ("sslpassword=neverTold42", "sslpassword=***"),
        ("oauth_client_secret=neverTold42&x=1", "oauth_client_secret=***&x=1"),
        (
            "scram_client_key=neverTold42 scram_server_key=neverTold42",
            "scram_client_key=*** scram_server_key=***",
        ),
        # Two in one message.
        (
            "a postgresql://a:neverTold42@h/x and host=h password=neverTold42",
            "a postgresql://a:***@h/x and host=h password=***",
        ),
    ],
)
def test_password_shapes_are_redacted_without_knowing_the_password(
    text: str, expected: str
) -> None:
    assert redact_patterns(text) == expected
    # The same through scrub with no known secret, and with another one known.
    assert scrub(text, set()) == expected
    assert scrub(text, {"other-secret"}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ERROR: division by zero",
        "connection to server at 127.0.0.1:5432 failed: Connection refused",
        'relation "public.analytics" does not exist; at 10:30:00',
        "postgresql://bob@db.example:5432/x",
        "user:pw@host",  # no scheme: nothing says it is a password
        "host=h dbname=x user=bob",
    ],
)
def test_text_without_a_password_is_left_as_it_is(text: str) -> None:
    assert redact_patterns(text) == text


def test_known_secrets_are_scrubbed_longest_first() -> None:
    # "pass" is also part of "passphrase": the longer one goes first, whole.
    assert scrub("passphrase and pass", {"pass", "passphrase"}) == "*** and ***"


def test_the_password_of_a_malformed_string_is_still_found() -> None:
    # A raw "@" in the password: libpq and the URL parser read it differently.
    dsn = "postgresql://bob:never@Told42@db.example/x"
    assert {"never@Told42"} <= dsn_secrets(dsn)
    assert redact_dsn(dsn) == "postgresql://bob:***@db.example/x"
    assert redact_dsn("host=h password=neverTold42 dbname=x") == "host=h password=*** dbname=x"


def test_libpq_quoting_a_piece_of_an_unreadable_password() -> None:
    # An unquoted password with a space: libpq stops at its second word and quotes it.
    dsn = "host=db password=open sesame42 dbname=x"
    with pytest.raises(psycopg.ProgrammingError) as caught:
        conninfo_to_dict(dsn)
    text = one_line(str(caught.value))
    assert text == 'missing "=" after "sesame42" in connection info string'
    assert scrub(text, dsn_secrets(dsn)) == ('missing "=" after "***" in connection info string')
    assert {"open", "sesame42", "open sesame42"} <= dsn_secrets(dsn)


def test_a_raw_at_sign_read_two_ways_hides_both_pieces() -> None:
    # libpq reads the password "never" and the host "Told42@db.example"; the URL parser
    # reads "never@Told42": the piece a host error would quote is a secret too.
    dsn = "postgresql://bob:never@Told42@db.example/x"
    assert conninfo_to_dict(dsn)["host"] == "Told42@db.example"
    assert dsn_secrets(dsn) == {"never", "never@Told42", "Told42"}
    error = (
        'could not translate host name "Told42@db.example" to address: Name or service not known'
    )
    assert scrub(error, dsn_secrets(dsn)) == (
        'could not translate host name "***@db.example" to address: Name or service not known'
    )


def test_pieces_too_short_to_be_told_from_text_are_not_scrubbed() -> None:
    # "p" and "ss" of "p@ss" would garble every message; the whole password is still hidden.
    dsn = "postgresql://bob:p@ss@db.example/x"
    assert dsn_secrets(dsn) == {"p@ss"}
    assert redact_dsn(dsn) == "postgresql://bob:***@db.example/x"
    assert scrub("password authentication failed", dsn_secrets(dsn)) == (
        "password authentication failed"
    )


def test_a_short_password_given_whole_is_still_a_secret() -> None:
    # Read exactly as given (no guess): hidden however short, beside a longer one.
    dsn = "host=h password=abc sslpassword=longer42 dbname=x"
    assert dsn_secrets(dsn) == {"abc", "longer42"}
    assert scrub('password "abc" is wrong', dsn_secrets(dsn)) == 'password "***" is wrong'


def test_a_postgresql_error_quoting_a_password_is_redacted(dbs: Databases) -> None:
    quoted = f"postgresql://bob:{NEVER_TOLD}@db.example/x"
    with psycopg.connect(dbs.source) as conn, pytest.raises(psycopg.DataError) as caught:
        conn.execute("SELECT %s::int", (quoted,))
    text = str(caught.value)
    assert NEVER_TOLD in text  # the server quotes what it could not read
    assert scrub(text, set()).splitlines()[0] == (
        'invalid input syntax for type integer: "postgresql://bob:***@db.example/x"'
    )


def test_a_mariadb_error_quoting_a_password_is_redacted(mysql_platform: MySQLPlatform) -> None:
    import pymysql

    with (
        mysql_platform.connect() as conn,
        conn.cursor() as cur,
        pytest.raises(pymysql.err.ProgrammingError) as caught,
    ):
        cur.execute(f"SELECT 1 1 'host=h password={NEVER_TOLD} dbname=x'")
    assert NEVER_TOLD in str(caught.value)
    line = message(caught.value, frozenset())
    assert NEVER_TOLD not in line
    assert "near '1 'host=h password=*** dbname=x'' at line 1" in line


def test_a_metric_error_quoting_a_password_is_redacted_in_every_output(
    dbs: Databases, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    write_config(
        config,
        f"[source]\ndsn = {json.dumps(dbs.source)}\n[store]\ndsn = {json.dumps(dbs.store)}\n"
        "[collect]\nmetrics = []\n"
        '[[metric]]\ntype = "leaky"\n'
        f"sql = \"SELECT 'mysql://app:{NEVER_TOLD}@db/ir'::int AS count\"\n",
    )
    as_json = cli("-c", str(config), "collect", "--at", "2026-11-29T10:00:00Z", "--json")
    assert as_json.exit_code == 1
    [metric] = json.loads(as_json.stdout)["metrics"]
    assert metric["error"] == 'invalid input syntax for type integer: "mysql://app:***@db/ir"'
    as_text = cli("-c", str(config), "collect", "--at", "2026-11-29T10:30:00Z")
    assert as_text.exit_code == 1
    assert "mysql://app:***@db/ir" in as_text.stdout + as_text.stderr
    for result in (as_json, as_text):
        assert NEVER_TOLD not in result.stdout + result.stderr
