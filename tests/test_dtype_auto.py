"""`--dtype auto`: bf16 extraction on CPUs with native bf16 matrix units, fp32 elsewhere, recorded with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midalign.models import loading
from midalign.models.loading import cpu_bf16_units, extraction_dtype

EPYC_FLAGS = "flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS_FLAGS = "flags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
OLD_XEON_FLAGS = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


@pytest.mark.parametrize(
    ("text", "units"),
    [
        (EPYC_FLAGS, ["avx512_bf16"]),
        (SAPPHIRE_RAPIDS_FLAGS, ["amx_bf16", "avx512_bf16"]),
        (OLD_XEON_FLAGS, []),
        ("processor\t: 0\nFeatures\t: fp asimd bf16\n", []),  # aarch64: not measured, so not chosen
        ("", []),
    ],
)
def test_native_bf16_units_from_cpuinfo(tmp_path: Path, text: str, units: list[str]) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\n" + text)
    assert cpu_bf16_units(cpuinfo) == units


def test_unreadable_cpuinfo_means_no_units(tmp_path: Path) -> None:
    assert cpu_bf16_units(tmp_path / "missing") == []


def test_auto_on_cpu_follows_the_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "cpu_bf16_units", lambda cpuinfo=None: ["avx512_bf16"])
    assert extraction_dtype("auto", "cpu") == ("bf16", "auto: CPU with native bf16 (avx512_bf16)")
    assert extraction_dtype("fp32", "cpu") == ("fp32", "given")  # fp32 stays one flag away
    monkeypatch.setattr(loading, "cpu_bf16_units", lambda cpuinfo=None: [])
    dtype, why = extraction_dtype("auto", "cpu")
    assert dtype == "fp32" and "without native bf16" in why
    assert extraction_dtype("bf16", "cpu") == ("bf16", "given")


def test_analyze_records_the_choice_and_keys_the_cache_by_it(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on a tiny model: auto on a CPU with bf16 units extracts in bf16, says why in the record, and its
    states live beside the fp32 ones in the cache instead of replacing them."""
    from midalign.analyze import main

    common = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "eng_Latn", "deu_Latn",
              "fra_Latn", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-figures"]  # fmt: skip
    monkeypatch.setattr(loading, "cpu_bf16_units", lambda cpuinfo=None: ["amx_bf16"])
    main([*common, "--out", str(tmp_path / "auto")])
    main([*common, "--dtype", "fp32", "--out", str(tmp_path / "fp32")])
    records = {name: json.loads((tmp_path / name / "config.json").read_text())["resolved"] for name in ("auto", "fp32")}
    assert records["auto"]["dtype"] == "bfloat16"
    assert records["auto"]["dtype_choice"] == "auto: CPU with native bf16 (amx_bf16)"
    assert records["fp32"]["dtype"] == "float32" and records["fp32"]["dtype_choice"] == "given"
    folders = sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("*/*") if p.is_dir())
    assert folders == ["bfloat16", "float32"]
