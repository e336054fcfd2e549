"""Alias resolution against what a corpus actually has."""

import pytest

from midalign.corpora.languages import (
    MACROLANGUAGE_MEMBERS,
    UnknownLanguageError,
    language_info,
    resolve_language,
    resolve_languages,
)
from tests.helpers import ISO_MEMBERS

FLORES_PLUS_LIKE = [
    "eng_Latn",
    "deu_Latn",
    "cmn_Hans",
    "cmn_Hant",
    "yue_Hant",
    "por_Latn",
    "arb_Arab",
    "ary_Arab",
    "srp_Cyrl",
    "pes_Arab",
    "zsm_Latn",
    "ind_Latn",
    "nob_Latn",
    "nno_Latn",
]
FLORES_200_LIKE = ["eng_Latn", "zho_Hans", "zho_Hant", "por_Latn"]


@pytest.mark.parametrize(
    "alias, expected",
    [
        ("eng_Latn", "eng_Latn"),
        ("ENG_latn", "eng_Latn"),
        ("de", "deu_Latn"),
        ("deu", "deu_Latn"),
        ("ger", "deu_Latn"),
        ("zh", "cmn_Hans"),
        ("zh-Hant", "cmn_Hant"),
        ("zh_Hant", "cmn_Hant"),
        ("pt", "por_Latn"),
        ("ar", "arb_Arab"),
        ("fa", "pes_Arab"),
        ("sr", "srp_Cyrl"),
        ("id", "ind_Latn"),
        ("nb", "nob_Latn"),
    ],
)
def test_aliases_resolve_to_flores_plus_codes(alias: str, expected: str) -> None:
    assert resolve_language(alias, FLORES_PLUS_LIKE) == expected


def test_macrolanguage_code_of_flores_200() -> None:
    assert resolve_language("zh", FLORES_200_LIKE) == "zho_Hans"
    assert resolve_language("cmn", FLORES_200_LIKE) == "zho_Hans"


def test_unknown_code_lists_closest_valid_codes() -> None:
    with pytest.raises(UnknownLanguageError, match="closest valid codes: eng_Latn"):
        resolve_language("eng_Latm", FLORES_PLUS_LIKE)
    with pytest.raises(UnknownLanguageError, match="unknown language 'xx'"):
        resolve_language("xx", FLORES_PLUS_LIKE)


def test_ambiguous_alias_names_the_candidates() -> None:
    with pytest.raises(UnknownLanguageError, match=r"ambiguous.*por_Latn_BR, por_Latn_PT"):
        resolve_language("pt", ["eng_Latn", "por_Latn_PT", "por_Latn_BR"])
    assert resolve_language("no", FLORES_PLUS_LIKE) == "nob_Latn"  # the usual reading of 'no'
    assert resolve_language("pt-PT", ["por_Latn", "por_Latn_PT"]) == "por_Latn_PT"


def test_duplicates_are_kept_once_in_order() -> None:
    assert resolve_languages(["de", "eng_Latn", "deu_Latn"], FLORES_PLUS_LIKE) == ["deu_Latn", "eng_Latn"]


def test_language_info_for_known_and_unknown_codes() -> None:
    info = language_info("deu_Latn")
    assert info.script == "Latn" and info.iso_639_3 == "deu" and "German" in info.name
    variant = language_info("por_Latn_XX")
    assert variant.iso_639_3 == "por" and variant.code == "por_Latn_XX"


def test_macrolanguage_members_are_iso_members() -> None:
    """Every member the table names is an ISO 639-3 member of its macrolanguage (Kituba is not one of Kongo)."""
    for macro, members in MACROLANGUAGE_MEMBERS.items():
        if macro == "tgl":  # the reverse of the Filipino alias, not a macrolanguage
            continue
        if macro in ISO_MEMBERS:
            assert set(members) <= ISO_MEMBERS[macro], macro
    assert "ktu" not in MACROLANGUAGE_MEMBERS["kon"] and resolve_language("kg", ["kng_Latn", "ktu_Latn"]) == "kng_Latn"
