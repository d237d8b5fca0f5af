"""Configuration: lookup order, precedence, strictness, redaction."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from analytics_cli.config.dump import dump, to_document
from analytics_cli.config.load import load
from analytics_cli.dsn import describe, dsn_secrets, redact_dsn
from analytics_cli.errors import ConfigError
from tests.conftest import cli


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    settings = load(env={"HOME": str(tmp_path)})
    assert settings.path is None
    assert settings.table == "analytics"
    assert settings.interval == timedelta(minutes=30)
    assert settings.statement_timeout == timedelta(seconds=30)
    assert settings.retries == 1
    assert settings.metrics is None
    assert settings.embedded


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    user = home / ".config" / "analytics-cli" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[store]\ntable = "from_user"\n')
    env = {"HOME": str(home)}
    assert load(env=env).table == "from_user"
    (tmp_path / "analytics-cli.toml").write_text('[store]\ntable = "from_cwd"\n')
    monkeypatch.chdir(tmp_path)
    assert load(env=env).table == "from_cwd"
    named = tmp_path / "named.toml"
    named.write_text('[store]\ntable = "from_env"\n')
    assert load(env={**env, "ANALYTICS_CLI_CONFIG": str(named)}).table == "from_env"
    flag = tmp_path / "flag.toml"
    flag.write_text('[store]\ntable = "from_flag"\n')
    assert load(flag, env={**env, "ANALYTICS_CLI_CONFIG": str(named)}).table == "from_flag"


def test_dsn_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[source]\ndsn = "dbname=file_src"\n[store]\ndsn = "dbname=file_store"\n')
    s = load(path, env={})
    assert (s.source_dsn, s.store_dsn) == ("dbname=file_src", "dbname=file_store")
    s = load(path, env={"ANALYTICS_DSN": "dbname=both"})
    assert (s.source_dsn, s.store_dsn) == ("dbname=both", "dbname=both")
    s = load(path, env={"ANALYTICS_DSN": "dbname=both", "ANALYTICS_STORE_DSN": "dbname=st"})
    assert (s.source_dsn, s.store_dsn) == ("dbname=both", "dbname=st")
    assert s.store_dsn_origin == "$ANALYTICS_STORE_DSN"
    s = load(
        path,
        dsn="dbname=flag",
        env={"ANALYTICS_SOURCE_DSN": "dbname=x", "ANALYTICS_DSN": "dbname=y"},
    )
    assert (s.source_dsn, s.store_dsn) == ("dbname=flag", "dbname=flag")


def test_one_side_configured_serves_both(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[source]\ndsn = "dbname=only_source"\n')
    s = load(path, env={})
    assert s.store_dsn == "dbname=only_source"
    assert not s.embedded


def test_libpq_environment_counts_as_configuration() -> None:
    s = load(env={"PGHOST": "db.internal"}, discover=False)
    assert s.source_dsn == "" and s.store_dsn == ""
    assert not s.embedded


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[collect]\ninterval = "30m"\nmetrics = [\n')
    result = cli("--config", str(path), "collect")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: invalid TOML: ")
    assert "line 4" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[collect]\nintervall = "30m"\n')
    result = cli("--config", str(path), "collect")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {path}: unknown key collect.intervall",
        "hint: allowed in [collect]: interval, statement_timeout, connect_timeout, retries, "
        "metrics, ping_url, parallel, source_concurrency, catch_up",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[collect]\ninterval = 30\n", "collect.interval must be a string, got int"),
        ("[collect]\nretries = true\n", "collect.retries must be an integer, got bool"),
        ('[collect]\ninterval = "soon"\n', "invalid collect.interval 'soon'"),
        ('[store]\ntable = "x; DROP TABLE y"\n', "is not a valid table name"),
        ('[[metric]]\ntype = "a b"\nsql = "SELECT 1 AS count"\n', "invalid metric type 'a b'"),
        ('[[metric]]\ntype = "x"\n', "metric[0] is missing 'sql'"),
        ('[[metric]]\ntype = "x"\nsql = "SELECT 1"\nsq = 1\n', "unknown key metric[0].sq"),
        ("[sourc]\n", "unknown section or key 'sourc'"),
        ('source = "x"\n', "source must be a table"),
    ],
)
def test_strict_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_builtin_in_metrics_list(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[collect]\nmetrics = ["activeInstances", "dailyUser"]\n')
    result = cli("--config", str(path), "collect", "--dry-run")
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == f"error: {path}: [collect] metrics: unknown built-in metric 'dailyUser'"
    )
    assert "did you mean 'dailyUsers'" in result.stderr


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("--config", str(tmp_path / "nope.toml"), "collect")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: config file not found: {tmp_path / 'nope.toml'}"


def test_password_in_world_readable_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[source]\ndsn = "postgresql://u:hunter2@localhost/db"\n')
    os.chmod(path, 0o644)
    settings = load(path, env={})
    assert len(settings.warnings) == 1
    assert "readable by other users" in settings.warnings[0]
    assert "hunter2" not in settings.warnings[0]
    os.chmod(path, 0o600)
    assert load(path, env={}).warnings == ()


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://alice:s3cret@db:5432/app", "s3cret"),
        ("postgresql://alice:p%40ss@db/app", "p@ss"),
        ("host=db user=alice password=s3cret dbname=app", "s3cret"),
        ("host=db password='with space' dbname=app", "with space"),
        ("postgresql://db/app?password=qs3cret&sslmode=require", "qs3cret"),
    ],
)
def test_redaction(dsn: str, secret: str) -> None:
    assert secret in dsn_secrets(dsn)
    assert secret not in redact_dsn(dsn)
    assert "***" in redact_dsn(dsn)
    assert secret not in describe(dsn)


def test_dump_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[store]\ntable = "metrics.analytics"\n[collect]\ninterval = "15m"\n'
        '[[metric]]\ntype = "x"\nsql = "SELECT 1 AS count"\ndescription = "one"\n'
    )
    settings = load(path, env={})
    again = tmp_path / "again.toml"
    again.write_text(dump(to_document(settings)))
    reloaded = load(again, env={})
    assert reloaded.table == settings.table
    assert reloaded.interval == settings.interval
    assert reloaded.custom == settings.custom
