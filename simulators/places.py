"""Static facts about the Brussels-Capital Region that the simulated city is built on.

The 19 municipalities (NIS code, French and Dutch names, centroid, rough population) come from
public sources (Statbel's NIS codes, the Region's municipality list; docs/simulator.md).
The named places are well-known public locations of each
municipality (metro and premetro stations, squares, parks, libraries, town halls) used as site names;
a station on a municipal border is put in one of them. Site coordinates are placed near the
municipality's centroid by the inventory builder: they are plausible, not surveyed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SiteKind = Literal["metro", "square", "park", "library", "town_hall"]
SITE_KINDS: tuple[SiteKind, ...] = ("metro", "square", "park", "library", "town_hall")


@dataclass(frozen=True, slots=True)
class Municipality:
    nis: str
    name_fr: str
    name_nl: str
    lat: float
    lon: float
    population: int


MUNICIPALITIES: tuple[Municipality, ...] = (
    Municipality("21001", "Anderlecht", "Anderlecht", 50.8283, 4.3030, 120_000),
    Municipality("21002", "Auderghem", "Oudergem", 50.8165, 4.4262, 34_000),
    Municipality("21003", "Berchem-Sainte-Agathe", "Sint-Agatha-Berchem", 50.8657, 4.2958, 26_000),
    Municipality("21004", "Bruxelles (Ville)", "Brussel (Stad)", 50.8483, 4.3490, 185_000),
    Municipality("21005", "Etterbeek", "Etterbeek", 50.8302, 4.3902, 49_000),
    Municipality("21006", "Evere", "Evere", 50.8709, 4.4061, 43_000),
    Municipality("21007", "Forest", "Vorst", 50.8150, 4.3265, 57_000),
    Municipality("21008", "Ganshoren", "Ganshoren", 50.8744, 4.3097, 25_000),
    Municipality("21009", "Ixelles", "Elsene", 50.8200, 4.3598, 89_000),
    Municipality("21010", "Jette", "Jette", 50.8769, 4.3315, 53_000),
    Municipality("21011", "Koekelberg", "Koekelberg", 50.8641, 4.3235, 22_000),
    Municipality("21012", "Molenbeek-Saint-Jean", "Sint-Jans-Molenbeek", 50.8541, 4.3232, 99_000),
    Municipality("21013", "Saint-Gilles", "Sint-Gillis", 50.8289, 4.3444, 50_000),
    Municipality("21014", "Saint-Josse-ten-Noode", "Sint-Joost-ten-Node", 50.8547, 4.3665, 28_000),
    Municipality("21015", "Schaerbeek", "Schaarbeek", 50.8617, 4.3896, 134_000),
    Municipality("21016", "Uccle", "Ukkel", 50.7975, 4.3589, 84_000),
    Municipality("21017", "Watermael-Boitsfort", "Watermaal-Bosvoorde", 50.7956, 4.4138, 25_000),
    Municipality("21018", "Woluwe-Saint-Lambert", "Sint-Lambrechts-Woluwe", 50.8475, 4.4399, 59_000),
    Municipality("21019", "Woluwe-Saint-Pierre", "Sint-Pieters-Woluwe", 50.8295, 4.4337, 42_000),
)

BY_NIS: dict[str, Municipality] = {m.nis: m for m in MUNICIPALITIES}

REGION_CENTRE = (50.8454, 4.3519)

# Named public places per municipality, as (site id, display name, kind). The site id is a topic level.
NAMED_PLACES: dict[str, tuple[tuple[str, str, SiteKind], ...]] = {
    "21001": (
        ("clemenceau", "Clemenceau", "metro"),
        ("saint-guidon", "Saint-Guidon", "metro"),
        ("aumale", "Aumale", "metro"),
        ("jacques-brel", "Jacques Brel", "metro"),
        ("veeweyde", "Veeweyde", "metro"),
        ("bizet", "Bizet", "metro"),
        ("ceria", "CERIA", "metro"),
        ("eddy-merckx", "Eddy Merckx", "metro"),
        ("la-roue", "La Roue", "metro"),
        ("place-de-la-vaillance", "Place de la Vaillance", "square"),
        ("parc-astrid", "Parc Astrid", "park"),
        ("bibliotheque-anderlecht", "Bibliothèque d'Anderlecht", "library"),
        ("maison-communale-anderlecht", "Maison communale d'Anderlecht", "town_hall"),
    ),
    "21002": (
        ("delta", "Delta", "metro"),
        ("beaulieu", "Beaulieu", "metro"),
        ("demey", "Demey", "metro"),
        ("herrmann-debroux", "Herrmann-Debroux", "metro"),
        ("rouge-cloitre", "Rouge-Cloître", "park"),
        ("maison-communale-auderghem", "Maison communale d'Auderghem", "town_hall"),
    ),
    "21003": (
        ("place-de-l-eglise-berchem", "Place de l'Église", "square"),
        ("parc-des-etangs-berchem", "Parc des Étangs", "park"),
        ("maison-communale-berchem", "Maison communale de Berchem-Sainte-Agathe", "town_hall"),
    ),
    "21004": (
        ("gare-centrale", "Gare Centrale", "metro"),
        ("de-brouckere", "De Brouckère", "metro"),
        ("bourse", "Bourse", "metro"),
        ("rogier", "Rogier", "metro"),
        ("yser", "Yser", "metro"),
        ("sainte-catherine", "Sainte-Catherine", "metro"),
        ("parc-metro", "Parc", "metro"),
        ("arts-loi", "Arts-Loi", "metro"),
        ("louise", "Louise", "metro"),
        ("heysel", "Heysel", "metro"),
        ("bockstael", "Bockstael", "metro"),
        ("maelbeek", "Maelbeek", "metro"),
        ("grand-place", "Grand-Place", "square"),
        ("mont-des-arts", "Mont des Arts", "square"),
        ("place-sainte-catherine", "Place Sainte-Catherine", "square"),
        ("place-du-jeu-de-balle", "Place du Jeu de Balle", "square"),
        ("parc-de-bruxelles", "Parc de Bruxelles", "park"),
        ("bois-de-la-cambre", "Bois de la Cambre", "park"),
        ("bibliotheque-royale", "Bibliothèque royale", "library"),
        ("hotel-de-ville-bruxelles", "Hôtel de Ville de Bruxelles", "town_hall"),
    ),
    "21005": (
        ("merode", "Merode", "metro"),
        ("thieffry", "Thieffry", "metro"),
        ("petillon", "Pétillon", "metro"),
        ("place-jourdan", "Place Jourdan", "square"),
        ("maison-communale-etterbeek", "Maison communale d'Etterbeek", "town_hall"),
    ),
    "21006": (
        ("place-de-la-paix-evere", "Place de la Paix", "square"),
        ("parc-de-la-senette", "Parc de la Senette", "park"),
        ("maison-communale-evere", "Maison communale d'Evere", "town_hall"),
    ),
    "21007": (
        ("albert", "Albert", "metro"),
        ("altitude-cent", "Altitude Cent", "square"),
        ("parc-de-forest", "Parc de Forest", "park"),
        ("parc-duden", "Parc Duden", "park"),
        ("maison-communale-forest", "Maison communale de Forest", "town_hall"),
    ),
    "21008": (
        ("place-guido-gezelle", "Place Guido Gezelle", "square"),
        ("parc-de-la-jeunesse", "Parc de la Jeunesse", "park"),
        ("maison-communale-ganshoren", "Maison communale de Ganshoren", "town_hall"),
    ),
    "21009": (
        ("porte-de-namur", "Porte de Namur", "metro"),
        ("place-flagey", "Place Flagey", "square"),
        ("place-fernand-cocq", "Place Fernand Cocq", "square"),
        ("etangs-d-ixelles", "Étangs d'Ixelles", "park"),
        ("bibliotheque-ixelles", "Bibliothèque d'Ixelles", "library"),
        ("maison-communale-ixelles", "Maison communale d'Ixelles", "town_hall"),
    ),
    "21010": (
        ("belgica", "Belgica", "metro"),
        ("place-reine-astrid-jette", "Place Reine Astrid", "square"),
        ("parc-roi-baudouin", "Parc Roi Baudouin", "park"),
        ("maison-communale-jette", "Maison communale de Jette", "town_hall"),
    ),
    "21011": (
        ("simonis", "Simonis", "metro"),
        ("parc-elisabeth", "Parc Élisabeth", "park"),
        ("maison-communale-koekelberg", "Maison communale de Koekelberg", "town_hall"),
    ),
    "21012": (
        ("comte-de-flandre", "Comte de Flandre", "metro"),
        ("etangs-noirs", "Étangs Noirs", "metro"),
        ("osseghem", "Osseghem", "metro"),
        ("beekkant", "Beekkant", "metro"),
        ("gare-de-l-ouest", "Gare de l'Ouest", "metro"),
        ("ribaucourt", "Ribaucourt", "metro"),
        ("place-communale-molenbeek", "Place communale", "square"),
        ("parc-marie-jose", "Parc Marie-José", "park"),
        ("maison-communale-molenbeek", "Maison communale de Molenbeek-Saint-Jean", "town_hall"),
    ),
    "21013": (
        ("gare-du-midi", "Gare du Midi", "metro"),
        ("porte-de-hal", "Porte de Hal", "metro"),
        ("horta", "Horta", "metro"),
        ("parvis-de-saint-gilles", "Parvis de Saint-Gilles", "square"),
        ("maison-communale-saint-gilles", "Maison communale de Saint-Gilles", "town_hall"),
    ),
    "21014": (
        ("botanique", "Botanique", "metro"),
        ("madou", "Madou", "metro"),
        ("place-saint-josse", "Place Saint-Josse", "square"),
        ("maison-communale-saint-josse", "Maison communale de Saint-Josse-ten-Noode", "town_hall"),
    ),
    "21015": (
        ("gare-du-nord", "Gare du Nord", "metro"),
        ("meiser", "Meiser", "metro"),
        ("diamant", "Diamant", "metro"),
        ("place-colignon", "Place Colignon", "square"),
        ("place-liedts", "Place Liedts", "square"),
        ("parc-josaphat", "Parc Josaphat", "park"),
        ("bibliotheque-schaerbeek", "Bibliothèque de Schaerbeek", "library"),
        ("maison-communale-schaerbeek", "Maison communale de Schaerbeek", "town_hall"),
    ),
    "21016": (
        ("place-saint-job", "Place Saint-Job", "square"),
        ("place-vanderkindere", "Place Vanderkindere", "square"),
        ("parc-de-wolvendael", "Parc de Wolvendael", "park"),
        ("maison-communale-uccle", "Maison communale d'Uccle", "town_hall"),
    ),
    "21017": (
        ("place-keym", "Place Keym", "square"),
        ("etangs-de-boitsfort", "Étangs de Boitsfort", "park"),
        ("maison-communale-boitsfort", "Maison communale de Watermael-Boitsfort", "town_hall"),
    ),
    "21018": (
        ("tomberg", "Tomberg", "metro"),
        ("roodebeek", "Roodebeek", "metro"),
        ("vandervelde", "Vandervelde", "metro"),
        ("alma", "Alma", "metro"),
        ("parc-malou", "Parc Malou", "park"),
        ("maison-communale-woluwe-saint-lambert", "Maison communale de Woluwe-Saint-Lambert", "town_hall"),
    ),
    "21019": (
        ("montgomery", "Montgomery", "metro"),
        ("stockel", "Stockel", "metro"),
        ("place-dumon", "Place Dumon", "square"),
        ("parc-de-woluwe", "Parc de Woluwe", "park"),
        ("maison-communale-woluwe-saint-pierre", "Maison communale de Woluwe-Saint-Pierre", "town_hall"),
    ),
}
