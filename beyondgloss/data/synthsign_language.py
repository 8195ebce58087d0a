# Copyright 2026 The beyondgloss authors. MIT license.
"""The SynthSign language (see `beyondgloss.data.synthsign`): its lexicon of 36 signs and how each looks, its
grammar (sign order, and the spoken English-like translation), and the templated descriptions of a clip's hand
motion with their deterministic embeddings."""

import hashlib
import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["COLOURS", "HEIGHTS", "HEIGHT_NAMES", "LEXICONS", "SHAPES", "SIGNS_BY_GLOSS", "SYNTHSIGN_LANGUAGE",
           "SYNTHSIGN_LANGUAGE_CODE", "SYNTHSIGN_LEXICON", "SynthSignSign", "describe_clip", "description_embedding",
           "sample_sentences"]

SYNTHSIGN_LANGUAGE = "en"
SYNTHSIGN_LANGUAGE_CODE = "en_XX"

SHAPES = ("disc", "square", "diamond", "ring", "cross", "triangle")
COLOURS = {
    "red": (235, 40, 40),
    "green": (40, 205, 60),
    "blue": (60, 90, 250),
    "yellow": (245, 225, 40),
    "magenta": (225, 50, 225),
    "cyan": (40, 225, 225),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}
COLOUR_NAMES = tuple(COLOURS)
TRAJECTORIES = ("circles", "sweeps sideways", "moves up", "moves diagonally", "zigzags", "arcs over",
                "draws a figure eight", "taps")
# Heights (fraction of the image from the top) where a sign is made, and how a description names them.
HEIGHTS = {"at the face": 0.3, "at the chest": 0.52, "at the waist": 0.72}
HEIGHT_NAMES = tuple(HEIGHTS)


@dataclass(frozen=True)
class SynthSignSign:
    """One sign of the lexicon: its gloss, grammatical role, spoken forms and how it looks.

    `forms` holds the spoken word(s); verbs have (present, past, infinitive) forms. The right hand does the
    trajectory at the sign's height; in two-handed signs the left hand mirrors it, otherwise it rests low.
    """

    gloss: str
    role: str
    forms: tuple
    right_shape: int
    right_colour: int
    left_shape: int
    left_colour: int
    trajectory: int
    height: int
    two_handed: bool


_WORDS = {
    "subject": [("MAN", ("man",)), ("WOMAN", ("woman",)), ("BOY", ("boy",)), ("GIRL", ("girl",)),
                ("TEACHER", ("teacher",)), ("DOCTOR", ("doctor",)), ("FARMER", ("farmer",)), ("DOG", ("dog",))],
    "verb": [("SEE", ("sees", "saw", "see")), ("HELP", ("helps", "helped", "help")),
             ("LIKE", ("likes", "liked", "like")), ("CARRY", ("carries", "carried", "carry")),
             ("FIND", ("finds", "found", "find")), ("PAINT", ("paints", "painted", "paint")),
             ("WANT", ("wants", "wanted", "want")), ("BUY", ("buys", "bought", "buy"))],
    "object": [("BALL", ("ball",)), ("BOOK", ("book",)), ("HOUSE", ("house",)), ("CAR", ("car",)),
               ("TREE", ("tree",)), ("BOAT", ("boat",)), ("APPLE", ("apple",)), ("LETTER", ("letter",))],
    "adjective": [("RED", ("red",)), ("BIG", ("big",)), ("SMALL", ("small",)), ("OLD", ("old",)),
                  ("NEW", ("new",)), ("HEAVY", ("heavy",))],
    # (spoken phrase, tense) with tense 0 present, 1 past, 2 future
    "time": [("TODAY", ("today", 0)), ("YESTERDAY", ("yesterday", 1)), ("TOMORROW", ("tomorrow", 2)),
             ("LAST-WEEK", ("last week", 1)), ("NEXT-WEEK", ("next week", 2))],
    "negation": [("NOT", ("not",))],
}


