"""Template captions from clip labels, and HumanML3D text lines (`caption#tokens#start#end`).

None of the shared mocap clips comes with free-text captions except the CMU trials that KIT-ML
annotated: every other caption is generated here from the clip's label (several verb phrases per
label), its style (adverbs / manner phrases) and, for kicks and punches, the limb that moves
(`labels.dominant_side`). Choices are made by hashing a key (clip id + window), so the same clip
always gets the same captions, independent of Python's hash seed or library versions.
"""

from __future__ import annotations

import hashlib

from models.data.labels import ClipLabel
from models.data.pos import pos_tokens

SUBJECTS = ("a person", "someone", "a man", "the person", "a human")

# style -> manner modifiers; single adverbs may also go before the verb
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "normal": ("",),
    "active": ("energetically", "in an active way", "full of energy"),
    "angry": ("angrily", "in an angry way", "furiously"),
    "childish": ("childishly", "like a child", "in a childish way"),
    "chimpira": ("like a thug", "in a thuggish way", "with a swagger like a street thug"),
    "elderly": ("like an elderly person", "slowly like an old person", "in an elderly way"),
    "exhausted": ("wearily", "in an exhausted way", "like someone who is exhausted"),
    "feminine": ("in a feminine way", "gracefully in a feminine style", "with feminine grace"),
    "giant": ("like a giant", "heavily like a giant", "with big heavy movements like a giant"),
    "happy": ("happily", "cheerfully", "in a happy way"),
    "masculine": ("in a masculine way", "in a manly style", "with a masculine attitude"),
    "masculinity": ("in a masculine way", "in a manly style", "with a masculine attitude"),
    "musical": ("rhythmically", "like in a musical", "in a musical, theatrical way"),
    "not-confident": ("timidly", "without confidence", "hesitantly"),
    "old": ("like an old person", "slowly like an old man", "in an old way"),
    "proud": ("proudly", "in a proud way", "with pride"),
    "sad": ("sadly", "in a sad way", "gloomily"),
    "tired": ("tiredly", "in a tired way", "like someone who is tired"),
    "youthful": ("youthfully", "in a youthful way", "with youthful energy"),
}

