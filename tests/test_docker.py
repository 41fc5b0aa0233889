"""The Docker files, checked without Docker (no images are built here: that needs the
network): the compose example parses, every file it and the Dockerfiles name exists,
the bases are pinned, the containers do not run as root, no healthcheck carries a
password, and the Asterisk image takes the same configuration as the sandbox."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import yaml

from ctm_pbx.adapters.config_loader import load_config

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.example.yaml"
DOCKERFILES = {
    "asterisk": REPO / "docker" / "asterisk" / "Dockerfile",
    "ctm-pbx": REPO / "docker" / "ctm-pbx" / "Dockerfile",
}
PINNED = re.compile(r"^FROM \S+:(\S+-\d{8}(-slim)?|\S+@sha256:[0-9a-f]{64})(\s|$)")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    out: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += " " + line.removesuffix("\\").strip() if pending else line.removesuffix("\\")
        if not line.endswith("\\"):
            out.append(pending.strip())
            pending = ""
    return out


def test_compose_builds_the_repositorys_dockerfiles() -> None:
    services = compose()["services"]
    assert services.keys() == DOCKERFILES.keys()
    for name, service in services.items():
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == REPO
        assert context / service["build"]["dockerfile"] == DOCKERFILES[name]


def test_every_file_compose_mounts_exists_and_every_volume_is_declared() -> None:
    doc = compose()
    for service in doc["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), mount
            else:
                assert source in doc["volumes"], mount


def test_every_file_the_dockerfiles_copy_exists() -> None:
    for dockerfile in DOCKERFILES.values():
        copies = [i.split()[1:-1] for i in instructions(dockerfile) if i.startswith("COPY ")]
        assert copies, dockerfile
        for sources in copies:
            for source in sources:
                assert glob.glob(str(REPO / source)), f"{dockerfile}: {source}"


def test_the_bases_are_pinned_by_a_dated_tag_or_a_digest() -> None:
    for dockerfile in DOCKERFILES.values():
        bases = [i for i in instructions(dockerfile) if i.startswith("FROM ")]
        assert bases and all(PINNED.match(b) for b in bases), (dockerfile, bases)


def test_no_container_runs_as_root_and_no_healthcheck_has_a_password() -> None:
    users = {"asterisk": "asterisk", "ctm-pbx": "ctm-pbx"}
    for name, dockerfile in DOCKERFILES.items():
        steps = instructions(dockerfile)
        assert [s for s in steps if s.startswith("USER ")] == [f"USER {users[name]}"]
        (health,) = [s for s in steps if s.startswith("HEALTHCHECK ")]
        assert not re.search(r"secret|passw|-u \S+:|@127", health, re.I), health
        # the user is set before the command runs
        assert steps.index(f"USER {users[name]}") < steps.index(
            next(s for s in steps if s.startswith("CMD "))
        )


def test_the_asterisk_image_takes_the_sandboxs_configuration() -> None:
    sandbox = (REPO / "scripts" / "asterisk-sandbox").read_text()
    line = next(
        li for li in sandbox.splitlines() if li.strip().startswith("cp ") and '"$etc/"' in li
    )
    sandbox_sources = sorted(s.replace('"$HERE"/', "") for s in line.split()[1:-1])
    steps = instructions(DOCKERFILES["asterisk"])
    etc = next(s for s in steps if s.startswith("COPY ") and s.endswith("/etc/asterisk/"))
    assert sorted(etc.split()[1:-1]) == sandbox_sources
    assert "ivr_prompts" in sandbox and any("COPY ivr_prompts/" in s for s in steps)


def test_both_images_share_the_spool_group_and_paths() -> None:
    doc = compose()
    ast, ctm = doc["services"]["asterisk"], doc["services"]["ctm-pbx"]
    assert ast["build"]["args"]["CTM_GID"] == ctm["build"]["args"]["CTM_GID"]
    env = ctm["environment"]
    spool = str(Path(env["CTM_CALL_SPOOL"]).parent)
    assert any(m.endswith(f":{spool}") for m in ast["volumes"])
    assert any(m.endswith(f":{spool}") for m in ctm["volumes"])
    state = next(m for m in ctm["volumes"] if m.startswith("state:")).split(":")[1]
    assert Path(env["CTM_DATABASE"]).parent == Path(state)


def test_the_containers_config_has_its_database_in_the_volume() -> None:
    ctm = compose()["services"]["ctm-pbx"]
    (config_mount,) = [m for m in ctm["volumes"] if m.endswith(":/etc/ctm-pbx/config.yaml:ro")]
    config = load_config(COMPOSE.parent / config_mount.split(":")[0], env=ctm["environment"])
    assert config.database.path == ctm["environment"]["CTM_DATABASE"]
    assert config.asterisk.call_spool == ctm["environment"]["CTM_CALL_SPOOL"]
    recordings = config.asterisk.recordings.dir
    assert any(m.split(":")[1] == recordings for m in ctm["volumes"])
