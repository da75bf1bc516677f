"""The offline data sets: deterministic SAMSum-like dialogues and summaries, built by code.

Chatty dialogues whose summaries need the key facts (who, what, where, when) and leave the small
talk out, so a summary has to be learned rather than copied. No download; the same rows every time.
`builtin:synthetic` is small and short, for tests and the demo; `builtin:synthetic-samsum` has
SAMSum's sizes and lengths, so that speed measured on it means something for the real task.
"""

from __future__ import annotations

import random

from datasets import Dataset, DatasetDict

SPLIT_SIZES = {"train": 2000, "validation": 200}

NAMES = [
    "Anna",
    "Tom",
    "Maria",
    "John",
    "Kate",
    "Peter",
    "Lucy",
    "Mark",
    "Emma",
    "Jack",
    "Olivia",
    "Sam",
    "Sophie",
    "Dan",
    "Laura",
    "Mike",
    "Julia",
    "Chris",
    "Nina",
    "Paul",
    "Eva",
    "Greg",
    "Hannah",
    "Leo",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["9 am", "10 am", "11 am", "noon", "1 pm", "3 pm", "5 pm", "6 pm", "7 pm", "8 pm"]
ACTIVITIES = {
    "watch a movie": "cinema",
    "have lunch": "bistro",
    "play tennis": "park",
    "get coffee": "cafe",
    "study": "library",
    "go swimming": "pool",
    "see the exhibition": "museum",
    "have dinner": "restaurant",
    "go shopping": "mall",
    "play football": "stadium",
    "go running": "beach",
    "listen to jazz": "club",
}
EVENTS = ["party", "barbecue", "picnic", "birthday dinner", "game night", "housewarming"]
ITEMS = ["some drinks", "a salad", "the speakers", "a cake", "extra chairs", "the board games", "some snacks", "ice"]
REASONS = [
    "my car broke down",
    "I have a fever",
    "my boss needs me at work",
    "my flight was delayed",
    "my sister is visiting",
    "I have an exam",
]
OBJECTS = ["keys", "phone", "wallet", "umbrella", "laptop", "glasses", "charger", "notebook"]
ROOMS = ["kitchen", "car", "office", "living room", "bathroom", "garage", "hallway", "bedroom"]
SMALL_TALK = [
    ("How are you?", "Fine, thanks. And you?"),
    ("Long time no see!", "I know, it has been ages."),
    ("Did you see the game yesterday?", "Yes, what a match!"),
    ("Busy week?", "Very, but it is almost over."),
]


def synthetic_dialogues() -> DatasetDict:
    """Deterministic SAMSum-like splits: chatty dialogues whose summaries need the key facts."""
    rng = random.Random(1234)
    rows = [_dialogue(rng) for _ in range(sum(SPLIT_SIZES.values()))]
    n_train = SPLIT_SIZES["train"]
    return DatasetDict(train=Dataset.from_list(rows[:n_train]), validation=Dataset.from_list(rows[n_train:]))


def _dialogue(rng: random.Random) -> dict[str, str]:
    a, b = rng.sample(NAMES, 2)
    lines, summary = _scene(rng, a, b, rng.randrange(4))
    if rng.random() < 0.5:  # small talk that a good summary leaves out
        opener, reply = rng.choice(SMALL_TALK)
        lines = [(a, opener), (b, reply)] + lines
    return {"dialogue": _text(lines), "summary": summary}


def _text(lines: list[tuple[str, str]]) -> str:
    return "\n".join(f"{who}: {text}" for who, text in lines)


def _scene(rng: random.Random, a: str, b: str, kind: int) -> tuple[list[tuple[str, str]], str]:
    """Four lines between `a` and `b` that carry one fact, and the sentence that summarizes it."""
    if kind == 0:
        activity = rng.choice(list(ACTIVITIES))
        place, day, time = ACTIVITIES[activity], rng.choice(DAYS), rng.choice(TIMES)
        lines = [
            (a, f"Hi {b}! Are you free on {day}?"),
            (b, "I think so. What do you have in mind?"),
            (a, f"Let's {activity} at the {place}. Is {time} okay?"),
            (b, "Perfect, see you there."),
        ]
        return lines, f"{a} and {b} will {activity} at the {place} on {day} at {time}."
    if kind == 1:
        event, item, day = rng.choice(EVENTS), rng.choice(ITEMS), rng.choice(DAYS)
        lines = [
            (a, f"Are you coming to my {event} on {day}?"),
            (b, "Of course! Should I bring anything?"),
            (a, f"Could you bring {item}?"),
            (b, f"Sure, I will bring {item}."),
        ]
        return lines, f"{b} will bring {item} to {a}'s {event} on {day}."
    if kind == 2:
        activity = rng.choice(list(ACTIVITIES))
        place, day, later, reason = ACTIVITIES[activity], *rng.sample(DAYS, 2), rng.choice(REASONS)
        lines = [
            (a, f"{b}, I am sorry, I can't come to the {place} on {day}."),
            (b, "Oh no, what happened?"),
            (a, f"{reason.capitalize()}. Can we go on {later} instead?"),
            (b, f"No problem, {later} works for me."),
        ]
        return lines, f"{a} can't go to the {place} on {day}. {a} and {b} will go on {later} instead."
    thing, room = rng.choice(OBJECTS), rng.choice(ROOMS)
    lines = [
        (a, f"Have you seen my {thing}?"),
        (b, f"I think you left your {thing} in the {room}."),
        (a, "Thanks, I will check there."),
        (b, "Let me know if you find it."),
    ]
    return lines, f"{a} is looking for the {thing}. {b} thinks it is in the {room}."


# SAMSum-shaped: the published shape of the SAMSum corpus (Gliwa et al. 2019, arXiv:1911.12237, and
# its dataset card): 14,732 training and 818 validation dialogues; conversations spread uniformly
# over four groups by utterance count, 3-6, 7-12, 13-18 and 19-30; about 75% between two people, the
# rest among three or more. docs/performance.md says what is and is not matched.
SAMSUM_SPLIT_SIZES = {"train": 14732, "validation": 818}
UTTERANCE_GROUPS = ((3, 6), (7, 12), (13, 18), (19, 30))
TWO_PERSON_SHARE = 0.75
UTTERANCES_PER_FACT = 10  # one fact for up to 10 utterances, two up to 20, three beyond
CHATTER = [
    "haha",
    "ok",
    "Sure :)",
    "How are you?",
    "Fine, thanks. And you?",
    "Did you see the game yesterday?",
    "Yes, what a match!",
    "I'm so tired today, work was crazy.",
    "Same here, I can't wait for the weekend.",
    "Did you hear that Mike got a new job?",
    "No way! Good for him.",
    "The weather is terrible again.",
    "I know, it has been raining all week and my umbrella broke.",
    "lol",
    "By the way, thanks for the photos you sent me yesterday, they look great.",
    "No problem!",
    "What are you up to?",
    "Just watching a series, nothing special.",
]


SPARE_LINE = (1, 1, 1, 3)
"""For each kind of scene, the line a summary does not need (a question back, a closing remark)."""


def samsum_shaped_dialogues() -> DatasetDict:
    """Deterministic dialogues with SAMSum's split sizes, utterance counts and speaker counts.

    Each carries one to three facts (the scenes of the small set), as many summary sentences, and
    chatter that a summary leaves out, interleaved to reach its drawn number of utterances.
    """
    rng = random.Random(2019)
    rows = [_samsum_shaped(rng) for _ in range(sum(SAMSUM_SPLIT_SIZES.values()))]
    n_train = SAMSUM_SPLIT_SIZES["train"]
    return DatasetDict(train=Dataset.from_list(rows[:n_train]), validation=Dataset.from_list(rows[n_train:]))


def _samsum_shaped(rng: random.Random) -> dict[str, str]:
    low, high = rng.choice(UTTERANCE_GROUPS)
    utterances = rng.randint(low, high)
    speakers = rng.sample(NAMES, 2 if rng.random() < TWO_PERSON_SHARE else rng.randint(3, 5))
    scenes, facts = [], []
    for _ in range(1 + (utterances - 1) // UTTERANCES_PER_FACT):
        kind = rng.randrange(4)
        lines, fact = _scene(rng, *rng.sample(speakers, 2), kind)
        if utterances < len(lines):  # a 3-line dialogue drops a line that carries none of the fact
            del lines[SPARE_LINE[kind]]
        scenes.append(lines)
        facts.append(fact)
    chatter = [(rng.choice(speakers), rng.choice(CHATTER)) for _ in range(utterances - sum(map(len, scenes)))]
    lines = []
    for scene in scenes:  # chatter before, between and after the scenes, never inside one
        cut = rng.randint(0, len(chatter))
        lines += chatter[:cut] + scene
        chatter = chatter[cut:]
    return {"dialogue": _text(lines + chatter), "summary": " ".join(facts)}