def _build_lexicon() -> tuple:
    # Appearances are fixed (the language does not change with the corpus seed). Every pair of signs differs
    # in at least two of (right shape, right colour, trajectory, height), so no sign is a near-copy of another.
    entries = [(gloss, role, forms) for role, words in _WORDS.items() for gloss, forms in words]
    combos = list(itertools.product(range(len(SHAPES)), range(len(COLOURS)), range(len(TRAJECTORIES)),
                                    range(len(HEIGHTS))))
    np.random.default_rng(2025).shuffle(combos)
    chosen = []
    for combo in combos:
        if all(sum(a != b for a, b in zip(combo, other)) >= 2 for other in chosen):
            chosen.append(combo)
        if len(chosen) == len(entries):
            break
    lexicon = []
    for index, ((gloss, role, forms), (shape, colour, trajectory, height)) in enumerate(zip(entries, chosen)):
        lexicon.append(SynthSignSign(
            gloss=gloss, role=role, forms=forms, right_shape=shape, right_colour=colour,
            left_shape=(shape + 3) % len(SHAPES), left_colour=(colour + 4) % len(COLOURS),
            trajectory=trajectory, height=height, two_handed=index % 2 == 0,
        ))
    return tuple(lexicon)
SYNTHSIGN_LEXICON = _build_lexicon()
SIGNS_BY_GLOSS = {sign.gloss: sign for sign in SYNTHSIGN_LEXICON}
# Shapes told apart most easily at 32 px (a filled disc, an open ring, a cross, a triangle).
_HANDSHAPE_SHAPES = (0, 3, 4, 5)


def _build_handshape_lexicon() -> tuple:
    """The "handshape" variant: the same words and grammar, but the signs of one role come in groups of up to four
    that share trajectory, height, colours and handedness and differ only in hand shape (MAN, WOMAN, BOY, GIRL
    move alike). Body motion then names a group, not a sign; only the hand shapes (which the hand features'
    one-hot gives) tell the signs of a group apart."""
    groups = [(role, start) for role, words in _WORDS.items() for start in range(0, len(words), 4)]
    motions = list(itertools.product(range(len(COLOURS)), range(len(TRAJECTORIES)), range(len(HEIGHTS))))
    np.random.default_rng(2026).shuffle(motions)
    chosen = []
    for motion in motions:  # every two groups differ in at least two of (colour, trajectory, height)
        if all(sum(a != b for a, b in zip(motion, other)) >= 2 for other in chosen):
            chosen.append(motion)
    motion_of = {group: (*motion, number % 2 == 0) for number, (group, motion) in enumerate(zip(groups, chosen))}
    lexicon = []
    for role, words in _WORDS.items():
        for index, (gloss, forms) in enumerate(words):
            colour, trajectory, height, two_handed = motion_of[(role, index - index % 4)]
            shape = _HANDSHAPE_SHAPES[index % 4]
            lexicon.append(SynthSignSign(
                gloss=gloss, role=role, forms=forms, right_shape=shape, right_colour=colour,
                left_shape=(shape + 3) % len(SHAPES), left_colour=(colour + 4) % len(COLOURS),
                trajectory=trajectory, height=height, two_handed=two_handed,
            ))
    return tuple(lexicon)
# The lexicons a corpus can be drawn in ("standard" is SynthSign's own; see `_build_handshape_lexicon`).
LEXICONS = {"standard": SIGNS_BY_GLOSS,
            "handshape": {sign.gloss: sign for sign in _build_handshape_lexicon()}}
_BY_ROLE = {role: [sign for sign in SYNTHSIGN_LEXICON if sign.role == role] for role in _WORDS}


