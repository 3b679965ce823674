"""Text encoders behind one interface: `load_text_encoder({"type": "minilm" | "clip", ...})`."""

from models.text.base import (
    TextEncoder,
    clear_text_encoder_cache,
    load_text_encoder,
    register_text_encoder,
    resolve_path,
)

__all__ = [
    "TextEncoder",
    "clear_text_encoder_cache",
    "load_text_encoder",
    "register_text_encoder",
    "resolve_path",
]
