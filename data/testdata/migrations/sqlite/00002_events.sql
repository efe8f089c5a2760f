-- +goose Up
CREATE TABLE events (
    id         integer PRIMARY KEY AUTOINCREMENT,
    kind       text NOT NULL CHECK (length(kind) <= 32),
    payload    text NOT NULL,
    amount     integer NOT NULL DEFAULT 0 CHECK (typeof(amount) = 'integer'),
    created_at datetime NOT NULL
);

-- +goose Down
DROP TABLE events;
