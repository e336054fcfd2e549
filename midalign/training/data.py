"""Training data: task examples (prompt -> completion), X<->English alignment pairs, and the batch order.

Task data: JSONL (one object per line) or any `datasets` source with `prompt` and `completion` fields and an
optional `language`. Tokens are `tokenizer(prompt)` (special tokens added, e.g. <bos>) + `tokenizer(completion)`
(none added) + <eos>; the LM loss sees the completion and <eos> only (prompt labels are -100).

Alignment pairs: from a pair corpus or a multi-way one (`midalign.corpora.pairs`). A multi-way corpus's rows are split
into train and held-out by hashing their sentence ids (independent of the training seed and of the language set, so
held-out sentences are never trained on, whatever the run); a pair corpus has its own train and dev splits (and, like
the bundled gettext, a test split that training and model selection never read), also by id. Each language's
training pairs are then resampled to `pairs_per_language` so that every language contributes the same number of
pairs (the paper's uniform resampling).

Batch order (`CycledBatchSampler`): an epoch of a stream is a fixed number of batches; a stream shorter than
that restarts with a fresh shuffle whenever it runs out, so every epoch covers each of its examples at least once.
Shuffles are a pure function of (seed, stream, epoch, pass), so a resumed run sees the same batches. Under n
processes, process r takes batches r, r + n, r + 2n, ... of that one global sequence (`shard`, `num_shards`), so
the processes together see what one process would, batch for batch.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from midalign.corpora.pairs import PairCorpus, hash_order
from midalign.errors import MidalignError
from midalign.tasks import Example, TaskError, example_from_record, read_jsonl

logger = logging.getLogger(__name__)

TASK_FIELDS = ("prompt", "completion")


@dataclass(frozen=True)
class AlignPair:
    """One parallel pair: `src_text` in `src_lang` translates `tgt_text` (English); `row` is its corpus row."""

    src_text: str
    tgt_text: str
    src_lang: str
    tgt_lang: str
    row: int


def load_task_data(source: str, split: str = "train") -> list[Example]:
    """Task examples from a JSONL file (`tasks.read_jsonl`) or a `datasets` source (local file or folder, or hub
    id) with prompt and completion columns (language optional)."""
    import datasets

    path = Path(source).expanduser()
    if not path.exists() and path.suffix in {".jsonl", ".ndjson", ".json", ".csv", ".parquet"}:
        # A file name, not a hub id: datasets would report it as unreachable on the hub.
        raise TaskError(f"task data file {source!r} does not exist (resolved to {path.resolve()})")
    if path.is_file() and path.suffix in {".jsonl", ".ndjson"}:
        examples = read_jsonl(path, require_language=False)
    else:
        builders = {".json": "json", ".csv": "csv", ".parquet": "parquet"}
        try:
            if path.is_file():
                if path.suffix not in builders:
                    raise TaskError(f"{source}: unknown task file type; use .jsonl, .json, .csv or .parquet")
                table = datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train")
            else:
                table = datasets.load_dataset(source, split=split)
        except (OSError, ValueError, FileNotFoundError) as error:
            raise TaskError(f"cannot load task data {source!r} (split {split!r}): {error}") from error
        missing = [name for name in TASK_FIELDS if name not in table.column_names]
        if missing:
            raise TaskError(f"{source}: missing field(s) {missing} (columns: {table.column_names})")
        examples = [
            example_from_record(row, f"{source}, row {i}", i, require_language=False) for i, row in enumerate(table)
        ]
    if not examples:
        raise TaskError(f"{source}: no task examples")
    return examples


def tokenize_task(tokenizer, examples: Sequence[Example], max_length: int) -> list[dict[str, list[int]]]:
    """input_ids and labels per example (prompt labels -100), cut at max_length; examples left without a
    completion token are dropped with a warning."""
    features, dropped = [], 0
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for example in examples:
        prompt = tokenizer(example.prompt)["input_ids"]
        completion = tokenizer(example.target, add_special_tokens=False)["input_ids"] + eos
        input_ids = (prompt + completion)[:max_length]
        labels = ([-100] * len(prompt) + completion)[:max_length]
        if all(label == -100 for label in labels):
            dropped += 1
            continue
        features.append({"input_ids": input_ids, "labels": labels})
    if dropped:
        logger.warning("%d task example(s) dropped: the prompt alone fills max_length=%d", dropped, max_length)
    if not features:
        raise TaskError(f"no task example has a completion token within max_length={max_length}")
    return features


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (width - len(row)) for row in rows])  # [B, T], right-padded


def collate_task(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (-100 on padding), each [B, T]."""
    input_ids = [f["input_ids"] for f in features]
    return {
        "input_ids": _pad(input_ids, pad_token_id),
        "attention_mask": _pad([[1] * len(ids) for ids in input_ids], 0),
        "labels": _pad([f["labels"] for f in features], -100),
    }


def heldout_split(ids: Sequence[str], fraction: float) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows): the round(fraction * n) ids with the smallest salted sha256 are held out."""
    if not 0 <= fraction < 1:
        raise MidalignError(f"--heldout-fraction must be in [0, 1), got {fraction}")
    n_heldout = round(fraction * len(ids))
    rank = hash_order(ids)
    heldout = sorted(rank[:n_heldout])
    train = sorted(rank[n_heldout:])
    if not train:
        raise MidalignError(f"no training sentences left: {len(ids)} sentences, held-out fraction {fraction}")
    return train, heldout


def load_adapter_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load a saved peft adapter's weights into the same-shaped adapter of `model`."""
    from peft import load_peft_weights, set_peft_model_state_dict

    set_peft_model_state_dict(model, load_peft_weights(str(folder), device="cpu"))


