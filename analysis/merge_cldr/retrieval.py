"""Held-out UDHR retrieval (X<->eng, top-1, mean-pooled) at every layer for each configuration of the merge study.

Writes analysis/merge_cldr/retrieval-s{SEED}.csv (`config,layer,lang,value`: retrieval accuracy averaged over both
directions; lang `mean` = mean over languages) from the 10 UDHR paragraphs no adapter here trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd
from peft import PeftModel

from midalign.cli import setup_logging
from midalign.corpora.parallel import load_parallel
from midalign.models.loading import load_model
from midalign.training.evaluation import retrieval_eval

HERE = Path("analysis/merge_cldr")
LANGS = ["deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "pol_Latn", "rus_Cyrl", "por_Latn_BR", "nld_Latn", "ces_Latn",
         "ukr_Cyrl", "tur_Latn", "cmn_Hans", "hin_Deva", "swh_Latn", "amh_Ethi", "quy_Latn", "zul_Latn"]  # fmt: skip


def main() -> None:
    """Score every configuration whose adapter exists; one model load each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    setup_logging()
    configs = {
        "base": None,
        "task_only": f"runs/transfer_cldr/baseline-s{seed}/adapter",
        "joint": f"runs/transfer_cldr/midalign-s{seed}/adapter",
        "align_matched": f"{HERE}/align_matched-s{seed}/adapter",
        "task+merged_matched": f"{HERE}/merged_matched-s{seed}/adapter",
    }
    heldout = set(
        json.loads(Path("analysis/train_gemma_udhr_align/config.json").read_text())["resolved"]["heldout_ids"]
    )
    corpus = load_parallel("udhr", ["eng_Latn", *LANGS], "train")
    corpus = corpus.select([i for i, sentence_id in enumerate(corpus.ids) if str(sentence_id) in heldout])
    frames = []
    for name, adapter in configs.items():
        if adapter and not Path(adapter).is_dir():
            logging.warning("skipping %s: %s not found", name, adapter)
            continue
        started = time.perf_counter()
        model, tokenizer = load_model(None, dtype="fp32", device="cpu")
        model = PeftModel.from_pretrained(model, adapter) if adapter else model
        table = retrieval_eval(model, tokenizer, corpus, "eng_Latn", name, max_length=192)
        acc = table[table.metric == "retrieval_acc"]
        acc = acc.assign(lang=acc.src.where(acc.src != "eng_Latn", acc.tgt))
        both = acc.groupby(["layer", "lang"], as_index=False, sort=False).value.mean()
        mean = both.groupby("layer", as_index=False).value.mean().assign(lang="mean")
        frames.append(pd.concat([both, mean]).assign(config=name))
        logging.info("%s: mean retrieval at layer 11 %.3f (%.0f s)", name, mean.value[mean.layer == 11].iloc[0],
                     time.perf_counter() - started)  # fmt: skip
        out = pd.concat(frames)[["config", "layer", "lang", "value"]]
        out.to_csv(HERE / f"retrieval-s{seed}.csv", index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
