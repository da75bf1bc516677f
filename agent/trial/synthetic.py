"""The offline data set: deterministic SAMSum-like dialogues and summaries, built by code.

Chatty dialogues whose summaries need the key facts (who, what, where, when) and leave the small
talk out, so a summary has to be learned rather than copied. No download; the same rows every time.
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
    kind = rng.randrange(4)
    if kind == 0:
        activity = rng.choice(list(ACTIVITIES))
        place, day, time = ACTIVITIES[activity], rng.choice(DAYS), rng.choice(TIMES)
        lines = [
            (a, f"Hi {b}! Are you free on {day}?"),
            (b, "I think so. What do you have in mind?"),
            (a, f"Let's {activity} at the {place}. Is {time} okay?"),
            (b, "Perfect, see you there."),
        ]
        summary = f"{a} and {b} will {activity} at the {place} on {day} at {time}."
    elif kind == 1:
        event, item, day = rng.choice(EVENTS), rng.choice(ITEMS), rng.choice(DAYS)
        lines = [
            (a, f"Are you coming to my {event} on {day}?"),
            (b, "Of course! Should I bring anything?"),
            (a, f"Could you bring {item}?"),
            (b, f"Sure, I will bring {item}."),
        ]
        summary = f"{b} will bring {item} to {a}'s {event} on {day}."
    elif kind == 2:
        activity = rng.choice(list(ACTIVITIES))
        place, day, later, reason = ACTIVITIES[activity], *rng.sample(DAYS, 2), rng.choice(REASONS)
        lines = [
            (a, f"{b}, I am sorry, I can't come to the {place} on {day}."),
            (b, "Oh no, what happened?"),
            (a, f"{reason.capitalize()}. Can we go on {later} instead?"),
            (b, f"No problem, {later} works for me."),
        ]
        summary = f"{a} can't go to the {place} on {day}. {a} and {b} will go on {later} instead."
    else:
        thing, room = rng.choice(OBJECTS), rng.choice(ROOMS)
        lines = [
            (a, f"Have you seen my {thing}?"),
            (b, f"I think you left your {thing} in the {room}."),
            (a, "Thanks, I will check there."),
            (b, "Let me know if you find it."),
        ]
        summary = f"{a} is looking for the {thing}. {b} thinks it is in the {room}."
    if rng.random() < 0.5:  # small talk that a good summary leaves out
        opener, reply = rng.choice(SMALL_TALK)
        lines = [(a, opener), (b, reply)] + lines
    return {"dialogue": "\n".join(f"{who}: {text}" for who, text in lines), "summary": summary}