def _spoken(signs: list) -> str:
    """English-like translation of a sign sequence [TIME] SUBJECT OBJECT [ADJECTIVE] VERB [NOT]."""
    by_role = {SIGNS_BY_GLOSS[gloss].role: SIGNS_BY_GLOSS[gloss] for gloss in signs}
    time = by_role.get("time")
    tense = time.forms[1] if time else 0
    verb = by_role["verb"].forms
    negated = "negation" in by_role
    if tense == 0:
        verb_phrase = f"does not {verb[2]}" if negated else verb[0]
    elif tense == 1:
        verb_phrase = f"did not {verb[2]}" if negated else verb[1]
    else:
        verb_phrase = f"will not {verb[2]}" if negated else f"will {verb[2]}"
    adjective = f"{by_role['adjective'].forms[0]} " if "adjective" in by_role else ""
    words = [time.forms[0]] if time else []
    words += ["the", by_role["subject"].forms[0], verb_phrase, f"the {adjective}{by_role['object'].forms[0]}"]
    return " ".join(words)


def sample_sentences(count: int, rng: np.random.Generator) -> list:
    """Draws `count` distinct sentences; returns `[(glosses: list[str], spoken: str), ...]`.

    Sign order: [TIME] SUBJECT OBJECT [ADJECTIVE] VERB [NOT] (3 to 6 signs); each optional sign is present
    with probability 1/2. The language has 43,008 sentences; asking for more than a third of them is refused
    because rejection sampling would slow down and the held-out splits would lose their meaning.
    """
    sizes = {role: len(signs) for role, signs in _BY_ROLE.items()}
    space = sizes["subject"] * sizes["object"] * sizes["verb"] * (1 + sizes["adjective"]) * (1 + sizes["time"]) * 2
    if count > space // 3:
        raise ValueError(f"SynthSign has {space} distinct sentences; {count} requested is more than a third of them. "
                         "Ask for fewer clips.")

    def pick(role: str) -> str:
        return _BY_ROLE[role][rng.integers(sizes[role])].gloss

    seen, sentences = set(), []
    while len(sentences) < count:
        glosses = [pick("time")] if rng.random() < 0.5 else []
        glosses += [pick("subject"), pick("object")]
        glosses += [pick("adjective")] if rng.random() < 0.5 else []
        glosses += [pick("verb")]
        glosses += ["NOT"] if rng.random() < 0.5 else []
        key = tuple(glosses)
        if key not in seen:
            seen.add(key)
            sentences.append((glosses, _spoken(glosses)))
    return sentences


def describe_clip(glosses: list, lexicon: str = "standard") -> str:
    """A templated description of the hand motion of a clip (hands only; nothing about meaning)."""
    parts = []
    for position, gloss in enumerate(glosses):
        sign = LEXICONS[lexicon][gloss]
        right = f"the {COLOUR_NAMES[sign.right_colour]} {SHAPES[sign.right_shape]} right hand"
        motion = f"{TRAJECTORIES[sign.trajectory]} {HEIGHT_NAMES[sign.height]}"
        left = f"the {COLOUR_NAMES[sign.left_colour]} {SHAPES[sign.left_shape]} left hand"
        left_does = "mirrors it" if sign.two_handed else "rests low"
        lead = "first" if position == 0 else ("finally" if position == len(glosses) - 1 else "then")
        parts.append(f"{lead} {right} {motion} while {left} {left_does}")
    return ", ".join(parts) + "."


@lru_cache(maxsize=4096)
def _token_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def description_embedding(text: str, dim: int = 1024) -> np.ndarray:
    """Deterministic embedding of a description: hashed words and word pairs, summed, unit length.

    A stand-in for the mBART-large-50 description encoder (same text -> same vector in every process;
    texts sharing words and word pairs get similar vectors). Returns float32 (dim,).
    """
    words = text.lower().replace(",", " ").replace(".", " ").split()
    tokens = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    vector = np.sum([_token_vector(token, dim) for token in tokens], axis=0)
    return (vector / max(float(np.linalg.norm(vector)), 1e-8)).astype(np.float32)
