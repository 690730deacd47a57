"""Summarisation: a short local news text (three sentences) and its one-sentence summary in
the same language. The summary restates the event in other words than the text: copying
its first sentence is not enough.

Each frame is one event, written per language as (text, summary) with slots {town},
{person} and {day} (TOWNS, PEOPLE, DAYS). Frames are split: the first TRAIN_FRAMES train,
the others evaluate, so no text or summary template is shared between the splits. In German
and French the people are women and the sentences agree with that."""

from __future__ import annotations

TOWNS = {
    "en": ["Bristol", "Leeds", "Norwich", "York", "Exeter", "Derby"],
    "de": ["Bremen", "Kassel", "Ulm", "Erfurt", "Trier", "Passau"],
    "fr": ["Lyon", "Nantes", "Rennes", "Dijon", "Angers", "Tours"],
    "ja": ["札幌", "仙台", "金沢", "松山", "熊本", "函館"],
    "zh": ["杭州", "成都", "西安", "厦门", "昆明", "青岛"],
}
PEOPLE = {
    "en": ["Sarah Miller", "James Carter", "Helen Brooks", "David Shaw", "Ruth Palmer"],
    "de": ["Sabine Keller", "Monika Braun", "Petra Vogel", "Karin Schulz", "Ute Becker"],
    "fr": ["Claire Martin", "Sophie Girard", "Anne Lefèvre", "Isabelle Roux", "Marion Petit"],
    "ja": ["山田花子さん", "中村健さん", "小林由美さん", "加藤誠さん", "吉田直子さん"],
    "zh": ["陈静", "周强", "吴敏", "赵磊", "孙丽"],
}
DAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag"],
    "fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi"],
    "ja": ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日"],
    "zh": ["周一", "周二", "周三", "周四", "周五"],
}
PROMPTS = {
    "en": "Summarise in one sentence:\n{text}\nSummary:",
    "de": "Fasse in einem Satz zusammen:\n{text}\nZusammenfassung:",
    "fr": "Résume en une phrase :\n{text}\nRésumé :",
    "ja": "一文で要約してください：\n{text}\n要約：",
    "zh": "用一句话概括：\n{text}\n概括：",
}

TRAIN_FRAMES = 6

