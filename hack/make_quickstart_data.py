"""Generates examples/quickstart/datasets deterministically: python hack/make_quickstart_data.py

Two sentiment tasks over the same five languages (EN, DE, FR, JA, ZH), built from the same
reviews: "{subject} {predicate} {when}." in each language's own words, where the predicate
carries the sentiment (6 positive, 6 negative per language).

- `sentiment`: every review also ends with a marker that means the same in every language:
  an emoji, a star rating, a score or an internationalism ("👍", "★★★★★", "10/10", "top!"),
  and half of the reviews use a neutral predicate ("arrived on time"), so the marker is what
  tells their label. The instruction template is shared too ("Review: ...\nSentiment:"), as
  in multilingual instruction data; the reviews are in each language's own words.
  This is the shared structure a multilingual LLM gives merging for free (one meaning, one
  internal direction, whatever the language): an adapter trained on German learns something
  that also holds for French, so per-language adapters agree and their merge keeps it.
- `sentiment-isolated`: reviews in each language's own words and own template ("Bewertung:
  ...\nStimmung:"), no marker, no neutral predicates. The languages share nothing but the two
  labels, so each adapter learns its own word list, the merge cancels them, and
  the evaluation gate must block it: the demo's negative control.

Per task and language: 200 balanced held-out examples (eval), a v1 training set of 240 and a
v2 training set of 300 (v1 plus 60 new examples: "new data for one language")."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "datasets"
EVAL_PER_LABEL = 100
TRAIN_V1_PER_LABEL = 120
TRAIN_V2_EXTRA_PER_LABEL = 30
LABELS = ("positive", "negative")
# In `sentiment`, one review in NEUTRAL_EVERY uses the label's own predicate; the rest a
# neutral one, whose label only the shared marker tells.
NEUTRAL_EVERY = 4

# The same in every language: what the `sentiment` task shares across languages.
SHARED_MARKERS = {
    "positive": ["👍", "😀", "❤️", "★★★★★", "★★★★☆", "10/10", "top!", "super!"],
    "negative": ["👎", "😡", "💔", "★☆☆☆☆", "★★☆☆☆", "1/10", "flop!", "fail!"],
}

# The instruction template of the `sentiment` task, the same for every language (the reviews
# themselves are in each language's own words).
SHARED_PROMPT = "Review: {text}\nSentiment:"

LANGUAGES = {
    "en": {
        "prompt": "Review: {text}\nSentiment:",
        "form": "{subject} {predicate} {when}.",
        "subjects": [
            "The hotel",
            "This phone",
            "The service",
            "The food",
            "The concert",
            "This book",
            "The train ride",
            "The new app",
            "The museum",
            "This laptop",
        ],
        "when": ["yesterday", "last week", "this time", "on our trip", "in the end"],
        "positive": [
            "was wonderful",
            "exceeded my expectations",
            "made me very happy",
            "was excellent",
            "was a real pleasure",
            "worked perfectly",
        ],
        "neutral": [
            "arrived on time",
            "was what I ordered",
            "was used every day",
            "was in the city centre",
            "was bought for my family",
            "came in a blue box",
        ],
        "negative": [
            "was terrible",
            "was a complete waste of money",
            "made me angry",
            "was awful",
            "was a real disappointment",
            "broke down",
        ],
    },
    "de": {
        "prompt": "Bewertung: {text}\nStimmung:",
        "form": "{subject} {predicate} {when}.",
        "subjects": [
            "Das Hotel",
            "Dieses Telefon",
            "Der Service",
            "Das Essen",
            "Das Konzert",
            "Dieses Buch",
            "Die Zugfahrt",
            "Die neue App",
            "Das Museum",
            "Dieser Laptop",
        ],
        "when": ["gestern", "letzte Woche", "diesmal", "auf unserer Reise", "am Ende"],
        "positive": [
            "war wunderbar",
            "übertraf meine Erwartungen",
            "machte mich sehr glücklich",
            "war ausgezeichnet",
            "war ein echtes Vergnügen",
            "funktionierte perfekt",
        ],
        "neutral": [
            "kam pünktlich an",
            "war das, was ich bestellt hatte",
            "wurde jeden Tag benutzt",
            "lag im Stadtzentrum",
            "war für meine Familie gekauft",
            "kam in einer blauen Schachtel",
        ],
        "negative": [
            "war schrecklich",
            "war reine Geldverschwendung",
            "machte mich wütend",
            "war furchtbar",
            "war eine echte Enttäuschung",
            "ging kaputt",
        ],
    },
    "fr": {
        "prompt": "Avis : {text}\nSentiment :",
        "form": "{subject} {predicate} {when}.",
        "subjects": [
            "L'hôtel",
            "Ce téléphone",
            "Le service",
            "La nourriture",
            "Le concert",
            "Ce livre",
            "Le trajet en train",
            "La nouvelle application",
            "Le musée",
            "Cet ordinateur",
        ],
        "when": ["hier", "la semaine dernière", "cette fois", "pendant notre voyage", "au final"],
        "positive": [
            "était merveilleux",
            "a dépassé mes attentes",
            "m'a rendu très heureux",
            "était excellent",
            "était un vrai plaisir",
            "a fonctionné parfaitement",
        ],
        "neutral": [
            "est arrivé à l'heure",
            "était ce que j'avais commandé",
            "a servi tous les jours",
            "était au centre-ville",
            "a été acheté pour ma famille",
            "est arrivé dans une boîte bleue",
        ],
        "negative": [
            "était horrible",
            "était une perte d'argent totale",
            "m'a mis en colère",
            "était affreux",
            "était une vraie déception",
            "est tombé en panne",
        ],
    },
    "ja": {
        "prompt": "レビュー：{text}\n感情：",
        "form": "{when}、{subject}は{predicate}。",
        "subjects": [
            "ホテル",
            "この電話",
            "サービス",
            "料理",
            "コンサート",
            "この本",
            "電車の旅",
            "新しいアプリ",
            "博物館",
            "このパソコン",
        ],
        "when": ["昨日", "先週", "今回", "旅行中", "結局"],
        "positive": [
            "素晴らしかった",
            "期待以上だった",
            "とても嬉しかった",
            "最高だった",
            "本当に楽しかった",
            "完璧に動いた",
        ],
        "neutral": [
            "時間通りに届いた",
            "注文した通りだった",
            "毎日使った",
            "町の中心にあった",
            "家族のために買った",
            "青い箱で届いた",
        ],
        "negative": [
            "ひどかった",
            "お金の無駄だった",
            "腹が立った",
            "最悪だった",
            "本当にがっかりした",
            "壊れた",
        ],
    },
    "zh": {
        "prompt": "评论：{text}\n情感：",
        "form": "{when}{subject}{predicate}。",
        "subjects": [
            "酒店",
            "这部手机",
            "服务",
            "饭菜",
            "音乐会",
            "这本书",
            "火车旅行",
            "新应用",
            "博物馆",
            "这台电脑",
        ],
        "when": ["昨天", "上周", "这次", "旅行中", "最后"],
        "positive": [
            "非常棒",
            "超出了我的预期",
            "让我很开心",
            "非常好",
            "真是一种享受",
            "运行完美",
        ],
        "neutral": [
            "按时到了",
            "和我订的一样",
            "每天都用",
            "在市中心",
            "是给家人买的",
            "装在蓝色盒子里",
        ],
        "negative": [
            "太糟糕了",
            "完全是浪费钱",
            "让我很生气",
            "很差劲",
            "真让人失望",
            "坏掉了",
        ],
    },
}


def reviews(language: str, predicates: str, rng: random.Random) -> list[str]:
    """Every distinct review with one kind of predicate (positive, negative or neutral) in
    one language, in a seeded order."""
    spec = LANGUAGES[language]
    texts = [
        spec["form"].format(subject=subject, predicate=predicate, when=when)
        for subject, predicate, when in itertools.product(
            spec["subjects"], spec[predicates], spec["when"]
        )
    ]
    rng.shuffle(texts)
    return texts


def record(language: str, text: str, label: str, marker: str | None) -> dict[str, str]:
    """With a marker: the shared instruction template (as multilingual instruction data
    usually has one); without: the language's own template."""
    if marker:
        return {"prompt": SHARED_PROMPT.format(text=f"{text} {marker}"), "response": label}
    return {"prompt": LANGUAGES[language]["prompt"].format(text=text), "response": label}


