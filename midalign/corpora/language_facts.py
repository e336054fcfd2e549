"""Curated per-language facts (family, resource level) and the FLORES-200/FLORES+ codes, by ISO 639-3."""

from __future__ import annotations

# Top-level family, only where the classification is uncontroversial. Mande, Songhay and Ijoid are
# given as themselves rather than under Niger-Congo / Nilo-Saharan because their membership there is
# disputed; Ubangian, Kordofanian, Omotic and Koman languages, and Malay-based creoles, are left empty.
# fmt: off
_FAMILIES: dict[str, str] = {
    "Afro-Asiatic": "aar acm acq aeb ajp amh apc arb ars ary arz dbr gaz gex hau heb kab mlt som taq tir "
    "tzm ymm zgh",
    "Algic": "mic",
    "Araucanian": "arn",
    "Arawakan": "ame cab cot cpu guc",
    "Austroasiatic": "kha khm sat vie",
    "Austronesian": "ace ami ban bcl bjn buc bug ceb cha chk fij fil hil ilo ind jav mad mah min mri niu pag "
    "pam pau plt rar smo sun tah tet tgl ton war yap zsm haw",
    "Aymaran": "ayr",
    "Barbacoan": "cof",
    "Boran": "boa",
    "Cahuapanan": "cbt",
    "Constructed": "epo ido ina",
    "Creole": "acf bis cri crs hat jam kea kri ktu pap pcm pov tpi",
    "Dravidian": "kan mal tam tel",
    "Eskimo-Aleut": "kal",
    "Guaicuruan": "tob",
    "Harakmbut": "amr",
    "Hmong-Mien": "hea hms hnj",
    "Ijoid": "ijs",
    "Indo-European": """
    afr als asm ast awa bel ben bho bos bre bul cat ccp ces ckb cnr cos cym dan deu dgo ell eng fao
    fra frp fry fur gla gle glg glv gom gsw guj hin hne hrv hsb hye isl ita kas kmr lad lat lij lim
    lld lit lmo ltg ltz lvs mag mai mar mkd mwl mxi nds nld nno nob npi oci ory oss pan pbt pbu pcd
    pes pol por prs rgn rmn roh ron rup rus san scn sco sin skr slk slv snd spa src srd srp swe szl
    tgk tly ukr urd vec wln ydd""",
    "Iroquoian": "chr",
    "Isolate": "auc cbu eus niv tsz",
    "Japonic": "jpn",
    "Jivaroan": "acu agr jiv",
    "Kartvelian": "kat",
    "Koreanic": "kor",
    "Mande": "bam dyu emk men nqo snk vai",
    "Mayan": "cak hus kek quc toj tzh tzo yua",
    "Misumalpan": "miq",
    "Mixe-Zoque": "mto",
    "Mongolic": "khk",
    "Muskogean": "cic",
    "Na-Dene": "nav",
    "Niger-Congo": "ada ajg aka bax bba bci bem bin bum cjk dag dga ewe fat fon fuf fuv gaa gej gjn ibb ibo "
    "idu kam kbp kdh kik kin kmb kng kon kqn lin lob loz lua lue lug mfq mos nbl ndo nku nso nya nym nzi run "
    "sna sot srr ssw suk swb swh tbz tiv toi tsn tso tum twi umb ven vmw wol xho xsm yor zdj zul",
    "Nilo-Saharan": "dik dip fvr knc lot luo nus",
    "Northwest Caucasian": "abk ady kbd",
    "Otomanguean": "chj csa maz mxv mzi ote zam ztu",
    "Panoan": "amc cbr mcd mcf shp",
    "Peba-Yaguan": "yad",
    "Quechuan": "que qug qul quy qva qvc qvh qvm qvn qwh qxn qxu",
    "Sino-Tibetan": "bod brx cfm cjy cmn cnh ctd dzo gan hak hlt hni hsn iii kac lus mni mya nan njo tji wuu "
    "yue zho",
    "Songhay": "ddn",
    "Tai-Kadai": "blt lao shn tha zyb",
    "Totonacan": "top",
    "Tucanoan": "sey snn",
    "Tungusic": "evn gld oaa orh",
    "Tupian": "grn gug",
    "Turkic": "alt azb azj bak chv crh gag kaa kaz kir kjh sah slr tat tuk tur tyv uig uzn",
    "Uralic": "ekk est fin fkv hun koi krl mhr myv nio sme smn sms vep",
    "Uto-Aztecan": "ppl",
    "Yanomaman": "guu",
    "Zaparoan": "arl zro",
}
# fmt: on
FAMILY: dict[str, str] = {iso: family for family, isos in _FAMILIES.items() for iso in isos.split()}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Resource level after Joshi et al. (2020): classes 4-5 -> high, 3 -> medium, 0-2 -> low. Classes 3-5
# hold only ~50 languages, all national languages with large web presence; those whose class we are not
# sure of are in _UNSURE and get no level. Every other language is therefore class 0-2, i.e. low.
_HIGH = _words("eng spa deu jpn fra arb cmn zho rus hun vie nld kor ita por pes ces swe pol fin cat tur hin")
_MEDIUM = _words("ind ukr ceb afr heb ron tha bul slk slv lit lvs ekk est ben tam urd zsm tgl fil")
_UNSURE = _words(
    """ell dan nob nno nor hrv srp bos cnr eus glg kat hye bel kaz uzn azj als sqi mkd isl cym lat epo san
    mar tel guj pan mal kan npi sin mya khm tat kir tgk khk pbt pbu kmr ckb uig tuk yue ydd ltz fao
    ary arz apc ajp acm acq aeb ars prs asm ory jav sun swh hau yor amh som ibo gaz orm und"""
)
# The high/medium level is that of the standard language in its usual script: it does not carry over to
# another script (Vietnamese in chữ Nôm, Malay in Jawi, romanised Arabic) or to a regional dialect.
# fmt: off
_USUAL_SCRIPTS: dict[str, str] = {
    "arb": "Arab", "cmn": "Hans Hant", "zho": "Hans Hant", "jpn": "Jpan", "kor": "Hang", "rus": "Cyrl",
    "ukr": "Cyrl", "bul": "Cyrl", "pes": "Arab", "urd": "Arab", "hin": "Deva", "ben": "Beng", "tam": "Taml",
    "heb": "Hebr", "tha": "Thai",
}
# fmt: on
_DIALECTS = _words(
    """cmn_Hans_beijing cmn_Hans_guiyang cmn_Hans_harbin cmn_Hans_nanjing cmn_Hans_tianjin jpn_Jpan_osaka
    jpn_Jpan_tokyo fra_Latn_welche"""
)


