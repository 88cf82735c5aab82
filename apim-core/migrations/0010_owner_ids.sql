-- apimgtdb 10: applications and OAuth clients are bound to their owner's immutable user id
-- (users.user_id in shareddb). Rows of earlier versions get the id their owner's row gets in
-- shareddb migration 1010: 'u-' || user name.
ALTER TABLE applications ADD COLUMN owner_id TEXT;
UPDATE applications SET owner_id = 'u-' || owner;
CREATE INDEX applications_owner_id ON applications (owner_id);
ALTER TABLE oauth_clients ADD COLUMN owner_id TEXT;
UPDATE oauth_clients SET owner_id = 'u-' || owner;
CREATE INDEX oauth_clients_owner_id ON oauth_clients (owner_id);
