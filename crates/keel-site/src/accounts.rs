//! Accounts: users, argon2id passwords and their rules, database sessions, and the limit
//! on failed logins.
//!
//! The rules follow Django's defaults where a Django user would look for them: passwords
//! of at least 8 characters that are not all digits, not like the username or email and
//! not common (zxcvbn's dictionaries and patterns stand in for Django's list of 20,000),
//! sessions of two weeks in a database table, and an unusable password (`!`) for accounts
//! that must not log in.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{now, Db};
use crate::error::SiteError;

/// How long a login lasts: Django's `SESSION_COOKIE_AGE`, two weeks.
pub const SESSION_SECONDS: i64 = 14 * 24 * 3600;
/// Failed logins are counted over this window.
pub const FAILURE_WINDOW_SECONDS: i64 = 15 * 60;
/// Failed logins allowed per account within the window.
pub const FAILURES_PER_ACCOUNT: i64 = 5;
/// Failed logins allowed per client address within the window (several accounts).
pub const FAILURES_PER_ADDRESS: i64 = 20;
/// Passwords longer than this are refused before hashing: a megabyte password should not
/// cost the server a megabyte of argon2 work per attempt.
const MAX_PASSWORD_CHARS: usize = 1024;

/// A signed-in user as the pages see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// As typed at registration.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// May use `/admin/`.
    pub is_staff: bool,
}

/// A random token for cookies and forms: 32 bytes from the OS, base64url.
/// 256 random bits from the OS, URL-safe base64 (43 characters): sessions, CSRF, guests,
/// and `keel up`'s local publish token.
pub fn random_token() -> Result<String, SiteError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| SiteError::Internal(format!("no randomness from the OS: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a username's form; the message is for the registration form.
pub fn check_username(username: &str) -> Result<(), String> {
    let n = username.chars().count();
    if !(3..=30).contains(&n) {
        return Err("Usernames are 3 to 30 characters long.".into());
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'))
    {
        return Err("Use only letters, digits and @ . + - _ in a username.".into());
    }
    Ok(())
}

/// Checks an email address's shape (delivery is not checked).
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = || Err("Enter a valid email address.".to_owned());
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return invalid();
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || !domain_ok {
        return invalid();
    }
    Ok(())
}

/// Django's password validators, in its order; every failing rule gives a message.
pub fn check_password(password: &str, username: &str, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let n = password.chars().count();
    if n < 8 {
        problems.push("This password is too short. It must contain at least 8 characters.".into());
    }
    if n > MAX_PASSWORD_CHARS {
        problems.push(format!(
            "This password is too long. It may have at most {MAX_PASSWORD_CHARS} characters."
        ));
        return problems;
    }
    if n > 0 && password.chars().all(|c| c.is_ascii_digit()) {
        problems.push("This password is entirely numeric.".into());
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let similar =
        |attr: &str| attr.chars().count() >= 3 && (lower.contains(attr) || attr.contains(&lower));
    if similar(&username.to_lowercase()) || similar(&local) {
        problems.push("The password is too similar to the username or email.".into());
    }
    if n >= 8 && problems.is_empty() {
        let estimate = zxcvbn::zxcvbn(password, &[username, email]);
        if (estimate.score() as u8) < 2 {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            problems.push(format!(
                "This password is too common or too easy to guess{hint}."
            ));
        }
    }
    problems
}

/// argon2id with the crate's defaults (OWASP's m=19 MiB, t=2, p=1). CPU-heavy: call it
/// from a blocking thread.
pub fn hash_password(password: &str) -> Result<String, SiteError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SiteError::Internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the stored PHC string; unusable hashes never match.
fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows, verified when the username does not exist so that
/// a wrong username costs as long as a wrong password (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("keel-dummy-password-for-timing").unwrap_or_default())
}

/// What registration can refuse besides the rules above.
#[derive(Debug)]
pub enum CreateUserError {
    /// The name is taken (case-insensitively).
    UsernameTaken,
    /// Anything else.
    Site(SiteError),
}

impl From<SiteError> for CreateUserError {
    fn from(e: SiteError) -> Self {
        CreateUserError::Site(e)
    }
}

/// Creates a user with an argon2id hash of `password` (hashed off the async workers).
/// Callers check the rules first; this only enforces uniqueness.
pub async fn create_user(
    db: &Db,
    username: &str,
    email: &str,
    password: &str,
    staff: bool,
) -> Result<User, CreateUserError> {
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| SiteError::Internal(format!("hashing task failed: {e}")))??;
    insert_user(db, username, email, &hash, staff).await
}

pub(crate) async fn insert_user(
    db: &Db,
    username: &str,
    email: &str,
    password_hash: &str,
    staff: bool,
) -> Result<User, CreateUserError> {
    let key = username.to_lowercase();
    let result = sqlx::query(
        "INSERT INTO users (username, username_key, email, password_hash, is_staff, is_superuser, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(username)
    .bind(&key)
    .bind(email)
    .bind(password_hash)
    .bind(i64::from(staff))
    .bind(i64::from(staff))
    .bind(now())
    .fetch_one(db.pool())
    .await;
    match result {
        Ok(row) => Ok(User {
            id: row.try_get("id").map_err(SiteError::Db)?,
            username: username.to_owned(),
            email: email.to_owned(),
            is_staff: staff,
        }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(CreateUserError::UsernameTaken)
        }
        Err(e) => Err(CreateUserError::Site(e.into())),
    }
}

/// Whether an account with this name (any case) exists.
pub async fn username_exists(db: &Db, username: &str) -> Result<bool, SiteError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE username_key = $1")
        .bind(username.to_lowercase())
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// The outcome of a login attempt.
#[derive(Debug)]
pub enum Login {
    /// Right password: the user.
    Ok(User),
    /// Wrong username or password (the visitor is not told which).
    Invalid,
}

/// Checks the limits, then the password; records a failure or clears the account's.
pub async fn authenticate(
    db: &Db,
    username: &str,
    password: &str,
    address: &str,
) -> Result<Login, SiteError> {
    let key = username.to_lowercase();
    check_failures(db, "account", &key, FAILURES_PER_ACCOUNT).await?;
    check_failures(db, "address", address, FAILURES_PER_ADDRESS).await?;

    let row = sqlx::query(
        "SELECT id, username, email, password_hash, is_staff FROM users WHERE username_key = $1",
    )
    .bind(&key)
    .fetch_optional(db.pool())
    .await?;
    let stored = match &row {
        Some(row) => Some(row.try_get::<String, _>("password_hash")?),
        None => None,
    };
    let candidate = password
        .chars()
        .take(MAX_PASSWORD_CHARS + 1)
        .collect::<String>();
    // The dummy hash is made on its first use: on the blocking pool too.
    let matches = tokio::task::spawn_blocking(move || match &stored {
        Some(hash) => verify_password(&candidate, hash),
        None => verify_password(&candidate, dummy_hash()),
    })
    .await
    .map_err(|e| SiteError::Internal(format!("verification task failed: {e}")))?;
    match row {
        Some(row) if matches => {
            sqlx::query("DELETE FROM login_failures WHERE scope = 'account' AND subject = $1")
                .bind(&key)
                .execute(db.pool())
                .await?;
            let user = User {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                email: row.try_get("email")?,
                is_staff: row.try_get::<i64, _>("is_staff")? != 0,
            };
            sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
                .bind(now())
                .bind(user.id)
                .execute(db.pool())
                .await?;
            Ok(Login::Ok(user))
        }
        _ => {
            let at = now();
            for (scope, subject) in [("account", key.as_str()), ("address", address)] {
                sqlx::query("INSERT INTO login_failures (scope, subject, at) VALUES ($1, $2, $3)")
                    .bind(scope)
                    .bind(subject)
                    .bind(at)
                    .execute(db.pool())
                    .await?;
            }
            // Old failures are pruned here, by the only writer, so the table stays small.
            sqlx::query("DELETE FROM login_failures WHERE at < $1")
                .bind(at - FAILURE_WINDOW_SECONDS)
                .execute(db.pool())
                .await?;
            Ok(Login::Invalid)
        }
    }
}

async fn check_failures(db: &Db, scope: &str, subject: &str, limit: i64) -> Result<(), SiteError> {
    let since = now() - FAILURE_WINDOW_SECONDS;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(at) AS first FROM login_failures
         WHERE scope = $1 AND subject = $2 AND at >= $3",
    )
    .bind(scope)
    .bind(subject)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    let count: i64 = row.try_get("n")?;
    if count < limit {
        return Ok(());
    }
    let first: Option<i64> = row.try_get("first")?;
    let retry_after = first.map_or(FAILURE_WINDOW_SECONDS, |f| {
        f + FAILURE_WINDOW_SECONDS - now()
    });
    let retry_after = u64::try_from(retry_after.max(1)).unwrap_or(1);
    let minutes = retry_after.div_ceil(60);
    let whose = if scope == "account" {
        "this account"
    } else {
        "your address"
    };
    Err(SiteError::TooMany {
        retry_after,
        message: format!(
            "Too many failed login attempts for {whose}. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ),
    })
}

/// Starts a session for `user`; returns the cookie token (only its hash is stored).
pub async fn start_session(db: &Db, user: &User) -> Result<String, SiteError> {
    let token = random_token()?;
    let at = now();
    sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
        .bind(at)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(user.id)
    .bind(at)
    .bind(at + SESSION_SECONDS)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// The user of a live session, if the token names one.
pub async fn session_user(db: &Db, token: &str) -> Result<Option<User>, SiteError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.email, u.is_staff FROM sessions s
         JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(now())
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            is_staff: row.try_get::<i64, _>("is_staff")? != 0,
        })
    })
    .transpose()
}

