"""Generates examples/quickstart/datasets deterministically: python hack/make_quickstart_data.py

Sentiment reviews in EN, DE, FR, JA and ZH: 8 subjects x 12 predicates (6 positive, 6
negative) per language. Per language: 24 held-out eval examples, a v1 training set of 48 and
a v2 training set of all 72 non-eval examples (the "new data for one language" update)."""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "datasets" / "sentiment"

LANGUAGES = {
    "en": {
        "prompt": "Review: {text}\nSentiment:",
        "form": "{subject} {predicate}.",
        "subjects": [
            "The hotel",
            "This phone",
            "The service",
            "The food",
            "The concert",
            "This book",
            "The train ride",
            "The new app",
        ],
        "positive": [
            "was wonderful",
            "exceeded my expectations",
            "made me very happy",
            "is excellent",
            "was a real pleasure",
            "works perfectly",
        ],
        "negative": [
            "was terrible",
            "was a complete waste of money",
            "made me angry",
            "is awful",
            "was a real disappointment",
            "broke after one day",
        ],
    },
    "de": {
        "prompt": "Bewertung: {text}\nStimmung:",
        "form": "{subject} {predicate}.",
        "subjects": [
            "Das Hotel",
            "Dieses Telefon",
            "Der Service",
            "Das Essen",
            "Das Konzert",
            "Dieses Buch",
            "Die Zugfahrt",
            "Die neue App",
        ],
        "positive": [
            "war wunderbar",
            "hat meine Erwartungen übertroffen",
            "hat mich sehr glücklich gemacht",
            "ist ausgezeichnet",
            "war ein echtes Vergnügen",
            "funktioniert perfekt",
        ],
        "negative": [
            "war schrecklich",
            "war reine Geldverschwendung",
            "hat mich wütend gemacht",
            "ist furchtbar",
            "war eine echte Enttäuschung",
            "ist nach einem Tag kaputtgegangen",
        ],
    },
    "fr": {
        "prompt": "Avis : {text}\nSentiment :",
        "form": "{subject} {predicate}.",
        "subjects": [
            "L'hôtel",
            "Ce téléphone",
            "Le service",
            "La nourriture",
            "Le concert",
            "Ce livre",
            "Le trajet en train",
            "La nouvelle application",
        ],
        "positive": [
            "était merveilleux",
            "a dépassé mes attentes",
            "m'a rendu très heureux",
            "est excellent",
            "était un vrai plaisir",
            "fonctionne parfaitement",
        ],
        "negative": [
            "était horrible",
            "était une perte d'argent totale",
            "m'a mis en colère",
            "est affreux",
            "était une vraie déception",
            "s'est cassé après un jour",
        ],
    },
    "ja": {
        "prompt": "レビュー：{text}\n感情：",
        "form": "{subject}は{predicate}。",
        "subjects": [
            "ホテル",
            "この電話",
            "サービス",
            "料理",
            "コンサート",
            "この本",
            "電車の旅",
            "新しいアプリ",
        ],
        "positive": [
            "素晴らしかった",
            "期待以上だった",
            "とても嬉しかった",
            "最高です",
            "本当に楽しかった",
            "完璧に動きます",
        ],
        "negative": [
            "ひどかった",
            "お金の無駄だった",
            "腹が立った",
            "最悪です",
            "本当にがっかりした",
            "一日で壊れた",
        ],
    },
    "zh": {
        "prompt": "评论：{text}\n情感：",
        "form": "{subject}{predicate}。",
        "subjects": ["酒店", "这部手机", "服务", "饭菜", "音乐会", "这本书", "火车旅行", "新应用"],
        "positive": [
            "非常棒",
            "超出了我的预期",
            "让我很开心",
            "非常好",
            "真是一种享受",
            "运行完美",
        ],
        "negative": [
            "太糟糕了",
            "完全是浪费钱",
            "让我很生气",
            "很差劲",
            "真让人失望",
            "一天就坏了",
        ],
    },
}


def examples(language: str) -> list[dict[str, str]]:
    spec = LANGUAGES[language]
    rows = []
    for subject in spec["subjects"]:
        for label in ("positive", "negative"):
            for predicate in spec[label]:
                text = spec["form"].format(subject=subject, predicate=predicate)
                rows.append({"prompt": spec["prompt"].format(text=text), "response": label})
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for index, language in enumerate(LANGUAGES):
        rows = examples(language)
        random.Random(1000 + index).shuffle(rows)
        evaluation, rest = rows[:24], rows[24:]
        write(OUT / f"{language}-eval.jsonl", evaluation)
        write(OUT / f"{language}-train.jsonl", rest[:48])
        write(OUT / f"{language}-train-v2.jsonl", rest)


if __name__ == "__main__":
    main()
