"""scripts/install into a temporary root: the unit passes ``systemd-analyze verify`` there,
and the unit, the installed files, the config and the README agree on every path.

The root gets the distribution's own units (/usr/lib/systemd/system, which a Debian server
has) so that the unit's dependencies resolve; everything else in it is the installer's.
Needs root (the installer chowns to the service's group) and systemd-analyze
(scripts/bootstrap installs the systemd package).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctm_pbx.adapters.config_loader import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install"
UNIT = REPO / "systemd" / "ctm-pbx.service"
DIST_UNITS = Path("/usr/lib/systemd/system")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true", reason="the installer needs root"
)


def service_settings(path: Path) -> dict[str, list[str]]:
    """The unit's settings, each key with all its values, in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ids(root: Path, name: str) -> tuple[int, int]:
    """(uid, gid) of ``name`` in the root's own user database."""
    uid = next(int(f[2]) for f in _rows(root / "etc/passwd") if f[0] == name)
    gid = next(int(f[2]) for f in _rows(root / "etc/group") if f[0] == name)
    return uid, gid


def _rows(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text().splitlines() if line]


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip() and not k.startswith("#")}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: run scripts/bootstrap"
    root = tmp_path_factory.mktemp("root")
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(DIST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    # what a Debian root has that the unit runs besides ctm-pbx: ExecReload's kill (procps)
    (root / "bin").mkdir()
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "bin" / "kill")
    install(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def rooted(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def test_the_installed_unit_passes_systemd_analyze_verify(root: Path) -> None:
    unit = root / "etc/systemd/system/ctm-pbx.service"
    assert unit.read_text() == UNIT.read_text()
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if "ctm-pbx" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_the_unit_is_enabled(root: Path) -> None:
    link = root / "etc/systemd/system/multi-user.target.wants/ctm-pbx.service"
    assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/ctm-pbx.service"


def test_the_units_commands_user_and_files_exist_in_the_root(root: Path) -> None:
    unit = service_settings(UNIT)
    for key in ("ExecStart", "ExecStartPre", "ExecStopPost"):
        for command in unit[key]:
            binary = rooted(root, command.split()[0].lstrip("-"))  # "-": failure ignored
            assert binary.is_file() and os.access(binary, os.X_OK), command
    # after every stop, a crash too: the calls left in the Stasis app go to the fail-safe
    (stop_post,) = unit["ExecStopPost"]
    assert stop_post.split()[1:] == ["asterisk", "handover"], stop_post
    handover = subprocess.run(
        [str(rooted(root, stop_post.split()[0].lstrip("-"))), "asterisk", "handover", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert handover.returncode == 0 and "fail-safe" in handover.stdout, handover.stderr
    version = subprocess.run(
        [str(rooted(root, unit["ExecStart"][0].split()[0])), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and "run" in version.stdout, version.stderr
    (user,), (group,) = unit["User"], unit["Group"]
    uid, gid = ids(root, user)
    assert ids(root, group)[1] == gid
    # the config and its secrets: root's, readable by the service's group only
    (config,) = [v.partition("=")[2] for v in unit["Environment"] if v.startswith("CTM_PBX_")]
    (env,) = unit["EnvironmentFile"]
    for path in (config, env.lstrip("-")):
        st = rooted(root, path).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640), path
    # the StateDirectory, the service's own
    (state,) = unit["StateDirectory"]
    st = rooted(root, f"/var/lib/{state}").stat()
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert f"/var/lib/{state}" in unit["ReadWritePaths"]
    assert unit["WorkingDirectory"] == [f"/var/lib/{state}"]


def test_the_config_puts_the_database_in_the_state_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = service_settings(UNIT)
    (config,) = [v.partition("=")[2] for v in unit["Environment"] if v.startswith("CTM_PBX_")]
    path = rooted(root, config)
    assert "ctm-secret" not in path.read_text()  # no built-in secret
    with pytest.raises(ConfigError):  # a missing secret is an error
        load_config(path, env={})
    secrets = env_file(rooted(root, unit["EnvironmentFile"][0].lstrip("-")))
    assert secrets.keys() == {"CTM_ARI_PASSWORD", "CTM_AMI_SECRET"}
    assert all(len(v) >= 20 for v in secrets.values())
    cfg = load_config(path, env=secrets)
    (state,) = unit["StateDirectory"]
    db = Path(cfg.database.path)
    assert db == Path(f"/var/lib/{state}/ctm-pbx.db"), db
    assert cfg.asterisk.password == secrets["CTM_ARI_PASSWORD"]
    # the call spool's folder is one the unit lets the service write
    spool = str(Path(cfg.asterisk.call_spool).parent)
    assert f"-{spool}" in unit["ReadWritePaths"] or spool in unit["ReadWritePaths"]


def test_the_cli_wrapper_names_the_units_paths(root: Path) -> None:
    unit = service_settings(UNIT)
    text = (root / "usr/local/bin/ctm-pbx").read_text()
    binary = unit["ExecStart"][0].split()[0]
    (config,) = [v.partition("=")[2] for v in unit["Environment"] if v.startswith("CTM_PBX_")]
    assert binary in text and config in text and unit["EnvironmentFile"][0].lstrip("-") in text
    assert f"runuser -u {unit['User'][0]}" in text


def test_the_readme_names_the_same_paths() -> None:
    readme = (REPO / "README.md").read_text()
    unit = service_settings(UNIT)
    (config,) = [v.partition("=")[2] for v in unit["Environment"] if v.startswith("CTM_PBX_")]
    (state,) = unit["StateDirectory"]
    for path in (
        "scripts/install",
        str(Path(unit["ExecStart"][0].split()[0]).parent.parent),  # the virtualenv
        config,
        unit["EnvironmentFile"][0].lstrip("-"),
        f"/var/lib/{state}/ctm-pbx.db",
        "ctm-pbx db migrate",
        "journalctl -u ctm-pbx",
    ):
        assert path in readme, path
    assert "/usr/local/bin/ctm-pbx run" not in readme


def test_a_second_run_keeps_the_config_and_takes_new_secrets(root: Path, tmp_path: Path) -> None:
    config = root / "etc/ctm-pbx/config.yaml"
    config.write_text(config.read_text() + "# the admin's edit\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("CTM_ARI_PASSWORD=the-admins-ari-password\nCTM_AMI_SECRET=the-admins-ami\n")
    install(root, "--env-file", str(secrets))
    assert config.read_text().endswith("# the admin's edit\n")
    env = root / "etc/ctm-pbx/env"
    assert env.read_text() == secrets.read_text()
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
