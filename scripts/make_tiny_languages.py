"""Write datasets_spec/data/tiny_lang_<code>.jsonl: a tiny language family (datasets_spec/tiny.yaml
`tiny_lang`) for tests of `data.languages`. Each language's file holds 12 documents of three of its
sentences and 2 planted documents in another language (ids `<code>-planted-<other>-N`), which its
language-id step must drop. The sentences were written for this file."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

SENTENCES = {
    "en": ["The library opens at nine in the morning and closes late on Thursdays.",
           "Most of the old houses along the river were built of red brick.",
           "She planted tomatoes, beans and a row of sunflowers behind the garage.",
           "The train to the coast was delayed because of a storm in the mountains.",
           "Our neighbours have two cats that sleep on the warm roof of the shed.",
           "He learned to repair bicycles from his grandfather, who owned a small shop.",
           "The museum's new exhibition explains how maps were drawn before satellites.",
           "After the concert, the musicians walked through the square and greeted everyone."],
    "de": ["Die Bibliothek öffnet um neun Uhr und schließt donnerstags erst am späten Abend.",
           "Die meisten alten Häuser am Fluss wurden aus rotem Backstein gebaut.",
           "Sie hat hinter der Garage Tomaten, Bohnen und eine Reihe Sonnenblumen gepflanzt.",
           "Der Zug an die Küste hatte wegen eines Unwetters in den Bergen Verspätung.",
           "Unsere Nachbarn haben zwei Katzen, die auf dem warmen Dach des Schuppens schlafen.",
           "Er lernte von seinem Großvater, der eine kleine Werkstatt besaß, Fahrräder zu reparieren.",
           "Die neue Ausstellung des Museums zeigt, wie Landkarten vor den Satelliten gezeichnet wurden.",
           "Nach dem Konzert gingen die Musiker über den Platz und begrüßten alle Gäste."],
    "fr": ["La bibliothèque ouvre à neuf heures et ferme tard le jeudi soir.",
           "La plupart des vieilles maisons le long de la rivière sont construites en brique rouge.",
           "Elle a planté des tomates, des haricots et une rangée de tournesols derrière le garage.",
           "Le train pour la côte avait du retard à cause d'un orage dans les montagnes.",
           "Nos voisins ont deux chats qui dorment sur le toit chaud de la cabane.",
           "Il a appris à réparer les vélos auprès de son grand-père, qui tenait un petit atelier.",
           "La nouvelle exposition du musée explique comment on dessinait les cartes avant les satellites.",
           "Après le concert, les musiciens ont traversé la place en saluant tout le monde."],
    "es": ["La biblioteca abre a las nueve de la mañana y cierra tarde los jueves.",
           "La mayoría de las casas antiguas junto al río se construyeron con ladrillo rojo.",
           "Ella plantó tomates, judías y una fila de girasoles detrás del garaje.",
           "El tren hacia la costa se retrasó por una tormenta en las montañas.",
           "Nuestros vecinos tienen dos gatos que duermen sobre el tejado caliente del cobertizo.",
           "Aprendió a reparar bicicletas con su abuelo, que tenía un pequeño taller.",
           "La nueva exposición del museo explica cómo se dibujaban los mapas antes de los satélites.",
           "Después del concierto, los músicos cruzaron la plaza y saludaron a todos."],
}
PER_LANGUAGE, PLANTED = 12, 2


def documents(code: str) -> list[dict]:
    combos = list(itertools.combinations(range(len(SENTENCES[code])), 3))[::4][:PER_LANGUAGE]
    docs = [{"id": f"{code}-{i}", "text": " ".join(SENTENCES[code][j] for j in combo)}
            for i, combo in enumerate(combos)]
    others = [c for c in SENTENCES if c != code]
    for n in range(PLANTED):  # another language's sentences, in this language's file
        other = others[n % len(others)]
        docs.append({"id": f"{code}-planted-{other}-{n}", "text": " ".join(SENTENCES[other][n:n + 3])})
    return docs


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "datasets_spec" / "data"
    for code in SENTENCES:
        docs = documents(code)
        with open(out / f"tiny_lang_{code}.jsonl", "w") as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        print(code, "words:", sum(len(d["text"].split()) for d in docs))  # datasets_spec/tiny.yaml's sizes


if __name__ == "__main__":
    main()
