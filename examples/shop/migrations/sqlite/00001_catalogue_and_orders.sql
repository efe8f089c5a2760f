-- +goose Up
-- Prices are whole cents: money is never a float.
CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) <= 80),
    description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 400),
    price       INTEGER NOT NULL CHECK (price >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0)
);

-- idempotency_key is NULL for orders placed without one; UNIQUE lets any
-- number of NULLs through and at most one order per key.
CREATE TABLE orders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE CHECK (length(idempotency_key) <= 255),
    request_hash    TEXT NOT NULL,
    total           INTEGER NOT NULL CHECK (total >= 0),
    created_at      DATETIME NOT NULL
);

-- name and price are copied from the product when the order is placed: an
-- order says what was bought at what price, whatever the catalogue says
-- later.
CREATE TABLE order_items (
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    product_id INTEGER NOT NULL REFERENCES products (id),
    name       TEXT NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    price      INTEGER NOT NULL CHECK (price >= 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product ON order_items (product_id);

-- +goose Down
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE products;
