//! The interviewer in the database: sessions (the `keel_interview::Session` state machine
//! and the transcript, as JSON), the banks staff edited (they replace the shipped track
//! of the same name), and the per-day count of answers that used a model.

use keel_interview::{Session, Track};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now, Db};
use crate::error::SiteError;
use crate::quiz::store::Owner;

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `interviewer` or `reader`.
    pub who: String,
    /// What was said (the interviewer's sentences, as a model phrased them when one did).
    pub text: String,
    /// The rubric's sentences behind an interviewer line, streamed one by one when no
    /// model phrases them.
    #[serde(default)]
    pub says: Vec<String>,
    /// A model was used for this line (its verdict was checked, or it phrased the text).
    #[serde(default)]
    pub model: bool,
}

impl Entry {
    /// A line of the interviewer's.
    pub fn interviewer(says: Vec<String>, model: bool) -> Entry {
        Entry {
            who: "interviewer".into(),
            text: says.join(" "),
            says,
            model,
        }
    }

    /// A line of the reader's.
    pub fn reader(text: &str) -> Entry {
        Entry {
            who: "reader".into(),
            text: text.to_owned(),
            says: Vec::new(),
            model: false,
        }
    }
}

/// A stored interview.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Database id.
    pub id: i64,
    /// Whose.
    pub owner: Owner,
    /// The track's name.
    pub track: String,
    /// The state machine.
    pub session: Session,
    /// What was said.
    pub transcript: Vec<Entry>,
    /// Out of 100, once finished.
    pub score: Option<f64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, once finished.
    pub finished_at: Option<i64>,
}

fn json<T: Serialize>(value: &T) -> Result<String, SiteError> {
    serde_json::to_string(value).map_err(|e| SiteError::Internal(format!("JSON: {e}")))
}

const COLUMNS: &str =
    "id, user_id, guest_key, track, state, transcript, score, created_at, finished_at";

