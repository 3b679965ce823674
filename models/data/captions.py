"""Template captions from clip labels, and HumanML3D text lines (`caption#tokens#start#end`).

None of the shared mocap clips comes with free-text captions except the CMU trials that KIT-ML
annotated: every other caption is generated here from the clip's label (several verb phrases per
label), its style (adverbs / manner phrases) and, for kicks and punches, the limb that moves
(`labels.dominant_side`). Choices are made by hashing a key (clip id + window), so the same clip
always gets the same captions, independent of Python's hash seed or library versions. The phrase
tables and the CMU description rules are package data (`tables/captions.json`).
"""

from __future__ import annotations

import hashlib

from models.common.package_data import read_json
from models.data.labels import ClipLabel
from models.data.pos import pos_tokens

_TABLES = read_json(__file__, "tables/captions.json")
SUBJECTS: tuple[str, ...] = tuple(_TABLES["subjects"])
# style -> manner modifiers; single adverbs may also go before the verb
STYLE_PHRASES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _TABLES["style_phrases"].items()}
# label -> verb phrases (3rd person singular). "{side}" phrases are used when the moving limb is known.
LABEL_PHRASES: dict[str, tuple[str, ...]] = {
    label: tuple(phrases) for group in _TABLES["label_phrases"].values() for label, phrases in group.items()
}
_CMU_RULES: dict[str, dict] = _TABLES["cmu_rules"]
_FALLBACK: tuple[str, ...] = tuple(_TABLES["fallback"])


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _ranked(key: str, options: tuple[str, ...] | list[str]) -> list[str]:
    """Options in a pseudo-random but fixed order determined by `key`."""
    return sorted(options, key=lambda o: (_digest(f"{key}|{o}"), o))


def _matches(desc: str, table: list) -> list[str]:
    """Phrases of the `[[substrings], phrase]` rows of which some substring occurs in `desc`, in table order."""
    return [phrase for keys, phrase in table if any(k in desc for k in keys)]


def _basketball_phrases(desc: str, rule: dict) -> tuple[str, ...]:
    direction = next((d for d in rule["directions"] if d in desc), "")
    extra = _matches(desc, rule["extras"])
    tail = (" " + " ".join(extra)) if extra else ""
    return tuple(p.format(direction=direction).replace("  ", " ").strip() + tail for p in rule["phrases"])


def _dance_phrases(desc: str, rule: dict) -> tuple[str, ...]:
    moves = _matches(desc, rule["moves"])
    phrases = list(rule["phrases"])
    if moves:
        values = {"two_moves": " and ".join(moves[:2]), "first_move": moves[0]}
        phrases += [p.format(**values) for p in rule["with_moves"]]
    return tuple(phrases)


def _cmu_rule_phrases(desc: str) -> tuple[str, ...]:
    """Phrases for the CMU dance and basketball descriptions (rules of `cmu_rules` in captions.json)."""
    for name, build in (("basketball", _basketball_phrases), ("dance", _dance_phrases)):
        rule = _CMU_RULES[name]
        if desc.startswith(rule["prefix"]):
            return build(desc, rule)
    return ()


def label_phrases(label: str) -> tuple[str, ...]:
    """Verb phrases for a label; unknown labels get a generic phrase naming the label."""
    if label in LABEL_PHRASES:
        return LABEL_PHRASES[label]
    rule = _cmu_rule_phrases(label)
    if rule:
        return rule
    words = label.replace("-", " ").replace("_", " ").replace("/", " or ")
    return tuple(p.format(words=words) for p in _FALLBACK)


def template_captions(label: ClipLabel, key: str, n: int = 3, side: str | None = None) -> list[str]:
    """`n` distinct lower-case captions for a clip; `key` (e.g. clip id + window) fixes the choices."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if label.style not in STYLE_PHRASES:
        raise ValueError(f"unknown style {label.style!r}; expected one of {sorted(STYLE_PHRASES)}")
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be 'left', 'right' or None, got {side!r}")
    phrases = label_phrases(label.label)
    sided = [p.format(side=side) for p in phrases if "{side}" in p] if side else []
    plain = [p for p in phrases if "{side}" not in p]
    ordered = _ranked(key + "#sided", sided) + _ranked(key + "#phrase", plain)
    subjects = _ranked(key + "#subject", SUBJECTS)
    styles = _ranked(key + "#style", STYLE_PHRASES[label.style])
    out: list[str] = []
    for i in range(max(n, len(ordered))):
        phrase = ordered[i % len(ordered)]
        subject = subjects[i % len(subjects)]
        style = styles[i % len(styles)]
        prefix = style and " " not in style and style.endswith("ly") and not phrase.startswith("is ")
        if prefix and _digest(f"{key}#pos{i}") % 2:
            text = f"{subject} {style} {phrase}"
        else:
            text = f"{subject} {phrase} {style}".strip()
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


def _fmt_time(t: float) -> str:
    return repr(float(t))


def text_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    """One HumanML3D text line: `caption#word/POS ...#start#end` (0.0#0.0 = the whole clip)."""
    caption = " ".join(caption.lower().replace("#", " ").split())
    if not caption:
        raise ValueError("caption is empty")
    return f"{caption}#{' '.join(pos_tokens(caption))}#{_fmt_time(start)}#{_fmt_time(end)}"
