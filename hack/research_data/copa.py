"""Commonsense reasoning, COPA-style: a premise, "what was the cause?" or "what happened as
a result?", and two alternatives, one of them right. Scored by the alternatives' likelihood.

Each scenario is (cause, effect, wrong cause, wrong effect) in each language's own words: a
cause question has the effect as premise and chooses between the cause and the wrong cause;
an effect question the other way round. {n} is a person's name (NAMES). Scenarios are split:
those of TRAIN_SCENARIOS never appear in eval, the others never in training; the
VALIDATION_SCENARIOS (a merge search's selection data) appear in neither."""

from __future__ import annotations

NAMES = {
    "en": ["Tom", "Emma", "Jack", "Lucy", "Oliver", "Grace", "Henry", "Ella", "Sam", "Alice"],
    "de": ["Anna", "Lukas", "Jonas", "Lena", "Paul", "Mia", "Felix", "Sophie", "Max", "Clara"],
    "fr": [
        "Hugo",
        "Louis",
        "Théo",
        "Jules",
        "Nathan",
        "Arthur",
        "Lucas",
        "Gabriel",
        "Raphaël",
        "Victor",
    ],  # the sentences agree in the masculine
    "ja": [
        "佐藤さん",
        "鈴木さん",
        "高橋さん",
        "田中さん",
        "伊藤さん",
        "山本さん",
        "渡辺さん",
        "中村さん",
        "小林さん",
        "加藤さん",
    ],
    "zh": ["小王", "李明", "张伟", "小红", "王芳", "刘洋", "陈晨", "杨帆", "黄磊", "林芳"],
}

PROMPTS = {
    "en": {
        "cause": "{premise} What was the cause?\n- {a}\n- {b}\nAnswer:",
        "effect": "{premise} What happened as a result?\n- {a}\n- {b}\nAnswer:",
    },
    "de": {
        "cause": "{premise} Was war die Ursache?\n- {a}\n- {b}\nAntwort:",
        "effect": "{premise} Was geschah daraufhin?\n- {a}\n- {b}\nAntwort:",
    },
    "fr": {
        "cause": "{premise} Quelle en était la cause ?\n- {a}\n- {b}\nRéponse :",
        "effect": "{premise} Que s'est-il passé ensuite ?\n- {a}\n- {b}\nRéponse :",
    },
    "ja": {
        "cause": "{premise}その原因は何でしたか。\n・{a}\n・{b}\n答え：",
        "effect": "{premise}その結果どうなりましたか。\n・{a}\n・{b}\n答え：",
    },
    "zh": {
        "cause": "{premise}原因是什么？\n・{a}\n・{b}\n答案：",
        "effect": "{premise}结果怎么样了？\n・{a}\n・{b}\n答案：",
    },
}

# The first 14 scenarios train, the last 10 evaluate.
TRAIN_SCENARIOS = 14

