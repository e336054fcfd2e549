"""`midalign-merge`: merge a separately trained alignment LoRA into a task LoRA, exactly, by rank concatenation
(`midalign.training.adapters` holds the arithmetic and says why it is exact).

`--sweep` tries several w_align (w_task fixed, or a grid with --sweep-task) on dev data: mean held-out retrieval
at the aligned layer and, with --task, the task metric on the recipe's dev split; the best pair is saved.
Outputs under --out: adapter/ (peft), model/ (--fold: merged into the base weights), sweep.csv, config.json.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time

import pandas as pd
import torch
from peft import LoraConfig

from midalign.cli import prepare_output_dir
from midalign.errors import MidalignError
from midalign.options import MAX_NEW_TOKENS, MergeConfig
from midalign.records import MergeRecord, TrainingRecord
from midalign.training.adapters import (
    Adapter,
    MergeError,
    carry_space,
    check_compatible,
    load_adapter,
    merge,
    save_adapter,
)

logger = logging.getLogger(__name__)

SWEEP_COLUMNS = ["w_task", "w_align", "metric", "language", "value"]


# ---- weight sweep on dev data ------------------------------------------------------------------------------------
class DevScorer:
    """Dev scores of merged weights on one loaded base model: held-out retrieval at the aligned layer, and the task
    metric on the recipe's dev split. The peft model is built once; each weight pair only swaps its tensors."""

    def __init__(self, config: MergeConfig, model_name: str | None, lora: LoraConfig, align: Adapter) -> None:
        from peft import get_peft_model

        from midalign.models.loading import clamp_max_length, load_model

        base, self.tokenizer = load_model(
            model_name, revision=config.revision, dtype=config.dtype, device=config.device
        )
        self.model = get_peft_model(base, copy.deepcopy(lora)).eval()
        self.config, self.layer = config, _layer(config, align)
        if self.layer is None:
            raise MergeError("--layer is needed: the alignment adapter's folder has no midalign config naming it")
        limit = config.max_length or align.max_length or 512
        self.max_length = clamp_max_length(limit, base)
        self.corpus, self.dev, self.english = _dev_data(config, align)
        self.examples = self.metric = None
        if config.task:
            from midalign.tasks import recipe

            self.recipe = recipe(config.task)
            self.examples = self.recipe.load_examples(dataclasses.replace(config, english=self.english))

    def score(self, state: dict[str, torch.Tensor]) -> list[tuple[str, str, float]]:
        """(metric, language, value) rows; language `mean` is the mean over languages."""
        from peft import set_peft_model_state_dict

        from midalign.training.evaluation import dev_scores, retrieval_eval

        loaded = set_peft_model_state_dict(self.model, state)
        if loaded.unexpected_keys:
            raise MergeError(f"merged tensors the model has no place for: {loaded.unexpected_keys[:3]}")
        name = f"retrieval_acc_layer{self.layer}"
        if self.dev is not None:  # a pair corpus: its dev split
            scores = dev_scores(self.model, self.tokenizer, self.dev, self.layer, self.max_length,
                                self.config.batch_size)["retrieval_acc"]  # fmt: skip
            rows = [(name, lang, v) for lang, v in scores.items()] + [
                (name, "mean", sum(scores.values()) / len(scores))
            ]
        else:
            table = retrieval_eval(self.model, self.tokenizer, self.corpus, self.english, "dev", self.max_length,
                                   self.config.batch_size)  # fmt: skip
            acc = table[(table.layer == self.layer) & (table.metric == "retrieval_acc")]
            by_lang = acc.assign(lang=acc.src.where(acc.src != self.english, acc.tgt)).groupby("lang", sort=False)
            rows = [(name, lang, float(v)) for lang, v in by_lang.value.mean().items()]
            rows += [(name, "mean", float(acc.value.mean()))]
        if self.examples:
            rows += self._task_rows()
        return rows

    def _task_rows(self) -> list[tuple[str, str, float]]:
        from midalign.tasks import by_language
        from midalign.tasks.generate import generate

        rows, new_tokens = [], self.config.max_new_tokens or MAX_NEW_TOKENS[self.config.task]
        for lang, idx in by_language(self.examples).items():
            chosen = [self.examples[i] for i in idx]
            answers = generate(self.model, self.tokenizer, [e.prompt for e in chosen], new_tokens,
                               self.config.batch_size, progress=False)  # fmt: skip
            rows += [(metric, lang, float(v)) for metric, v in self.recipe.score(chosen, answers).items()]
        frame = pd.DataFrame(rows, columns=["metric", "language", "value"])
        self.metric = self.metric or self.config.task_metric or rows[0][0]
        return rows + [(m, "mean", float(v)) for m, v in frame.groupby("metric", sort=False).value.mean().items()]


