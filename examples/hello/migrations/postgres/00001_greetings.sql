-- +goose Up
-- IF NOT EXISTS: databases made before the migrations already have it.
CREATE TABLE IF NOT EXISTS greetings (
    id         bigserial PRIMARY KEY,
    name       varchar(64) NOT NULL,
    created_at timestamptz
);

-- +goose Down
DROP TABLE greetings;
