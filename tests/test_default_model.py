"""The bundled default model: present, loadable, as accurate as its card says, and its
own attention on the actor and inside the action window.

This is the issue's acceptance check, run small: 60 fresh test clips from a seed the
training never saw, evaluated through `stviz evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stviz.cli import main
from stviz.core.checkpoint import DEFAULT_MODEL, bundled_models_dir
from stviz.core.model import load_model
from stviz.datasets.synth import ACTION_CLASSES, generate

pytestmark = pytest.mark.slow
MODEL_DIR = bundled_models_dir() / DEFAULT_MODEL


def test_bundled_model_is_small_and_documented():
    weights = MODEL_DIR / "model.safetensors"
    assert weights.is_file(), "run `make model`"
    assert weights.stat().st_size <= 25 * 2**20
    card = (MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "make model" in card
    assert load_model(device="cpu").classes == list(ACTION_CLASSES)


def test_bundled_model_accuracy_on_unseen_seed(tmp_path: Path):
    data = tmp_path / "synth"
    generate(data, 0, 60, seed=2027, workers=1)
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as done:
        main(["evaluate", str(data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
              "--device", "cpu", "--quiet"])
    assert done.value.code == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["n_videos"] == 60
    # The model card reports 0.865 on 200 clips (the target, 0.95, is not met
    # yet); 60 clips with this seed give 0.833, so this guards against regressions.
    assert report["accuracy"] >= 0.8
    # The model's own attention: on the actor, and inside the action window.
    assert report["attention_pointing_game"] >= 0.85
    assert report["attention_mass_in_segment"] >= 0.7