def _dev_data(config: MergeConfig, align: Adapter):
    """(multi-way corpus, pair corpus, English) the weights are scored on, one of the first two None: a pair
    corpus's dev split, or the parallel sentences a multi-way run held out (else a hashed split)."""
    from midalign.corpora.pairs import DEV_PAIRS, dev_pairs, is_pair_source
    from midalign.corpora.parallel import load_parallel
    from midalign.training.data import heldout_split

    trained = align.run if isinstance(align.run, TrainingRecord) else None
    recorded = trained.config.align_data if trained is not None else None
    source = config.align_data or recorded or "udhr"
    langs = config.align_langs or align.languages("align")
    english = _english(config, align)
    if not langs:
        raise MergeError("--align-langs is needed: the alignment adapter's folder has no midalign config naming them")
    if is_pair_source(source):
        # The alignment run's own dev pairs (its --dev-pairs chose its adapter), so the sweep scores the same ones.
        count = trained.config.dev_pairs if trained is not None and source == recorded else DEV_PAIRS
        return None, dev_pairs(source, langs, english, count), english
    split = trained.resolved.align_split if trained is not None and source == recorded else None
    corpus = load_parallel(source, [english, *[lang for lang in langs if lang != english]], split)
    ids = set(trained.resolved.heldout_ids) if trained is not None and source == recorded else set()
    rows = [i for i, sentence_id in enumerate(corpus.ids) if str(sentence_id) in ids]
    if not rows:
        logger.warning("no held-out ids recorded for %s: scoring a hashed 20%% of its sentences", source)
        rows = heldout_split(corpus.ids, 0.2)[1]
    return corpus.select(rows), None, corpus.languages[0]


def _layer(config: MergeConfig, align: Adapter) -> int | None:
    """The aligned layer: --layer, else (auto) the alignment run's."""
    return align.layer if config.layer == "auto" else int(config.layer)


def _english(config: MergeConfig, align: Adapter) -> str:
    """The pivot: --english, else the alignment run's, else eng_Latn."""
    trained = align.run.resolved.english if isinstance(align.run, TrainingRecord) else None
    return config.english or trained or "eng_Latn"


def choose(sweep: pd.DataFrame, primary: str, secondary: str | None) -> tuple[float, float]:
    """The (w_task, w_align) with the best mean `primary`; ties go to `secondary`, then to the smaller w_align."""
    means = sweep[sweep.language == "mean"].pivot_table(index=["w_task", "w_align"], columns="metric", values="value")
    means = means.round(9)  # means of equal scores summed in another order differ in the last bits: still a tie
    keys = [primary] + ([secondary] if secondary in means.columns and secondary != primary else [])
    ranked = means.reset_index().assign(neg_align=lambda f: -f.w_align.abs())
    best = ranked.sort_values([*keys, "neg_align"], ascending=False, kind="stable").iloc[0]
    return float(best.w_task), float(best.w_align)


