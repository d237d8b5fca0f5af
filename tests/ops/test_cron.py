"""The scheduling files in cron/: crontab syntax, systemd units, Kubernetes manifests."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv

from tests import required

CRON = Path(__file__).resolve().parents[2] / "cron"
MANIFESTS = sorted((CRON / "kubernetes").glob("*.yaml"))
# Every Kubernetes version whose schemas the installed kubernetes-validate bundles.
K8S_VERSIONS = sorted(set(kv.all_versions()), key=lambda v: tuple(int(p) for p in v.split(".")))

# Read at import: the per-test environment cleaning removes ANALYTICS_* variables later.
# CI sets it, so that a machine without systemd-analyze fails the unit checks, not skips them.
# Every sandboxing line of the service, as shipped: none may go missing or be weakened.
HARDENING = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
}

_FIELD_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_FIELD_RE = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


def cron_field_ok(field: str, low: int, high: int) -> bool:
    """One crontab time field: lists of *, n, n-m, each optionally /step, within range."""
    for part in field.split(","):
        match = _FIELD_RE.fullmatch(part)
        if not match:
            return False
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        if any(not low <= n <= high for n in numbers):
            return False
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            return False
        if match.group(3) and int(match.group(3)[1:]) == 0:
            return False
    return True


def crontab_entries() -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    jobs: list[str] = []
    for raw in (CRON / "crontab").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.fullmatch(r"[A-Z_]+=.*", line):
            key, value = line.split("=", 1)
            env[key] = value
        else:
            jobs.append(line)
    return env, jobs


def test_cron_field_checker_rejects_bad_fields() -> None:
    assert cron_field_ok("*/30", 0, 59)
    assert cron_field_ok("0,30", 0, 59)
    assert not cron_field_ok("*/0", 0, 59)
    assert not cron_field_ok("60", 0, 59)
    assert not cron_field_ok("30-10", 0, 59)
    assert not cron_field_ok("@hourly", 0, 59)


def test_crontab_runs_collect_every_30_minutes() -> None:
    env, jobs = crontab_entries()
    assert env["SHELL"] == "/bin/sh"
    assert "/usr/local/bin" in env["PATH"].split(":")
    assert len(jobs) == 1
    fields = jobs[0].split(None, 5)
    assert len(fields) == 6, "five time fields and a command"
    assert fields[:5] == ["*/30", "*", "*", "*", "*"]
    for value, (low, high) in zip(fields[:5], _FIELD_RANGES, strict=True):
        assert cron_field_ok(value, low, high), value
    command = fields[5]
    # cron turns an unescaped % into a newline.
    assert "%" not in command
    assert "analytics-cli collect" in command
    assert ". /etc/analytics-cli/env" in command
    assert "export ANALYTICS_DSN" in command
    assert command.endswith("2>&1 | logger -t analytics-cli")
    assert 'echo "exit status $?"' in command


def test_crontab_command_is_valid_shell() -> None:
    _, jobs = crontab_entries()
    command = jobs[0].split(None, 5)[5]
    done = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_crontab_is_accepted_by_crontab_command(tmp_path: Path) -> None:
    binary = required.binary("CRON", "crontab", "cron")
    # Each cron checks a file without installing it, under its own flag: -T (cronie),
    # -n (Debian's cron, "dry run").
    for flag in ("-T", "-n"):
        done = subprocess.run([binary, flag, str(CRON / "crontab")], capture_output=True, text=True)
        if "invalid option" not in done.stderr and "unrecognized option" not in done.stderr:
            break
    else:
        pytest.fail(f"{binary} checks no file without installing it (neither -T nor -n)")
    assert done.returncode == 0, done.stderr
    # The same check refuses a broken line: it is a real check.
    broken = tmp_path / "broken"
    broken.write_text("*/30 * * *\n")
    refused = subprocess.run([binary, flag, str(broken)], capture_output=True, text=True)
    assert refused.returncode != 0, refused.stdout


def read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";"), delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CRON / name).read_text())
    return parser


def test_systemd_service() -> None:
    unit = read_unit("analytics-cli.service")
    assert unit.sections() == ["Unit", "Service"]
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].startswith("/")
    assert service["ExecStart"].endswith(" collect")
    assert service["EnvironmentFile"] == "/etc/analytics-cli/env"
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    # The spool's folder: systemd makes /var/lib/analytics-cli, owned by the dynamic user,
    # and passes it as $STATE_DIRECTORY (tests/ops/test_deployment.py runs the tool so).
    assert service["StateDirectory"] == "analytics-cli"
    assert service["StateDirectoryMode"] == "0700"
    assert "ReadWritePaths" not in service
    assert unit["Unit"]["After"] == "network-online.target"
    # systemd has no inline comments: a "#" after a value would become part of it.
    for section in unit.sections():
        for key, value in unit[section].items():
            assert "#" not in value, f"{section}.{key}"


def test_systemd_timer() -> None:
    unit = read_unit("analytics-cli.timer")
    assert unit.sections() == ["Unit", "Timer", "Install"]
    timer = unit["Timer"]
    assert timer["OnCalendar"] == "*:0/30"
    assert timer["Persistent"] == "true"
    assert timer["Unit"] == "analytics-cli.service"
    assert unit["Install"]["WantedBy"] == "timers.target"


def _systemd_analyze() -> str:
    return required.binary("SYSTEMD", "systemd-analyze", "systemd")


def test_systemd_verify_reports_a_bad_key(tmp_path: Path) -> None:
    """The verify check below can fail: a misspelt key is reported on stderr."""
    binary = _systemd_analyze()
    service = (CRON / "analytics-cli.service").read_text()
    broken = service.replace("/usr/local/bin/analytics-cli", "/bin/true").replace(
        "StateDirectory=", "StateDirektory="
    )
    (tmp_path / "analytics-cli.service").write_text(broken)
    done = subprocess.run(
        [binary, "verify", "analytics-cli.service"], capture_output=True, text=True, cwd=tmp_path
    )
    assert "Unknown key 'StateDirektory'" in done.stderr


def test_systemd_units_verify(tmp_path: Path) -> None:
    binary = _systemd_analyze()
    # verify insists that ExecStart exists: point it at a binary this machine has.
    service = (CRON / "analytics-cli.service").read_text()
    (tmp_path / "analytics-cli.service").write_text(
        service.replace("/usr/local/bin/analytics-cli", "/bin/true")
    )
    shutil.copy(CRON / "analytics-cli.timer", tmp_path / "analytics-cli.timer")
    done = subprocess.run(
        [binary, "verify", "analytics-cli.service", "analytics-cli.timer"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    security = subprocess.run(
        [binary, "security", "--offline=yes", "--threshold=25", "analytics-cli.service"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert security.returncode == 0, security.stdout[-500:]
    assert "Overall exposure level for analytics-cli.service: 1." in security.stdout


def test_systemd_calendar_fires_at_00_and_30() -> None:
    binary = _systemd_analyze()
    done = subprocess.run(
        [binary, "calendar", "--iterations=3", "*:0/30"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert ":00:00" in done.stdout and ":30:00" in done.stdout


def load_manifest(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, path.name
    doc: dict[str, Any] = docs[0]
    return doc


def test_kubernetes_schemas_are_bundled() -> None:
    assert K8S_VERSIONS[0] == "1.25.0"
    assert len(K8S_VERSIONS) >= 13


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifest_validates(path: Path, version: str) -> None:
    assert kv.validate(load_manifest(path), version, strict=True) == version[:-2]


def test_kubernetes_validation_catches_errors() -> None:
    doc = load_manifest(CRON / "kubernetes" / "cronjob.yaml")
    doc["spec"]["concurrencyPolicy"] = 3
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, K8S_VERSIONS[-1], strict=True)
    doc = load_manifest(CRON / "kubernetes" / "cronjob.yaml")
    doc["spec"]["jobTemplate"]["spec"]["backofLimit"] = 2
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_kubernetes_cronjob_settings() -> None:
    cronjob = load_manifest(CRON / "kubernetes" / "cronjob.yaml")
    assert cronjob["kind"] == "CronJob"
    spec = cronjob["spec"]
    assert spec["schedule"] == "*/30 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 1800
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1
    assert 0 < job["activeDeadlineSeconds"] < 1800
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [2]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["args"][-1] == "collect"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    env = {e["name"]: e for e in container["env"]}
    assert env["ANALYTICS_DSN"]["valueFrom"]["secretKeyRef"] == {
        "name": "analytics-cli",
        "key": "dsn",
    }
    assert env["ANALYTICS_CLI_CONFIG"]["value"] == "/etc/analytics-cli/config.toml"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"] == {
        "name": "config",
        "mountPath": "/etc/analytics-cli",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = load_manifest(CRON / "kubernetes" / "configmap.yaml")
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert list(configmap["data"]) == ["config.toml"]
    secret = load_manifest(CRON / "kubernetes" / "secret.example.yaml")
    assert secret["metadata"]["name"] == "analytics-cli"
    assert list(secret["stringData"]) == ["dsn"]
