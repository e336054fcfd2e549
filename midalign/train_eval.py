"""Built-in evaluation of a training run: X<->English retrieval on held-out parallel sentences at every layer.

Tables are tidy (`stage,layer,src,tgt,metric,value`; stage = before | after) with one row per direction
(X->eng and eng->X); the summary compares before and after per language at the trained layer and, averaged over
languages, at every layer.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from midalign.data import ParallelCorpus
from midalign.extract import extract_states, tokenize
from midalign.metrics import pair_metrics
from midalign.representations import Pooling, num_layers

logger = logging.getLogger(__name__)

EVAL_COLUMNS = ("stage", "layer", "src", "tgt", "metric", "value")
EVAL_METRICS = ("retrieval_acc", "margin_retrieval_acc", "cosine")


def retrieval_eval(
    model: torch.nn.Module,
    tokenizer,
    corpus: ParallelCorpus,
    english: str,
    stage: str,
    max_length: int = 512,
    batch_size: int = 16,
    pooling: Pooling = "mean",
    autocast: contextlib.AbstractContextManager | None = None,
) -> pd.DataFrame:
    """Tidy X->eng and eng->X metrics at every layer 0..L of `corpus` (held-out sentences)."""
    was_training = model.training
    model.eval()  # no LoRA dropout while measuring
    layers = list(range(num_layers(model) + 1))
    states = {}
    with autocast or contextlib.nullcontext():
        for lang in corpus.languages:
            tokenized = tokenize(tokenizer, corpus.sentences[lang], max_length, pooling, name=f"eval {lang}")
            states[lang] = extract_states(model, tokenizer, tokenized, layers, pooling, batch_size, name=lang)
    model.train(was_training)
    others = [lang for lang in corpus.languages if lang != english]
    order = [english, *others]
    rows = []
    for layer in layers:
        stacked = torch.from_numpy(np.stack([states[lang][:, layer, :] for lang in order]))  # [n_langs, N, H]
        matrices = pair_metrics(stacked, margin_k=min(4, len(corpus.ids) - 1))
        for metric in EVAL_METRICS:
            values = matrices[metric].cpu().numpy()  # [n_langs, n_langs], row = source
            for position, lang in enumerate(others, start=1):
                rows.append((stage, layer, lang, english, metric, float(values[position, 0])))
                rows.append((stage, layer, english, lang, metric, float(values[0, position])))
    return pd.DataFrame(rows, columns=list(EVAL_COLUMNS))


def summarize(before: pd.DataFrame, after: pd.DataFrame, layer: int, english: str) -> pd.DataFrame:
    """Retrieval accuracy before/after: per language and direction at `layer`, and the language mean per layer."""
    frames = []
    for stage, table in (("before", before), ("after", after)):
        acc = table[table.metric == "retrieval_acc"].copy()
        acc["lang"] = np.where(acc.src == english, acc.tgt, acc.src)
        acc["direction"] = np.where(acc.src == english, "eng->x", "x->eng")
        frames.append(acc.assign(stage=stage)[["stage", "layer", "lang", "direction", "value"]])
    long = pd.concat(frames)
    both = long.groupby(["stage", "layer", "lang"], as_index=False)["value"].mean().assign(direction="both")
    long = pd.concat([long, both])
    mean = long.groupby(["stage", "layer", "direction"], as_index=False)["value"].mean().assign(lang="mean")
    long = pd.concat([long, mean])
    wide = long.pivot_table(index=["layer", "lang", "direction"], columns="stage", values="value").reset_index()
    wide["delta"] = (wide["after"] - wide["before"]).round(9)  # no 1e-9 residues of equal float means
    at_layer = wide[wide.layer == layer]
    curve = wide[(wide.lang == "mean") & (wide.direction == "both") & (wide.layer != layer)]
    summary = pd.concat([at_layer, curve]).reset_index(drop=True)
    summary.columns.name = None
    return summary[["layer", "lang", "direction", "before", "after", "delta"]]


def write_eval(out: Path, name: str, table: pd.DataFrame) -> Path:
    """Write a tidy evaluation table as CSV."""
    path = out / name
    table.to_csv(path, index=False, float_format="%.6g")
    return path


def log_summary(summary: pd.DataFrame, layer: int) -> None:
    """Log the per-language before/after table at the trained layer."""
    rows = summary[(summary.layer == layer) & (summary.direction == "both")]
    logger.info("held-out retrieval accuracy at layer %d (mean of X->eng and eng->X):", layer)
    for row in rows.itertuples():
        logger.info("  %-10s %.3f -> %.3f (%+.3f)", row.lang, row.before, row.after, row.delta)
