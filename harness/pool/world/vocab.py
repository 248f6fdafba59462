"""The tiny world's vocabulary as data: shapes, colours (with close hues), textures, backgrounds,
counts, caption templates in English and in other languages, boilerplate and too-short captions.

Everything a scene can be is listed here so that renderer, captions and eval tasks agree.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star",
                           "cross", "ring", "hexagon", "crescent", "heart")
SHAPE_PLURAL = {s: s + "s" for s in SHAPES} | {"cross": "crosses"}

# Close hues on purpose (red/orange/brown, green/teal/cyan, blue/purple, magenta/pink): with the
# lighting jitter the colour task is not saturated by every model.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40), "orange": (236, 128, 30), "yellow": (230, 206, 40),
    "green": (50, 160, 60), "teal": (30, 148, 138), "cyan": (48, 190, 222),
    "blue": (42, 82, 210), "purple": (122, 62, 190), "magenta": (200, 52, 170),
    "pink": (240, 142, 182), "brown": (132, 82, 42), "gray": (128, 128, 128),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted", "checkered", "gridded")
TEXTURE_ADJ = {"solid": "plain", "striped": "striped", "dotted": "dotted", "checkered": "checkered",
               "gridded": "grid-patterned"}

# Background kinds: the groups of the worst-group task. In the pool each shape prefers one
# background (a spurious cue), in the eval task groups are balanced.
BACKGROUNDS: tuple[str, ...] = ("plain", "dark", "grass", "water", "sand")
BACKGROUND_PHRASE = {"plain": "on a white background", "dark": "on a dark background",
                     "grass": "on the grass", "water": "on the water", "sand": "on the sand"}

COUNT_WORDS: tuple[str, ...] = ("one", "two", "three", "four")
STYLES: tuple[str, ...] = ("photo", "sketch")

POSITION_WORDS = {"center": "in the center", "left": "on the left", "right": "on the right",
                  "top": "at the top", "bottom": "at the bottom"}

# English caption templates; {obj} is e.g. "three striped red circles".
EN_TEMPLATES: tuple[str, ...] = (
    "a photo of {obj}{bg}{pos}.",
    "{obj}{bg}",
    "a picture of {obj}{pos}.",
    "an image showing {obj}{bg}.",
    "close-up of {obj}{bg}{pos}",
    "{obj}{pos}, photographed{bg}",
    "there are {obj}{bg}.",
)
SKETCH_TEMPLATES: tuple[str, ...] = ("a sketch of {obj}.", "a drawing of {obj}{pos}.", "an outline drawing of {obj}")

# Non-English captions: real sentences with the scene's words, long enough for langid.
FOREIGN: dict[str, dict] = {
    "fr": {"templates": ("une photo d'un {shape} de couleur {color} posé sur une table",
                         "voici un joli {shape} {color}, dessiné avec beaucoup de soin",
                         "image d'un {shape} {color} que nous avons trouvé dans le jardin"),
           "shape": {"circle": "cercle", "square": "carré", "triangle": "triangle", "diamond": "losange",
                     "star": "étoile", "cross": "croix", "ring": "anneau", "hexagon": "hexagone",
                     "crescent": "croissant", "heart": "cœur"},
           "color": {"red": "rouge", "orange": "orange", "yellow": "jaune", "green": "vert", "teal": "sarcelle",
                     "cyan": "cyan", "blue": "bleu", "purple": "violet", "magenta": "magenta", "pink": "rose",
                     "brown": "marron", "gray": "gris"}},
    "de": {"templates": ("ein Foto von einem {color}en {shape} auf dem Tisch in der Küche",
                         "hier sieht man einen schönen {color}en {shape}, den wir gestern gemacht haben",
                         "das Bild zeigt ein {color}es Objekt in der Form {shape} und nicht mehr"),
           "shape": {"circle": "Kreis", "square": "Quadrat", "triangle": "Dreieck", "diamond": "Raute",
                     "star": "Stern", "cross": "Kreuz", "ring": "Ring", "hexagon": "Sechseck",
                     "crescent": "Halbmond", "heart": "Herz"},
           "color": {"red": "rot", "orange": "orang", "yellow": "gelb", "green": "grün", "teal": "blaugrün",
                     "cyan": "türkis", "blue": "blau", "purple": "lila", "magenta": "magentafarben",
                     "pink": "rosa", "brown": "braun", "gray": "grau"}},
    "es": {"templates": ("una foto de un {shape} de color {color} encima de la mesa",
                         "aquí podemos ver un {shape} {color} que hicimos para la escuela",
                         "imagen de un {shape} {color} con el fondo de la casa"),
           "shape": {"circle": "círculo", "square": "cuadrado", "triangle": "triángulo", "diamond": "rombo",
                     "star": "estrella", "cross": "cruz", "ring": "anillo", "hexagon": "hexágono",
                     "crescent": "creciente", "heart": "corazón"},
           "color": {"red": "rojo", "orange": "naranja", "yellow": "amarillo", "green": "verde",
                     "teal": "verde azulado", "cyan": "cian", "blue": "azul", "purple": "morado",
                     "magenta": "magenta", "pink": "rosado", "brown": "marrón", "gray": "gris"}},
    "it": {"templates": ("una foto di un {shape} di colore {color} sopra il tavolo della cucina",
                         "ecco un bellissimo {shape} {color} che abbiamo fatto ieri con i bambini",
                         "immagine di un {shape} {color} nella nostra casa al mare"),
           "shape": {"circle": "cerchio", "square": "quadrato", "triangle": "triangolo", "diamond": "rombo",
                     "star": "stella", "cross": "croce", "ring": "anello", "hexagon": "esagono",
                     "crescent": "spicchio di luna", "heart": "cuore"},
           "color": {"red": "rosso", "orange": "arancione", "yellow": "giallo", "green": "verde",
                     "teal": "verde acqua", "cyan": "ciano", "blue": "blu", "purple": "viola",
                     "magenta": "magenta", "pink": "rosa", "brown": "marrone", "gray": "grigio"}},
    "pt": {"templates": ("uma foto de um {shape} de cor {color} em cima da mesa da cozinha",
                         "aqui você pode ver um {shape} {color} que fizemos para a escola",
                         "imagem de um {shape} {color} com o fundo da nossa casa"),
           "shape": {"circle": "círculo", "square": "quadrado", "triangle": "triângulo", "diamond": "losango",
                     "star": "estrela", "cross": "cruz", "ring": "anel", "hexagon": "hexágono",
                     "crescent": "crescente", "heart": "coração"},
           "color": {"red": "vermelho", "orange": "laranja", "yellow": "amarelo", "green": "verde",
                     "teal": "azul-petróleo", "cyan": "ciano", "blue": "azul", "purple": "roxo",
                     "magenta": "magenta", "pink": "rosa", "brown": "marrom", "gray": "cinza"}},
    "nl": {"templates": ("een foto van een {color} {shape} op de tafel in de keuken",
                         "hier zie je een mooie {color} {shape} die we gisteren hebben gemaakt",
                         "afbeelding van een {color} {shape} bij ons thuis in de tuin"),
           "shape": {"circle": "cirkel", "square": "vierkant", "triangle": "driehoek", "diamond": "ruit",
                     "star": "ster", "cross": "kruis", "ring": "ring", "hexagon": "zeshoek",
                     "crescent": "halve maan", "heart": "hart"},
           "color": {"red": "rode", "orange": "oranje", "yellow": "gele", "green": "groene",
                     "teal": "blauwgroene", "cyan": "cyaan", "blue": "blauwe", "purple": "paarse",
                     "magenta": "magenta", "pink": "roze", "brown": "bruine", "gray": "grijze"}},
}
LANGUAGES: tuple[str, ...] = tuple(FOREIGN)

BOILERPLATE: tuple[str, ...] = (
    "Click here to buy now! Free shipping on all orders over $50",
    "stock photo royalty free image #{n} download now",
    "image not available, please check back later",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
    "Best price guaranteed - shop online today and save {n}%",
    "Copyright {n} all rights reserved. Do not reproduce",
    "product image placeholder for item number {n}",
    "Subscribe to our newsletter for exclusive deals and offers",
    "this image has been removed by the uploader",
    "Sale! Limited time offer, {n} units left in stock",
)
SHORT: tuple[str, ...] = ("img", "photo", "image", "untitled", "IMG_{n}", "DSC{n}", "thumbnail", "pic",
                          "{shape}", "{color}", "{color} {shape}", "a {shape}")

# Words for the rendered-text task (tiny_digits) and the text-only defect.
DIGIT_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
