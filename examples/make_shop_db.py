"""Build the sample shop database: three tenants' customers, products, orders and tickets.

    python examples/make_shop_db.py                    # writes examples/shop.db (SQLite)
    python examples/make_shop_db.py out.duckdb         # the same data in DuckDB

The data comes from a fixed seed, so every run writes the same rows; `examples/shop.db` is
committed so that the text-to-SQL workflow runs from a fresh clone, and a test checks that it
still matches this script. Every table has a `tenant_id`: the workflow scopes each question to
one tenant's rows.
"""

from __future__ import annotations

import datetime
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

SEED = 20261122
TENANTS = (1, 2, 3)
START = datetime.date(2024, 1, 1)
DAYS = 547  # to 2025-06-30

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    country TEXT NOT NULL,
    segment TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    unit_price REAL NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL,
    total REAL NOT NULL
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL
);
CREATE TABLE support_tickets (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_id INTEGER REFERENCES orders(id),
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    subject TEXT NOT NULL
);
"""

FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Kemal",
         "Lena", "Mateo", "Nora", "Omar", "Priya")  # fmt: skip
LAST = ("Moss", "Ortiz", "Novak", "Singh", "Berg", "Costa", "Dubois", "Fischer", "Haddad", "Ito",
        "Jensen", "Kowalski", "Lind")  # fmt: skip
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "US", "GB", "SE", "PL")
SEGMENTS = ("consumer", "consumer", "consumer", "business", "enterprise")
CATEGORIES = {
    "books": ("Field Guide", "Atlas", "Cookbook", "Novel", "Sketchbook"),
    "electronics": ("Headphones", "Charger", "Speaker", "Keyboard", "Webcam"),
    "home": ("Mug", "Lamp", "Throw", "Planter", "Kettle"),
    "garden": ("Trowel", "Hose", "Seed Kit", "Gloves", "Pruner"),
    "toys": ("Puzzle", "Kite", "Blocks", "Yo-yo", "Board Game"),
}
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Travel")
STATUSES = ("delivered",) * 6 + ("shipped", "processing", "cancelled", "returned")
PRIORITIES = ("low", "normal", "normal", "high", "urgent")
SUBJECTS = (
    "Where is my order?",
    "Item arrived damaged",
    "Wrong item received",
    "Refund not received",
    "Cannot log in",
    "Invoice request",
    "Change delivery address",
    "Product question",
)


def rows() -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, the same on every call."""
    rng = random.Random(SEED)
    data: dict[str, list[tuple[Any, ...]]] = {
        "customers": [], "products": [], "orders": [], "order_items": [], "support_tickets": []
    }  # fmt: skip
    sizes = {1: (140, 1.0), 2: (100, 0.8), 3: (60, 0.6)}
    for tenant in TENANTS:
        customers, activity = sizes[tenant]
        tenant_customers = []
        for _ in range(customers):
            cid = len(data["customers"]) + 1
            first, last = rng.choice(FIRST), rng.choice(LAST)
            created = START + datetime.timedelta(days=rng.randrange(DAYS // 2))
            data["customers"].append((
                cid, tenant, f"{first} {last}", f"{first}.{last}{cid}@example.com".lower(),
                rng.choice(COUNTRIES), rng.choice(SEGMENTS), created.isoformat(),
            ))  # fmt: skip
            tenant_customers.append((cid, created))
        tenant_products = []
        for category, nouns in CATEGORIES.items():
            for noun in rng.sample(nouns, 4):
                pid = len(data["products"]) + 1
                price = round(rng.uniform(4, 40) * (4 if category == "electronics" else 1), 2)
                name = f"{rng.choice(ADJECTIVES)} {noun}"
                sku = f"T{tenant}-{category[:3].upper()}-{pid:03d}"
                data["products"].append((pid, tenant, sku, name, category, price))
                tenant_products.append((pid, price))
        tenant_orders = []
        for cid, created in tenant_customers:
            for _ in range(rng.randrange(int(10 * activity) + 1)):
                oid = len(data["orders"]) + 1
                days_left = (START + datetime.timedelta(days=DAYS) - created).days
                ordered = created + datetime.timedelta(days=rng.randrange(max(days_left, 1)))
                total = 0.0
                for product_id, price in rng.sample(tenant_products, rng.randint(1, 4)):
                    quantity = rng.choice((1, 1, 1, 2, 2, 3, 5))
                    iid = len(data["order_items"]) + 1
                    data["order_items"].append((iid, tenant, oid, product_id, quantity, price))
                    total += quantity * price
                status = rng.choice(STATUSES)
                data["orders"].append(
                    (oid, tenant, cid, ordered.isoformat(), status, round(total, 2))
                )
                tenant_orders.append((oid, cid, ordered))
        for oid, cid, ordered in rng.sample(tenant_orders, len(tenant_orders) // 4):
            tid = len(data["support_tickets"]) + 1
            opened = ordered + datetime.timedelta(days=rng.randrange(1, 30))
            closed = None
            status = rng.choice(("open", "pending", "closed", "closed", "closed"))
            if status == "closed":
                closed = (opened + datetime.timedelta(days=rng.randrange(0, 12))).isoformat()
            data["support_tickets"].append((
                tid, tenant, cid, oid if rng.random() < 0.85 else None, opened.isoformat(),
                closed, rng.choice(PRIORITIES), status, rng.choice(SUBJECTS),
            ))  # fmt: skip
    return data


def write_sqlite(path: Path) -> None:
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript(SCHEMA)
        for table, table_rows in rows().items():
            marks = ", ".join("?" * len(table_rows[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
    connection.execute("VACUUM")
    connection.close()


def write_duckdb(path: Path) -> None:
    import duckdb

    path.unlink(missing_ok=True)
    connection = duckdb.connect(str(path))
    connection.execute(SCHEMA.replace("REAL", "DOUBLE"))
    for table, table_rows in rows().items():
        marks = "(" + ", ".join("?" * len(table_rows[0])) + ")"
        # Many rows per statement: DuckDB's executemany pays per row.
        for start in range(0, len(table_rows), 500):
            chunk = table_rows[start : start + 500]
            values = ", ".join([marks] * len(chunk))
            connection.execute(
                f"INSERT INTO {table} VALUES {values}", [v for row in chunk for v in row]
            )
    connection.close()


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else Path(__file__).with_name("shop.db")
    (write_duckdb if target.suffix in (".duckdb", ".ddb") else write_sqlite)(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
