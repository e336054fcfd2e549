"""scripts/comet_score.py: COMET over midalign-evaluate's translation predictions, in an environment of its own.

unbabel-comet cannot be installed beside transformers 5, and its model comes from the hub, so a stand-in `comet`
module (the two functions the script calls, with COMET's `predict` output) checks everything but the model."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("comet_score", REPO / "scripts" / "comet_score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeModel:
    """Segment score: the share of the hypothesis's words found in the reference (a known answer per segment)."""

    calls: ClassVar[list[int]] = []

    def predict(self, data, batch_size, gpus, progress_bar):
        self.calls.append(len(data))
        scores = [len(set(d["mt"].split()) & set(d["ref"].split())) / len(d["mt"].split()) for d in data]
        return types.SimpleNamespace(scores=scores, system_score=sum(scores) / len(scores))


@pytest.fixture
def fake_comet(monkeypatch):
    module = types.ModuleType("comet")
    module.download_model = lambda name: f"/nonexistent/{name}"
    module.load_from_checkpoint = lambda path: _FakeModel()
    monkeypatch.setitem(sys.modules, "comet", module)
    _FakeModel.calls = []


def _predictions(folder: Path) -> None:
    rows = [
        ("deu_Latn", "supervised", "x2en", "a b c d", "a b x y"),  # 0.5
        ("deu_Latn", "supervised", "x2en", "a b", "a b"),  # 1.0
        ("deu_Latn", "supervised", "en2x", "p q", "p z"),  # 0.5
        ("rus_Cyrl", "unseen", "x2en", "u v w x", "u q r s"),  # 0.25
    ]
    folder.mkdir()
    with (folder / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for i, (lang, group, direction, hyp, ref) in enumerate(rows):
            row = {"id": f"s{i}", "language": lang, "group": group, "prediction": hyp, "reference": ref,
                   "direction": direction, "source": f"src {i}"}  # fmt: skip
            handle.write(json.dumps(row) + "\n")


def test_comet_tables_per_language_and_direction(tmp_path, fake_comet) -> None:
    folder = tmp_path / "eval"
    _predictions(folder)
    assert _script().main([str(folder)]) == 0
    with (folder / "comet_scores.csv").open() as handle:
        table = {(r["language"], r["group"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}
    assert table == {
        ("deu_Latn", "supervised", "x2en_comet"): 0.75,
        ("deu_Latn", "supervised", "en2x_comet"): 0.5,
        ("rus_Cyrl", "unseen", "x2en_comet"): 0.25,
    }
    segments = [json.loads(line) for line in (folder / "comet_segments.jsonl").read_text().splitlines()]
    assert {s["id"]: s["comet"] for s in segments} == {"s0": 0.5, "s1": 1.0, "s2": 0.5, "s3": 0.25}
    assert not list(folder.glob(".*partial"))


def test_existing_scores_are_kept_unless_overwrite(tmp_path, fake_comet) -> None:
    folder = tmp_path / "eval"
    _predictions(folder)
    script = _script()
    script.main([str(folder)])
    calls = len(_FakeModel.calls)
    script.main([str(folder)])
    assert len(_FakeModel.calls) == calls  # kept
    script.main([str(folder), "--overwrite"])
    assert len(_FakeModel.calls) == 2 * calls


def test_bad_folders_fail_in_one_line_before_the_model_loads(tmp_path, fake_comet) -> None:
    with pytest.raises(SystemExit, match="does not exist"):
        _script().main([str(tmp_path / "missing")])
    folder = tmp_path / "cldr"
    folder.mkdir()
    (folder / "predictions.jsonl").write_text(json.dumps({"id": "x", "language": "deu_Latn", "group": "g"}) + "\n")
    with pytest.raises(SystemExit, match="not a translation prediction"):
        _script().main([str(folder)])
    assert _FakeModel.calls == []


def test_without_comet_installed_the_error_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "comet", None)  # import comet raises ImportError
    folder = tmp_path / "eval"
    _predictions(folder)
    with pytest.raises(SystemExit, match="unbabel-comet is not installed"):
        _script().main([str(folder)])
