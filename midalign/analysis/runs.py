"""Read the output directory of `midalign-analyze` back as an `AnalysisRun` with tidy accessors.

Layer convention (everywhere in midalign): layer 0 = the embeddings, layer i = the residual stream after
decoder block i, so a model with L blocks has layers 0..L.

Files of a run directory (the contract `midalign-analyze --out DIR` writes):
`config.json`, `selection.json`, `languages.csv`, `per_language.csv`, `layers.csv` and the long pair
table `pairs.parquet` or `pairs.csv` (columns `layer,src,tgt,metric,value`; parquet is preferred and read
with filters, because a 442-language run holds ~15 M rows); `probe.csv` when the run had `--probe`. The pivot
metrics (mexa, cka) have pair rows only for X -> pivot and per-language rows for every language but the pivot;
runs made before them simply lack those rows. A `--pairs pivot` run (`AnalysisRun.scored_pairs`) has pair rows of
the other metrics only for X -> pivot and pivot -> X: a language's per-language value is the mean of its two pairs,
the pivot's the mean of all of them, and `pair_matrix` is NaN off the pivot's row and column.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage

from midalign.analysis.tables import ANISOTROPY_COLUMNS, ANISOTROPY_FILE
from midalign.errors import MidalignError
from midalign.options import METRICS, PIVOT_METRICS

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("layer", "src", "tgt", "metric", "value")
GROUP_KEYS = ("script", "family", "resource_level")
REQUIRED_FILES = ("config.json", "selection.json", "languages.csv", "per_language.csv", "layers.csv")
UNKNOWN_GROUP = "unknown"
# Resource levels sort high -> low when they use these words; anything else sorts alphabetically.
_RESOURCE_RANK = {"high": 0, "medium": 1, "mid": 1, "low": 2, "very-low": 3, "very_low": 3, "extremely-low": 4}


def _read_csv(path: Path, numeric: tuple[str, ...]) -> pd.DataFrame:
    # keep_default_na=False: ISO code `nan` (Min Nan) and empty family cells must stay strings.
    frame = pd.read_csv(path, keep_default_na=False, na_values={col: ["", "nan", "NaN"] for col in numeric})
    for col in numeric:
        frame[col] = pd.to_numeric(frame[col])
    return frame


def _filter(frame: pd.DataFrame, filters: dict[str, Any]) -> pd.DataFrame:
    for col, value in filters.items():
        many = isinstance(value, list | tuple | set)
        frame = frame[frame[col].isin(list(value)) if many else frame[col] == value]
    return frame


def _check_columns(frame: pd.DataFrame, expected: tuple[str, ...], path: Path) -> None:
    missing = [col for col in expected if col not in frame.columns]
    if missing:
        raise MidalignError(f"{path} lacks column(s) {', '.join(missing)}; expected {', '.join(expected)}")


@dataclass
class AnalysisRun:
    """One analysis run directory: small tables loaded eagerly, the pair table on demand."""

    path: Path
    config: dict[str, Any]
    selection: dict[str, Any]
    languages: pd.DataFrame  # index: code; columns name, iso_639_3, script, family, resource_level, ...
    per_language: pd.DataFrame  # layer, lang, metric, value
    layers: pd.DataFrame  # layer, metric, group_by, group, mean, std, min, max, n
    pairs_path: Path | None  # None: a run read with `require_pairs=False` whose pair table is not there
    probe: pd.DataFrame | None = None  # layer, lang, accuracy, n, chance (lang "all": every language); --probe only
    anisotropy: pd.DataFrame | None = None  # anisotropy.csv (midalign.analysis.anisotropy); runs made since it exists
    _pairs: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """A short name for titles and legends: `model / dataset`, the model from the config or (for the embedded
        default, which the config leaves empty) the resolved identity; else the directory name."""
        model = self.config.get("model") or (self.config.get("resolved") or {}).get("model_identity")
        if model:  # "gemma-3-270m-q4_k_m@gemma3...#a5fd" or "/path/to/folder#hash" or "org/name@commit"
            model = re.split(r"[@#]", str(model))[0].rstrip("/")
        parts = [str(value).split("/")[-1] for value in (model, self.config.get("dataset")) if value]
        return " / ".join(parts) if parts else self.path.name

    @property
    def codes(self) -> list[str]:
        """Language codes in `languages.csv` order."""
        return list(self.languages.index)

    @property
    def layer_ids(self) -> list[int]:
        """Layers present in the run (0 = embeddings)."""
        return sorted(int(layer) for layer in self.per_language["layer"].unique())

    @property
    def metrics(self) -> list[str]:
        """The metrics this run holds (runs before mexa and cka hold the first four)."""
        present = set(self.per_language["metric"])
        return [name for name in METRICS if name in present] + sorted(present - set(METRICS))

    @property
    def pivot(self) -> str | None:
        """The language the pivot metrics compare with (None when the run has none)."""
        resolved = self.config.get("resolved") or {}
        return resolved.get("pivot") or (self.config.get("english") if set(PIVOT_METRICS) & set(self.metrics) else None)

    @property
    def scored_pairs(self) -> str:
        """--pairs: which directed pairs the pair metrics were scored on: "all", or "pivot" (each language with the
        pivot, both directions; the pair table then has only those rows). Runs made before --pairs scored all."""
        return str(self.config.get("pairs") or "all")

    @property
    def selected_layer(self) -> int:
        """The layer the analysis selected."""
        return int(self.selection["layer"])

    @property
    def pairs(self) -> pd.DataFrame:
        """The whole long pair table (loaded once, src/tgt/metric as categoricals to save memory)."""
        if self._pairs is None:
            self._pairs = self._read_pairs()
        return self._pairs

    def _read_pairs(self, **filters: Any) -> pd.DataFrame:
        """Read pairs, restricted to `column=value` filters (pushed down into parquet when it is parquet)."""
        if self._pairs is not None:
            return _filter(self._pairs, filters)
        if self.pairs_path.suffix == ".parquet":
            pushed = [
                (col, "in", list(value)) if isinstance(value, list | tuple | set) else (col, "==", value)
                for col, value in filters.items()
            ] or None
            frame = pd.read_parquet(self.pairs_path, columns=list(PAIR_COLUMNS), filters=pushed)
        else:
            frame = pd.read_csv(
                self.pairs_path,
                keep_default_na=False,
                na_values={"value": ["", "nan", "NaN"]},
                dtype={
                    "layer": "int64",
                    "src": "category",
                    "tgt": "category",
                    "metric": "category",
                    "value": "float64",
                },
            )
            _check_columns(frame, PAIR_COLUMNS, self.pairs_path)
            frame = _filter(frame, filters)
        return frame.reset_index(drop=True)

    def _pairs_for(self, **filters: Any) -> pd.DataFrame:
        if self.pairs_path is None:
            raise MidalignError(f"{self.path} has no pair table (pairs.parquet / pairs.csv)")
        # A CSV cannot be filtered while reading, so read it whole once and cache it.
        if self._pairs is None and self.pairs_path.suffix != ".parquet":
            self._pairs = self._read_pairs()
        frame = self._read_pairs(**filters)
        if frame.empty:
            raise MidalignError(f"{self.pairs_path} has no rows for {filters}")
        return frame

    def _pairs_among(self, langs: list[str] | None, **filters: Any) -> pd.DataFrame:
        """Pairs matching filters, restricted to pairs whose src and tgt are both in `langs` (None = all)."""
        if langs is not None and set(langs) != set(self.codes):
            filters = {**filters, "src": list(langs), "tgt": list(langs)}
        return self._pairs_for(**filters)

    def curve(self, metric: str = "retrieval_acc", langs: list[str] | None = None) -> pd.DataFrame:
        """Per layer (index) the spread across directed pairs: mean, std, min, q25, median, q75, max, n.

        `langs` restricts to pairs among those languages (e.g. the languages two runs share).
        """
        frame = self._pairs_among(langs, metric=metric)
        grouped = frame.groupby("layer")["value"]
        out = pd.DataFrame(
            {
                "mean": grouped.mean(),
                "std": grouped.std(),
                "min": grouped.min(),
                "q25": grouped.quantile(0.25),
                "median": grouped.median(),
                "q75": grouped.quantile(0.75),
                "max": grouped.max(),
                "n": grouped.count(),
            }
        )
        out.index = out.index.astype(int)
        return out.sort_index()

    def group_curves(self, metric: str = "retrieval_acc", group_by: str = "script") -> pd.DataFrame:
        """Layer x group DataFrame of by-group means from `layers.csv` (columns ordered by group size)."""
        rows = self.layers[(self.layers["metric"] == metric) & (self.layers["group_by"] == group_by)]
        if rows.empty:
            raise MidalignError(f"{self.path / 'layers.csv'} has no rows for metric={metric}, group_by={group_by}")
        table = rows.pivot_table(index="layer", columns="group", values="mean", aggfunc="first")
        sizes = rows.groupby("group")["n"].max().sort_values(ascending=False, kind="stable")
        return table[list(sizes.index)].sort_index()

    def pair_matrix(self, layer: int | None = None, metric: str = "retrieval_acc") -> pd.DataFrame:
        """Language x language (src rows, tgt columns) values at a layer (default: selected); NaN diagonal."""
        layer = self.selected_layer if layer is None else int(layer)
        if layer not in self.layer_ids:
            raise MidalignError(f"layer {layer} is not in this run (layers {self.layer_ids[0]}..{self.layer_ids[-1]})")
        frame = self._pairs_for(layer=layer, metric=metric)
        matrix = frame.pivot_table(index="src", columns="tgt", values="value", aggfunc="first", observed=True)
        present = set(matrix.index) | set(matrix.columns)
        order = [code for code in self.codes if code in present] + sorted(present - set(self.codes))
        values = matrix.reindex(index=order, columns=order).to_numpy(dtype=float, copy=True)
        np.fill_diagonal(values, np.nan)
        return pd.DataFrame(values, index=pd.Index(order, name="src"), columns=pd.Index(order, name="tgt"))

    def layer_language(self, metric: str = "retrieval_acc", langs: list[str] | None = None) -> pd.DataFrame:
        """Layer x language DataFrame from `per_language.csv` (languages in `languages.csv` order).

        With `langs` (a subset), the per-language means are recomputed from the pair table over pairs among
        `langs` only, so that runs with different language sets compare like with like.
        """
        rows = self.per_language[self.per_language["metric"] == metric]
        if langs is not None and set(langs) != set(self.codes):
            pairs = self._pairs_among(langs, metric=metric)
            both = pd.concat(
                [
                    pairs[["layer", "src", "value"]].rename(columns={"src": "lang"}),
                    pairs[["layer", "tgt", "value"]].rename(columns={"tgt": "lang"}),
                ]
            )
            both["lang"] = both["lang"].astype(str)
            rows = both.groupby(["layer", "lang"], as_index=False)["value"].mean()
        if rows.empty:
            raise MidalignError(f"{self.path / 'per_language.csv'} has no rows for metric {metric!r}")
        table = rows.pivot_table(index="layer", columns="lang", values="value", aggfunc="first")
        order = [code for code in self.codes if code in table.columns]
        table = table[order + sorted(set(table.columns) - set(order))].sort_index()
        table.columns.name = "lang"
        return table

    def groups(self, by: str, codes: list[str] | None = None) -> pd.Series:
        """Group label (script / family / resource_level) per language code; empty cells become 'unknown'."""
        if by not in GROUP_KEYS:
            raise MidalignError(f"unknown grouping {by!r}; choose one of {', '.join(GROUP_KEYS)}")
        codes = self.codes if codes is None else codes
        labels = self.languages[by].reindex(codes).fillna("").astype(str).replace("", UNKNOWN_GROUP)
        return labels.rename(by)


def group_rank(groups: pd.Series, by: str) -> dict[str, tuple]:
    """Sort key per group: resource levels high -> low; others by size (largest first); 'unknown' last."""
    sizes = groups.value_counts()
    ranks: dict[str, tuple] = {}
    for group, size in sizes.items():
        unknown = group == UNKNOWN_GROUP
        if by == "resource_level":
            try:
                ranks[group] = (unknown, -float(group), "")  # numeric levels (e.g. Joshi 0-5): high first
                continue
            except ValueError:
                ranks[group] = (unknown, _RESOURCE_RANK.get(str(group).lower(), 99), str(group))
                continue
        ranks[group] = (unknown, -int(size), str(group))
    return ranks


def order_languages(groups: pd.Series, values: pd.Series, by: str) -> list[str]:
    """Codes sorted by group (see `group_rank`), then by value, best first, within each group."""
    ranks = group_rank(groups, by)
    frame = pd.DataFrame({"group": groups, "value": values.reindex(groups.index)})
    keys = sorted(
        frame.index,
        key=lambda code: (ranks[frame.at[code, "group"]], -np.nan_to_num(frame.at[code, "value"], nan=-np.inf), code),
    )
    return list(keys)


def group_means(table: pd.DataFrame, groups: pd.Series, by: str) -> pd.DataFrame:
    """Collapse languages (index) into group means, groups ordered by `group_rank`, labelled 'g (n)'."""
    means = table.groupby(groups.reindex(table.index)).mean()
    sizes = groups.value_counts()
    ranks = group_rank(groups, by)
    means = means.loc[sorted(means.index, key=lambda g: ranks[g])]
    means.index = [f"{g} ({sizes[g]})" for g in means.index]
    return means


def cluster_order(matrix: pd.DataFrame) -> list[str]:
    """Leaf order of average-linkage clustering on each language's row and column (as src and as tgt)."""
    if len(matrix) < 3:
        return list(matrix.index)
    values = matrix.to_numpy(dtype=float)
    fill = np.nanmean(values) if np.isfinite(values).any() else 0.0
    values = np.where(np.isnan(values), fill, values)  # the diagonal and any missing pair
    link = linkage(np.hstack([values, values.T]), method="average", optimal_ordering=len(matrix) <= 200)
    return list(matrix.index[leaves_list(link)])


