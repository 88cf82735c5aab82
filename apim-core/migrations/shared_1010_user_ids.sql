-- shareddb 1010: an immutable id per user (what applications and OAuth clients are bound to)
-- and case-insensitively unique user names.
-- Existing users get 'u-' || user name (the same id apimgtdb migration 10 gives their
-- applications and clients); new users get a random UUID, so a later account with a deleted
-- user's name never matches.
ALTER TABLE users ADD COLUMN user_id TEXT;
UPDATE users SET user_id = 'u-' || username;
CREATE UNIQUE INDEX users_user_id ON users (user_id);
-- lower-cased name, unique. Existing users whose names differ only by case keep working: the
-- first of each such group (by name) holds the key, the others keep NULL (NULLs do not collide),
-- and any new name equal to one of them regardless of case is refused.
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = lower(username)
WHERE NOT EXISTS (
    SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username) AND o.username < users.username
);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
