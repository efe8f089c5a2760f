-- +goose Up
CREATE TABLE events (
    id         integer PRIMARY KEY AUTOINCREMENT,
    kind       text NOT NULL CHECK (length(kind) <= 32),
    payload    text NOT NULL,
    amount     integer NOT NULL DEFAULT 0,
    created_at text NOT NULL
) STRICT;

-- +goose Down
DROP TABLE events;