# ---- command -----------------------------------------------------------------------------------------------------
def run(config: MergeConfig) -> MergeRecord:
    """Merge (after a sweep, if asked) into `config.out`; return the run's record (also in OUT/config.json)."""
    started = time.perf_counter()
    out = prepare_output_dir(config.out)
    earlier = [name for name in ("adapter", "model", "sweep.csv") if (out / name).exists()]
    if earlier and not config.overwrite:
        raise MidalignError(f"{out} already holds a merge ({', '.join(earlier)}); pass --overwrite")
    task, align = load_adapter(config.task_adapter), load_adapter(config.align_adapter)
    check_compatible(task, align)
    model_name = config.model or (task.run.config.model if task.run else task.config.base_model_name_or_path)
    # The base the adapters were trained on, at its revision: given with --model, else the one they record.
    revision = config.revision if config.model else (task.run.config.revision if task.run else task.config.revision)
    config = dataclasses.replace(config, model=model_name, revision=revision)
    resolved = {"task_languages": sorted({*task.languages("task"), *align.languages("task")}),
                "align_languages": sorted({*task.languages("align"), *align.languages("align")})}  # fmt: skip
    resolved.update(model_identity=task.identity or align.identity, layer=_layer(config, align))
    chosen = (config.task_weight, config.align_weight)
    if config.sweep:
        scorer = DevScorer(config, model_name, merge(task, align, *chosen)[0], align)
        rows = []
        for w_task in config.sweep_task or [config.task_weight]:
            for w_align in config.sweep:
                begin = time.perf_counter()
                rows += [(w_task, w_align, *row) for row in scorer.score(merge(task, align, w_task, w_align)[1])]
                pd.DataFrame(rows, columns=SWEEP_COLUMNS).to_csv(out / "sweep.csv", index=False, float_format="%.6g")
                logger.info("w_task %g, w_align %g: %s (%.0f s)", w_task, w_align, ", ".join(
                    f"{r[2]} {r[4]:.4g}" for r in rows if r[:2] == (w_task, w_align) and r[3] == "mean"),
                    time.perf_counter() - begin)  # fmt: skip
        retrieval = f"retrieval_acc_layer{scorer.layer}"
        primary = scorer.metric if config.select == "task" or (config.select == "auto" and config.task) else retrieval
        secondary = retrieval if primary != retrieval else scorer.metric
        chosen = choose(pd.DataFrame(rows, columns=SWEEP_COLUMNS), primary, secondary)
        if scorer.dev is not None:
            dev = {"dev_source": f"{scorer.dev.source}/{scorer.dev.split}", "dev_pairs": scorer.dev.counts()}
            languages = scorer.dev.languages
        else:
            dev, languages = {"heldout_ids": scorer.corpus.ids}, scorer.corpus.languages[1:]
        resolved.update(layer=scorer.layer, criterion=primary, tie_break=secondary, retrieval_languages=languages,
                        **dev)  # fmt: skip
        del scorer  # its model holds a copy of the base weights
        logger.info("chosen by %s: w_task %g, w_align %g", primary, *chosen)
    lora, state = merge(task, align, *chosen)
    save_adapter(out / "adapter", lora, state)
    carry_space(align, out / "adapter")
    resolved.update(w_task=chosen[0], w_align=chosen[1], r=lora.r, target_modules=list(lora.target_modules),
                    task_adapter=str(task.path.resolve()), align_adapter=str(align.path.resolve()))  # fmt: skip
    if config.fold:
        from peft import PeftModel

        from midalign.models.loading import load_model

        base, tokenizer = load_model(model_name, revision=config.revision, dtype=config.dtype, device=config.device)
        folded = PeftModel.from_pretrained(base, str(out / "adapter")).merge_and_unload()  # peft's own loading
        folded.save_pretrained(str(out / "model"))
        tokenizer.save_pretrained(str(out / "model"))
    resolved["wall_seconds"] = round(time.perf_counter() - started, 1)
    record = MergeRecord.create(config, **resolved)
    record.save(out)
    logger.info("merged adapter (r %d, w_task %g, w_align %g) in %s", lora.r, *chosen, out / "adapter")
    return record
