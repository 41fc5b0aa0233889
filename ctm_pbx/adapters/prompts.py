"""Voice prompts from text: espeak-ng speaks, sox makes telephone audio.

Asterisk plays 8 kHz, 16-bit, mono WAV without transcoding on a G.711 call. The
prompt texts live in a YAML mapping ``name: text`` (``ivr_prompts/prompts.yaml``).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOOLS = ("espeak-ng", "sox")


class PromptError(Exception):
    """A prompt that cannot be built (bad text file, missing tool, a tool failed)."""


@dataclass(frozen=True)
class Built:
    name: str
    path: Path
    seconds: float


def read_texts(path: Path) -> dict[str, str]:
    """``name: text`` entries; names are what routes play as ``ctm-pbx/<name>``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise PromptError(f"{path}: expected a mapping of prompt name to text")
    out = {}
    for name, text in data.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise PromptError(f"{path}: invalid prompt name {name!r} (lowercase, digits, - _)")
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"{path}: prompt {name!r} needs a text")
        out[name] = " ".join(text.split())
    return out


def check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise PromptError(
            f"{' and '.join(missing)} not found: install the Debian packages espeak-ng and sox"
        )


def build_prompt(
    name: str, text: str, out_dir: Path, *, voice: str = "en-us", speed: int = 150
) -> Built:
    """Speak ``text`` into ``out_dir/<name>.wav`` (8 kHz mono 16-bit PCM)."""
    out = out_dir / f"{name}.wav"
    with tempfile.TemporaryDirectory(prefix="ctm-prompt-") as tmp:
        raw = Path(tmp) / "speech.wav"
        _run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text])
        _run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", str(out)])
    seconds = float(_run(["soxi", "-D", str(out)]).strip() or 0)
    return Built(name, out, seconds)


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PromptError(f"{cmd[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise PromptError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout
