"""GloVe word vectors + POS one-hots for the official T2M text encoder (evaluator.md §2).

Tokens are HumanML3D's `word/POS` pairs (spaCy lemma / universal POS), e.g. `a/DET man/NOUN kick/VERB`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.common.tensors import load_npy
from models.evaluator.plain_pickle import load_plain_pickle

POS_ENUMERATOR = {
    "VERB": 0, "NOUN": 1, "DET": 2, "ADP": 3, "NUM": 4, "AUX": 5, "PRON": 6, "ADJ": 7, "ADV": 8,
    "Loc_VIP": 9, "Body_VIP": 10, "Obj_VIP": 11, "Act_VIP": 12, "Desc_VIP": 13, "OTHER": 14,
}  # fmt: skip

# checked in this order; the first list containing the word wins
VIP_WORDS = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back",
                "backward", "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee",
                 "shoulder", "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball",
                "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance",
                "jump", "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand",
                "kneel", "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate",
                "spin", "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad",
                 "happily", "angrily", "sadly"),
}  # fmt: skip


def pos_one_hot(pos: str) -> np.ndarray:
    """(15,) float32 one-hot of a POS name; unknown names map to OTHER."""
    v = np.zeros(len(POS_ENUMERATOR), dtype=np.float32)
    v[POS_ENUMERATOR.get(pos, POS_ENUMERATOR["OTHER"])] = 1.0
    return v


def split_token(token: str) -> tuple[str, str]:
    """'word/POS' -> (word, POS). The last '/' separates the POS (the official code would fail on
    words containing '/'; here such words are simply looked up whole)."""
    word, sep, pos = token.rpartition("/")
    if not sep or not word:
        raise ValueError(f"token {token!r} is not of the form 'word/POS'")
    return word, pos


class WordVectorizer:
    """Maps `word/POS` tokens to (GloVe vector, POS one-hot), and sentences to fixed-size arrays."""

    def __init__(self, vectors: np.ndarray, words: Sequence[str], word2idx: dict[str, int]):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"word vectors must be 2-D (vocab, dim), got shape {vectors.shape}")
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise ValueError("word list must be a list of str")
        if not isinstance(word2idx, dict):
            raise ValueError(f"word index must be a dict str -> int, got {type(word2idx).__name__}")
        n = vectors.shape[0]
        self.word2vec: dict[str, np.ndarray] = {}
        for w in words:
            if w not in word2idx:
                raise ValueError(f"word {w!r} of the word list is missing from the word index")
            i = word2idx[w]
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
                raise ValueError(f"word index of {w!r} is {i!r}, expected an int in [0, {n})")
            self.word2vec[w] = vectors[i].astype(np.float32)
        if "unk" not in self.word2vec:
            raise ValueError("vocabulary has no 'unk' word")
        self.dim_word = vectors.shape[1]
        self._vip = {w: cat for cat, ws in reversed(VIP_WORDS.items()) for w in ws}  # first list wins

    @classmethod
    def from_dir(cls, glove_dir: str | Path, prefix: str = "our_vab") -> WordVectorizer:
        """Read `<prefix>_data.npy` (allow_pickle=False), `<prefix>_words.pkl`, `<prefix>_idx.pkl`
        (plain-data pickles, read with the restricted loader of `plain_pickle`)."""
        d = Path(glove_dir)
        paths = [d / f"{prefix}_data.npy", d / f"{prefix}_words.pkl", d / f"{prefix}_idx.pkl"]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"GloVe file not found: {p}")
        vectors = load_npy(paths[0])  # np.load(allow_pickle=False), numeric and finite
        return cls(vectors, load_plain_pickle(paths[1]), load_plain_pickle(paths[2]))

    def __len__(self) -> int:
        return len(self.word2vec)

    def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """'word/POS' -> word vector (dim_word,), POS one-hot (15,). OOV words: 'unk' + OTHER."""
        word, pos = split_token(token)
        if word not in self.word2vec:
            return self.word2vec["unk"], pos_one_hot("OTHER")
        return self.word2vec[word], pos_one_hot(self._vip.get(word, pos))

    def sentence(self, tokens: Sequence[str], max_text_len: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
        """Official sentence preparation -> word_embs (L+2, dim_word), pos_ohot (L+2, 15), sent_len.

        Shorter than L: sos + tokens + eos, padded with unk/OTHER; otherwise the first L tokens
        between sos and eos (sent_len = L+2).
        """
        if isinstance(tokens, str):
            raise ValueError("tokens must be a sequence of 'word/POS' strings, not one string")
        tokens = list(tokens)
        if len(tokens) < max_text_len:
            tokens = ["sos/OTHER", *tokens, "eos/OTHER"]
            sent_len = len(tokens)
            tokens += ["unk/OTHER"] * (max_text_len + 2 - sent_len)
        else:
            tokens = ["sos/OTHER", *tokens[:max_text_len], "eos/OTHER"]
            sent_len = len(tokens)
        vecs, ohots = zip(*(self[t] for t in tokens), strict=True)
        return np.stack(vecs), np.stack(ohots), sent_len

    def batch(
        self, sentences: Sequence[str | Sequence[str]], max_text_len: int = 20
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sentences (token lists, or HumanML3D token strings 'a/DET man/NOUN ...') ->
        word_embs (B, L+2, dim_word), pos_ohot (B, L+2, 15), sent_len (B,) int64, in input order."""
        if len(sentences) == 0:
            raise ValueError("no sentences given")
        out = [self.sentence(s.split() if isinstance(s, str) else s, max_text_len) for s in sentences]
        w, p, n = zip(*out, strict=True)
        return np.stack(w), np.stack(p), np.asarray(n, dtype=np.int64)
