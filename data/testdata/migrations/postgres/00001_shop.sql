-- +goose Up
CREATE TABLE products (
    id    bigserial PRIMARY KEY,
    name  varchar(64) NOT NULL UNIQUE,
    stock integer NOT NULL CHECK (stock >= 0)
);
CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    product_id bigint NOT NULL REFERENCES products (id),
    qty        integer NOT NULL CHECK (qty > 0),
    note       varchar(200) NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE orders;
DROP TABLE products;