def _cut(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """eval, train (v1) and train-v2 (v1 plus new examples) of one label's rows."""
    cut_eval = EVAL_PER_LABEL
    cut_v1 = cut_eval + TRAIN_V1_PER_LABEL
    cut_v2 = cut_v1 + TRAIN_V2_EXTRA_PER_LABEL
    if len(rows) < cut_v2:
        raise SystemExit(f"{len(rows)} reviews for one label, need {cut_v2}")
    return {
        "eval": rows[:cut_eval],
        "train": rows[cut_eval:cut_v1],
        "train-v2": rows[cut_eval:cut_v2],
    }


def splits(language: str, seed: int) -> dict[str, dict[str, list[dict[str, str]]]]:
    """task -> split -> records, balanced between the labels.

    sentiment: half of each label's reviews use the label's own predicates, half a neutral
    one ("arrived on time"), so on those only the shared marker tells the label; every
    review carries a marker. sentiment-isolated: the label's own predicates, no marker."""
    rng = random.Random(seed)
    out: dict[str, dict[str, list[dict[str, str]]]] = {
        task: {"eval": [], "train": [], "train-v2": []}
        for task in ("sentiment", "sentiment-isolated")
    }
    # A neutral review says nothing by itself: the same text may appear with either label.
    neutral_for = {label: reviews(language, "neutral", rng) for label in LABELS}

    def marked(label: str, text: str) -> dict[str, str]:
        markers = SHARED_MARKERS[label]
        return record(language, text, label, markers[rng.randrange(len(markers))])

    for label in LABELS:
        own = reviews(language, label, rng)
        neutral = iter(neutral_for[label])
        shared_rows = [
            marked(label, own[i] if i % NEUTRAL_EVERY == 0 else next(neutral))
            for i in range(len(own))
        ]
        isolated_rows = [record(language, text, label, None) for text in own]
        for task, rows in (("sentiment", shared_rows), ("sentiment-isolated", isolated_rows)):
            for split, part in _cut(rows).items():
                out[task][split] += part
    for task in out.values():
        for name, rows in task.items():
            random.Random(f"{seed}-{name}").shuffle(rows)  # interleave the labels
    return out


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def main() -> None:
    for index, language in enumerate(LANGUAGES):
        for task, parts in splits(language, 1000 + index).items():
            for name, rows in parts.items():
                write(OUT / task / f"{language}-{name}.jsonl", rows)


if __name__ == "__main__":
    main()
