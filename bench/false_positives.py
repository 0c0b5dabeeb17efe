"""What the detectors take that is no personal value: 60,000 random ids of the shapes a site sends, and a
chat corpus of the kind LoyJoy flows produce (generated from templates: no real person's text).

    .venv/bin/python bench/false_positives.py
"""

from __future__ import annotations

import base64
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loyjoy_collector.privacy.keys import CONTAINER_KEYS, Scrubber
from loyjoy_collector.privacy.tally import Tally
from loyjoy_collector.privacy.values import scrub_text

KEYS = Scrubber(None).kept_keys - CONTAINER_KEYS


def id_shapes(rng: random.Random) -> dict[str, Callable[[], str]]:
    now = 1_732_550_400_000
    return {
        "uuid4": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "hex32": lambda: f"{rng.getrandbits(128):032x}",
        "data_client_id": lambda: f"{now + rng.randrange(10**9)}_{rng.randrange(10**8, 10**9)}",
        "ga_client_id": lambda: f"{rng.randrange(10**9, 10**10)}.{now // 1000 + rng.randrange(10**7)}",
        "ga_cookie": lambda: f"GA1.1.{rng.randrange(10**9, 10**10)}.{now // 1000 + rng.randrange(10**7)}",
        "ga_session_id": lambda: str(now // 1000 + rng.randrange(10**7)),
        "nanoid": lambda: base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("="),
        "iso_time": lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1000 + rng.randrange(10**8))) + "Z",
        "gclid": lambda: "Cj0KCQ" + base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("="),
        "order_number": lambda: f"ORD-{rng.randrange(2020, 2027)}-{rng.randrange(10**5, 10**6)}",
    }


CHAT_TEMPLATES = [
    "Ich interessiere mich für {product} in {color}.",
    "Wann ist der {product} wieder lieferbar? Bestellnummer {order}",
    "Schritt {step} von {steps}: Antwort {answer}",
    "Preis: {euros}.{cents:02d} EUR, {percent} % Rabatt bis {day:02d}.{month:02d}.{year}",
    "Öffnungszeiten {hour:02d}:00 bis {hour2:02d}:30 Uhr",
    "Version {major}.{minor}.{patch} ist verfügbar",
    "Paket {step} gewählt \u2013 {product} ({size} cm)",
    "Gewinnspiel {year}: {count} Teilnehmer, Frage {step}",
    "I'd like {count} x {product} size {size}, please",
    "Mein Termin am {day:02d}.{month:02d}.{year} um {hour:02d}:{minute:02d}",
    "Artikel {sku} in den Warenkorb gelegt",
    "NPS {nps} \u2013 {answer}",
    "https://shop.example.de/produkte/{sku}?utm_source=loyjoy&utm_medium=chat",
    "Lieferung am {day:02d}/{month:02d}/{year}, Seite {step} / {steps}",
    "Größe {size}/{size2}, {euros},{cents:02d} € / Stück, 24/7 erreichbar",
    "Bestellung {year}/{order}, Version {major}.{minor}/{major2}.{minor}",
    "Art.-Nr. 0{sku4}/{sku4b} \u2013 {count}\u00a0Stück",
]


def chat_corpus(rng: random.Random, count: int) -> list[str]:
    products = ["Kaffeevollautomat", "Espressomaschine", "Milchaufschäumer", "Wasserfilter", "Mahlwerk"]
    texts = []
    for _ in range(count):
        fields = {
            "product": rng.choice(products),
            "color": rng.choice(["Schwarz", "Silber", "Rot"]),
            "order": rng.randrange(10**5, 10**7),
            "step": rng.randrange(1, 9),
            "steps": 9,
            "answer": rng.choice("ABCD"),
            "euros": rng.randrange(1, 3000),
            "cents": rng.randrange(100),
            "percent": rng.randrange(5, 50),
            "day": rng.randrange(1, 29),
            "month": rng.randrange(1, 13),
            "year": rng.randrange(2024, 2028),
            "hour": rng.randrange(7, 12),
            "hour2": rng.randrange(16, 21),
            "minute": rng.randrange(60),
            "major": rng.randrange(1, 20),
            "minor": rng.randrange(10),
            "patch": rng.randrange(100),
            "size": rng.randrange(10, 200),
            "count": rng.randrange(1, 5000),
            "nps": rng.randrange(11),
            "sku": f"SKU-{rng.randrange(10**4, 10**6)}",
            "size2": rng.randrange(10, 200),
            "major2": rng.randrange(1, 20),
            "sku4": rng.randrange(100, 1000),
            "sku4b": rng.randrange(1000, 10000),
        }
        texts.append(rng.choice(CHAT_TEMPLATES).format(**fields))
    return texts


def changed(texts: list[str]) -> list[tuple[str, str]]:
    out = []
    for text in texts:
        kept = scrub_text(text, Tally(), KEYS)
        if kept != text:
            out.append((text, kept))
    return out


def main() -> int:
    rng = random.Random(14)
    total = 0
    for name, make in id_shapes(rng).items():
        found = changed([make() for _ in range(6000)])
        total += len(found)
        print(f"{name:16} 6000 ids: {len(found)} changed" + (f", e.g. {found[0]}" if found else ""))
    print(f"ids: {total} of 60000 changed")
    chat = changed(chat_corpus(rng, 20_000))
    print(f"chat corpus: {len(chat)} of 20000 texts changed")
    for text, kept in chat[:10]:
        print(f"  {text!r} -> {kept!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
