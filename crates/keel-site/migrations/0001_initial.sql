-- keel's site schema. One set of migrations for SQLite and PostgreSQL: `{{id}}` is the only
-- dialect-specific piece (an auto-numbered primary key), filled in by db.rs per backend.
-- Times are Unix seconds in BIGINT columns: portable, and sqlx's Any driver has no date types.
-- Flags are BIGINT 0/1: the Any driver cannot decode SQLite's BOOLEAN.

CREATE TABLE users (
    id {{id}},
    username TEXT NOT NULL,
    -- lowercased username: "Alice" and "alice" are the same account, as in most sites
    username_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    -- argon2id PHC string; "!" marks an account that cannot log in (Django's unusable password)
    password_hash TEXT NOT NULL,
    is_staff BIGINT NOT NULL DEFAULT 0,
    is_superuser BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_login BIGINT
);

CREATE TABLE sessions (
    -- SHA-256 of the cookie's token: a copy of the database does not hand out sessions
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE posts (
    id {{id}},
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    -- rendered and sanitized once at save time, not on every view
    body_html TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    author_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    published BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX posts_listing ON posts (published, published_at);

CREATE TABLE tags (
    id {{id}},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE post_tags (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, tag_id)
);
CREATE INDEX post_tags_tag ON post_tags (tag_id);

CREATE TABLE feedback (
    id {{id}},
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    message TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);

-- Failed logins, kept in the database so that several `keel serve` share the limits.
CREATE TABLE login_failures (
    id {{id}},
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (scope, subject, at);

CREATE TABLE site_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
