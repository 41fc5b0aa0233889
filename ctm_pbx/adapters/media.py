"""Media files Asterisk wrote for a call (recordings, voicemail): their length."""

from __future__ import annotations

import os
import re
import wave
from pathlib import Path

PCM_BYTES_PER_SECOND = 8000 * 2  # 8 kHz, 16-bit mono (what Asterisk writes as .wav)
# the names ctm-pbx gives the files (ari_calls: ctm-<channel>.wav, ctm-vm-<channel>.wav)
MEDIA_NAME = re.compile(r"^ctm-(vm-)?[A-Za-z0-9._-]+\.wav$")


def local_file(stored: str, readable_dir: str) -> Path | None:
    """Where ctm-pbx finds the file a call row names (the row holds Asterisk's path):
    its name in ``asterisk.recordings`` ``readable_dir``. None for a name ctm-pbx does
    not give: nothing outside its own files is ever served or deleted."""
    name = Path(stored).name
    if not MEDIA_NAME.match(name):
        return None
    return Path(readable_dir) / name


def wav_seconds(path: str) -> float | None:
    """The file's length in seconds; None when there is no file.

    The header's frame count when it is final, else the size (a file still open
    has a provisional header).
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    try:
        with wave.open(path) as w:
            frames, rate = w.getnframes(), w.getframerate()
        if frames and rate:
            return round(frames / rate, 2)
    except (wave.Error, EOFError, OSError):
        pass
    return round(max(0, size - 44) / PCM_BYTES_PER_SECOND, 2)
