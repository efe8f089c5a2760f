-- +goose Up
-- Prices are whole cents: money is never a float.
CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    name        varchar(80) NOT NULL UNIQUE,
    description varchar(400) NOT NULL DEFAULT '',
    price       bigint NOT NULL CHECK (price >= 0),
    stock       integer NOT NULL CHECK (stock >= 0)
);

-- idempotency_key is NULL for orders placed without one; UNIQUE lets any
-- number of NULLs through and at most one order per key, on every instance.
CREATE TABLE orders (
    id              bigserial PRIMARY KEY,
    idempotency_key varchar(255) UNIQUE,
    request_hash    char(64) NOT NULL,
    total           bigint NOT NULL CHECK (total >= 0),
    created_at      timestamptz NOT NULL
);

-- name and price are copied from the product when the order is placed: an
-- order says what was bought at what price, whatever the catalogue says
-- later.
CREATE TABLE order_items (
    order_id   bigint NOT NULL REFERENCES orders (id),
    product_id bigint NOT NULL REFERENCES products (id),
    name       varchar(80) NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    price      bigint NOT NULL CHECK (price >= 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product ON order_items (product_id);

-- +goose Down
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE products;
