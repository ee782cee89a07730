"""Generate the long sample documents and their reference key points (seeded, reproducible).

Each document is a year of a fictional company's meeting minutes: routine business (attendance,
updates, agreed items, action items, discussion) with formal resolutions planted in it, each
written ``RESOLVED (K-NN): ...`` with its figure, owner and deadline. The resolutions are the
reference key points a summary must keep; they are written beside the document as JSON, so
that coverage can be checked (`examples/documents/*.keypoints.json`).

Run:  python examples/documents/make_documents.py   (rewrites the files beside it)
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Company:
    slug: str
    name: str
    body: str
    currency: str
    meetings: int
    resolutions: int
    seed: int
    people: tuple[str, ...]
    sites: tuple[str, ...]
    topics: tuple[str, ...]


COMPANIES = (
    Company(
        slug="nordvik_minutes_2025",
        name="Nordvik Marine Robotics AS",
        body="operations committee",
        currency="NOK",
        meetings=104,
        resolutions=30,
        seed=2025,
        people=(
            "Ingrid Solberg",
            "Tomas Aas",
            "Mette Berg",
            "Jonas Lie",
            "Sara Haugen",
            "Erik Dahl",
            "Nora Vik",
            "Anders Moe",
            "Hanne Strand",
            "Lars Holm",
        ),
        sites=(
            "Tromsø depot",
            "Bergen yard",
            "Ålesund test basin",
            "Oslo office",
            "Stavanger service centre",
        ),
        topics=(
            "hull-cleaning drones",
            "subsea inspection rovers",
            "battery packs",
            "sonar modules",
            "the fleet telemetry platform",
            "spare-parts stock",
            "the apprentice programme",
            "insurance",
            "the customer portal",
            "harbour permits",
        ),
    ),
    Company(
        slug="brightwell_board_2025",
        name="Brightwell Community Energy Ltd",
        body="board",
        currency="GBP",
        meetings=12,
        resolutions=12,
        seed=12,
        people=(
            "Alice Moreton",
            "Ravi Patel",
            "Grace Okafor",
            "Tom Ashworth",
            "Helen Price",
            "Owen Jones",
        ),
        sites=(
            "Ridgeway solar farm",
            "Mill Lane hydro scheme",
            "Brightwell office",
            "Hollins wind turbine",
        ),
        topics=(
            "member share offer",
            "grid connection",
            "community fund grants",
            "inverter replacement",
            "the annual report",
            "volunteer insurance",
            "battery storage pilot",
            "the school energy programme",
        ),
    ),
)

ACTIONS = ("approved", "allocated", "authorised", "committed", "released")
PURPOSES = (
    "the refit of the {site}",
    "a second production line for {topic}",
    "the replacement of ageing equipment at the {site}",
    "a two-year contract for {topic}",
    "the pilot of {topic} at the {site}",
    "new safety training on {topic}",
    "the expansion of the {site}",
    "an external audit of {topic}",
)
FILLER = (
    "{p} reported on {topic}; progress is in line with the plan discussed at the last meeting.",
    "{p} noted that the supplier had asked for a revised delivery schedule for {topic}.",
    "There was a long discussion of {topic}, with no decision needed at this stage.",
    "{p} summarised the month's figures for the {site}; the written report was taken as read.",
    "Members asked {p} to circulate the updated risk register before the next meeting.",
    "{p} raised a concern about staffing at the {site}, which will be reviewed next quarter.",
    "The committee thanked {p} for the work on {topic} over the past weeks.",
    "{p} explained that two customer complaints about {topic} had been resolved without cost.",
    "The chair reminded members that papers should arrive five working days before a meeting.",
    "{p} gave an update from the {site}: no safety incidents were reported this period.",
)


def money(rng: random.Random, currency: str) -> str:
    amount = rng.choice((rng.randint(12, 95) * 10_000, rng.randint(11, 98) / 10 * 1_000_000))
    if amount >= 1_000_000:
        return f"{currency} {amount / 1_000_000:.1f} million"
    return f"{currency} {amount:,.0f}"


def generate(company: Company) -> tuple[str, list[dict[str, str]]]:
    rng = random.Random(company.seed)
    start = dt.date(2025, 1, 6)
    step = 365 // company.meetings
    with_resolution = sorted(rng.sample(range(company.meetings), company.resolutions))
    keypoints: list[dict[str, str]] = []
    parts = [f"{company.name}\nMinutes of the {company.body}, 2025\n"]
    for meeting in range(company.meetings):
        date = start + dt.timedelta(days=meeting * step)
        day = f"{date.day} {date:%B %Y}"
        chair, *present = rng.sample(company.people, 5)
        parts.append(
            f"Meeting {meeting + 1} of the {company.body}, {day}\n\n"
            f"Present: {chair} (chair), {', '.join(present)}. Apologies: "
            f"{rng.choice([p for p in company.people if p not in present and p != chair])}."
        )
        paragraphs: list[str] = []
        for _ in range(rng.randint(7, 10)):
            sentences = [
                rng.choice(FILLER).format(
                    p=rng.choice(company.people),
                    topic=rng.choice(company.topics),
                    site=rng.choice(company.sites),
                )
                for _ in range(rng.randint(3, 6))
            ]
            paragraphs.append(" ".join(sentences))
        for _ in range(rng.randint(1, 3)):
            paragraphs.append(
                f"Agreed: {rng.choice(company.topics)} stays on the agenda; "
                f"{rng.choice(company.people)} to report back by "
                f"{(date + dt.timedelta(days=rng.randint(14, 60))):%d %B}."
            )
        if meeting in with_resolution:
            number = len(keypoints) + 1
            key = f"K-{number:02d}"
            owner = rng.choice(company.people)
            figure = money(rng, company.currency)
            purpose = rng.choice(PURPOSES).format(
                site=rng.choice(company.sites), topic=rng.choice(company.topics)
            )
            due = date + dt.timedelta(days=rng.randint(30, 240))
            text = (
                f"RESOLVED ({key}): the {company.body} {rng.choice(ACTIONS)} {figure} for "
                f"{purpose}, owner {owner}, due {due.day} {due:%B %Y}."
            )
            paragraphs.insert(rng.randint(1, len(paragraphs)), text)
            keypoints.append(
                {"key": key, "meeting": day, "text": text, "figure": figure, "owner": owner}
            )
        parts.append("\n\n".join(paragraphs))
        parts.append(f"The meeting closed at {rng.randint(15, 18)}:{rng.choice(['00', '30'])}.")
    return "\n\n".join(parts) + "\n", keypoints


def main(folder: Path = HERE) -> None:
    """Write each document and its key points into `folder`."""
    for company in COMPANIES:
        text, keypoints = generate(company)
        (folder / f"{company.slug}.txt").write_text(text, "utf-8")
        (folder / f"{company.slug}.keypoints.json").write_text(
            json.dumps(keypoints, indent=1, ensure_ascii=False) + "\n", "utf-8"
        )
        print(f"{company.slug}.txt: {len(text):,} characters, {len(keypoints)} key points")


if __name__ == "__main__":
    main()
