-- +goose Up
CREATE TABLE products (
    id    integer PRIMARY KEY AUTOINCREMENT,
    name  text NOT NULL UNIQUE CHECK (length(name) <= 64),
    stock integer NOT NULL CHECK (stock >= 0)
) STRICT;
CREATE TABLE orders (
    id         integer PRIMARY KEY AUTOINCREMENT,
    product_id integer NOT NULL REFERENCES products (id),
    qty        integer NOT NULL CHECK (qty > 0),
    note       text NOT NULL DEFAULT '' CHECK (length(note) <= 200)
) STRICT;

-- +goose Down
DROP TABLE orders;
DROP TABLE products;
