"""COMET for midalign-evaluate's translation predictions, run in an environment of its own.

unbabel-comet (2.2.7, the newest release) pins transformers < 5, huggingface-hub < 1 and numpy < 2, while midalign
needs transformers 5 (transformers 4 builds a broken Gemma 3 tokenizer from GGUF). The two cannot share one
environment, so COMET is not a midalign extra: this script reads the `predictions.jsonl` that midalign-evaluate
writes and needs nothing but the standard library and `comet`. In a separate environment:

    python3 -m venv .venv-comet && .venv-comet/bin/pip install torch==2.13.0 unbabel-comet
    .venv-comet/bin/python scripts/comet_score.py runs/eval-translation [more evaluation folders ...]

Each folder gets `comet_scores.csv` in the layout of its `scores.csv` (`language,group,metric,value`; metric
`x2en_comet` / `en2x_comet`, the system score of wmt22-comet-da, 0-1), so `pandas.concat` of the two is one tidy
table, and `comet_segments.jsonl` (each example's id and segment score). The model comes from the Hugging Face hub
on first use; an existing `comet_scores.csv` is kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger("comet_score")
MODEL = "Unbabel/wmt22-comet-da"
SCORES = "comet_scores.csv"
SEGMENTS = "comet_segments.jsonl"


def read_predictions(folder: Path) -> dict[tuple[str, str, str], list[dict]]:
    """(language, group, direction) -> that cell's translation examples, in file order."""
    path = folder / "predictions.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist (expected a midalign-evaluate output folder)")
    cells: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            row = json.loads(line)
            if "direction" not in row or "source" not in row:
                raise SystemExit(f"error: {path}:{number} is not a translation prediction (no direction/source)")
            cells[row["language"], row["group"], row["direction"]].append(row)
    return cells


def score_folder(folder: Path, model, batch_size: int, gpus: int, overwrite: bool) -> bool:
    """Write the folder's COMET tables; False where they exist and --overwrite is not given."""
    if (folder / SCORES).exists() and not overwrite:
        logger.info("%s: %s exists, kept (--overwrite to score again)", folder, SCORES)
        return False
    cells = read_predictions(folder)
    table, segments = [], []
    for (language, group, direction), rows in sorted(cells.items()):
        data = [{"src": r["source"], "mt": r["prediction"], "ref": r["reference"]} for r in rows]
        output = model.predict(data, batch_size=batch_size, gpus=gpus, progress_bar=False)
        table.append({"language": language, "group": group, "metric": f"{direction}_comet",
                      "value": float(output.system_score)})  # fmt: skip
        for row, segment in zip(rows, output.scores, strict=True):
            segments.append({"id": row["id"], "direction": direction, "comet": float(segment)})
        logger.info("%s %s %s: COMET %.4f over %d", folder.name, language, direction, output.system_score, len(rows))
    # Written to a temporary name first, so an interrupted run never leaves a partial table behind.
    for name, write in ((SEGMENTS, _write_jsonl), (SCORES, _write_csv)):
        partial = folder / f".{name}.partial"
        write(partial, table if name == SCORES else segments)
        partial.replace(folder / name)
    return True


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["language", "group", "metric", "value"])
        writer.writeheader()
        writer.writerows(rows)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="midalign-evaluate output folders (translation)")
    parser.add_argument("--model", default=MODEL, help="COMET model on the hub, or a local checkpoint path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs for COMET (0: CPU)")
    parser.add_argument("--overwrite", action="store_true", help="score folders that already have comet_scores.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for folder in args.folders:  # fail on a bad folder before the model is loaded
        read_predictions(folder)
    try:
        from comet import download_model, load_from_checkpoint
    except ImportError:
        raise SystemExit("error: unbabel-comet is not installed here (it needs an environment of its own)") from None
    checkpoint = args.model if Path(args.model).exists() else download_model(args.model)
    model = load_from_checkpoint(checkpoint)
    scored = sum(score_folder(f, model, args.batch_size, args.gpus, args.overwrite) for f in args.folders)
    logger.info("scored %d of %d folders", scored, len(args.folders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
