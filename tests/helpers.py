"""Builders for test inputs: tiny models from configs and corpora in FLORES+ layout."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

# A travel-phrase domain (unlike UDHR's legal text), four languages in three scripts; {n} is a number.
_TEMPLATES = {
    "eng_Latn": "The train to the coast leaves at {n} o'clock from platform {m}.",
    "deu_Latn": "Der Zug an die Küste fährt um {n} Uhr von Gleis {m} ab.",
    "fra_Latn": "Le train pour la côte part à {n} heures du quai {m}.",
    "rus_Cyrl": "Поезд к побережью отправляется в {n} часов с платформы {m}.",
    "ell_Grek": "Το τρένο για την ακτή φεύγει στις {n} από την αποβάθρα {m}.",
}
FLORES_LIKE: dict[str, list[str]] = {
    lang: [template.format(n=i % 24, m=i) for i in range(30)] for lang, template in _TEMPLATES.items()
}


def write_flores_layout(
    root: Path, sentences: Mapping[str, Sequence[str]], splits: Mapping[str, Sequence[int]]
) -> Path:
    """Write `<split>/<lang>.parquet` files with FLORES+ columns and a README whose `configs:` lists them."""
    configs = []
    for lang, texts in sentences.items():
        iso, script = lang.split("_")[:2]
        for split, rows in splits.items():
            (root / split).mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(
                {
                    "id": [row + 1 for row in rows],
                    "iso_639_3": iso,
                    "iso_15924": script,
                    "glottocode": "",
                    "text": [texts[row] for row in rows],
                    "url": "",
                    "domain": "travel",
                    "topic": "trains",
                }
            )
            frame.to_parquet(root / split / f"{lang}.parquet", index=False)
        configs.append(
            {
                "config_name": lang,
                "data_files": [{"split": split, "path": f"{split}/{lang}.parquet"} for split in splits],
            }
        )
    header = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
    (root / "README.md").write_text(f"---\n{header}---\n\nA FLORES+-layout test corpus.\n", encoding="utf-8")
    return root


def tiny_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE (any script) that adds BOS, like Gemma's; padding uses a dedicated pad token."""
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def tiny_model(architecture: str, vocab_size: int) -> torch.nn.Module:
    """A randomly initialised 4-block decoder with hidden size 32."""
    torch.manual_seed(0)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if architecture == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif architecture == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=8, sliding_window=8))
    else:
        raise ValueError(architecture)
    assert sum(p.numel() for p in model.parameters()) < 200_000, "test models must stay tiny"
    return model.eval()


def save_tiny_model(folder: Path, architecture: str) -> Path:
    """Save a tiny model and its tokenizer (trained on the test corpus) as a local HF folder."""
    return save_tiny_model_on(folder, [text for texts in FLORES_LIKE.values() for text in texts], architecture)


