-- +goose Up
-- IF NOT EXISTS: databases made before the migrations already have it.
CREATE TABLE IF NOT EXISTS greetings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL CHECK (length(name) <= 64),
    created_at DATETIME
);

-- +goose Down
DROP TABLE greetings;
