-- apimgtdb 40: a publisher's block outlives the subscription it was set on. Deleting a BLOCKED
-- (or PROD_ONLY_BLOCKED) subscription records the block here; subscribing the same application
-- to the same API again restores it (issue 18, item 4).
CREATE TABLE subscription_blocks (
    application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    api_id TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    blocked_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, api_id)
);
