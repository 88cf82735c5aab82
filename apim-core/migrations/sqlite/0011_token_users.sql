-- apimgtdb 11: the user of each stored token as a column, so a password change or an account
-- deletion revokes that user's refresh tokens and codes.
ALTER TABLE oauth_tokens ADD COLUMN username TEXT;
UPDATE oauth_tokens SET username = json_extract(body, '$.username');
CREATE INDEX oauth_tokens_username ON oauth_tokens (username);
