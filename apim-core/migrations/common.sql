-- apimgtdb: APIs, applications, subscriptions, keys, tokens, policies, events (outbox)
CREATE TABLE apis (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    context TEXT NOT NULL,
    version TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (context, version)
);
CREATE TABLE api_revisions (
    id TEXT PRIMARY KEY,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    description TEXT,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (api_id, number)
);
CREATE TABLE api_deployments (
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    revision_id TEXT NOT NULL REFERENCES api_revisions(id) ON DELETE CASCADE,
    vhost TEXT,
    display_on_devportal BIGINT NOT NULL,
    deployed_at BIGINT NOT NULL,
    PRIMARY KEY (api_id, environment)
);
CREATE TABLE api_lifecycle_history (
    id TEXT PRIMARY KEY,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    previous_state TEXT NOT NULL,
    post_state TEXT NOT NULL,
    username TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE api_documents (
    id TEXT PRIMARY KEY,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (api_id, name)
);
CREATE TABLE api_ratings (
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    rating BIGINT NOT NULL,
    PRIMARY KEY (api_id, username)
);
CREATE TABLE api_comments (
    id TEXT PRIMARY KEY,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (application_id, api_id)
);
CREATE TABLE key_mappings (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    key_type TEXT NOT NULL,
    consumer_key TEXT NOT NULL UNIQUE,
    key_manager TEXT NOT NULL,
    UNIQUE (application_id, key_type)
);
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    owner TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE oauth_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    body TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL
);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    token_type TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE policies (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE block_conditions (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE scopes (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