# label -> verb phrases (3rd person singular). "{side}" phrases are used when the moving limb is known.
LABEL_PHRASES: dict[str, tuple[str, ...]] = {
    # Bandai Namco
    "walk": ("walks forward", "walks", "is walking forward", "walks straight ahead"),
    "run": ("runs forward", "runs", "is running forward", "runs straight ahead"),
    "dash": ("dashes forward", "sprints forward", "runs forward very fast"),
    "walk-back": ("walks backward", "walks backwards", "steps backward"),
    "walk-left": ("walks to the left", "steps sideways to the left", "moves sideways to the left"),
    "walk-right": ("walks to the right", "steps sideways to the right", "moves sideways to the right"),
    "walk-turn-left": (
        "walks forward and turns left",
        "walks and turns to the left",
        "turns left while walking",
    ),
    "walk-turn-right": (
        "walks forward and turns right",
        "walks and turns to the right",
        "turns right while walking",
    ),
    "raise-up-left-hand": ("raises the left hand", "raises the left hand up", "lifts the left arm up"),
    "raise-up-right-hand": ("raises the right hand", "raises the right hand up", "lifts the right arm up"),
    "raise-up-both-hands": ("raises both hands", "lifts both arms up", "raises both hands up high"),
    "wave-left-hand": ("waves the left hand", "waves with the left hand", "waves hello with the left hand"),
    "wave-right-hand": (
        "waves the right hand",
        "waves with the right hand",
        "waves hello with the right hand",
    ),
    "wave-both-hands": ("waves both hands", "waves with both hands", "waves both arms in the air"),
    "bow": ("bows", "bows forward", "takes a bow"),
    "bye": ("waves goodbye", "waves a hand to say goodbye", "says goodbye with a wave"),
    "byebye": ("waves goodbye", "waves goodbye with a hand", "says bye with a wave of the hand"),
    "guide": ("guides someone with an arm gesture", "points the way with an open hand", "gestures the way"),
    "call": ("calls someone over with a hand", "beckons someone with a hand", "waves someone over"),
    "respond": (
        "responds with a gesture",
        "responds with a nod and a hand gesture",
        "answers with a gesture",
    ),
    "dance-short": ("dances", "does a short dance", "dances for a moment"),
    "punch": (
        "punches forward",
        "throws punches",
        "punches with the fists",
        "throws a punch with the {side} fist",
        "punches forward with the {side} hand",
    ),
    "kick": ("kicks", "kicks forward", "kicks with the {side} leg", "kicks forward with the {side} foot"),
    "slash": ("slashes with a sword", "slashes forward with a sword", "swings a sword to slash"),
    # ASE Reallusion (sword and shield)
    "sword-combo-2": (
        "attacks with two sword strikes",
        "slashes twice with a sword",
        "strikes twice with a sword",
    ),
    "sword-combo-3": (
        "attacks with three sword strikes",
        "slashes three times with a sword",
        "strikes with a sword combo",
    ),
    "sword-combo-4": (
        "attacks with four sword strikes",
        "slashes four times with a sword",
        "strikes with a long sword combo",
    ),
    "finishing-combo-2": (
        "finishes an enemy with two sword strikes",
        "slashes an opponent twice with a sword",
        "kills an enemy with a sword",
    ),
    "finishing-combo-3": (
        "finishes an enemy with three sword strikes",
        "slashes an opponent three times with a sword",
        "kills an enemy with a sword combo",
    ),
    "finishing-combo-4": (
        "finishes an enemy with four sword strikes",
        "hacks at an opponent with a sword",
        "kills an enemy with a long sword combo",
    ),
    "jump-attack": ("jumps and strikes down with a sword", "leaps forward and attacks with a sword"),
    "spin-attack": ("spins around and slashes with a sword", "attacks with a spinning sword slash"),
    "counter-attack": (
        "blocks and counterattacks with a sword",
        "parries and strikes back with a sword",
        "counters an attack with a sword slash",
    ),
    "sword-swing": ("swings a sword at an opponent", "swings a sword to hit an enemy"),
    "feint": ("feints an attack with a sword", "fakes a sword strike at an opponent"),
    "circle-opponent": (
        "circles around an opponent with a sword and shield",
        "circles sideways in a fighting stance",
    ),
    "stab": ("stabs forward with a sword", "thrusts a sword forward to stab", "stabs with a sword"),
    "slash-down": (
        "slashes down with a sword",
        "makes a downward slash with a sword",
        "slashes downward with a sword",
    ),
    "slash-up": (
        "slashes up with a sword",
        "makes an upward slash with a sword",
        "slashes upward with a sword",
    ),
    "slash-left": (
        "slashes to the left with a sword",
        "makes a slash to the left with a sword",
        "slashes a sword leftward",
    ),
    "slash-right": (
        "slashes to the right with a sword",
        "makes a slash to the right with a sword",
        "slashes a sword rightward",
    ),
    "shield-charge": ("charges forward and rams with a shield", "rushes forward and hits with a shield"),
    "shield-swipe": (
        "hits sideways with a shield",
        "swipes a shield to hit an opponent",
        "bashes with a shield",
    ),
    "dodge-backward": ("dodges backward", "jumps back to dodge"),
    "dodge-left": ("dodges to the left", "steps quickly to the left to dodge"),
    "dodge-right": ("dodges to the right", "steps quickly to the right to dodge"),
    "fall-backward": ("falls backward to the ground", "gets knocked down backward"),
    "fall-left": ("falls to the left", "gets knocked down to the left"),
    "fall-right": ("falls to the right", "gets knocked down to the right"),
    "fall-spin-left": ("spins to the left and falls down", "turns left and collapses to the ground"),
    "fall-spin-right": ("spins to the right and falls down", "turns right and collapses to the ground"),
    "guard-stance": (
        "stands in a guard stance",
        "stands ready holding a sword and shield",
        "waits in a fighting stance",
    ),
    "run-backward": ("runs backward", "runs backwards"),
    "run-forward": ("runs forward", "runs ahead"),
    "run-left": ("runs to the left", "runs sideways to the left"),
    "run-right": ("runs to the right", "runs sideways to the right"),
    "walk-backward": ("walks backward", "walks backwards", "steps backward"),
    "walk-forward": ("walks forward", "walks ahead", "walks straight forward"),
    "shield-block-backward": (
        "steps back and blocks with a shield",
        "blocks with a shield while stepping back",
    ),
    "shield-block-crouch": ("crouches and blocks with a shield", "blocks low with a shield"),
    "shield-block-down": ("blocks down with a shield", "lowers a shield to block"),
    "shield-block-left": ("blocks to the left with a shield", "raises a shield to the left"),
    "shield-block-right": ("blocks to the right with a shield", "raises a shield to the right"),
    "shield-block-up": ("blocks up with a shield", "raises a shield above the head"),
    "sword-parry-backward": (
        "steps back and parries with a sword",
        "parries with a sword while stepping back",
    ),
    "sword-parry-crouch": ("crouches and parries with a sword", "parries low with a sword"),
    "sword-parry-down": ("parries down with a sword", "lowers a sword to parry"),
    "sword-parry-left": ("parries to the left with a sword", "moves a sword to the left to parry"),
    "sword-parry-right": ("parries to the right with a sword", "moves a sword to the right to parry"),
    "sword-parry-up": ("parries up with a sword", "raises a sword to parry"),
    "taunt-pound-chest": ("pounds the chest", "beats the chest with a fist"),
    "taunt-roar": ("roars with the arms spread", "leans forward and roars"),
    "taunt-shield-knock": ("knocks on a shield", "bangs a sword on a shield"),
    "turn-left-90": ("turns left", "turns ninety degrees to the left"),
    "turn-right-90": ("turns right", "turns ninety degrees to the right"),
    "turn-left-180": ("turns around to the left", "turns left all the way around"),
    "turn-right-180": ("turns around to the right", "turns right all the way around"),
    # CMU index descriptions (subjects 1-7; "walk" is shared with Bandai Namco)
    "slow walk": ("walks slowly", "walks forward slowly", "takes slow steps forward"),
    "brisk walk": ("walks briskly", "walks forward quickly", "walks at a brisk pace"),
    "walk on uneven terrain": ("walks over uneven ground", "walks carefully on uneven terrain"),
    "run/jog": ("jogs forward", "runs forward", "jogs"),
    "jump, balance": ("jumps and balances", "jumps and then keeps balance"),
    "punch/strike": (
        "punches and strikes",
        "throws punches",
        "punches forward",
        "punches with the {side} fist",
    ),
    "swordplay": ("swings a sword", "fights with a sword", "practices swordplay"),
    "bend over, scoop up, rise, lift arm": (
        "bends over, scoops something up, rises and lifts an arm",
        "picks something up and lifts it up",
    ),
    "wash self": ("washes the body", "washes the arms and the body", "rubs the body as if washing"),
    "playground - forward jumps, turn around": (
        "jumps forward and turns around",
        "hops forward and turns around",
    ),
    "playground - climb, sit, dangle legs, rock back, lower self to ground": (
        "climbs, sits and dangles the legs",
        "climbs up, sits and lowers down to the ground",
    ),
    "playground - climb, jump down, dangle, legs push off against": (
        "climbs and jumps down",
        "climbs, hangs and pushes off with the legs",
    ),
}


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _ranked(key: str, options: tuple[str, ...] | list[str]) -> list[str]:
    """Options in a pseudo-random but fixed order determined by `key`."""
    return sorted(options, key=lambda o: (_digest(f"{key}|{o}"), o))