def save_tiny_model_on(folder: Path, texts: Sequence[str], architecture: str = "gemma3") -> Path:
    """Save a tiny model whose tokenizer is trained on `texts` as a local HF folder."""
    tokenizer = tiny_tokenizer(texts)
    model = tiny_model(architecture, len(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# X<->English pairs of another domain (software messages), with ids naming the English sentence, as in the
# bundled gettext corpus; one German pair is far longer than the rest (for --align-max-length).
_UI_PAIRS = {
    "deu_Latn": "Die Datei {n} konnte nicht gespeichert werden.",
    "fra_Latn": "Le fichier {n} n'a pas pu être enregistré.",
    "rus_Cyrl": "Не удалось сохранить файл {n}.",
}
PAIRS_LIKE: dict[str, list[tuple[str, str, str]]] = {
    lang: [(f"p{i:03d}", template.format(n=i), f"The file {i} could not be saved.") for i in range(40)]
    for lang, template in _UI_PAIRS.items()
}
PAIRS_LIKE["deu_Latn"][5] = ("p005", "Die Datei 5 konnte nicht gespeichert werden, " * 12, "The file 5 was lost.")


def write_pair_layout(
    root: Path, pairs: Mapping[str, Sequence[tuple[str, str, str]]], splits: Mapping[str, Sequence[int]]
) -> Path:
    """Write a pair corpus: `<split>/<lang>.parquet` with columns id, text, en, source and a README `configs:`."""
    configs = []
    for lang, rows in pairs.items():
        for split, positions in splits.items():
            (root / split).mkdir(parents=True, exist_ok=True)
            picked = [rows[i] for i in positions]
            frame = pd.DataFrame(picked, columns=["id", "text", "en"]).assign(source="fixture")
            frame.to_parquet(root / split / f"{lang}.parquet", index=False)
        configs.append(
            {"config_name": lang, "data_files": [{"split": s, "path": f"{s}/{lang}.parquet"} for s in splits]}
        )
    header = yaml.safe_dump({"configs": configs}, sort_keys=False, allow_unicode=True)
    (root / "README.md").write_text(f"---\n{header}---\n\nA pair-layout test corpus.\n", encoding="utf-8")
    return root


def run_study_summary(script: Path, out: Path) -> Path:
    """Run a study's `summarize.py --out OUT --figures OUT` from the repository root; fail with its stderr."""
    import subprocess
    import sys

    command = [sys.executable, str(script), "--out", str(out), "--figures", str(out)]
    completed = subprocess.run(command, cwd=script.parents[2], capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


def state_cache_of(out: Path) -> Path:
    """The state cache an analysis in `out` used (its record names it)."""
    return Path(json.loads((out / "config.json").read_text())["resolved"]["cache_dir"])


def cache_entries(root: Path) -> dict[str, Path]:
    """`<lang>.npy` -> path of every cached array under a state cache root (one settings folder expected)."""
    arrays = sorted(path for path in root.glob("*/*/*.npy"))
    names = [path.name for path in arrays]
    assert len(set(names)) == len(names), f"one language in several settings folders: {arrays}"
    return dict(zip(names, arrays, strict=True))


def manifests(root: Path) -> list[Path]:
    """The entry manifests under a state cache root (not the settings files), sorted."""
    return sorted(path for path in root.glob("*/*/*.json") if path.name != "settings.json")


def settings_folder_of(out: Path) -> Path:
    """The one settings folder of the state cache an analysis in `out` filled."""
    folders = [path.parent for path in state_cache_of(out).glob("*/*/settings.json")]
    assert len(folders) == 1, folders
    return folders[0]


# ISO 639-3 macrolanguage memberships (SIL's macrolanguage mappings; Quechua: the members of interest only).
ISO_MEMBERS: dict[str, set[str]] = {
    "ara": {"arb", "ary", "arz", "acm", "apc", "ajp", "aeb", "ars", "acq", "afb", "ayl", "ayp", "acw", "acx"},
    "aze": {"azj", "azb"}, "est": {"ekk", "vro"}, "fas": {"pes", "prs"}, "ful": {"fuv", "fuf", "fuc", "ffm"},
    "kok": {"gom", "knn"}, "kon": {"kng", "kwy", "ldi"}, "kur": {"kmr", "ckb", "sdh"}, "lav": {"lvs", "ltg"},
    "mlg": {"plt", "xmv", "bhr", "msh", "tdx", "txy", "bmm", "skg", "bzc", "tkg", "xmw"}, "mon": {"khk", "mvf"},
    "msa": {"zsm", "ind"}, "nep": {"npi", "dty"}, "nor": {"nob", "nno"}, "ori": {"ory", "spv"},
    "pus": {"pbt", "pbu", "pst"}, "sqi": {"als", "aln", "aae", "aat"}, "swa": {"swh", "swc"}, "uzb": {"uzn", "uzs"},
    "yid": {"ydd", "yih"}, "zho": {"cmn", "yue", "wuu", "hak", "nan", "gan", "hsn", "cjy", "cdo", "cpx", "czh"},
    "que": {"quy", "quz", "qub", "qud", "quf", "qug", "quh", "quk", "qul", "qup", "qur", "qus", "quw", "qux"},
    "grn": {"gug", "gui", "gun", "gnw", "nhd"}, "orm": {"gaz", "hae", "orc", "gax"}, "kau": {"knc", "kby", "krt"},
    "aym": {"ayr", "ayc"}, "din": {"dik", "dib", "dip", "diw", "dks"}, "hbs": {"srp", "hrv", "bos", "cnr"},
    "lah": {"pnb", "skr", "hnd", "jat", "phr", "xhe", "hno"},
    "fil": {"tgl"},  # not a macrolanguage: Filipino is standardised Tagalog
}  # fmt: skip


def assert_quotes_summary_rows(text: str, marker: str, summary: list[str], at_least: int) -> None:
    """Every table row `text` holds between <!-- marker --> and <!-- /marker --> (its header aside) is a line of a
    study's regenerated summary.md."""
    import re

    quoted = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.S)
    assert quoted, f"the study table is marked with <!-- {marker} --> ... <!-- /{marker} -->"
    rows = [line for line in quoted.group(1).splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= at_least
    for row in rows[1:]:  # the header is shared
        assert row in summary, row
