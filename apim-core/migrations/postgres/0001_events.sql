CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
