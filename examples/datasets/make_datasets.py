"""Write the labelled datasets of the built-in workflows (run from the repository root).

support_triage.jsonl is synthetic: tickets built from templates per queue, so every label is
known by construction (the category, and for billing the order id and amount). The invoice and
text-to-SQL sets label the existing samples: invoice numbers and totals read off each invoice
(a field the text does not state plainly is left unlabelled, so it is not scored), and the 30
questions with their reference answers.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
EXAMPLES = HERE.parent

BILLING = [
    (
        "I was charged twice for order #{order} — two debits of ${amount} on my card. "
        "Please refund the duplicate.",
        "duplicate charge",
    ),
    (
        "My invoice for order {order} shows ${amount} but the price on your site was lower. "
        "I want the difference of ${amount} back.",
        "overcharge",
    ),
    (
        "I cancelled my plan but order {order} still billed me ${amount} this month. Refund it.",
        "cancelled but still billed",
    ),
]
TECHNICAL = [
    "The {product} app crashes with error {code} every time I open the settings page.",
    "Since the last update {product} shows '{code}' when I try to export a report.",
    "Sync in {product} has been stuck for two days; the log says {code}.",
]
ACCOUNT = [
    "I can't log in to {email}: it says my password is wrong but I just reset it.",
    "Please change the email on my account from {email} to a new one, I left that job.",
    "My account {email} got locked after too many attempts, I need access for work today.",
]
SHIPPING = [
    "Order {order} was supposed to arrive last week; tracking {tracking} hasn't moved.",
    "The parcel for order {order} arrived damaged, the box was crushed (tracking {tracking}).",
    "I received the wrong item in order {order}. Tracking number {tracking}.",
]
OTHER = [
    "Do you have a careers page? I'd like to apply for a design role.",
    "Write me a poem about invoices.",
    "Are you open on public holidays?",
    "I love your product, just wanted to say thanks to the team!",
]
PRODUCTS = ["Reports", "Mobile", "Desktop 4.2", "Web dashboard", "Sync agent"]


def support_triage(rng: random.Random) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def add(category: str, ticket: str, route_extra: dict[str, Any] | None = None) -> None:
        n = len(cases) + 1
        case: dict[str, Any] = {
            "id": f"ST-{n:03d}",
            "input": {"ticket": ticket, "id": f"ST-{n:03d}"},
            "expected": {
                "output": {"category": category},
                "nodes": {"route": {"category": category}},
            },
        }
        if route_extra:
            case["expected"]["nodes"].update(route_extra)
        cases.append(case)

    for i in range(50):
        template, _ = BILLING[i % len(BILLING)]
        order = f"A-{rng.randint(10000, 99999)}"
        amount = f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}"
        record = {"order_id": order, "amount": {"$approx": float(amount), "$tolerance": 0.005}}
        add(
            "billing",
            template.format(order=order, amount=amount),
            {"extract_billing": {"record": record}},
        )
    for i in range(50):
        code = f"E{rng.randint(100, 999)}"
        ticket = TECHNICAL[i % len(TECHNICAL)].format(product=rng.choice(PRODUCTS), code=code)
        add("technical", ticket)
    for i in range(45):
        email = f"user{rng.randint(100, 999)}@example.com"
        add("account", ACCOUNT[i % len(ACCOUNT)].format(email=email))
    for i in range(45):
        order = f"B-{rng.randint(10000, 99999)}"
        tracking = f"1Z{rng.randint(10**9, 10**10 - 1)}"
        add(
            "shipping",
            SHIPPING[i % len(SHIPPING)].format(order=order, tracking=tracking),
            {"extract_shipping": {"record": {"order_id": order, "tracking_number": tracking}}},
        )
    for i in range(20):
        add("other", OTHER[i % len(OTHER)])
    return cases


def invoices() -> list[dict[str, Any]]:
    cases = []
    for line in (EXAMPLES / "invoices.jsonl").read_text(encoding="utf-8").splitlines():
        invoice = json.loads(line)
        text = invoice["text"]
        record: dict[str, Any] = {}
        number = re.search(r"Invoice (?:No\.|Number|#)\s*:?\s*#?([A-Z0-9][\w/-]*)", text, re.I)
        if number:
            record["invoice_number"] = number.group(1)
        total = re.search(r"TOTAL[^\n\d]*([\d,]+\.\d\d)\s*$", text, re.I | re.M)
        if total:
            record["total"] = {
                "$approx": float(total.group(1).replace(",", "")),
                "$tolerance": 0.01,
            }
        expected = {"output": {"id": invoice["id"], "record": record}}
        cases.append({"id": invoice["id"], "input": invoice, "expected": expected})
    return cases


def text_to_sql() -> list[dict[str, Any]]:
    cases = []
    for line in (EXAMPLES / "sql_questions.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        cases.append(
            {
                "id": q["id"],
                "input": {"id": q["id"], "question": q["question"], "tenant_id": q["tenant_id"]},
                "expected": {
                    "output": {"columns": q["answer"]["columns"], "rows": q["answer"]["rows"]}
                },
                "metadata": {"reference_sql": q["sql"]},
            }
        )
    return cases


def write(name: str, cases: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write("support_triage.jsonl", support_triage(random.Random(20)))
    write("invoice_extraction.jsonl", invoices())
    write("text_to_sql.jsonl", text_to_sql())
