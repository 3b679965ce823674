"""A small deterministic part-of-speech tagger and lemmatiser for motion captions.

HumanML3D's `texts/*.txt` store each caption's tokens as `word/POS`, produced by spaCy
(`en_core_web_sm`): universal POS tags; the word is the lemma for NOUN and VERB tokens (except
"left") and the lower-cased surface form otherwise; tokens that are not alphabetic (punctuation,
numbers written as digits) are left out. spaCy models cannot be downloaded on the project's
machines, so this module replaces spaCy with a lexicon of the caption vocabulary (our templates
plus common motion words; package data `tables/lexicon.json`) and a few context rules. It is exact
for the template captions and a reasonable approximation for free text (KIT-ML captions); unknown
words fall back to suffix rules (-ly ADV, -ing/-ed VERB, else NOUN).
"""

from __future__ import annotations

import re

from models.common.package_data import read_json

_LEXICON = read_json(__file__, "tables/lexicon.json")
# verbs: base form -> irregular forms (3rd person, -ing and past forms are generated otherwise)
_IRREGULAR: dict[str, list[str]] = _LEXICON["irregular_verbs"]


def _verb_forms(base: str) -> list[str]:
    if base in _IRREGULAR:
        return _IRREGULAR[base]
    if base.endswith("e") and not base.endswith("ee"):
        ing = base[:-1] + "ing"
        past = base + "d"
    elif base.endswith("y") and base[-2] not in "aeiou":
        ing, past = base + "ing", base[:-1] + "ied"
    else:
        ing, past = base + "ing", base + "ed"
    if base.endswith(("s", "sh", "ch", "x", "z", "o")):
        third = base + "es"
    elif base.endswith("y") and base[-2] not in "aeiou":
        third = base[:-1] + "ies"
    else:
        third = base + "s"
    return [third, ing, past]


def _noun_plural(base: str) -> str:
    if base.endswith(("s", "sh", "ch", "x", "z")):
        return base + "es"
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies"
    return base + "s"


def _build_lexicon() -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, str]]:
    closed: dict[str, tuple[str, str]] = {}
    for pos, words in _LEXICON["closed"].items():
        for w in words:
            closed.setdefault(w, (pos, w))
    verbs: dict[str, str] = {}
    for base in _LEXICON["verbs"]:
        verbs[base] = base
        for form in _verb_forms(base):
            verbs.setdefault(form, base)
    nouns: dict[str, str] = dict(_LEXICON["irregular_nouns"])
    for base in _LEXICON["nouns"]:
        nouns[base] = base
        nouns.setdefault(_noun_plural(base), base)
    return closed, verbs, nouns


_CLOSED_LEX, _VERB_LEX, _NOUN_LEX = _build_lexicon()
_NOUN_CONTEXT = {"DET", "ADJ", "NUM"}  # a word after these is read as a noun if it can be one
_WORD_RE = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case and split into words, numbers and single punctuation marks (hyphens split words)."""
    return _WORD_RE.findall(text.lower().replace("-", " "))


def tag(text: str) -> list[tuple[str, str, str]]:
    """(word, lemma, universal POS) for every token of `text`, punctuation included (as PUNCT)."""
    out: list[tuple[str, str, str]] = []
    words = tokenize(text)
    for i, w in enumerate(words):
        prev = out[-1][2] if out else None
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if not w[0].isalnum():
            out.append((w, w, "PUNCT"))
        elif w[0].isdigit():
            out.append((w, w, "NUM"))
        elif w in ("left", "right"):
            # "the left hand" (modifier) vs "turns left" (direction)
            pos = "ADJ" if (nxt in _NOUN_LEX or prev in _NOUN_CONTEXT) and nxt not in ("and", "") else "ADV"
            if prev in _NOUN_CONTEXT and nxt not in _NOUN_LEX:
                pos = "NOUN"  # "to the left", "on the right"
            out.append((w, w, pos))
        elif w == "to" and nxt in _VERB_LEX and nxt not in _NOUN_LEX:
            out.append((w, w, "PART"))
        elif w == "one":
            out.append((w, w, "NUM" if nxt in _NOUN_LEX else "PRON"))
        elif w in _CLOSED_LEX:
            pos, lemma = _CLOSED_LEX[w]
            out.append((w, lemma, pos))
        elif w in _NOUN_LEX and (w not in _VERB_LEX or prev in _NOUN_CONTEXT or prev == "ADP"):
            out.append((w, _NOUN_LEX[w], "NOUN"))
        elif w in _VERB_LEX:
            out.append((w, _VERB_LEX[w], "VERB"))
        elif w.endswith("ly") and len(w) > 4:
            out.append((w, w, "ADV"))
        elif w.endswith("ing") and len(w) > 5:
            out.append((w, w[:-3], "VERB"))
        elif w.endswith("ed") and len(w) > 4:
            out.append((w, w[:-2], "VERB"))
        elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
            out.append((w, w[:-1], "NOUN"))
        else:
            out.append((w, w, "NOUN"))
    return out


def pos_tokens(text: str) -> list[str]:
    """HumanML3D token list `word/POS`: alphabetic tokens only; NOUN/VERB as lemmas (except 'left')."""
    toks = []
    for word, lemma, pos in tag(text):
        if not word.isalpha():
            continue
        w = lemma if pos in ("NOUN", "VERB") and word != "left" else word
        toks.append(f"{w}/{pos}")
    return toks
