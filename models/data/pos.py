"""A small deterministic part-of-speech tagger and lemmatiser for motion captions.

HumanML3D's `texts/*.txt` store each caption's tokens as `word/POS`, produced by spaCy
(`en_core_web_sm`): universal POS tags; the word is the lemma for NOUN and VERB tokens (except
"left") and the lower-cased surface form otherwise; tokens that are not alphabetic (punctuation,
numbers written as digits) are left out. spaCy models cannot be downloaded on the project's
machines, so this module replaces spaCy with a built-in lexicon of the caption vocabulary (our
templates plus common motion words) and a few context rules. It is exact for the template
captions and a reasonable approximation for free text (KIT-ML captions); unknown words fall back
to suffix rules (-ly ADV, -ing/-ed VERB, else NOUN).
"""

from __future__ import annotations

import re

# verbs: base form -> irregular forms (3rd person, -ing and past forms are generated otherwise)
_VERBS = """
walk run jog dash sprint step turn raise lift lower wave bow punch kick slash stab strike hit swing
attack block parry dodge fall fly jump hop leap spin twirl rotate dance move stand sit squat kneel
crouch bend lean stretch reach point gesture guide call beckon respond nod shake clap throw catch pick
put hold carry grab push pull climb hang dangle rock roll crawl dribble shoot bounce wash rub scrub
shower play balance stumble stop start continue pause stay wait look face circle charge ram roar
taunt pound knock feint counter finish slam bash thrust cut chop lunge duck evade retreat advance
follow go come return repeat keep use do make take get perform stroll march shuffle tiptoe limp
sway swim paddle box fight train practice pirouette arch fold cross open close touch tap greet
say wipe drink eat scoop rise dive strut glide bring flap lay lie ready brace wield brandish
hack whirl mimic imitate pose try begin end alternate
"""
_IRREGULAR = {
    "run": ["runs", "running", "ran"], "swing": ["swings", "swinging", "swung"],
    "strike": ["strikes", "striking", "struck"], "hit": ["hits", "hitting"],
    "fall": ["falls", "falling", "fell", "fallen"], "fly": ["flies", "flying", "flew"],
    "spin": ["spins", "spinning", "spun"], "stand": ["stands", "standing", "stood"],
    "sit": ["sits", "sitting", "sat"], "throw": ["throws", "throwing", "threw", "thrown"],
    "catch": ["catches", "catching", "caught"], "hold": ["holds", "holding", "held"],
    "hang": ["hangs", "hanging", "hung"], "shoot": ["shoots", "shooting", "shot"],
    "go": ["goes", "going", "went", "gone"], "come": ["comes", "coming", "came"],
    "keep": ["keeps", "keeping", "kept"], "do": ["does", "doing", "did", "done"],
    "make": ["makes", "making", "made"], "take": ["takes", "taking", "took", "taken"],
    "get": ["gets", "getting", "got"], "say": ["says", "saying", "said"],
    "drink": ["drinks", "drinking", "drank"], "eat": ["eats", "eating", "ate"],
    "rise": ["rises", "rising", "rose", "risen"], "bring": ["brings", "bringing", "brought"],
    "lie": ["lies", "lying", "lay"], "lay": ["lays", "laying", "laid"],
    "begin": ["begins", "beginning", "began"], "put": ["puts", "putting"],
    "cut": ["cuts", "cutting"], "bend": ["bends", "bending", "bent"], "leap": ["leaps", "leaping", "leapt"],
    "kneel": ["kneels", "kneeling", "knelt"], "stop": ["stops", "stopping", "stopped"],
    "step": ["steps", "stepping", "stepped"], "hop": ["hops", "hopping", "hopped"],
    "jog": ["jogs", "jogging", "jogged"], "stab": ["stabs", "stabbing", "stabbed"],
    "clap": ["claps", "clapping", "clapped"], "grab": ["grabs", "grabbing", "grabbed"],
    "tap": ["taps", "tapping", "tapped"], "ram": ["rams", "ramming", "rammed"],
    "chop": ["chops", "chopping", "chopped"], "nod": ["nods", "nodding", "nodded"],
    "swim": ["swims", "swimming", "swam"], "scrub": ["scrubs", "scrubbing", "scrubbed"],
    "slam": ["slams", "slamming", "slammed"], "flap": ["flaps", "flapping", "flapped"],
    "dive": ["dives", "diving", "dived"], "glide": ["glides", "gliding", "glided"],
}  # fmt: skip

_NOUNS = """
person man woman human someone figure people body hand arm leg foot knee elbow shoulder head hip
chest waist fist finger toe wrist side direction floor ground step walk run circle turn degree
hop jump sword shield weapon enemy opponent attack combo strike slash kick punch blow guard stance block
parry dodge move motion manner way style child thug giant dancer ballet basketball ball ladder bar
playground terrain goodbye hello bye greeting gesture wave bow dance air front back time times
slope stair obstacle object something fight swordplay spot place lap self shower water lot
spiral pirouette jete arabesque attitude crossover dribble shot hoop game fighter warrior boxer
ninja position pose thing distance area line path round combination series pair beat rhythm
music musical
"""
_IRREGULAR_NOUNS = {"feet": "foot", "people": "person", "men": "man", "women": "woman", "children": "child"}

_CLOSED = {
    "DET": "a an the this that these those some each every both another any his her their its my your no",
    "PRON": "he she it they him them himself herself itself themselves someone somebody something "
    "everyone one who what which",
    "ADP": "with for to in on at of by from into onto over under above below around across along like "
    "toward towards through behind near off up down out about against after before during upon "
    "beside between",
    "CCONJ": "and or but",
    "SCONJ": "while as because if though although until when whilst",
    "AUX": "is are was were be been being am has have had will would can could may might should",
    "PART": "not",
    "NUM": "zero two three four five six seven eight nine ten ninety hundred",
    "ADV": "forward forwards backward backwards sideways away back again then slowly quickly fast "
    "very also still just now once twice here there together apart upward upwards downward "
    "downwards straight around further ahead afterward afterwards repeatedly alternately slightly "
    "energetically angrily happily sadly proudly timidly wearily tiredly cheerfully gracefully "
    "aggressively carefully rhythmically casually youthfully briskly heavily lightly clockwise "
    "counterclockwise anticlockwise diagonally quietly sluggishly vigorously fiercely violently "
    "hard rapidly joyfully gently childishly playfully confidently nervously shyly hesitantly "
    "lively menacingly sharply swiftly boldly stiffly",
    "ADJ": "left right angry happy sad tired old elderly young youthful active exhausted proud "
    "giant childish masculine feminine musical short long high low quick slow heavy large small "
    "big full half ready lively cheerful weary timid confident unconfident uneven "
    "expressive small single double triple quadruple fierce defensive offensive wide narrow "
    "thuggish overhead upper lower other same several multiple",
}


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
    for pos, words in _CLOSED.items():
        for w in words.split():
            closed.setdefault(w, (pos, w))
    verbs: dict[str, str] = {}
    for base in _VERBS.split():
        verbs[base] = base
        for form in _verb_forms(base):
            verbs.setdefault(form, base)
    nouns: dict[str, str] = dict(_IRREGULAR_NOUNS)
    for base in _NOUNS.split():
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
