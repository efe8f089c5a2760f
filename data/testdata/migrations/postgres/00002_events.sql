-- +goose Up
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    kind       varchar(32) NOT NULL,
    payload    text NOT NULL,
    amount     bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE events;