def _resample(rows: Sequence[int], count: int | None, rng: np.random.Generator) -> list[int]:
    """`count` rows drawn uniformly: whole copies of `rows` plus a sample of the rest without replacement."""
    if count is None:
        return list(rows)
    copies, rest = divmod(count, len(rows))
    picked = [row for _ in range(copies) for row in rows]
    return picked + [rows[i] for i in sorted(rng.choice(len(rows), size=rest, replace=False))]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of range(n) with no fixed point (n >= 2): positions in a random order, each sent to
    the next one round the cycle."""
    if n < 2:
        raise MidalignError("shuffled pairs need at least two pairs per language")
    order = rng.permutation(n)
    mapping = np.empty(n, dtype=np.int64)
    mapping[order] = np.roll(order, -1)
    return mapping


def build_pairs(
    corpus: PairCorpus, pairs_per_language: int | None, seed: int, shuffle: bool = False
) -> list[AlignPair]:
    """X<->English pairs of every corpus language, each language resampled to `pairs_per_language` (None: all).

    `row` numbers the English sentence (by id, over the whole corpus), so two pairs that share an English sentence
    share a row and are never each other's negatives in the loss. With `shuffle` (the exposure control), each X
    sentence gets the English side of another pair of its language, by a derangement seeded like the resampling:
    every text is still read, but no X sentence meets its translation."""
    english_index: dict[str, int] = {}
    pairs = []
    for index, lang in enumerate(corpus.languages):
        pair_set = corpus.pairs[lang]
        rng = np.random.default_rng([seed, index])
        partner = derangement(len(pair_set), np.random.default_rng([seed, index, 1])) if shuffle else None
        for position in _resample(range(len(pair_set)), pairs_per_language, rng):
            other = position if partner is None else int(partner[position])
            row = english_index.setdefault(pair_set.ids[other], len(english_index))
            pairs.append(AlignPair(pair_set.texts[position], pair_set.english[other], lang, corpus.english, row))
    if not pairs:
        raise MidalignError("no alignment pairs: give at least one language besides the pivot in --align-langs")
    return pairs


def tokenize_pairs(
    tokenizer, pairs: Sequence[AlignPair], max_length: int, languages: Sequence[str] = ()
) -> tuple[list[dict], dict[str, int]]:
    """Token ids of both sides as raw text (no chat template, special tokens added), the English row and the
    non-English side's position in `languages` (-1 if absent; English is the pivot, position 0 by convention);
    and the number of pairs dropped per language because a side is longer than `max_length` tokens.

    A pair is never truncated: cutting two translations at `max_length` tokens cuts them at different points of
    the meaning, and they are no longer parallel."""
    src = tokenizer([p.src_text for p in pairs], truncation=False)["input_ids"]
    tgt = tokenizer([p.tgt_text for p in pairs], truncation=False)["input_ids"]
    features, dropped = [], Counter()
    position = {lang: i for i, lang in enumerate(languages)}
    for s, t, pair in zip(src, tgt, pairs, strict=True):
        if len(s) > max_length or len(t) > max_length:
            dropped[pair.src_lang] += 1
            continue
        features.append({"src_ids": s, "tgt_ids": t, "row": pair.row, "lang": position.get(pair.src_lang, -1)})
    if dropped:
        logger.warning(
            "%d alignment pair(s) longer than --align-max-length %d tokens left out (%s)",
            sum(dropped.values()),
            max_length,
            ", ".join(f"{lang}: {n}" for lang, n in sorted(dropped.items())),
        )
    if not features:
        raise MidalignError(f"every alignment pair is longer than --align-max-length {max_length}")
    return features, dict(dropped)


def collate_pairs(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Both sides right-padded separately ([B, T_src] and [B, T_tgt]), the sentence rows [B] and the non-English
    side's language positions [B]."""
    src, tgt = [f["src_ids"] for f in features], [f["tgt_ids"] for f in features]
    return {
        "src_input_ids": _pad(src, pad_token_id),
        "src_attention_mask": _pad([[1] * len(ids) for ids in src], 0),
        "tgt_input_ids": _pad(tgt, pad_token_id),
        "tgt_attention_mask": _pad([[1] * len(ids) for ids in tgt], 0),
        "rows": torch.tensor([f["row"] for f in features]),
        "langs": torch.tensor([f.get("lang", -1) for f in features]),
    }


def n_batches(n_items: int, batch_size: int) -> int:
    """Batches in one pass over n_items (the last one may be smaller)."""
    return math.ceil(n_items / batch_size)


class CycledBatchSampler(Sampler[list[int]]):
    """`batches_per_epoch` shuffled batches per epoch, restarting (reshuffled) whenever the items run out.

    With `num_shards` > 1 this is shard `shard` of a global sequence of `batches_per_epoch * num_shards` batches
    per epoch: it yields the global batches shard, shard + num_shards, ... (the same shuffles for every shard)."""

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        batches_per_epoch: int,
        seed: int,
        stream: int,
        shard: int = 0,
        num_shards: int = 1,
    ) -> None:
        if n_items < 1:
            raise MidalignError("a data stream has no items")
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} of {num_shards}")
        self.n_items, self.batch_size, self.batches_per_epoch = n_items, batch_size, batches_per_epoch
        self.seed, self.stream, self.epoch = seed, stream, 0
        self.shard, self.num_shards = shard, num_shards

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order __iter__ yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        produced, pass_index = 0, 0  # produced counts global batches
        wanted = self.batches_per_epoch * self.num_shards
        while produced < wanted:
            order = np.random.default_rng([self.seed, self.stream, self.epoch, pass_index]).permutation(self.n_items)
            for start in range(0, self.n_items, self.batch_size):
                if produced == wanted:
                    return
                if produced % self.num_shards == self.shard:
                    yield order[start : start + self.batch_size].tolist()
                produced += 1
            pass_index += 1