fn from_row(row: &AnyRow) -> Result<Stored, SiteError> {
    let user: Option<i64> = row.try_get("user_id")?;
    let guest: Option<String> = row.try_get("guest_key")?;
    let state: String = row.try_get("state")?;
    let transcript: String = row.try_get("transcript")?;
    let score: Option<i64> = row.try_get("score")?;
    Ok(Stored {
        id: row.try_get("id")?,
        owner: match (user, guest) {
            (Some(id), _) => Owner::User(id),
            (None, key) => Owner::Guest(key.unwrap_or_default()),
        },
        track: row.try_get("track")?,
        session: serde_json::from_str(&state)
            .map_err(|e| SiteError::Internal(format!("a stored interview does not parse: {e}")))?,
        transcript: serde_json::from_str(&transcript).unwrap_or_default(),
        score: score.map(|s| s as f64 / 100.0),
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Stores a new interview; returns its id.
pub async fn create(
    db: &Db,
    owner: &Owner,
    session: &Session,
    transcript: &[Entry],
) -> Result<i64, SiteError> {
    let (user, guest) = match owner {
        Owner::User(id) => (Some(*id), None),
        Owner::Guest(key) => (None, Some(key.as_str())),
    };
    let at = now();
    let row = sqlx::query(
        "INSERT INTO interview_sessions (user_id, guest_key, track, state, transcript, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(user)
    .bind(guest)
    .bind(&session.setup().track)
    .bind(json(session)?)
    .bind(json(&transcript)?)
    .bind(at)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// One interview by id (the caller checks whose it is).
pub async fn get(db: &Db, id: i64) -> Result<Option<Stored>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM interview_sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Saves an interview's state and transcript (and its score once finished).
pub async fn save(
    db: &Db,
    id: i64,
    session: &Session,
    transcript: &[Entry],
    score: Option<f64>,
) -> Result<(), SiteError> {
    let at = now();
    sqlx::query(
        "UPDATE interview_sessions SET state = $1, transcript = $2, score = $3, updated_at = $4,
             finished_at = CASE WHEN $5 = 1 AND finished_at IS NULL THEN $4 ELSE finished_at END
         WHERE id = $6",
    )
    .bind(json(session)?)
    .bind(json(&transcript)?)
    .bind(score.map(|s| (s * 100.0).round() as i64))
    .bind(at)
    .bind(i64::from(session.is_done()))
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Replaces one transcript line (a model's phrasing, once it is complete).
pub async fn set_line(db: &Db, id: i64, index: usize, entry: &Entry) -> Result<(), SiteError> {
    let Some(mut stored) = get(db, id).await? else {
        return Ok(());
    };
    if let Some(line) = stored.transcript.get_mut(index) {
        *line = entry.clone();
        sqlx::query("UPDATE interview_sessions SET transcript = $1 WHERE id = $2")
            .bind(json(&stored.transcript)?)
            .bind(id)
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

/// The interviews of `owner`, newest first.
pub async fn of(db: &Db, owner: &Owner) -> Result<Vec<Stored>, SiteError> {
    let rows = match owner {
        Owner::User(id) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM interview_sessions WHERE user_id = $1
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(*id)
            .fetch_all(db.pool())
            .await?
        }
        Owner::Guest(key) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM interview_sessions WHERE guest_key = $1 AND user_id IS NULL
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(key)
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Every stored interview of a track (for a regrade).
pub async fn of_track(db: &Db, track: &str) -> Result<Vec<Stored>, SiteError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM interview_sessions WHERE track = $1 ORDER BY id"
    ))
    .bind(track)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The tracks readers may choose: the shipped ones, each replaced by the bank staff
/// saved under its name, and banks staff added.
pub async fn tracks(db: &Db) -> Result<Vec<Track>, SiteError> {
    let mut tracks = keel_interview::shipped();
    let rows = sqlx::query("SELECT track, source FROM interview_banks ORDER BY track")
        .fetch_all(db.pool())
        .await?;
    for row in rows {
        let source: String = row.try_get("source")?;
        // Saved banks were validated; one that no longer parses (a newer keel's rules) is
        // logged and the shipped one stays.
        match keel_interview::parse_track(&source) {
            Ok(track) => match tracks.iter_mut().find(|t| t.name == track.name) {
                Some(slot) => *slot = track,
                None => tracks.push(track),
            },
            Err(errors) => {
                let name: String = row.try_get("track")?;
                tracing::warn!(track = %name, errors = errors.len(), "a saved interview bank does not parse; the shipped one is used");
            }
        }
    }
    Ok(tracks)
}

/// The bank text of a track: as staff saved it, else as shipped.
pub async fn bank_source(db: &Db, track: &str) -> Result<Option<String>, SiteError> {
    let row = sqlx::query("SELECT source FROM interview_banks WHERE track = $1")
        .bind(track)
        .fetch_optional(db.pool())
        .await?;
    if let Some(row) = row {
        return Ok(Some(row.try_get("source")?));
    }
    Ok(keel_interview::TRACKS
        .iter()
        .find(|(name, _)| *name == track)
        .map(|(_, text)| (*text).to_owned()))
}

/// Saves a bank's text (already validated) under its track's name.
pub async fn save_bank(db: &Db, track: &str, source: &str) -> Result<(), SiteError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM interview_banks WHERE track = $1")
        .bind(track)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO interview_banks (track, source, updated_at) VALUES ($1, $2, $3)")
        .bind(track)
        .bind(source)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Counts one model call for `subject` today; `false` (and nothing counted) once `limit`
/// were used. One statement: concurrent answers neither wait on each other (SQLite would
/// refuse a read-then-write upgrade with "database is locked") nor undercount (PostgreSQL).
pub async fn take_turn(db: &Db, subject: &str, limit: u32) -> Result<bool, SiteError> {
    if limit == 0 {
        return Ok(false);
    }
    let day = now() / 86_400;
    let row = sqlx::query(
        "INSERT INTO interview_usage (subject, day, turns) VALUES ($1, $2, 1)
         ON CONFLICT (subject, day) DO UPDATE SET turns = interview_usage.turns + 1
             WHERE interview_usage.turns < $3
         RETURNING turns",
    )
    .bind(subject)
    .bind(day)
    .bind(i64::from(limit))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}
