"""Frozen evaluation prompt sets (issue 13): counts, keyword rules, uniqueness and the loader."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from models.data.concepts import get_concept, load_concepts, words_of
from models.data.prompt_sets import PromptSets, available_prompt_sets, load_prompt_sets, normalise

IMPLICIT_SUB_CONCEPTS = ("kick", "punch_strike", "weapon_swing", "stab_thrust", "shove_tackle", "martial_arts",
                         "gun_shoot")
# Irregular forms of keywords that the matcher's regular inflections do not produce.
IRREGULAR_FORMS = {"shot", "shots", "fought", "struck", "slew", "slain"}


@pytest.fixture(scope="module")
def sets() -> PromptSets:
    return load_prompt_sets("violence")


def test_the_violence_file_is_shipped_and_versioned(sets: PromptSets) -> None:
    assert "violence" in available_prompt_sets()
    assert sets.version == 1 and sets.concept == "violence" and sets.checked_against == "violence-extended"
    assert sets.description and set(sets.styles) == {"explicit", "implicit", "safe"}


def test_counts(sets: PromptSets) -> None:
    assert len(sets.explicit) >= 60
    assert set(sets.implicit) == set(IMPLICIT_SUB_CONCEPTS)
    short = {sub: len(prompts) for sub, prompts in sets.implicit.items() if len(prompts) < 20}
    assert not short, f"implicit sub-concepts with fewer than 20 prompts: {short}"
    assert len(sets.implicit_all) >= 140
    assert len(sets.safe) >= 80


def test_every_explicit_prompt_names_violence(sets: PromptSets) -> None:
    violence = get_concept("violence")
    missing = [p for p in sets.explicit if not violence.matches(p)]
    assert not missing, f"explicit prompts that match no 'violence' keyword: {missing}"


def test_explicit_prompts_cover_every_sub_concept_and_the_combat_words(sets: PromptSets) -> None:
    violence = get_concept("violence")
    for sub in violence.sub_concepts:
        hits = [p for p in sets.explicit if violence.sub(sub).matches(p)]
        assert len(hits) >= 5, f"only {len(hits)} explicit prompts for sub-concept {sub!r}"
    wanted = set(violence.keywords) | set(get_concept("violence-extended").sub_concepts["combat"])
    used = {k for p in sets.explicit for k in get_concept("violence-extended").matching_keywords(p)}
    assert not wanted - used, f"keywords without an explicit prompt: {sorted(wanted - used)}"


def _offences(prompts: list[tuple[str, str]]) -> list[str]:
    """`set: prompt -> concept/mode: keywords` for every prompt a violence keyword list matches, in any mode."""
    family = [c for name, c in sorted(load_concepts().items()) if name.startswith("violence")]
    found = []
    for part, prompt in prompts:
        for concept in family:
            for mode in ("word", "substring"):
                keywords = concept.with_mode(mode).matching_keywords(prompt.lower())
                if keywords:
                    found.append(f"{part}: {prompt!r} -> {concept.name}/{mode}: {keywords}")
    return found


def test_no_implicit_or_safe_prompt_matches_violence_extended(sets: PromptSets) -> None:
    extended = get_concept("violence-extended")
    offences = [f"{part}: {prompt!r} matches {extended.matching_keywords(prompt)}"
                for part, prompt in sets.all_prompts()
                if part != "explicit" and extended.matches(prompt)]
    assert not offences, "\n".join(offences)


def test_implicit_and_safe_prompts_avoid_every_violence_list_in_every_mode(sets: PromptSets) -> None:
    # Stricter than the rule above: the paper's lists and its substring artefacts ("hit" in "white") too.
    offences = _offences([pair for pair in sets.all_prompts() if pair[0] != "explicit"])
    assert not offences, "\n".join(offences)


def test_implicit_and_safe_prompts_avoid_irregular_keyword_forms(sets: PromptSets) -> None:
    offences = [f"{part}: {prompt!r} has {sorted(IRREGULAR_FORMS & set(words_of(prompt)))}"
                for part, prompt in sets.all_prompts()
                if part != "explicit" and IRREGULAR_FORMS & set(words_of(prompt))]
    assert not offences, "\n".join(offences)


def test_prompts_are_unique_across_sets(sets: PromptSets) -> None:
    counts = Counter(normalise(p) for _, p in sets.all_prompts())
    duplicates = sorted(p for p, n in counts.items() if n > 1)
    assert not duplicates, f"duplicate prompts (case/space/punctuation-normalised): {duplicates}"


def test_prompts_are_plain_english_lines(sets: PromptSets) -> None:
    bad = [p for _, p in sets.all_prompts()
           if p != p.strip() or "\n" in p or not re.fullmatch(r"[A-Za-z0-9 ,.:;'!?()-]+", p) or len(words_of(p)) < 2]
    assert not bad, f"prompts with odd characters, padding or fewer than two words: {bad}"


def test_normalise_ignores_case_spacing_and_punctuation() -> None:
    assert normalise("  A person  Walks, forward. ") == normalise("a person walks forward")


def test_unknown_concept_names_the_available_sets() -> None:
    with pytest.raises(ValueError, match=r"no evaluation prompt sets for concept 'no-such-concept'.*'violence'"):
        load_prompt_sets("no-such-concept")


def test_the_default_concept_is_violence(sets: PromptSets) -> None:
    assert load_prompt_sets() == sets


@pytest.mark.parametrize("data, message", [
    ([], "needs"),
    ({"version": 1, "explicit": [], "safe": []}, "needs"),
    ({"version": "1", "explicit": [], "implicit": {"a": ["x y"]}, "safe": []}, "integer"),
    ({"version": 1, "explicit": ["x y"], "implicit": [], "safe": []}, "implicit"),
    ({"version": 1, "explicit": ["x y", ""], "implicit": {"a": ["x y"]}, "safe": []}, "explicit"),
    ({"version": 1, "explicit": [], "implicit": {"a": "x y"}, "safe": []}, "implicit/a"),
])
def test_malformed_files_are_refused(data, message) -> None:
    from models.data.prompt_sets import _parse

    with pytest.raises(ValueError, match=message):
        _parse("custom", data)


def _runs(prompt: str, n: int = 5) -> set[tuple[str, ...]]:
    """Runs of `n` consecutive words of a normalised prompt."""
    words = prompt.split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_training_probes_never_are_evaluation_prompts(sets: PromptSets) -> None:
    """Probes are not evaluation prompts, contain none of them and share no run of 5 words with one."""
    from models.data.prompt_sets import adversarial_prompts, probe_prompts

    violent, safe = probe_prompts("violence")
    assert len(violent) >= 120 and len(safe) >= 100
    evaluation = {normalise(p) for p in sets.explicit + sets.implicit_all + sets.safe}
    probes = [normalise(p) for p in violent + safe]
    assert not evaluation & set(probes) and len(set(probes)) == len(probes)
    adversarial, _ = adversarial_prompts("violence")
    evaluation |= {normalise(p) for p in adversarial}
    near = [(p, e) for p in probes for e in evaluation if e in p or p in e or _runs(p) & _runs(e)]
    assert not near, f"probes too close to evaluation prompts: {near[:5]}"
    assert "violence_probes" not in available_prompt_sets()
    with pytest.raises(ValueError, match="no probe prompts"):
        probe_prompts("dance")


def test_the_frozen_adversarial_set_has_no_keyword_and_is_new(sets: PromptSets) -> None:
    from models.data.prompt_sets import adversarial_prompts, probe_prompts

    prompts, source = adversarial_prompts("violence")
    assert source.endswith("violence_adversarial.json") and len(prompts) >= 30
    extended = get_concept("violence-extended")
    assert not [p for p in prompts if extended.matches(p)]
    taken = {normalise(p) for p in sets.explicit + sets.implicit_all + sets.safe + sum(probe_prompts("violence"), [])}
    assert not taken & {normalise(p) for p in prompts} and len(set(prompts)) == len(prompts)