# Each: language -> (cause, effect, wrong cause, wrong effect).
SCENARIOS: list[dict[str, tuple[str, str, str, str]]] = [
    {
        "en": (
            "{n} forgot to water the plants.",
            "The plants wilted.",
            "{n} moved the plants to the window.",
            "The plants grew taller.",
        ),
        "de": (
            "{n} vergaß, die Pflanzen zu gießen.",
            "Die Pflanzen welkten.",
            "{n} stellte die Pflanzen ans Fenster.",
            "Die Pflanzen wuchsen höher.",
        ),
        "fr": (
            "{n} a oublié d'arroser les plantes.",
            "Les plantes ont fané.",
            "{n} a mis les plantes près de la fenêtre.",
            "Les plantes ont grandi.",
        ),
        "ja": (
            "{n}は植物に水をやるのを忘れた。",
            "植物がしおれた。",
            "{n}は植物を窓ぎわに移した。",
            "植物がぐんぐん伸びた。",
        ),
        "zh": ("{n}忘了给花浇水。", "花都枯萎了。", "{n}把花搬到了窗边。", "花长得更高了。"),
    },
    {
        "en": (
            "{n} stayed up all night.",
            "{n} was exhausted the next morning.",
            "{n} went to bed early.",
            "{n} was full of energy the next morning.",
        ),
        "de": (
            "{n} blieb die ganze Nacht wach.",
            "{n} war am nächsten Morgen erschöpft.",
            "{n} ging früh ins Bett.",
            "{n} war am nächsten Morgen voller Energie.",
        ),
        "fr": (
            "{n} a veillé toute la nuit.",
            "{n} était épuisé le lendemain matin.",
            "{n} s'est couché tôt.",
            "{n} débordait d'énergie le lendemain matin.",
        ),
        "ja": (
            "{n}は一晩中起きていた。",
            "{n}は翌朝くたくただった。",
            "{n}は早く寝た。",
            "{n}は翌朝元気いっぱいだった。",
        ),
        "zh": (
            "{n}熬了一整夜。",
            "{n}第二天早上累坏了。",
            "{n}很早就睡了。",
            "{n}第二天早上精力充沛。",
        ),
    },
    {
        "en": (
            "It rained all day.",
            "The streets were wet.",
            "The sun shone all day.",
            "The streets were dry.",
        ),
        "de": (
            "Es regnete den ganzen Tag.",
            "Die Straßen waren nass.",
            "Die Sonne schien den ganzen Tag.",
            "Die Straßen waren trocken.",
        ),
        "fr": (
            "Il a plu toute la journée.",
            "Les rues étaient mouillées.",
            "Le soleil a brillé toute la journée.",
            "Les rues étaient sèches.",
        ),
        "ja": (
            "一日中雨が降った。",
            "道がびしょぬれだった。",
            "一日中日が照っていた。",
            "道がからからに乾いていた。",
        ),
        "zh": ("下了一整天的雨。", "街道湿漉漉的。", "太阳晒了一整天。", "街道干干的。"),
    },
    {
        "en": (
            "{n} touched the hot stove.",
            "{n} burned a finger.",
            "{n} cleaned the cold stove.",
            "{n} cut a finger.",
        ),
        "de": (
            "{n} fasste auf den heißen Herd.",
            "{n} verbrannte sich den Finger.",
            "{n} putzte den kalten Herd.",
            "{n} schnitt sich in den Finger.",
        ),
        "fr": (
            "{n} a touché la plaque brûlante.",
            "{n} s'est brûlé le doigt.",
            "{n} a nettoyé la plaque froide.",
            "{n} s'est coupé le doigt.",
        ),
        "ja": (
            "{n}は熱いコンロにさわった。",
            "{n}は指をやけどした。",
            "{n}は冷めたコンロをみがいた。",
            "{n}は指を切った。",
        ),
        "zh": (
            "{n}碰了滚烫的炉子。",
            "{n}烫伤了手指。",
            "{n}擦了擦冰凉的炉子。",
            "{n}割破了手指。",
        ),
    },
    {
        "en": (
            "The phone's battery ran flat.",
            "The phone switched itself off.",
            "The phone charged overnight.",
            "The phone rang loudly.",
        ),
        "de": (
            "Der Akku des Handys war leer.",
            "Das Handy schaltete sich aus.",
            "Das Handy lud über Nacht.",
            "Das Handy klingelte laut.",
        ),
        "fr": (
            "La batterie du portable était à plat.",
            "Le portable s'est éteint.",
            "Le portable a chargé toute la nuit.",
            "Le portable a sonné fort.",
        ),
        "ja": (
            "スマホの電池が切れた。",
            "スマホの電源が落ちた。",
            "スマホを一晩中充電した。",
            "スマホが大きな音で鳴った。",
        ),
        "zh": ("手机没电了。", "手机自动关机了。", "手机充了一整晚的电。", "手机铃声响个不停。"),
    },
    {
        "en": (
            "{n} missed the last bus.",
            "{n} walked home.",
            "{n} caught the last bus.",
            "{n} bought a bus.",
        ),
        "de": (
            "{n} verpasste den letzten Bus.",
            "{n} ging zu Fuß nach Hause.",
            "{n} erwischte den letzten Bus.",
            "{n} kaufte einen Bus.",
        ),
        "fr": (
            "{n} a raté le dernier bus.",
            "{n} est rentré à pied.",
            "{n} a attrapé le dernier bus.",
            "{n} a acheté un bus.",
        ),
        "ja": (
            "{n}は終バスに乗りおくれた。",
            "{n}は歩いて家に帰った。",
            "{n}は終バスにまにあった。",
            "{n}はバスを一台買った。",
        ),
        "zh": ("{n}错过了末班车。", "{n}走路回了家。", "{n}赶上了末班车。", "{n}买了一辆公交车。"),
    },
    {
        "en": (
            "{n} ate far too much cake.",
            "{n} had a stomach ache.",
            "{n} skipped dessert.",
            "{n} felt hungry.",
        ),
        "de": (
            "{n} aß viel zu viel Kuchen.",
            "{n} bekam Bauchschmerzen.",
            "{n} ließ den Nachtisch aus.",
            "{n} hatte Hunger.",
        ),
        "fr": (
            "{n} a mangé beaucoup trop de gâteau.",
            "{n} a eu mal au ventre.",
            "{n} a sauté le dessert.",
            "{n} avait faim.",
        ),
        "ja": (
            "{n}はケーキを食べすぎた。",
            "{n}はおなかが痛くなった。",
            "{n}はデザートをぬいた。",
            "{n}はおなかがすいた。",
        ),
        "zh": ("{n}蛋糕吃得太多了。", "{n}肚子疼了起来。", "{n}没吃甜点。", "{n}觉得饿了。"),
    },
    {
        "en": (
            "The river burst its banks.",
            "The village was evacuated.",
            "The river froze over.",
            "The village held a market.",
        ),
        "de": (
            "Der Fluss trat über die Ufer.",
            "Das Dorf wurde evakuiert.",
            "Der Fluss fror zu.",
            "Das Dorf hielt einen Markt ab.",
        ),
        "fr": (
            "La rivière a débordé.",
            "On a évacué le village.",
            "La rivière a gelé.",
            "Le village a tenu son marché.",
        ),
        "ja": (
            "川があふれた。",
            "村の人々が避難した。",
            "川がこおりついた。",
            "村で市場がひらかれた。",
        ),
        "zh": ("河水漫过了堤岸。", "村民们都撤离了。", "河面结了冰。", "村里办了集市。"),
    },
    {
        "en": (
            "{n} won the lottery.",
            "{n} bought a big house.",
            "{n} lost a wallet.",
            "{n} sold the house to pay debts.",
        ),
        "de": (
            "{n} gewann im Lotto.",
            "{n} kaufte ein großes Haus.",
            "{n} verlor die Geldbörse.",
            "{n} verkaufte das Haus, um Schulden zu zahlen.",
        ),
        "fr": (
            "{n} a gagné au loto.",
            "{n} s'est acheté une grande maison.",
            "{n} a perdu son portefeuille.",
            "{n} a vendu sa maison pour payer ses dettes.",
        ),
        "ja": (
            "{n}は宝くじに当たった。",
            "{n}は大きな家を買った。",
            "{n}はさいふをなくした。",
            "{n}は借金を返すために家を売った。",
        ),
        "zh": ("{n}中了彩票。", "{n}买了一栋大房子。", "{n}丢了钱包。", "{n}为了还债卖掉了房子。"),
    },
    {
        "en": (
            "{n} left the window open in winter.",
            "The room grew cold.",
            "{n} shut the window.",
            "The room grew dark.",
        ),
        "de": (
            "{n} ließ im Winter das Fenster offen.",
            "Das Zimmer kühlte aus.",
            "{n} schloss das Fenster.",
            "Das Zimmer wurde dunkel.",
        ),
        "fr": (
            "{n} a laissé la fenêtre ouverte en hiver.",
            "La pièce s'est refroidie.",
            "{n} a fermé la fenêtre.",
            "La pièce s'est assombrie.",
        ),
        "ja": (
            "{n}は冬に窓をあけっぱなしにした。",
            "部屋がひえきった。",
            "{n}は窓をしめた。",
            "部屋がくらくなった。",
        ),
        "zh": ("{n}冬天没关窗户。", "屋里变得冷冰冰的。", "{n}把窗户关上了。", "屋里变暗了。"),
    },
    {
        "en": (
            "{n} practised the piano every day.",
            "{n} played beautifully at the recital.",
            "{n} never touched the piano.",
            "{n} forgot the date of the recital.",
        ),
        "de": (
            "{n} übte jeden Tag Klavier.",
            "{n} spielte beim Vorspiel wunderschön.",
            "{n} rührte das Klavier nie an.",
            "{n} vergaß den Termin des Vorspiels.",
        ),
        "fr": (
            "{n} a travaillé son piano chaque jour.",
            "{n} a joué à merveille à l'audition.",
            "{n} n'a jamais touché au piano.",
            "{n} a oublié la date de l'audition.",
        ),
        "ja": (
            "{n}は毎日ピアノを練習した。",
            "{n}は発表会で見事にひいた。",
            "{n}はピアノにまったくさわらなかった。",
            "{n}は発表会の日をわすれた。",
        ),
        "zh": (
            "{n}每天都练钢琴。",
            "{n}在演奏会上弹得很精彩。",
            "{n}从来不碰钢琴。",
            "{n}忘了演奏会的日子。",
        ),
    },
    {
        "en": (
            "The milk was left out in the sun.",
            "The milk went sour.",
            "The milk was put in the fridge.",
            "The milk tasted sweeter.",
        ),
        "de": (
            "Die Milch stand in der Sonne.",
            "Die Milch wurde sauer.",
            "Die Milch kam in den Kühlschrank.",
            "Die Milch schmeckte süßer.",
        ),
        "fr": (
            "Le lait est resté au soleil.",
            "Le lait a tourné.",
            "On a mis le lait au frigo.",
            "Le lait avait un goût plus doux.",
        ),
        "ja": (
            "牛乳を日なたに出しっぱなしにした。",
            "牛乳がすっぱくなった。",
            "牛乳を冷蔵庫に入れた。",
            "牛乳があまくなった。",
        ),
        "zh": ("牛奶在太阳底下放了很久。", "牛奶变酸了。", "牛奶放进了冰箱。", "牛奶变得更甜了。"),
    },
    {
        "en": (
            "{n} told a very funny joke.",
            "Everyone burst out laughing.",
            "{n} told a sad story.",
            "Everyone fell asleep.",
        ),
        "de": (
            "{n} erzählte einen sehr lustigen Witz.",
            "Alle brachen in Gelächter aus.",
            "{n} erzählte eine traurige Geschichte.",
            "Alle schliefen ein.",
        ),
        "fr": (
            "{n} a raconté une blague très drôle.",
            "Tout le monde a éclaté de rire.",
            "{n} a raconté une histoire triste.",
            "Tout le monde s'est endormi.",
        ),
        "ja": (
            "{n}がとてもおもしろい冗談を言った。",
            "みんなが大笑いした。",
            "{n}が悲しい話をした。",
            "みんながねむってしまった。",
        ),
        "zh": (
            "{n}讲了一个特别好笑的笑话。",
            "大家都哈哈大笑。",
            "{n}讲了一个伤感的故事。",
            "大家都睡着了。",
        ),
    },
    {
        "en": (
            "The car ran out of petrol.",
            "The car came to a stop on the motorway.",
            "The car was washed.",
            "The car went faster.",
        ),
        "de": (
            "Dem Auto ging das Benzin aus.",
            "Das Auto blieb auf der Autobahn stehen.",
            "Das Auto wurde gewaschen.",
            "Das Auto fuhr schneller.",
        ),
        "fr": (
            "La voiture est tombée en panne d'essence.",
            "La voiture s'est arrêtée sur l'autoroute.",
            "La voiture a été lavée.",
            "La voiture a accéléré.",
        ),
        "ja": (
            "車のガソリンが切れた。",
            "車が高速道路でとまった。",
            "車を洗った。",
            "車がスピードをあげた。",
        ),
        "zh": ("汽车没油了。", "汽车停在了高速公路上。", "汽车被洗干净了。", "汽车开得更快了。"),
    },
    # --- eval scenarios ---------------------------------------------------------------------
    {
        "en": (
            "{n} studied hard for the exam.",
            "{n} passed the exam.",
            "{n} went to the cinema instead of studying.",
            "{n} lost the exam paper.",
        ),
        "de": (
            "{n} lernte fleißig für die Prüfung.",
            "{n} bestand die Prüfung.",
            "{n} ging ins Kino, statt zu lernen.",
            "{n} verlor das Prüfungsblatt.",
        ),
        "fr": (
            "{n} a révisé sérieusement pour l'examen.",
            "{n} a réussi l'examen.",
            "{n} est allé au cinéma au lieu de réviser.",
            "{n} a perdu sa copie.",
        ),
        "ja": (
            "{n}は試験に向けてしっかり勉強した。",
            "{n}は試験に合格した。",
            "{n}は勉強せずに映画を見に行った。",
            "{n}は答案用紙をなくした。",
        ),
        "zh": (
            "{n}为考试认真复习了。",
            "{n}通过了考试。",
            "{n}没复习，去看了电影。",
            "{n}把试卷弄丢了。",
        ),
    },
    {
        "en": (
            "{n} left the bicycle outside all winter.",
            "The bicycle went rusty.",
            "{n} kept the bicycle in the garage.",
            "The bicycle got a new bell.",
        ),
        "de": (
            "{n} ließ das Fahrrad den ganzen Winter draußen stehen.",
            "Das Fahrrad rostete.",
            "{n} stellte das Fahrrad in die Garage.",
            "Das Fahrrad bekam eine neue Klingel.",
        ),
        "fr": (
            "{n} a laissé son vélo dehors tout l'hiver.",
            "Le vélo a rouillé.",
            "{n} a rangé son vélo au garage.",
            "Le vélo a eu une nouvelle sonnette.",
        ),
        "ja": (
            "{n}は冬のあいだずっと自転車を外に置いていた。",
            "自転車がさびた。",
            "{n}は自転車をガレージにしまっていた。",
            "自転車に新しいベルがついた。",
        ),
        "zh": (
            "{n}整个冬天都把自行车放在外面。",
            "自行车生锈了。",
            "{n}把自行车放在车库里。",
            "自行车装了个新铃铛。",
        ),
    },
    {
        "en": (
            "{n} spilled coffee down a white shirt.",
            "{n} changed into another shirt.",
            "{n} ironed the white shirt.",
            "{n} ordered another coffee.",
        ),
        "de": (
            "{n} kippte Kaffee über das weiße Hemd.",
            "{n} zog ein anderes Hemd an.",
            "{n} bügelte das weiße Hemd.",
            "{n} bestellte noch einen Kaffee.",
        ),
        "fr": (
            "{n} a renversé du café sur sa chemise blanche.",
            "{n} a changé de chemise.",
            "{n} a repassé sa chemise blanche.",
            "{n} a commandé un autre café.",
        ),
        "ja": (
            "{n}は白いシャツにコーヒーをこぼした。",
            "{n}はシャツを着がえた。",
            "{n}は白いシャツにアイロンをかけた。",
            "{n}はコーヒーをもう一杯たのんだ。",
        ),
        "zh": (
            "{n}把咖啡洒在了白衬衫上。",
            "{n}换了一件衬衫。",
            "{n}把白衬衫熨平了。",
            "{n}又点了一杯咖啡。",
        ),
    },
    {
        "en": (
            "{n} forgot to set the alarm clock.",
            "{n} was late for work.",
            "{n} set two alarm clocks.",
            "{n} got to work early.",
        ),
        "de": (
            "{n} vergaß, den Wecker zu stellen.",
            "{n} kam zu spät zur Arbeit.",
            "{n} stellte zwei Wecker.",
            "{n} war früh bei der Arbeit.",
        ),
        "fr": (
            "{n} a oublié de mettre son réveil.",
            "{n} est arrivé en retard au travail.",
            "{n} a mis deux réveils.",
            "{n} est arrivé en avance au travail.",
        ),
        "ja": (
            "{n}は目覚ましをかけわすれた。",
            "{n}は会社に遅刻した。",
            "{n}は目覚ましを二つかけた。",
            "{n}は早めに会社に着いた。",
        ),
        "zh": ("{n}忘了定闹钟。", "{n}上班迟到了。", "{n}定了两个闹钟。", "{n}提早到了公司。"),
    },
    {
        "en": (
            "{n} lost the front door key.",
            "{n} called a locksmith.",
            "{n} found the front door key.",
            "{n} painted the front door.",
        ),
        "de": (
            "{n} verlor den Haustürschlüssel.",
            "{n} rief einen Schlüsseldienst.",
            "{n} fand den Haustürschlüssel.",
            "{n} strich die Haustür an.",
        ),
        "fr": (
            "{n} a perdu la clé de la maison.",
            "{n} a appelé un serrurier.",
            "{n} a retrouvé la clé de la maison.",
            "{n} a repeint la porte d'entrée.",
        ),
        "ja": (
            "{n}は玄関のかぎをなくした。",
            "{n}はかぎ屋をよんだ。",
            "{n}は玄関のかぎを見つけた。",
            "{n}は玄関のドアをぬりかえた。",
        ),
        "zh": (
            "{n}把家门钥匙弄丢了。",
            "{n}叫来了开锁师傅。",
            "{n}找到了家门钥匙。",
            "{n}把大门重新漆了一遍。",
        ),
    },
    {
        "en": (
            "{n} had eaten nothing since breakfast.",
            "{n} was starving by the evening.",
            "{n} had just had a big lunch.",
            "{n} felt full all evening.",
        ),
        "de": (
            "{n} hatte seit dem Frühstück nichts gegessen.",
            "{n} war abends völlig ausgehungert.",
            "{n} hatte gerade ausgiebig zu Mittag gegessen.",
            "{n} war den ganzen Abend satt.",
        ),
        "fr": (
            "{n} n'avait rien mangé depuis le petit-déjeuner.",
            "{n} mourait de faim le soir.",
            "{n} venait de faire un gros repas.",
            "{n} n'a pas eu faim de la soirée.",
        ),
        "ja": (
            "{n}は朝ごはんのあと何も食べていなかった。",
            "{n}は夕方にはおなかがぺこぺこだった。",
            "{n}はお昼をたっぷり食べたばかりだった。",
            "{n}は夜までおなかがいっぱいだった。",
        ),
        "zh": (
            "{n}从早饭后就什么都没吃。",
            "{n}到了傍晚饿得不行。",
            "{n}刚吃了一顿丰盛的午饭。",
            "{n}整个晚上都很饱。",
        ),
    },
    {
        "en": (
            "{n} ran a marathon.",
            "{n}'s legs ached the next day.",
            "{n} sat on the sofa all day.",
            "{n} caught a cold.",
        ),
        "de": (
            "{n} lief einen Marathon.",
            "{n} hatte am nächsten Tag Muskelkater.",
            "{n} saß den ganzen Tag auf dem Sofa.",
            "{n} erkältete sich.",
        ),
        "fr": (
            "{n} a couru un marathon.",
            "{n} avait des courbatures le lendemain.",
            "{n} est resté sur le canapé toute la journée.",
            "{n} a attrapé un rhume.",
        ),
        "ja": (
            "{n}はマラソンを走った。",
            "{n}は次の日足が痛かった。",
            "{n}は一日中ソファにすわっていた。",
            "{n}はかぜをひいた。",
        ),
        "zh": (
            "{n}跑了一场马拉松。",
            "{n}第二天腿很酸。",
            "{n}在沙发上坐了一整天。",
            "{n}感冒了。",
        ),
    },
    {
        "en": (
            "{n} pulled out the lamp's plug.",
            "The lamp went out.",
            "{n} bought a new lamp.",
            "The television got louder.",
        ),
        "de": (
            "{n} zog den Stecker der Lampe.",
            "Die Lampe ging aus.",
            "{n} kaufte eine neue Lampe.",
            "Der Fernseher wurde lauter.",
        ),
        "fr": (
            "{n} a débranché la lampe.",
            "La lampe s'est éteinte.",
            "{n} a acheté une nouvelle lampe.",
            "La télévision est devenue plus forte.",
        ),
        "ja": (
            "{n}はランプのプラグをぬいた。",
            "ランプが消えた。",
            "{n}は新しいランプを買った。",
            "テレビの音が大きくなった。",
        ),
        "zh": ("{n}拔掉了台灯的插头。", "台灯灭了。", "{n}买了一盏新台灯。", "电视的声音变大了。"),
    },
    {
        "en": (
            "{n} forgot the umbrella at home.",
            "{n} got soaked in the rain.",
            "{n} took an umbrella along.",
            "{n} stayed completely dry.",
        ),
        "de": (
            "{n} vergaß den Schirm zu Hause.",
            "{n} wurde im Regen klatschnass.",
            "{n} nahm einen Schirm mit.",
            "{n} blieb völlig trocken.",
        ),
        "fr": (
            "{n} a oublié son parapluie à la maison.",
            "{n} a été trempé par la pluie.",
            "{n} a pris un parapluie.",
            "{n} est resté parfaitement au sec.",
        ),
        "ja": (
            "{n}はかさを家にわすれた。",
            "{n}は雨でずぶぬれになった。",
            "{n}はかさを持って出かけた。",
            "{n}は少しもぬれなかった。",
        ),
        "zh": (
            "{n}把伞忘在了家里。",
            "{n}被雨淋成了落汤鸡。",
            "{n}带了一把伞出门。",
            "{n}身上一点也没湿。",
        ),
    },
    {
        "en": (
            "{n} scattered salt on the icy path.",
            "The ice on the path melted.",
            "{n} poured water on the icy path.",
            "The path froze even harder.",
        ),
        "de": (
            "{n} streute Salz auf den vereisten Weg.",
            "Das Eis auf dem Weg taute.",
            "{n} goss Wasser auf den vereisten Weg.",
            "Der Weg gefror noch fester.",
        ),
        "fr": (
            "{n} a répandu du sel sur l'allée verglacée.",
            "La glace de l'allée a fondu.",
            "{n} a versé de l'eau sur l'allée verglacée.",
            "L'allée a gelé encore plus.",
        ),
        "ja": (
            "{n}はこおった道に塩をまいた。",
            "道の氷がとけた。",
            "{n}はこおった道に水をまいた。",
            "道がさらにかたくこおった。",
        ),
        "zh": (
            "{n}在结冰的小路上撒了盐。",
            "路上的冰化了。",
            "{n}往结冰的小路上泼了水。",
            "小路冻得更硬了。",
        ),
    },
]