def group_matrix(matrix: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Group x group mean over the language pairs between the groups (sum / count, so NaN pairs drop)."""
    rows, cols = groups.reindex(matrix.index), groups.reindex(matrix.columns)
    sums = matrix.fillna(0).groupby(rows).sum().T.groupby(cols).sum().T
    counts = matrix.notna().astype(int).groupby(rows).sum().T.groupby(cols).sum().T
    return sums / counts.replace(0, np.nan)


def load_run(path: str | Path, require_pairs: bool = True) -> AnalysisRun:
    """Load an analysis run directory written by `midalign-analyze --out DIR`.

    `require_pairs=False` also accepts a run without its pair table (a 442-language run ships without its
    ~0.2 GB pairs.parquet): its per-language and per-layer tables still load; pair accessors then fail clearly."""
    path = Path(path)
    if not path.is_dir():
        raise MidalignError(f"{path} is not a directory; expected the --out DIR of `midalign-analyze`")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise MidalignError(f"{path} is not an analysis run: {name} is missing")
    pairs_path = next((path / n for n in ("pairs.parquet", "pairs.csv") if (path / n).is_file()), None)
    if pairs_path is None and require_pairs:
        raise MidalignError(f"{path} is not an analysis run: pairs.parquet / pairs.csv is missing")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    selection = json.loads((path / "selection.json").read_text(encoding="utf-8"))
    languages = _read_csv(path / "languages.csv", numeric=("n_sentences",))
    _check_columns(
        languages, ("code", "name", "iso_639_3", "script", "family", "resource_level"), path / "languages.csv"
    )
    per_language = _read_csv(path / "per_language.csv", numeric=("layer", "value"))
    _check_columns(per_language, ("layer", "lang", "metric", "value"), path / "per_language.csv")
    layers = _read_csv(path / "layers.csv", numeric=("layer", "mean", "std", "min", "max", "n"))
    _check_columns(
        layers, ("layer", "metric", "group_by", "group", "mean", "std", "min", "max", "n"), path / "layers.csv"
    )
    layers["group"] = layers["group"].astype(str).replace("", UNKNOWN_GROUP)
    for key in ("layer", "metric"):
        if key not in selection:
            raise MidalignError(f"{path / 'selection.json'} lacks the key {key!r}")
    probe = None
    if (path / "probe.csv").is_file():
        probe = _read_csv(path / "probe.csv", numeric=("layer", "accuracy", "n", "chance"))
        _check_columns(probe, ("layer", "lang", "accuracy", "n", "chance"), path / "probe.csv")
    anisotropy = None
    if (path / ANISOTROPY_FILE).is_file():
        anisotropy = _read_csv(path / ANISOTROPY_FILE, numeric=tuple(c for c in ANISOTROPY_COLUMNS if c != "top5_dims"))
        _check_columns(anisotropy, ANISOTROPY_COLUMNS, path / ANISOTROPY_FILE)
    logger.debug("loaded run %s (%d languages, pairs from %s)", path, len(languages), pairs_path)
    return AnalysisRun(
        path=path,
        config=config,
        selection=selection,
        languages=languages.set_index("code"),
        per_language=per_language,
        layers=layers,
        pairs_path=pairs_path,
        probe=probe,
        anisotropy=anisotropy,
    )
