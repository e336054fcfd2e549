"""Evaluation of a training run: X<->English retrieval before and after, and dev retrieval for early stopping.

Evaluation corpus: a multi-way parallel corpus (by default UDHR, a domain the gettext alignment corpus never
covers), every layer 0..L, for the aligned languages and for languages that were never aligned (group `unseen`).
Hits are kept per sentence (`eval_hits.parquet`: stage, layer, lang, direction, sentence, hit) so that every mean
gets a bootstrap interval over sentences: sentences are resampled with replacement (the same draw for every
language, direction and stage, so before/after differences are paired) and each mean recomputed; the interval is
the 2.5-97.5 % percentile range. A query's candidate pool stays the full set of N sentences in every draw.

A query counts as retrieved when its translation scores at least as high as every candidate (ties, which need
duplicate sentences, are hits), as in `midalign.analysis.metrics`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from midalign.analysis.metrics import pair_metrics, retrieval_hits
from midalign.corpora.pairs import PairCorpus
from midalign.corpora.parallel import ParallelCorpus
from midalign.models.extract import extract_states, tokenize
from midalign.models.representations import Pooling, num_blocks

logger = logging.getLogger(__name__)

EVAL_COLUMNS = ("stage", "layer", "src", "tgt", "metric", "value")
EVAL_METRICS = ("retrieval_acc", "margin_retrieval_acc", "cosine")
HIT_COLUMNS = ("stage", "layer", "lang", "direction", "sentence", "hit")
DIRECTIONS = ("x->eng", "eng->x")
SUMMARY_COLUMNS = (
    "layer", "lang", "group", "n_langs", "n_sentences", "before", "before_low", "before_high",
    "after", "after_low", "after_high", "delta", "delta_low", "delta_high",
)  # fmt: skip
N_BOOTSTRAP = 2000
# Per-sentence hits and their summary, by the space retrieval is measured in: raw cosine (what midalign-analyze
# measures) and with each language's states centred on their mean over the evaluation sentences (--center).
EVAL_FILES = {
    "raw": ("eval_hits.parquet", "eval_summary.csv"),
    "centered": ("eval_hits_centered.parquet", "eval_summary_centered.csv"),
}


def corpus_states(
    model: torch.nn.Module,
    tokenizer,
    sentences: Mapping[str, Sequence[str]],
    layers: Sequence[int],
    max_length: int = 512,
    batch_size: int = 16,
    pooling: Pooling = "mean",
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, np.ndarray]:
    """Pooled states [N, len(layers), H] of each named sentence list, the model in eval mode (no LoRA dropout)."""
    states = {}
    tokenized = {name: tokenize(tokenizer, texts, max_length, pooling, name=f"eval {name}")
                 for name, texts in sentences.items()}  # fmt: skip
    total = sum(tokens.n_tokens for tokens in tokenized.values())
    # Tens of seconds on a CPU before and after training: a bar, not silence.
    bar = tqdm(total=total, unit="tok", unit_scale=True, desc="evaluate", leave=False)
    with measuring(model, autocast), bar:
        for name, tokens in tokenized.items():
            bar.set_postfix_str(name)
            states[name] = extract_states(model, tokenizer, tokens, layers, pooling, batch_size, bar, name)
    return states


@contextlib.contextmanager
def measuring(
    model: torch.nn.Module, autocast: contextlib.AbstractContextManager | None = None
) -> Iterator[torch.nn.Module]:
    """The model in eval mode (no LoRA dropout) under `autocast`, its training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with autocast or contextlib.nullcontext():
            yield model
    finally:
        model.train(was_training)


def tidy_metrics(states: Mapping[str, np.ndarray], english: str, stage: str) -> pd.DataFrame:
    """Tidy X->eng and eng->X retrieval, margin retrieval and cosine at every layer of [N, L + 1, H] states."""
    others = [lang for lang in states if lang != english]
    order = [english, *others]
    n_sentences = len(states[english])
    rows = []
    for layer in range(states[english].shape[1]):
        stacked = torch.from_numpy(np.stack([states[lang][:, layer, :] for lang in order]))  # [n_langs, N, H]
        matrices = pair_metrics(stacked, margin_k=min(4, n_sentences - 1))
        for metric in EVAL_METRICS:
            values = matrices[metric].cpu().numpy()  # [n_langs, n_langs], row = source
            for position, lang in enumerate(others, start=1):
                rows.append((stage, layer, lang, english, metric, float(values[position, 0])))
                rows.append((stage, layer, english, lang, metric, float(values[0, position])))
    return pd.DataFrame(rows, columns=list(EVAL_COLUMNS))


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
    """Tidy X->eng and eng->X metrics at every layer 0..L of `corpus`."""
    layers = list(range(num_blocks(model) + 1))
    states = corpus_states(model, tokenizer, corpus.sentences, layers, max_length, batch_size, pooling, autocast)
    return tidy_metrics(states, english, stage)