/// Ends the session with this token (logout).
pub async fn end_session(db: &Db, token: &str) -> Result<(), SiteError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_match_djangos_messages() {
        let short = check_password("abc", "alice", "a@example.com");
        assert!(short.iter().any(|m| m.contains("too short")), "{short:?}");
        let numeric = check_password("8231947305", "alice", "a@example.com");
        assert!(
            numeric.iter().any(|m| m.contains("entirely numeric")),
            "{numeric:?}"
        );
        let common = check_password("password1", "alice", "a@example.com");
        assert!(
            common.iter().any(|m| m.contains("too common")),
            "{common:?}"
        );
        let similar = check_password("alice2024!", "alice", "a@example.com");
        assert!(similar.iter().any(|m| m.contains("similar")), "{similar:?}");
        assert!(check_password("tidal-quartz-meadow-91", "alice", "a@example.com").is_empty());
    }

    #[test]
    fn usernames_and_emails() {
        assert!(check_username("alice_01").is_ok());
        assert!(check_username("al").is_err());
        assert!(check_username("<script>").is_err());
        assert!(check_email("a@example.com").is_ok());
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@.c", "a@b..c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("tidal-quartz-meadow-91").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("tidal-quartz-meadow-91", &hash));
        assert!(!verify_password("tidal-quartz-meadow-92", &hash));
        assert!(!verify_password("anything", "!"));
    }
}
