"""One quick question before any hub download: can the Hugging Face Hub be reached at all?

Without a network, `from_pretrained` and `load_dataset` retry for about 50 s, logging each retry (twice, through
two libraries), before failing with a message about files. One HEAD request with a short timeout answers the same
question in milliseconds, through the hub library's own HTTP session (so HF_ENDPOINT and proxy settings apply).
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = float(os.environ.get("MIDALIGN_HUB_TIMEOUT", "5"))


def offline_mode() -> bool:
    """HF_HUB_OFFLINE, also when set after huggingface_hub read it at import."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


@functools.cache
def reachable() -> bool:
    """Whether the hub endpoint answers at all (any HTTP status counts); asked once per process."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as error:  # DNS, refused, timeout, proxy: all mean "no hub from here"
        logger.warning("the Hugging Face Hub (%s) cannot be reached (%s); only local copies can be used",
                       constants.ENDPOINT, type(error).__name__)  # fmt: skip
        return False
    return True


def unreachable_reason(what: str) -> str:
    """The sentence a one-line error gives when the hub is needed and cannot be reached."""
    from huggingface_hub import constants

    return (
        f"{what} is not in the local Hugging Face cache and the hub ({constants.ENDPOINT}) cannot be reached from "
        "here; connect to the network (or set HF_ENDPOINT / a proxy), or use a local folder"
    )
