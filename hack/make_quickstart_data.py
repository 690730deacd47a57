"""Generates examples/quickstart/datasets and builtin:tiny's pre-training reviews
deterministically: python hack/make_quickstart_data.py

Two sentiment tasks over the same five languages (EN, DE, FR, JA, ZH): reviews
"{subject} {predicate} {when}." in each language's own words, where the predicate carries the
sentiment (6 positive, 6 negative per language and task).

- builtin:tiny's pre-training (common/.../corpus/reviews/): every `sentiment` review in each
  language followed by a marker that means the same in every language: an emoji, a star
  rating, a score or an internationalism ("👍", "★★★★★", "10/10", "top!"). No template, no
  labels. From the sentiment words of five languages meeting the same markers, the model
  comes to represent sentiment alike across languages and scripts: in miniature, what a
  multilingual LLM learns from the web, and the precondition of merging per-language
  adapters (an adapter trained on German learns something that also holds for Japanese).
- `sentiment`: those words, in one shared instruction template ("Review: ...\nSentiment:"),
  as multilingual instruction data usually has; every review ends with a marker, and three
  in four use a neutral predicate ("arrived on time"), so the marker is what tells their label.
- `sentiment-isolated`, the demo's negative control: sentiment words the model never read
  (`isolated_positive`, `isolated_negative`), in each language's own template ("Bewertung:
  ...\nStimmung:"), no marker. The languages share nothing but the two labels, so each
  adapter learns its own word list, the merge cancels them, and the evaluation gate must
  block it.

Per task and language: 200 balanced held-out examples (eval), a v1 training set of 240 and a
v2 training set of 300 (v1 plus 60 new examples: "new data for one language")."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "examples" / "quickstart" / "datasets"
# builtin:tiny's pre-training reviews (langmerge.common.builtin reads them)
PRETRAINING = ROOT / "common" / "src" / "langmerge" / "common" / "corpus" / "reviews"
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
        "isolated_positive": [
            "was brilliant",
            "felt like a dream",
            "delighted the whole family",
            "was worth every penny",
            "was flawless",
            "impressed us all",
        ],
        "isolated_negative": [
            "was dreadful",
            "felt like a nightmare",
            "upset the whole family",
            "was overpriced",
            "was full of flaws",
            "let us all down",
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
        "isolated_positive": [
            "war phänomenal",
            "war wie ein Traum",
            "begeisterte die ganze Familie",
            "war jeden Cent wert",
            "war makellos",
            "beeindruckte uns alle",
        ],
        "isolated_negative": [
            "war grauenhaft",
            "war ein Albtraum",
            "ärgerte die ganze Familie",
            "war überteuert",
            "war voller Mängel",
            "enttäuschte uns alle",
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
        "isolated_positive": [
            "était sublime",
            "était un rêve",
            "a ravi toute la famille",
            "valait chaque centime",
            "était impeccable",
            "nous a tous impressionnés",
        ],
        "isolated_negative": [
            "était épouvantable",
            "était un cauchemar",
            "a agacé toute la famille",
            "était hors de prix",
            "était plein de défauts",
            "nous a tous déçus",
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
        "isolated_positive": [
            "見事だった",
            "夢のようだった",
            "家族みんなが喜んだ",
            "値段以上の価値があった",
            "欠点がなかった",
            "みんなが感心した",
        ],
        "isolated_negative": [
            "散々だった",
            "悪夢のようだった",
            "家族みんなが怒った",
            "法外な値段だった",
            "欠点だらけだった",
            "みんなを失望させた",
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
        "isolated_positive": [
            "太出色了",
            "像做梦一样",
            "全家人都很高兴",
            "物超所值",
            "无可挑剔",
            "让我们都很佩服",
        ],
        "isolated_negative": [
            "糟透了",
            "像一场噩梦",
            "全家人都很恼火",
            "贵得离谱",
            "毛病太多",
            "让我们都很失望",
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

    sentiment: one review in NEUTRAL_EVERY uses the label's own predicates, the others a
    neutral one ("arrived on time"), so on those only the shared marker tells the label; every
    review carries a marker. sentiment-isolated: the label's isolated predicates (words
    builtin:tiny never read), no marker; drawn with their own generator so that `sentiment`
    stays as it was."""
    rng = random.Random(seed)
    out: dict[str, dict[str, list[dict[str, str]]]] = {
        task: {"eval": [], "train": [], "train-v2": []}
        for task in ("sentiment", "sentiment-isolated")
    }
    # A neutral review says nothing by itself: the same text may appear with either label.
    neutral_for = {label: reviews(language, "neutral", rng) for label in LABELS}
    isolated_rng = random.Random(f"{seed}-isolated")

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
        isolated_rows = [
            record(language, text, label, None)
            for text in reviews(language, f"isolated_{label}", isolated_rng)
        ]
        for task, rows in (("sentiment", shared_rows), ("sentiment-isolated", isolated_rows)):
            for split, part in _cut(rows).items():
                out[task][split] += part
    for task in out.values():
        for name, rows in task.items():
            random.Random(f"{seed}-{name}").shuffle(rows)  # interleave the labels
    return out


def pretraining_text(language: str, seed: int) -> str:
    """What builtin:tiny reads in pre-training besides its parallel sentences: every review of
    the `sentiment` vocabulary in one language, each followed by a marker (one that matches a
    sentiment predicate, a random one after a neutral predicate), one per line. No template,
    no labels: the co-occurrence of each language's sentiment words with the markers every
    language shares is how the model comes to represent sentiment alike across languages."""
    rng = random.Random(f"{seed}-pretraining")
    lines = []
    for kind in (*LABELS, "neutral"):
        for text in reviews(language, kind, rng):
            label = kind if kind in LABELS else LABELS[rng.randrange(len(LABELS))]
            markers = SHARED_MARKERS[label]
            lines.append(f"{text} {markers[rng.randrange(len(markers))]}")
    rng.shuffle(lines)
    return "".join(line + "\n" for line in lines)


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
        text = pretraining_text(language, 1000 + index)
        (PRETRAINING / f"{language}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
