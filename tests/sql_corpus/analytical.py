"""Analytical queries over the sample shop that the SQL guard must allow, unchanged in meaning.

Each runs on SQLite and DuckDB alike (dates are ISO text in both).
"""

from __future__ import annotations

ANALYTICAL: list[str] = [
    # aggregates
    "SELECT count(*) FROM orders",
    "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status",
    "SELECT round(sum(total), 2) AS revenue FROM orders WHERE status <> 'cancelled'",
    "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY 2 DESC, 1",
    "SELECT category, round(avg(unit_price), 2) AS avg_price, min(unit_price), max(unit_price) "
    "FROM products GROUP BY category ORDER BY category",
    "SELECT segment, count(DISTINCT country) FROM customers GROUP BY segment ORDER BY segment",
    "SELECT substr(order_date, 1, 7) AS month, count(*) AS orders FROM orders "
    "GROUP BY month ORDER BY month",
    "SELECT priority, status, count(*) FROM support_tickets GROUP BY priority, status "
    "ORDER BY priority, status",
    "SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id HAVING count(*) > 8 "
    "ORDER BY n DESC, customer_id",
    "SELECT count(*) FROM support_tickets WHERE closed_at IS NULL",
    # joins
    "SELECT c.name, count(o.id) AS orders FROM customers c LEFT JOIN orders o "
    "ON o.customer_id = c.id GROUP BY c.id, c.name ORDER BY orders DESC, c.id LIMIT 10",
    "SELECT p.category, sum(i.quantity) AS units FROM order_items i JOIN products p "
    "ON p.id = i.product_id GROUP BY p.category ORDER BY units DESC, p.category",
    "SELECT p.name, round(sum(i.quantity * i.unit_price), 2) AS revenue FROM order_items i "
    "JOIN products p ON p.id = i.product_id GROUP BY p.id, p.name ORDER BY revenue DESC, p.id "
    "LIMIT 5",
    "SELECT c.country, round(sum(o.total), 2) AS revenue FROM orders o JOIN customers c "
    "ON c.id = o.customer_id WHERE o.status = 'delivered' GROUP BY c.country ORDER BY 2 DESC",
    "SELECT t.id, c.email, o.total FROM support_tickets t JOIN customers c "
    "ON c.id = t.customer_id LEFT JOIN orders o ON o.id = t.order_id "
    "WHERE t.priority = 'urgent' ORDER BY t.id",
    "SELECT c.segment, count(t.id) AS tickets FROM customers c JOIN support_tickets t "
    "ON t.customer_id = c.id GROUP BY c.segment ORDER BY c.segment",
    "SELECT o.id FROM orders o WHERE NOT EXISTS "
    "(SELECT 1 FROM support_tickets t WHERE t.order_id = o.id) AND o.status = 'returned' "
    "ORDER BY o.id",
    "SELECT c.id, c.name FROM customers c WHERE c.id NOT IN "
    "(SELECT customer_id FROM orders) ORDER BY c.id",
    "SELECT a.id, b.id FROM customers a JOIN customers b ON a.email = b.email AND a.id < b.id",
    "SELECT o.id, count(i.id) AS lines FROM orders o JOIN order_items i ON i.order_id = o.id "
    "GROUP BY o.id HAVING count(i.id) = 4 ORDER BY o.id LIMIT 20",
    # CTEs
    "WITH spend AS (SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id) "
    "SELECT c.name, round(s.total, 2) FROM spend s JOIN customers c ON c.id = s.customer_id "
    "ORDER BY s.total DESC, c.id LIMIT 5",
    "WITH monthly AS (SELECT substr(order_date, 1, 7) AS month, sum(total) AS revenue "
    "FROM orders GROUP BY 1) SELECT month, round(revenue, 2) FROM monthly "
    "WHERE revenue > (SELECT avg(revenue) FROM monthly) ORDER BY month",
    "WITH first_orders AS (SELECT customer_id, min(order_date) AS first FROM orders "
    "GROUP BY customer_id) SELECT substr(first, 1, 4) AS year, count(*) FROM first_orders "
    "GROUP BY year ORDER BY year",
    "WITH a AS (SELECT id FROM customers WHERE segment = 'business'), "
    "b AS (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) "
    "SELECT count(*), sum(b.n) FROM a JOIN b ON b.customer_id = a.id",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12) "
    "SELECT i, (SELECT count(*) FROM orders WHERE CAST(substr(order_date, 6, 2) AS INTEGER) = i) "
    "FROM n ORDER BY i",
    "WITH open_t AS (SELECT * FROM support_tickets WHERE status <> 'closed') "
    "SELECT subject, count(*) FROM open_t GROUP BY subject ORDER BY 2 DESC, 1",
    # window functions
    "SELECT id, customer_id, total, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) "
    "AS r FROM orders WHERE customer_id <= 5 ORDER BY customer_id, r, id",
    "SELECT id, order_date, round(sum(total) OVER (ORDER BY order_date, id), 2) AS running "
    "FROM orders WHERE customer_id = 7 ORDER BY order_date, id",
    "SELECT category, name, unit_price, row_number() OVER (PARTITION BY category "
    "ORDER BY unit_price DESC, id) AS pos FROM products ORDER BY category, pos",
    "SELECT month, n, n - lag(n) OVER (ORDER BY month) AS change FROM (SELECT "
    "substr(order_date, 1, 7) AS month, count(*) AS n FROM orders GROUP BY 1) ORDER BY month",
    "SELECT id, total, ntile(4) OVER (ORDER BY total, id) AS quartile FROM orders "
    "ORDER BY id LIMIT 30",
    "SELECT customer_id, order_date, lead(order_date) OVER (PARTITION BY customer_id "
    "ORDER BY order_date, id) AS next FROM orders WHERE customer_id < 4 "
    "ORDER BY customer_id, order_date, id",
    "SELECT * FROM (SELECT p.category, p.name, sum(i.quantity) AS units, dense_rank() OVER "
    "(PARTITION BY p.category ORDER BY sum(i.quantity) DESC) AS r FROM order_items i "
    "JOIN products p ON p.id = i.product_id GROUP BY p.category, p.id, p.name) "
    "WHERE r = 1 ORDER BY category, name",
    # set operations, CASE, subqueries
    "SELECT customer_id FROM orders WHERE status = 'returned' UNION "
    "SELECT customer_id FROM support_tickets WHERE priority = 'urgent' ORDER BY 1",
    "SELECT customer_id FROM orders INTERSECT SELECT customer_id FROM support_tickets ORDER BY 1",
    "SELECT id FROM customers EXCEPT SELECT customer_id FROM orders ORDER BY 1",
    "SELECT CASE WHEN total >= 200 THEN 'large' WHEN total >= 50 THEN 'medium' "
    "ELSE 'small' END AS size, count(*) FROM orders GROUP BY size ORDER BY size",
    "SELECT id, coalesce(closed_at, 'open') AS closed, upper(priority) FROM support_tickets "
    "WHERE id BETWEEN 10 AND 20 ORDER BY id",
    "SELECT name, length(name), lower(email) FROM customers WHERE name LIKE 'A%' "
    "ORDER BY id LIMIT 10",
    "SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM customers) "
    "AS customers, (SELECT count(*) FROM support_tickets) AS tickets",
]
