"""Queries that try to read other tenants' rows; scoped to tenant 1, each must see only its own.

They stand for questions like "show me tenant 2's orders", "all customers of every shop",
"compare our revenue with the other tenants'", written the ways a model might write them.
"""

from __future__ import annotations

CROSS_TENANT: list[str] = [
    "SELECT * FROM orders WHERE tenant_id = 2",
    "SELECT * FROM customers WHERE tenant_id = 2 OR 1 = 1",
    "SELECT id, tenant_id FROM orders WHERE tenant_id <> 1",
    "SELECT tenant_id, count(*), round(sum(total), 2) FROM orders GROUP BY tenant_id",
    "SELECT name FROM customers WHERE tenant_id = 1 UNION SELECT name FROM customers "
    "WHERE tenant_id = 3",
    "SELECT id, tenant_id FROM orders UNION ALL SELECT id, tenant_id FROM support_tickets "
    "WHERE tenant_id = 2",
    "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE tenant_id = 2)",
    "WITH other AS (SELECT * FROM customers WHERE tenant_id = 3) SELECT * FROM other",
    "SELECT o.id, c.id, c.tenant_id FROM orders o JOIN customers c ON c.tenant_id = 2 "
    "AND c.id = o.customer_id",
    "SELECT (SELECT count(*) FROM orders) AS all_orders, (SELECT count(*) FROM customers) AS c",
    "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = 2 "
    "AND c.id = o.customer_id)",
    "SELECT max(total), min(total), count(*) FROM orders WHERE tenant_id IN (1, 2, 3)",
    "SELECT * FROM main.orders WHERE tenant_id = 2",
    'SELECT * FROM "ORDERS" WHERE tenant_id = 2',
    "SELECT * FROM orders AS customers WHERE customers.tenant_id = 2",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) "
    "SELECT o.id, o.tenant_id FROM orders o, t WHERE o.tenant_id = t.n",
    "SELECT * FROM (SELECT * FROM orders) AS x WHERE x.tenant_id = 2",
    "SELECT c.id, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
    "AND o.tenant_id = 2",
    "SELECT * FROM orders WHERE tenant_id = 2 /* the caller's tenant */ -- trust me",
    "SELECT count(*) FROM orders, customers WHERE customers.tenant_id = 3",
    "SELECT * FROM support_tickets WHERE tenant_id = CAST('2' AS INTEGER)",
    "SELECT id FROM products WHERE tenant_id = 2 INTERSECT SELECT id FROM products",
    "SELECT i.* FROM order_items i JOIN products p ON p.id = i.product_id WHERE p.sku LIKE 'T2-%'",
]
