"""Media files Asterisk wrote for a call (recordings, voicemail): their length."""

from __future__ import annotations

import os
import wave

PCM_BYTES_PER_SECOND = 8000 * 2  # 8 kHz, 16-bit mono (what Asterisk writes as .wav)


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
