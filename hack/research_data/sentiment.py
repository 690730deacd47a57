"""Sentiment: short reviews, the label carried only by what the language's own words mean.

A review is a form ("{S} {p}, {c}.") filled with a subject of a domain, a predicate of that
domain (or a generic one) that says positive or negative, and a neutral context drawn
independently of the label. Forms are split: `train` forms never appear in eval, `eval`
forms never in training. No emoji, score, rating, digit or loan word; words shared between
languages (punctuation, kanji common to Japanese and Chinese) occur alike under both labels.

Placeholders: {S}/{s} the subject at / not at the start of a sentence, {p} the predicate,
{C}/{c} the context likewise. Subjects are written as at a sentence's start, contexts as
inside one."""

from __future__ import annotations

LABELS = ("positive", "negative")

LANGUAGES: dict[str, dict] = {
    "en": {
        "prompt": "Review: {text}\nSentiment:",
        "train_forms": ["{S} {p}.", "{C}, and {s} {p}.", "{S} {p}, {c}.", "Overall, {s} {p}."],
        "eval_forms": ["{C}. To be honest, {s} {p}.", "I must say that {s} {p}."],
        "contexts": [
            "we went there on a Saturday evening",
            "I bought it for my brother",
            "we stayed three nights in March",
            "it was my second time",
            "my friends recommended it",
            "I read about it in the newspaper",
            "we had booked it weeks before",
            "it was a birthday present",
        ],
        "domains": [
            {
                "subjects": ["The food", "The soup", "The dessert"],
                "positive": ["was delicious", "tasted fresh and full of flavour"],
                "negative": ["was cold and bland", "tasted stale"],
            },
            {
                "subjects": ["The room", "The hotel", "The bed"],
                "positive": ["was spotless and quiet", "felt cosy and welcoming"],
                "negative": ["was dirty and noisy", "smelled of smoke"],
            },
            {
                "subjects": ["The film", "The novel", "The story"],
                "positive": ["kept me gripped until the end", "moved me deeply"],
                "negative": ["bored me to tears", "dragged on without a point"],
            },
            {
                "subjects": ["The phone", "The headset", "The kettle"],
                "positive": ["works flawlessly", "is sturdy and easy to use"],
                "negative": ["stopped working after a week", "feels cheap and flimsy"],
            },
        ],
        "generic": {
            "positive": ["was a real delight", "left us very satisfied", "was worth every penny"],
            "negative": ["was a huge letdown", "left us very annoyed", "was a waste of money"],
        },
    },
    "de": {
        "prompt": "Rezension: {text}\nStimmung:",
        "train_forms": ["{S} {p}.", "{C}, und {s} {p}.", "{S} {p}, {c}.", "Kurz gesagt: {s} {p}."],
        "eval_forms": ["{C}. Ehrlich gesagt: {s} {p}.", "Ich muss sagen: {s} {p}."],
        "contexts": [
            "wir waren an einem Samstagabend dort",
            "ich habe es für meinen Bruder gekauft",
            "wir blieben drei Nächte im März",
            "es war mein zweiter Besuch",
            "Freunde hatten es uns empfohlen",
            "ich hatte in der Zeitung davon gelesen",
            "wir hatten Wochen vorher gebucht",
            "es war ein Geburtstagsgeschenk",
        ],
        "domains": [
            {
                "subjects": ["Das Essen", "Die Suppe", "Der Nachtisch"],
                "positive": ["war köstlich", "schmeckte frisch und würzig"],
                "negative": ["war kalt und geschmacklos", "schmeckte alt"],
            },
            {
                "subjects": ["Das Zimmer", "Das Hotel", "Das Bett"],
                "positive": ["war blitzsauber und ruhig", "wirkte gemütlich und einladend"],
                "negative": ["war schmutzig und laut", "roch nach Rauch"],
            },
            {
                "subjects": ["Der Film", "Der Roman", "Die Geschichte"],
                "positive": ["hat mich bis zum Schluss gefesselt", "hat mich tief berührt"],
                "negative": ["hat mich zu Tode gelangweilt", "zog sich ohne Sinn in die Länge"],
            },
            {
                "subjects": ["Das Handy", "Der Kopfhörer", "Der Wasserkocher"],
                "positive": ["funktioniert tadellos", "ist robust und leicht zu bedienen"],
                "negative": ["ging nach einer Woche kaputt", "wirkt billig und wackelig"],
            },
        ],
        "generic": {
            "positive": [
                "war eine echte Freude",
                "hat uns rundum zufrieden gemacht",
                "war jeden Cent wert",
            ],
            "negative": [
                "war eine große Enttäuschung",
                "hat uns sehr verärgert",
                "war rausgeworfenes Geld",
            ],
        },
    },
    "fr": {
        "prompt": "Avis : {text}\nSentiment :",
        "train_forms": ["{S} {p}.", "{C}, et {s} {p}.", "{S} {p}, {c}.", "Bref, {s} {p}."],
        "eval_forms": ["{C}. Franchement, {s} {p}.", "Je dois dire que {s} {p}."],
        "contexts": [
            "nous y sommes allés un samedi soir",
            "je l'ai acheté pour mon frère",
            "nous sommes restés trois nuits en mars",
            "c'était ma deuxième visite",
            "des amis nous l'avaient conseillé",
            "j'en avais entendu parler dans le journal",
            "nous avions réservé des semaines avant",
            "c'était un cadeau d'anniversaire",
        ],
        # Subjects of a domain share a gender, so its predicates agree with each.
        "domains": [
            {
                "subjects": ["Le plat", "Le potage", "Le dessert"],
                "positive": ["était succulent", "avait un goût frais et relevé"],
                "negative": ["était froid et fade", "avait un goût de rassis"],
            },
            {
                "subjects": ["La chambre", "La suite", "La literie"],
                "positive": ["était impeccable et calme", "était douillette et accueillante"],
                "negative": ["était sale et bruyante", "sentait le tabac froid"],
            },
            {
                "subjects": ["Le film", "Le roman", "Le récit"],
                "positive": ["m'a tenu en haleine jusqu'au bout", "m'a profondément ému"],
                "negative": ["m'a ennuyé à mourir", "traînait en longueur sans intérêt"],
            },
            {
                "subjects": ["Le téléphone", "Le casque", "Le grille-pain"],
                "positive": ["marche à merveille", "est solide et simple à utiliser"],
                "negative": ["est tombé en panne au bout d'une semaine", "fait camelote"],
            },
        ],
        "generic": {
            "positive": [
                "nous a ravis",
                "nous a laissés comblés",
                "valait largement son prix",
            ],
            "negative": [
                "nous a beaucoup déçus",
                "nous a mis en colère",
                "ne valait pas un sou",
            ],
        },
    },
    "ja": {
        "prompt": "レビュー：{text}\n評価：",
        "train_forms": [
            "{S}は{p}。",
            "{C}。{S}は{p}。",
            "{S}は{p}、{c}。",
            "まとめると、{s}は{p}。",
        ],
        "eval_forms": ["{C}が、正直に言うと{s}は{p}。", "一言で言えば、{s}は{p}。"],
        "contexts": [
            "土曜日の夜に行きました",
            "兄のために買いました",
            "三月に三泊しました",
            "二回目の利用でした",
            "友人にすすめられました",
            "新聞で知りました",
            "数週間前から予約していました",
            "誕生日のプレゼントでした",
        ],
        "domains": [
            {
                "subjects": ["料理", "スープ", "デザート"],
                "positive": ["とてもおいしかったです", "みずみずしくて味わい深かったです"],
                "negative": ["冷めていて味がしませんでした", "古くてまずかったです"],
            },
            {
                "subjects": ["部屋", "ホテル", "ベッド"],
                "positive": ["ぴかぴかで静かでした", "居心地がよくてくつろげました"],
                "negative": ["汚くてうるさかったです", "たばこくさかったです"],
            },
            {
                "subjects": ["映画", "小説", "物語"],
                "positive": ["最後まで夢中になれました", "胸がじんとしました"],
                "negative": ["退屈でたまりませんでした", "だらだらと長いだけでした"],
            },
            {
                "subjects": ["スマホ", "ヘッドホン", "電気ケトル"],
                "positive": ["まったく問題なく動きます", "丈夫で使いやすいです"],
                "negative": ["すぐに壊れました", "安っぽくてぐらぐらします"],
            },
        ],
        "generic": {
            "positive": ["本当に楽しめました", "とても満足できました", "払ったかいがありました"],
            "negative": ["本当にがっかりしました", "とても腹が立ちました", "お金のむだでした"],
        },
    },
    "zh": {
        "prompt": "评论：{text}\n情感：",
        "train_forms": ["{S}{p}。", "{C}，{s}{p}。", "{S}{p}，{c}。", "总的来说，{s}{p}。"],
        "eval_forms": ["说实话，{s}{p}。{C}。", "一句话，{s}{p}。"],
        "contexts": [
            "我们是周六晚上去的",
            "这是给我哥哥买的",
            "我们三月份住了三晚",
            "这是我第二次来",
            "是朋友推荐给我们的",
            "我是在报纸上看到的",
            "我们几周前就订好了",
            "这是一份生日礼物",
        ],
        "domains": [
            {
                "subjects": ["这道菜", "这碗汤", "这份甜点"],
                "positive": ["非常好吃", "鲜美可口"],
                "negative": ["又凉又淡", "闻着发馊"],
            },
            {
                "subjects": ["房间", "这家酒店", "床铺"],
                "positive": ["干净又安静", "温馨舒适"],
                "negative": ["又脏又吵", "烟臭扑鼻"],
            },
            {
                "subjects": ["这部电影", "这本小说", "这个故事"],
                "positive": ["让我一直看到结尾都舍不得放下", "让我感动不已"],
                "negative": ["让我闷得要命", "拖拖拉拉毫无意义"],
            },
            {
                "subjects": ["这部手机", "这副耳机", "这个水壶"],
                "positive": ["毫无毛病", "结实又顺手"],
                "negative": ["没几天就坏了", "做工粗糙摇摇晃晃"],
            },
        ],
        "generic": {
            "positive": ["真让人高兴", "让我们非常满意", "钱花得很值"],
            "negative": ["真让人扫兴", "让我们非常恼火", "纯属浪费钱"],
        },
    },
}
