"""The registry of unlearning methods: name -> Method (explicit imports, no look-up by string)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.unlearn.code_ban import CodeBanParams, apply_code_ban
from models.unlearn.config import METHOD_NAMES
from models.unlearn.esd import ESDParams, apply_esd
from models.unlearn.finetune import FTParams, apply_ft
from models.unlearn.lcr import LCRParams, apply_lcr
from models.unlearn.method import FunctionMethod, Method
from models.unlearn.params import MethodParams
from models.unlearn.rece import RECEParams, apply_rece
from models.unlearn.uce import UCEParams, apply_uce

METHODS: dict[str, Method] = {
    "lcr": FunctionMethod("lcr", LCRParams, apply_lcr, needs_data=True),
    "uce": FunctionMethod("uce", UCEParams, apply_uce),
    "rece": FunctionMethod("rece", RECEParams, apply_rece),
    "esd": FunctionMethod("esd", ESDParams, apply_esd),
    "ft": FunctionMethod("ft", FTParams, apply_ft, needs_data=True),
    "code_ban": FunctionMethod("code_ban", CodeBanParams, apply_code_ban, needs_data=True),
}
if tuple(METHODS) != METHOD_NAMES:  # the torch-free config validates names against METHOD_NAMES
    raise RuntimeError(f"models.unlearn.config.METHOD_NAMES {METHOD_NAMES} != registered {tuple(METHODS)}")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown unlearning method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]


def parse_params(method: str, params: Mapping[str, Any] | None = None) -> MethodParams:
    """Validated parameters of `method` (unknown keys -> ValueError naming them)."""
    return get_method(method).params.from_dict(params)