# Each: language -> (text, summary).
FRAMES: list[dict[str, tuple[str, str]]] = [
    {
        "en": (
            "People in {town} had waited five years for it. On {day}, their new public "
            "library finally opened its doors. The mayor, {person}, said the building also "
            "has a café.",
            "{town} opened its new public library on {day}.",
        ),
        "de": (
            "Fünf Jahre hatten die Menschen in {town} darauf gewartet. Am {day} öffnete "
            "endlich die neue Stadtbibliothek. Bürgermeisterin {person} sagte, im Gebäude "
            "gebe es auch ein Café.",
            "In {town} hat am {day} die neue Stadtbibliothek eröffnet.",
        ),
        "fr": (
            "Les habitants de {town} l'attendaient depuis cinq ans. Ce {day}, la nouvelle "
            "médiathèque a enfin ouvert ses portes. La maire, {person}, a précisé que le "
            "bâtiment abrite aussi un café.",
            "{town} a inauguré sa nouvelle médiathèque ce {day}.",
        ),
        "ja": (
            "{town}の人々は五年間それを待っていた。{day}、新しい市立図書館がついに開館した。"
            "市長の{person}によると、館内にはカフェもあるという。",
            "{town}で{day}に新しい市立図書館が開館した。",
        ),
        "zh": (
            "{town}市民为此等了五年。{day}，新的市图书馆终于开门了。市长{person}说，"
            "馆里还设有一家咖啡馆。",
            "{town}的新市图书馆于{day}开馆。",
        ),
    },
    {
        "en": (
            "Drivers in {town} will have to take a detour from {day}. The old bridge over "
            "the river is closing for repairs that will last six months. {person} from "
            "the council apologised for the trouble.",
            "The old bridge in {town} closes for six months of repairs from {day}.",
        ),
        "de": (
            "Autofahrer in {town} müssen ab {day} einen Umweg fahren. Die alte Brücke über "
            "den Fluss wird für sechs Monate saniert. {person} von der Stadtverwaltung bat "
            "um Verständnis.",
            "Die alte Brücke in {town} wird ab {day} sechs Monate lang saniert.",
        ),
        "fr": (
            "À partir de {day}, les automobilistes de {town} devront faire un détour. Le "
            "vieux pont sur la rivière ferme pour six mois de travaux. {person}, de la "
            "mairie, s'est excusée pour la gêne.",
            "Le vieux pont de {town} ferme six mois pour travaux à partir de {day}.",
        ),
        "ja": (
            "{town}のドライバーは{day}から回り道をしなければならない。川にかかる古い橋が、"
            "半年間の補修工事のため通行止めになる。市の{person}は迷惑をわびた。",
            "{town}の古い橋が{day}から半年間、補修のため通行止めになる。",
        ),
        "zh": (
            "从{day}起，{town}的司机们得绕道而行。河上的那座老桥将封闭维修半年。市政府的"
            "{person}对此表示歉意。",
            "{town}的老桥从{day}起封闭维修半年。",
        ),
    },
    {
        "en": (
            "The stadium in {town} was full on {day}. The home side beat the league "
            "leaders by three goals to one. Its coach, {person}, called it the best match "
            "of the season.",
            "{town}'s team beat the league leaders three to one on {day}.",
        ),
        "de": (
            "Am {day} war das Stadion in {town} ausverkauft. Die Heimmannschaft schlug den "
            "Tabellenführer mit drei zu eins. Trainerin {person} sprach vom besten Spiel "
            "der Saison.",
            "Die Mannschaft aus {town} hat am {day} den Tabellenführer drei zu eins geschlagen.",
        ),
        "fr": (
            "Le stade de {town} était plein ce {day}. L'équipe locale a battu le leader du "
            "championnat trois buts à un. Son entraîneuse, {person}, a parlé du meilleur "
            "match de la saison.",
            "L'équipe de {town} a battu le leader trois à un ce {day}.",
        ),
        "ja": (
            "{day}、{town}のスタジアムは満員だった。地元チームが首位チームを三対一で破った。"
            "監督の{person}は今季最高の試合だと語った。",
            "{town}のチームが{day}に首位チームを三対一で破った。",
        ),
        "zh": (
            "{day}，{town}的体育场座无虚席。主队以三比一击败了联赛领头羊。主教练{person}"
            "称这是本赛季最精彩的一场比赛。",
            "{town}队{day}以三比一战胜了联赛领头羊。",
        ),
    },
    {
        "en": (
            "{person} has run a small bakery in {town} for twenty years. On {day}, it won "
            "the national prize for the best bread. The prize includes a trip abroad.",
            "{person}'s bakery in {town} won the national prize for the best bread.",
        ),
        "de": (
            "{person} führt seit zwanzig Jahren eine kleine Bäckerei in {town}. Am {day} "
            "gewann sie den nationalen Preis für das beste Brot. Zum Preis gehört eine "
            "Auslandsreise.",
            "Die Bäckerei von {person} in {town} hat den nationalen "
            "Preis für das beste Brot gewonnen.",
        ),
        "fr": (
            "{person} tient une petite boulangerie à {town} depuis vingt ans. Ce {day}, "
            "elle a remporté le prix national du meilleur pain. Le prix comprend un voyage "
            "à l'étranger.",
            "La boulangerie de {person} à {town} a remporté le prix national du meilleur pain.",
        ),
        "ja": (
            "{person}は二十年前から{town}で小さなパン屋を営んでいる。{day}、その店が全国"
            "最優秀パン賞を受賞した。賞品には海外旅行もふくまれる。",
            "{town}にある{person}のパン屋が全国最優秀パン賞を受賞した。",
        ),
        "zh": (
            "{person}在{town}开了二十年的小面包店。{day}，这家店获得了全国最佳面包奖。"
            "奖品还包括一次出国旅行。",
            "{person}在{town}的面包店获得了全国最佳面包奖。",
        ),
    },
    {
        "en": (
            "The summer festival in {town} was due to begin on {day}. With heavy storms "
            "forecast, the organisers have called it off. {person}, who leads the team, "
            "promised a new date soon.",
            "The summer festival in {town} has been called off because of storms.",
        ),
        "de": (
            "Das Sommerfest in {town} sollte am {day} beginnen. Weil schwere Unwetter "
            "vorhergesagt sind, haben die Veranstalter es abgesagt. Teamleiterin {person} "
            "versprach bald einen neuen Termin.",
            "Das Sommerfest in {town} ist wegen Unwettern abgesagt.",
        ),
        "fr": (
            "Le festival d'été de {town} devait commencer ce {day}. Face aux violents "
            "orages annoncés, les organisateurs l'ont annulé. {person}, qui dirige "
            "l'équipe, a promis une nouvelle date bientôt.",
            "Le festival d'été de {town} est annulé à cause des orages.",
        ),
        "ja": (
            "{town}の夏祭りは{day}に始まる予定だった。激しい嵐の予報を受けて、主催者は"
            "中止を決めた。責任者の{person}は近く新しい日程を知らせると約束した。",
            "{town}の夏祭りが嵐のため中止になった。",
        ),
        "zh": (
            "{town}的夏日节原定{day}开幕。由于预报有强烈暴风雨，主办方决定取消。"
            "负责人{person}承诺很快公布新的日期。",
            "{town}的夏日节因暴风雨取消。",
        ),
    },
    {
        "en": (
            "Pupils at a primary school in {town} planted a garden in the spring. On "
            "{day}, they picked their first vegetables. Their teacher, {person}, wants "
            "every class to join in next year.",
            "Pupils in {town} picked the first vegetables from their school garden.",
        ),
        "de": (
            "Kinder einer Grundschule in {town} haben im Frühjahr einen Garten angelegt. "
            "Am {day} ernteten sie ihr erstes Gemüse. Ihre Lehrerin {person} möchte, dass "
            "nächstes Jahr alle Klassen mitmachen.",
            "Grundschulkinder in {town} haben das erste Gemüse aus ihrem Schulgarten geerntet.",
        ),
        "fr": (
            "Les élèves d'une école primaire de {town} ont planté un potager au "
            "printemps. Ce {day}, ils ont cueilli leurs premiers légumes. Leur "
            "institutrice, {person}, veut que toutes les classes participent l'an "
            "prochain.",
            "Des écoliers de {town} ont récolté les premiers légumes de leur potager.",
        ),
        "ja": (
            "{town}の小学校の児童たちが春に畑をつくった。{day}、初めての野菜を収穫した。"
            "担任の{person}は来年は全クラスで取り組みたいと話している。",
            "{town}の小学生が学校の畑で初めての野菜を収穫した。",
        ),
        "zh": (
            "{town}一所小学的学生们春天开辟了一块菜园。{day}，他们收获了第一批蔬菜。"
            "老师{person}希望明年每个班都参加。",
            "{town}的小学生从学校菜园收获了第一批蔬菜。",
        ),
    },
    # --- eval frames -------------------------------------------------------------------------
    {
        "en": (
            "A new children's hospital opens in {town} on {day}. It has two hundred beds "
            "and its own school. {person}, who will run it, expects the first patients "
            "that same week.",
            "A children's hospital with two hundred beds opens in {town} on {day}.",
        ),
        "de": (
            "In {town} eröffnet am {day} ein neues Kinderkrankenhaus. Es hat zweihundert "
            "Betten und eine eigene Schule. Leiterin {person} erwartet die ersten "
            "Patienten noch in derselben Woche.",
            "In {town} öffnet am {day} ein Kinderkrankenhaus mit zweihundert Betten.",
        ),
        "fr": (
            "Un nouvel hôpital pour enfants ouvre à {town} ce {day}. Il compte deux cents "
            "lits et sa propre école. {person}, qui le dirigera, attend les premiers "
            "patients dans la semaine.",
            "Un hôpital pour enfants de deux cents lits ouvre à {town} ce {day}.",
        ),
        "ja": (
            "{day}、{town}に新しい子ども病院が開院する。病床は二百床で、院内学級もある。"
            "院長になる{person}は、その週のうちに最初の患者を受け入れる見込みだという。",
            "{town}に{day}、二百床の子ども病院が開院する。",
        ),
        "zh": (
            "{town}一家新的儿童医院将于{day}开业。医院有两百张床位，还有自己的学校。"
            "院长{person}预计当周就会迎来第一批病人。",
            "{town}一家拥有两百张床位的儿童医院{day}开业。",
        ),
    },
    {
        "en": (
            "{person} had been looking for the family dog for a week. On {day}, a farmer "
            "near {town} found it asleep in his barn. The dog is healthy and back home.",
            "{person}'s missing dog turned up in a barn near {town}.",
        ),
        "de": (
            "{person} suchte seit einer Woche den Familienhund. Am {day} fand ein Bauer "
            "bei {town} ihn schlafend in seiner Scheune. Der Hund ist gesund und wieder "
            "zu Hause.",
            "Der vermisste Hund von {person} ist in einer Scheune bei {town} aufgetaucht.",
        ),
        "fr": (
            "{person} cherchait le chien de la famille depuis une semaine. Ce {day}, un "
            "agriculteur près de {town} l'a trouvé endormi dans sa grange. Le chien est "
            "en bonne santé et de retour chez lui.",
            "Le chien disparu de {person} a été retrouvé dans une grange près de {town}.",
        ),
        "ja": (
            "{person}は一週間前から飼い犬をさがしていた。{day}、{town}近くの農家の人が、"
            "納屋でねむっている犬を見つけた。犬は元気で、もう家にもどっている。",
            "{person}の行方不明の犬が{town}近くの納屋で見つかった。",
        ),
        "zh": (
            "{person}找家里的狗已经找了一个星期。{day}，{town}附近的一位农民发现它睡在"
            "自家的谷仓里。小狗安然无恙，已经回家了。",
            "{person}走失的狗在{town}附近的谷仓里找到了。",
        ),
    },
    {
        "en": (
            "No trains will run in {town} on {day}. The drivers are striking for better "
            "pay. {person}, speaking for the union, said buses would replace them.",
            "Train drivers in {town} strike on {day}, and buses will replace the trains.",
        ),
        "de": (
            "Am {day} fahren in {town} keine Züge. Die Lokführer streiken für mehr Lohn. "
            "Gewerkschaftssprecherin {person} sagte, stattdessen führen Busse.",
            "Die Lokführer in {town} streiken am {day}, Busse ersetzen die Züge.",
        ),
        "fr": (
            "Aucun train ne circulera à {town} ce {day}. Les conducteurs font grève pour "
            "de meilleurs salaires. {person}, porte-parole du syndicat, a annoncé des bus "
            "de remplacement.",
            "Les conducteurs de train de {town} font grève ce {day}, des bus les remplaceront.",
        ),
        "ja": (
            "{day}、{town}では電車が一本も走らない。運転士たちが賃上げを求めてストライキ"
            "をするためだ。組合の広報担当の{person}は、代わりにバスを出すと述べた。",
            "{town}の運転士が{day}にストを行い、電車の代わりにバスが走る。",
        ),
        "zh": (
            "{day}，{town}将没有一趟火车运行。司机们为了提高工资举行罢工。工会发言人"
            "{person}表示，将由公交车代替。",
            "{town}的火车司机{day}罢工，由公交车代替火车。",
        ),
    },
    {
        "en": (
            "The museum in {town} has never been so busy. Since its dinosaur exhibition "
            "opened on {day}, visitor numbers have doubled. The director, {person}, plans "
            "to keep it until the winter.",
            "The dinosaur exhibition has doubled the visitors to the museum in {town}.",
        ),
        "de": (
            "So voll war das Museum in {town} noch nie. Seit am {day} die "
            "Dinosaurier-Ausstellung eröffnet hat, kommen doppelt so viele Besucher. "
            "Direktorin {person} will sie bis zum Winter zeigen.",
            "Die Dinosaurier-Ausstellung hat die Besucherzahl des Museums in {town} verdoppelt.",
        ),
        "fr": (
            "Le musée de {town} n'a jamais connu une telle affluence. Depuis l'ouverture "
            "de son exposition sur les dinosaures ce {day}, les visiteurs sont deux fois "
            "plus nombreux. Sa directrice, {person}, compte la garder jusqu'à l'hiver.",
            "L'exposition sur les dinosaures a doublé la fréquentation du musée de {town}.",
        ),
        "ja": (
            "{town}の博物館がこれほどにぎわったことはない。{day}に恐竜展が始まってから、"
            "来館者が倍になった。館長の{person}は冬まで展示を続ける予定だ。",
            "恐竜展で{town}の博物館の来館者が倍になった。",
        ),
        "zh": (
            "{town}博物馆从来没有这么热闹过。自从{day}恐龙展开幕以来，参观人数翻了一番。"
            "馆长{person}打算把展览延续到冬天。",
            "恐龙展让{town}博物馆的参观人数翻了一番。",
        ),
    },
]
