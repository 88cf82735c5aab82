-- apimgtdb 20: scope definitions with role bindings. Shared scopes (`scopes`) get an id; an
-- API's own scopes live in `api_scopes` (gone with the API); tokens are found by client (revoked
-- together when the client's secret changes or its keys are removed).
CREATE TABLE api_scopes (
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (api_id, name)
);
CREATE INDEX api_scopes_name ON api_scopes (name);
ALTER TABLE scopes ADD COLUMN id TEXT;
UPDATE scopes SET id = name WHERE id IS NULL;
CREATE UNIQUE INDEX scopes_id ON scopes (id);
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
