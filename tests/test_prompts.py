"""Prompt building: espeak-ng and sox make 8 kHz mono WAV files a menu can play."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.prompts import PromptError, read_texts
from ctm_pbx.edges.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_build_speaks_each_text_into_telephone_audio(tmp_path: Path) -> None:
    texts = tmp_path / "prompts.yaml"
    texts.write_text("hello: Thank you for calling.\nzip: Please enter your ZIP code.\n")
    result = CliRunner().invoke(main, ["prompts", "build", "--texts", str(texts)])
    assert result.exit_code == 0, result.output
    for name in ("hello", "zip"):
        with wave.open(str(tmp_path / f"{name}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert 0.8 < w.getnframes() / 8000 < 5, "about as long as the sentence"
    assert "hello.wav" in result.output


def test_build_only_the_named_prompts(tmp_path: Path) -> None:
    texts = tmp_path / "p.yaml"
    texts.write_text("a: One.\nb: Two.\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["prompts", "build", "--texts", str(texts), "--out", str(out), "b"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["b.wav"]
    missing = CliRunner().invoke(main, ["prompts", "build", "--texts", str(texts), "c"])
    assert missing.exit_code == 1 and "not in" in missing.output and "c" in missing.output


def test_missing_tools_are_named(tmp_path: Path, monkeypatch) -> None:
    texts = tmp_path / "p.yaml"
    texts.write_text("a: One.\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither espeak-ng nor sox on it
    result = CliRunner().invoke(main, ["prompts", "build", "--texts", str(texts)])
    assert result.exit_code == 1
    assert "espeak-ng and sox not found" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "expected a mapping"),
        ("Bad Name: hi\n", "invalid prompt name 'Bad Name'"),
        ("ok: ''\n", "needs a text"),
        ("a: [unclosed\n", "p.yaml"),
    ],
)
def test_bad_texts_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PromptError, match=message.replace("[", r"\[")):
        read_texts(path)


def test_the_shipped_prompt_set_is_built() -> None:
    texts = read_texts(REPO / "ivr_prompts" / "prompts.yaml")
    for name in texts:
        with wave.open(str(REPO / "ivr_prompts" / f"{name}.wav")) as w:
            assert (w.getframerate(), w.getnchannels()) == (8000, 1), name
