"""The contract every unlearning method meets: a name, a parameter dataclass and `apply`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from models.data.concepts import Concept
from models.unlearn.params import MethodParams

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class UnlearnContext:
    """Everything a method needs besides the pipeline it edits."""

    concept: Concept
    params: MethodParams
    progress: Progress
    data_dir: Path | None = None  # set only for methods that use a dataset


@dataclass
class UnlearnResult:
    """The edited pipeline, the method's record for the manifest and an optional private overlay."""

    pipeline: Any
    result: dict[str, Any]
    overlay: dict[str, Any] | None = None  # e.g. LCR's original codebook rows (never published)


class Method(Protocol):
    name: str
    params: type[MethodParams]

    def uses_data(self, params: MethodParams) -> bool:
        """Whether the run needs a HumanML3D-format dataset."""

    def apply(self, pipeline: Any, context: UnlearnContext) -> UnlearnResult:
        """Edit `pipeline` in place and say what was done."""


@dataclass(frozen=True)
class FunctionMethod:
    """A Method backed by an `apply_<name>(pipeline, concept, params[, data_dir], progress=...)` function
    that returns the manifest result, or (result, overlay)."""

    name: str
    params: type[MethodParams]
    function: Callable[..., Any]
    needs_data: bool = False  # always trains / counts on a dataset

    def uses_data(self, params: MethodParams) -> bool:
        return self.needs_data or getattr(params, "x_source", None) == "data"

    def apply(self, pipeline: Any, context: UnlearnContext) -> UnlearnResult:
        kwargs: dict[str, Any] = {"progress": context.progress}
        if context.data_dir is not None:
            kwargs["data_dir"] = context.data_dir
        output = self.function(pipeline, context.concept, context.params, **kwargs)
        result, overlay = output if isinstance(output, tuple) else (output, None)
        return UnlearnResult(pipeline, result, overlay)