def resource_level(code: str) -> str:
    """ "high", "medium" or "low" for a `xxx_Scrp[_variant]` code, or "" where it is not known for sure."""
    iso, script = code[:3], code[4:8]
    if iso in _HIGH or iso in _MEDIUM:
        if code in _DIALECTS or script not in _USUAL_SCRIPTS.get(iso, "Latn").split():
            return ""
        return "high" if iso in _HIGH else "medium"
    return "" if iso in _UNSURE else "low"


# FLORES+ codes and names (openlanguagedata/flores README and dataset cards, v2), then FLORES-200 codes
# that FLORES+ relabelled (kept so that either name resolves).
# fmt: off
FLORES: dict[str, str] = {
    "ace_Arab": "Acehnese (Arabic script)", "ace_Latn": "Acehnese (Latin script)",
    "acm_Arab": "Mesopotamian Arabic", "acq_Arab": "Taʽizzi-Adeni Arabic", "aeb_Arab": "Tunisian Arabic",
    "afr_Latn": "Afrikaans", "als_Latn": "Albanian (Tosk)", "amh_Ethi": "Amharic",
    "apc_Arab_nort3139": "Levantine Arabic (North)", "apc_Arab_sout3123": "Levantine Arabic (South)",
    "arb_Arab": "Modern Standard Arabic", "arb_Latn": "Modern Standard Arabic (Romanized)",
    "ars_Arab": "Najdi Arabic", "ary_Arab": "Moroccan Arabic", "arz_Arab": "Egyptian Arabic",
    "asm_Beng": "Assamese", "ast_Latn": "Asturian", "awa_Deva": "Awadhi", "ayr_Latn": "Central Aymara",
    "azb_Arab": "South Azerbaijani", "azj_Latn": "North Azerbaijani", "bak_Cyrl": "Bashkir",
    "bam_Latn": "Bambara", "ban_Latn": "Balinese", "bel_Cyrl": "Belarusian", "bem_Latn": "Bemba",
    "ben_Beng": "Bengali", "bho_Deva": "Bhojpuri", "bjn_Arab": "Banjar (Jawi script)",
    "bjn_Latn": "Banjar (Latin script)", "bod_Tibt": "Lhasa Tibetan", "bos_Latn": "Bosnian",
    "brx_Deva": "Bodo", "bug_Latn": "Buginese", "bul_Cyrl": "Bulgarian", "cat_Latn": "Catalan",
    "ceb_Latn": "Cebuano", "ces_Latn": "Czech", "chv_Cyrl": "Chuvash", "cjk_Latn": "Chokwe",
    "ckb_Arab": "Central Kurdish", "cmn_Hans": "Mandarin Chinese (Standard Beijing)",
    "cmn_Hant": "Mandarin Chinese (Taiwanese)", "crh_Latn": "Crimean Tatar", "cym_Latn": "Welsh",
    "dan_Latn": "Danish", "deu_Latn": "German", "dgo_Deva": "Dogri", "dik_Latn": "Southwestern Dinka",
    "dyu_Latn": "Dyula", "dzo_Tibt": "Dzongkha", "ekk_Latn": "Estonian", "ell_Grek": "Greek",
    "eng_Latn": "English", "epo_Latn": "Esperanto", "eus_Latn": "Basque", "ewe_Latn": "Ewe",
    "fao_Latn": "Faroese", "fij_Latn": "Fijian", "fil_Latn": "Filipino", "fin_Latn": "Finnish",
    "fon_Latn": "Fon", "fra_Latn": "French", "fur_Latn": "Friulian", "fuv_Latn": "Nigerian Fulfulde",
    "gaz_Latn": "West Central Oromo", "gla_Latn": "Scottish Gaelic", "gle_Latn": "Irish",
    "glg_Latn": "Galician", "gom_Deva": "Goan Konkani", "gug_Latn": "Paraguayan Guaraní",
    "guj_Gujr": "Gujarati", "hat_Latn": "Haitian Creole", "hau_Latn": "Hausa", "heb_Hebr": "Hebrew",
    "hin_Deva": "Hindi", "hne_Deva": "Chhattisgarhi", "hrv_Latn": "Croatian", "hun_Latn": "Hungarian",
    "hye_Armn": "Armenian", "ibo_Latn": "Igbo", "ilo_Latn": "Ilocano", "ind_Latn": "Indonesian",
    "isl_Latn": "Icelandic", "ita_Latn": "Italian", "jav_Latn": "Javanese", "jpn_Jpan": "Japanese",
    "kaa_Latn": "Karakalpak", "kab_Latn": "Kabyle", "kac_Latn": "Jingpho", "kam_Latn": "Kamba",
    "kan_Knda": "Kannada", "kas_Arab": "Kashmiri (Arabic script)", "kas_Deva": "Kashmiri (Devanagari script)",
    "kat_Geor": "Georgian", "kaz_Cyrl": "Kazakh", "kbp_Latn": "Kabiyè", "kea_Latn": "Kabuverdianu",
    "khk_Cyrl": "Halh Mongolian", "khm_Khmr": "Khmer (Central)", "kik_Latn": "Kikuyu",
    "kin_Latn": "Kinyarwanda", "kir_Cyrl": "Kyrgyz", "kmb_Latn": "Kimbundu", "kmr_Latn": "Northern Kurdish",
    "knc_Arab": "Central Kanuri (Arabic script)", "knc_Latn": "Central Kanuri (Latin script)",
    "kor_Hang": "Korean", "ktu_Latn": "Kituba (DRC)", "lao_Laoo": "Lao", "lij_Latn": "Ligurian (Genoese)",
    "lim_Latn": "Limburgish", "lin_Latn": "Lingala", "lit_Latn": "Lithuanian", "lmo_Latn": "Lombard",
    "ltg_Latn": "Latgalian", "ltz_Latn": "Luxembourgish", "lua_Latn": "Luba-Kasai", "lug_Latn": "Ganda",
    "luo_Latn": "Luo", "lus_Latn": "Mizo", "lvs_Latn": "Standard Latvian", "mag_Deva": "Magahi",
    "mai_Deva": "Maithili", "mal_Mlym": "Malayalam", "mar_Deva": "Marathi", "mhr_Cyrl": "Meadow Mari",
    "min_Arab": "Minangkabau (Jawi script)", "min_Latn": "Minangkabau (Latin script)",
    "mkd_Cyrl": "Macedonian", "mlt_Latn": "Maltese", "mni_Beng": "Meitei (Manipuri, Bengali script)",
    "mni_Mtei": "Meitei (Manipuri, Meitei script)", "mos_Latn": "Mossi", "mri_Latn": "Maori",
    "mya_Mymr": "Burmese", "myv_Cyrl": "Erzya", "nld_Latn": "Dutch", "nno_Latn": "Norwegian Nynorsk",
    "nob_Latn": "Norwegian Bokmål", "npi_Deva": "Nepali", "nqo_Nkoo": "Nko", "nso_Latn": "Northern Sotho",
    "nus_Latn": "Nuer", "nya_Latn": "Nyanja", "oci_Latn": "Occitan", "ory_Orya": "Odia",
    "pag_Latn": "Pangasinan", "pan_Guru": "Eastern Panjabi", "pap_Latn": "Papiamento",
    "pbt_Arab": "Southern Pashto", "pes_Arab": "Western Persian", "plt_Latn": "Plateau Malagasy",
    "pol_Latn": "Polish", "por_Latn": "Portuguese (Brazilian)", "prs_Arab": "Dari",
    "quy_Latn": "Ayacucho Quechua", "ron_Latn": "Romanian", "run_Latn": "Rundi", "rus_Cyrl": "Russian",
    "sag_Latn": "Sango", "san_Deva": "Sanskrit", "sat_Olck": "Santali", "scn_Latn": "Sicilian",
    "shn_Mymr": "Shan", "sin_Sinh": "Sinhala", "slk_Latn": "Slovak", "slv_Latn": "Slovenian",
    "smo_Latn": "Samoan", "sna_Latn": "Shona", "snd_Arab": "Sindhi (Arabic script)",
    "snd_Deva": "Sindhi (Devanagari script)", "som_Latn": "Somali", "sot_Latn": "Southern Sotho",
    "spa_Latn": "Spanish (Latin American)", "srd_Latn": "Sardinian", "srp_Cyrl": "Serbian",
    "ssw_Latn": "Swati", "sun_Latn": "Sundanese", "swe_Latn": "Swedish", "swh_Latn": "Swahili",
    "szl_Latn": "Silesian", "tam_Taml": "Tamil", "taq_Latn": "Tamasheq (Latin script)",
    "taq_Tfng": "Tamasheq (Tifinagh script)", "tat_Cyrl": "Tatar", "tel_Telu": "Telugu", "tgk_Cyrl": "Tajik",
    "tha_Thai": "Thai", "tir_Ethi": "Tigrinya", "tpi_Latn": "Tok Pisin", "tsn_Latn": "Tswana",
    "tso_Latn": "Tsonga", "tuk_Latn": "Turkmen", "tum_Latn": "Tumbuka", "tur_Latn": "Turkish",
    "twi_Latn_akua1239": "Akuapem Twi", "twi_Latn_asan1239": "Asante Twi", "tyv_Cyrl": "Tuvan",
    "uig_Arab": "Uyghur", "ukr_Cyrl": "Ukrainian", "umb_Latn": "Umbundu", "urd_Arab": "Urdu",
    "uzn_Latn": "Northern Uzbek", "vec_Latn": "Venetian", "vie_Latn": "Vietnamese", "war_Latn": "Waray",
    "wol_Latn": "Wolof", "xho_Latn": "Xhosa", "ydd_Hebr": "Eastern Yiddish", "yor_Latn": "Yoruba",
    "yue_Hant": "Yue Chinese (Hong Kong Cantonese)", "zgh_Tfng": "Standard Moroccan Tamazight",
    "zsm_Latn": "Standard Malay", "zul_Latn": "Zulu",
    # FLORES-200 codes relabelled in FLORES+ 2.0.
    "aka_Latn": "Akan", "ajp_Arab": "South Levantine Arabic", "apc_Arab": "North Levantine Arabic",
    "est_Latn": "Estonian", "grn_Latn": "Guarani", "kon_Latn": "Kikongo", "tgl_Latn": "Tagalog",
    "twi_Latn": "Twi", "tzm_Tfng": "Central Atlas Tamazight", "zho_Hans": "Chinese (Simplified)",
    "zho_Hant": "Chinese (Traditional)",
}
# fmt: on