def hits_table(
    states: Mapping[str, np.ndarray], english: str, ids: Sequence[str], stage: str, center: bool = False
) -> pd.DataFrame:
    """Tidy per-sentence hits (HIT_COLUMNS) of every language against English at every layer; with `center`, each
    language's states at a layer minus their mean first (as midalign-analyze --center)."""
    frames = []
    n_states = states[english].shape[1]  # L + 1 layers
    for lang, lang_states in states.items():
        if lang == english:
            continue
        for layer in range(n_states):
            # Copied: cached states are read-only memory maps, which torch cannot wrap without a warning.
            x, en = torch.tensor(lang_states[:, layer]), torch.tensor(states[english][:, layer])  # [N, H] each
            hits = retrieval_hits(x, en, center)
            for direction, values in zip(DIRECTIONS, hits, strict=True):
                frames.append(
                    pd.DataFrame(
                        {
                            "stage": stage,
                            "layer": layer,
                            "lang": lang,
                            "direction": direction,
                            "sentence": list(ids),
                            "hit": values.astype(np.int8),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)[list(HIT_COLUMNS)]


def _interval(per_sentence: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean of per-sentence values [N] over bootstrap draws [B, N] of indices."""
    means = per_sentence[draws].mean(axis=1)  # [B]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(per_sentence.mean()), float(low), float(high)


def summarize(
    hits: pd.DataFrame,
    groups: Mapping[str, str],
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """Before/after/delta retrieval accuracy (mean of both directions) with 95 % bootstrap intervals over sentences.

    Rows: every layer x (each language, and the mean of each group of `groups` {lang: group} plus `all`). `hits`
    holds both stages (HIT_COLUMNS)."""
    # [stage, layer, lang, sentence] -> hit averaged over the two directions
    both = hits.groupby(["stage", "layer", "lang", "sentence"], sort=False)["hit"].mean().unstack("sentence")
    sentences = list(both.columns)
    draws = np.random.default_rng(seed).integers(0, len(sentences), size=(n_bootstrap, len(sentences)))  # [B, N]
    langs = list(dict.fromkeys(hits.lang))
    members = {"all": langs}
    for lang in langs:
        members.setdefault(groups.get(lang, "unseen"), []).append(lang)
    rows = []
    for layer in sorted(hits.layer.unique()):
        before = both.loc[("before", layer)]  # [langs, N]
        after = both.loc[("after", layer)]
        units = [(lang, groups.get(lang, "unseen"), [lang]) for lang in langs]
        units += [("mean", group, names) for group, names in members.items()]
        for name, group, names in units:
            b = before.loc[names].to_numpy().mean(axis=0)  # [N]: the group's mean hit per sentence
            a = after.loc[names].to_numpy().mean(axis=0)
            stats = [*_interval(b, draws), *_interval(a, draws), *_interval(a - b, draws)]
            rows.append((int(layer), name, group, len(names), len(sentences), *stats))
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return table.round(6)


def group_means_at(summary: pd.DataFrame, layer: int) -> pd.DataFrame:
    """The group-mean rows of a summary at one layer."""
    return summary[(summary.layer == layer) & (summary.lang == "mean")].reset_index(drop=True)


def write_eval(out: Path, name: str, table: pd.DataFrame) -> Path:
    """Write a tidy evaluation table (CSV, or parquet for `.parquet` names)."""
    path = out / name
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, float_format="%.6g")
    return path


def log_summary(summary: pd.DataFrame, layer: int) -> None:
    """Log the per-language and per-group before/after table at the trained layer."""
    rows = summary[summary.layer == layer]
    logger.info("retrieval accuracy at layer %d (mean of X->eng and eng->X; 95%% bootstrap interval):", layer)
    for row in rows.itertuples():
        name = f"{row.group} mean" if row.lang == "mean" else f"{row.lang} ({row.group})"
        logger.info(
            "  %-22s %.3f -> %.3f  %+.3f [%+.3f, %+.3f]",
            name, row.before, row.after, row.delta, row.delta_low, row.delta_high,
        )  # fmt: skip


def dev_scores(
    model: torch.nn.Module,
    tokenizer,
    dev: PairCorpus,
    layer: int,
    max_length: int,
    batch_size: int = 16,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, dict[str, float]]:
    """{metric: {lang: value}} at `layer` among each language's dev pairs: `retrieval_acc` by raw cosine (mean of
    both directions) and `centered_retrieval_acc`, the same with each side's states minus their mean over the
    language's dev pairs (midalign-analyze --center)."""
    english = dev.english_by_id()
    texts = {f"x:{lang}": pairs.texts for lang, pairs in dev.pairs.items()}
    texts["en"] = list(english.values())
    states = corpus_states(model, tokenizer, texts, [layer], max_length, batch_size, autocast=autocast)
    position = {sentence_id: i for i, sentence_id in enumerate(english)}
    scores: dict[str, dict[str, float]] = {"retrieval_acc": {}, "centered_retrieval_acc": {}}
    for lang, pairs in dev.pairs.items():
        x = torch.from_numpy(states[f"x:{lang}"][:, 0])  # [N, H]
        en = torch.from_numpy(states["en"][[position[i] for i in pairs.ids], 0])  # [N, H]
        for metric, center in (("retrieval_acc", False), ("centered_retrieval_acc", True)):
            x_to_en, en_to_x = retrieval_hits(x, en, center)
            scores[metric][lang] = float((x_to_en.mean() + en_to_x.mean()) / 2)
    return scores