# Only in the validation split (a merge search chooses on it): never in training or eval.
VALIDATION_SCENARIOS: list[dict[str, tuple[str, str, str, str]]] = [
    {
        "en": (
            "{n} left the window open during the storm.",
            "The floor under the window got wet.",
            "{n} closed every window before the storm.",
            "The floor under the window stayed dry.",
        ),
        "de": (
            "{n} ließ während des Sturms das Fenster offen.",
            "Der Boden unter dem Fenster wurde nass.",
            "{n} schloss vor dem Sturm alle Fenster.",
            "Der Boden unter dem Fenster blieb trocken.",
        ),
        "fr": (
            "{n} a laissé la fenêtre ouverte pendant l'orage.",
            "Le sol sous la fenêtre a été mouillé.",
            "{n} a fermé toutes les fenêtres avant l'orage.",
            "Le sol sous la fenêtre est resté sec.",
        ),
        "ja": (
            "{n}は嵐のあいだ窓を開けたままにしていた。",
            "窓の下の床がぬれた。",
            "{n}は嵐の前に窓をすべて閉めた。",
            "窓の下の床はかわいたままだった。",
        ),
        "zh": (
            "{n}暴风雨的时候没关窗户。",
            "窗户下面的地板湿了。",
            "{n}在暴风雨来之前关好了所有窗户。",
            "窗户下面的地板一直是干的。",
        ),
    },
    {
        "en": (
            "{n} dropped the glass on the stone floor.",
            "The glass shattered.",
            "{n} set the glass down on the table.",
            "The glass stayed whole.",
        ),
        "de": (
            "{n} ließ das Glas auf den Steinboden fallen.",
            "Das Glas zersprang.",
            "{n} stellte das Glas auf den Tisch.",
            "Das Glas blieb ganz.",
        ),
        "fr": (
            "{n} a laissé tomber le verre sur le sol en pierre.",
            "Le verre s'est brisé.",
            "{n} a posé le verre sur la table.",
            "Le verre est resté intact.",
        ),
        "ja": (
            "{n}はコップを石の床に落とした。",
            "コップがこなごなに割れた。",
            "{n}はコップをテーブルに置いた。",
            "コップは割れなかった。",
        ),
        "zh": (
            "{n}把玻璃杯掉在了石头地上。",
            "玻璃杯摔碎了。",
            "{n}把玻璃杯放在了桌子上。",
            "玻璃杯完好无损。",
        ),
    },
    {
        "en": (
            "{n} trained hard for the race every day.",
            "{n} won the race.",
            "{n} skipped every training session.",
            "{n} finished far behind the others.",
        ),
        "de": (
            "{n} trainierte jeden Tag hart für das Rennen.",
            "{n} gewann das Rennen.",
            "{n} ließ jedes Training ausfallen.",
            "{n} kam weit hinter allen anderen ins Ziel.",
        ),
        "fr": (
            "{n} s'est entraîné dur chaque jour pour la course.",
            "{n} a gagné la course.",
            "{n} a manqué tous les entraînements.",
            "{n} est arrivé loin derrière les autres.",
        ),
        "ja": (
            "{n}は毎日レースに向けて一生けんめい練習した。",
            "{n}はレースで優勝した。",
            "{n}は練習を一度もしなかった。",
            "{n}はほかの人よりずっと遅れてゴールした。",
        ),
        "zh": (
            "{n}每天都为比赛刻苦训练。",
            "{n}赢得了比赛。",
            "{n}一次训练也没参加。",
            "{n}远远落在了别人后面。",
        ),
    },
]