def _cmu_rule_phrases(desc: str) -> tuple[str, ...]:
    """Phrases for the CMU dance and basketball descriptions (rule based)."""
    if desc.startswith("basketball"):
        direction = next((d for d in ("forward", "backward", "sideways") if d in desc), "")
        base = f"dribbles a basketball {direction}".strip()
        extra = []
        if "left turns" in desc:
            extra.append("turning left")
        if "right turns" in desc:
            extra.append("turning right")
        if "crossover" in desc:
            extra.append("crossing over between the hands")
        if "shoot" in desc:
            extra.append("and shoots")
        tail = (" " + " ".join(extra)) if extra else ""
        return (
            base + tail,
            f"bounces a ball {direction}".replace("  ", " ").strip() + tail,
            "plays basketball" + tail,
        )
    if desc.startswith("dance"):
        moves = []
        if "pirouette" in desc:
            moves.append("spins in a pirouette")
        if "jete" in desc:
            moves.append("leaps")
        if "arabesque" in desc:
            moves.append("lifts a leg behind in an arabesque")
        if "turn" in desc or "tourant" in desc:
            moves.append("turns")
        if "bending back" in desc:
            moves.append("bends backward")
        if "cartwheel" in desc:
            moves.append("does a cartwheel")
        if "arms" in desc:
            moves.append("moves the arms gracefully")
        phrases = ["dances ballet", "performs a ballet dance"]
        if moves:
            phrases.append("dances ballet and " + " and ".join(moves[:2]))
            phrases.append("performs ballet moves and " + moves[0])
        return tuple(phrases)
    return ()


def label_phrases(label: str) -> tuple[str, ...]:
    """Verb phrases for a label; unknown labels get a generic phrase naming the label."""
    if label in LABEL_PHRASES:
        return LABEL_PHRASES[label]
    rule = _cmu_rule_phrases(label)
    if rule:
        return rule
    words = label.replace("-", " ").replace("_", " ").replace("/", " or ")
    return (f"performs a {words} motion", f"does a {words} movement")


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
