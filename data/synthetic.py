"""A tiny generated dataset in the RIN format that RIN can learn in seconds: for the tests and gpu_check.py."""
from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = ["Anna", "Boris", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
LAST = ["Smith", "Ivanova", "Rossi", "Petrov", "Kim", "Haddad", "Berg", "Tanaka", "Silva", "Weber"]
PLACES = [["Paris"], ["New", "York"], ["Oslo"], ["Rio", "de", "Janeiro"], ["Lima"], ["Cape", "Town"]]
ORGS = [["Acme"], ["Globex", "Corp"], ["Initech"], ["Umbrella", "Group"], ["Stark", "Industries", "Ltd"]]
POS = {"was": "VBD", "born": "VBN", "in": "IN", ".": ".", "works": "VBZ", "for": "IN", ",": ",",
       "based": "VBN", "hired": "VBD", "met": "VBD", "yesterday": "NN", "and": "CC", "were": "VBD"}

# Each template: words with placeholders P/Q (persons), L (place), O (organisation), and its triples.
TEMPLATES = [
    ("P was born in L .", [("P", "born_in", "L")]),
    ("P works for O in L .", [("P", "works_for", "O"), ("O", "located_in", "L")]),
    ("O , based in L , hired P .", [("O", "located_in", "L"), ("P", "works_for", "O")]),
    ("P met Q yesterday .", []),
    ("P and Q were born in L .", [("P", "born_in", "L"), ("Q", "born_in", "L")]),
]


def make_sentence(rng: random.Random) -> dict:
    """One RIN record from a random template, its people, place and organisation drawn by ``rng``."""
    template, relations = rng.choice(TEMPLATES)
    people = rng.sample([[f, s] for f in FIRST for s in LAST], 2)
    fillers = {"P": people[0], "Q": people[1], "L": rng.choice(PLACES), "O": rng.choice(ORGS)}
    tokens, pos = [], []
    for word in template.split():
        if word in fillers:
            tokens += fillers[word]
            pos += ["NNP"] * len(fillers[word])
        else:
            tokens.append(word)
            pos.append(POS[word])
    used = [key for key in "PQLO" if key in template.split()]
    return {"sentText": tokens, "pos": pos, "en_list": [fillers[key] for key in used],
            "relationMentions": [{"em1Text": [fillers[s][-1]], "em2Text": [fillers[o][-1]], "label": r}
                                 for s, r, o in relations]}


def write_synthetic_dataset(folder: Path, sizes: tuple[int, int, int] = (400, 60, 60), seed: int = 0) -> Path:
    """Write train/dev/test.json of the given sizes into ``folder``; returns it."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in zip(("train", "dev", "test"), sizes, strict=True):
        with open(folder / f"{name}.json", "w") as handle:
            for _ in range(size):
                handle.write(json.dumps(make_sentence(rng)) + "\n")
    return folder
