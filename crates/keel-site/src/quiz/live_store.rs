//! Live rooms in the database: the room and its phase, the players and their scores, one
//! answer per player and question. Every state change is a conditional UPDATE on the
//! phase it starts from, so two hosts' clicks (or two processes) cannot advance a room
//! twice, and an answer's uniqueness is the table's key, not a check before an insert.

use keel_quiz::Response;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now, Db};
use crate::error::SiteError;

/// Where a room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Players join; no question yet.
    Lobby,
    /// A question is on screen and takes answers.
    Question,
    /// The answer, the tally and the leaderboard are shown.
    Reveal,
    /// The podium.
    Finished,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Lobby => "lobby",
            Phase::Question => "question",
            Phase::Reveal => "reveal",
            Phase::Finished => "finished",
        }
    }

    fn parse(text: &str) -> Phase {
        match text {
            "question" => Phase::Question,
            "reveal" => Phase::Reveal,
            "finished" => Phase::Finished,
            _ => Phase::Lobby,
        }
    }
}

/// A room.
#[derive(Debug, Clone)]
pub struct Room {
    /// Database id.
    pub id: i64,
    /// What players type to join.
    pub pin: String,
    /// The quiz it plays.
    pub quiz_id: i64,
    /// The drawn questions, in order.
    pub question_ids: Vec<i64>,
    /// Seed of the choice order.
    pub seed: u64,
    /// Index of the question on screen; -1 in the lobby.
    pub current: i64,
    /// Where the room is.
    pub phase: Phase,
    /// Unix milliseconds when the current question appeared.
    pub started_ms: Option<i64>,
    /// Time to answer one question.
    pub limit_ms: i64,
    /// Whether consecutive right answers earn a bonus.
    pub streak_bonus: bool,
    /// The current question's reveal as the host's reveal stored it (JSON).
    pub reveal: Option<String>,
}

impl Room {
    /// Until when the current question takes answers.
    pub fn deadline_ms(&self) -> Option<i64> {
        self.started_ms.map(|s| s + self.limit_ms)
    }
}

/// A player.
#[derive(Debug, Clone)]
pub struct Player {
    /// Database id.
    pub id: i64,
    /// As typed.
    pub nickname: String,
    /// Points so far.
    pub score: i64,
    /// Right answers in a row.
    pub streak: i64,
}

/// Now in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const ROOM_COLUMNS: &str = "id, pin, quiz_id, question_ids, seed, current, phase, question_started_ms, limit_ms, streak_bonus, reveal";

fn room_from_row(row: &AnyRow) -> Result<Room, SiteError> {
    let ids: String = row.try_get("question_ids")?;
    let phase: String = row.try_get("phase")?;
    Ok(Room {
        id: row.try_get("id")?,
        pin: row.try_get("pin")?,
        quiz_id: row.try_get("quiz_id")?,
        question_ids: serde_json::from_str(&ids).unwrap_or_default(),
        seed: u64::from_ne_bytes(row.try_get::<i64, _>("seed")?.to_ne_bytes()),
        current: row.try_get("current")?,
        phase: Phase::parse(&phase),
        started_ms: row.try_get("question_started_ms")?,
        limit_ms: row.try_get("limit_ms")?,
        streak_bonus: row.try_get::<i64, _>("streak_bonus")? != 0,
        reveal: row.try_get("reveal")?,
    })
}

/// What a new room is made of.
#[derive(Debug, Clone)]
pub struct NewRoom<'a> {
    /// The quiz it plays.
    pub quiz_id: i64,
    /// The staff member who opened it.
    pub host_id: i64,
    /// The drawn questions, in order.
    pub question_ids: &'a [i64],
    /// Seed of the choice order.
    pub seed: u64,
    /// Time to answer one question.
    pub limit_ms: i64,
    /// Whether consecutive right answers earn a bonus.
    pub streak_bonus: bool,
}

/// Opens a room with `pin`; `None` when the PIN is taken (the caller draws another).
pub async fn create_room(db: &Db, pin: &str, new: &NewRoom<'_>) -> Result<Option<Room>, SiteError> {
    let ids = serde_json::to_string(new.question_ids)
        .map_err(|e| SiteError::Internal(format!("JSON: {e}")))?;
    let taken = sqlx::query("SELECT COUNT(*) AS n FROM live_rooms WHERE pin = $1")
        .bind(pin)
        .fetch_one(db.pool())
        .await?
        .try_get::<i64, _>("n")?;
    if taken > 0 {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "INSERT INTO live_rooms (pin, quiz_id, host_id, question_ids, seed, limit_ms, streak_bonus, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ROOM_COLUMNS}"
    ))
    .bind(pin)
    .bind(new.quiz_id)
    .bind(new.host_id)
    .bind(&ids)
    .bind(i64::from_ne_bytes(new.seed.to_ne_bytes()))
    .bind(new.limit_ms)
    .bind(i64::from(new.streak_bonus))
    .bind(now())
    .fetch_one(db.pool())
    .await?;
    Ok(Some(room_from_row(&row)?))
}

/// The room with `pin`.
pub async fn room(db: &Db, pin: &str) -> Result<Option<Room>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {ROOM_COLUMNS} FROM live_rooms WHERE pin = $1"
    ))
    .bind(pin)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(room_from_row).transpose()
}

/// Moves the room from (`from_current`, `from_phase`) to (`current`, `phase`); `false`
/// when someone else moved it first.
pub async fn advance(
    db: &Db,
    room: &Room,
    current: i64,
    phase: Phase,
    started_ms: Option<i64>,
) -> Result<bool, SiteError> {
    let done = sqlx::query(
        "UPDATE live_rooms SET current = $1, phase = $2, question_started_ms = $3, finished_at = $4
         WHERE id = $5 AND current = $6 AND phase = $7",
    )
    .bind(current)
    .bind(phase.as_str())
    .bind(started_ms)
    .bind((phase == Phase::Finished).then(now))
    .bind(room.id)
    .bind(room.current)
    .bind(room.phase.as_str())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Stores the current question's reveal (computed once, read by every page).
pub async fn store_reveal(db: &Db, room: &Room, reveal: &str) -> Result<(), SiteError> {
    sqlx::query("UPDATE live_rooms SET reveal = $1 WHERE id = $2")
        .bind(reveal)
        .bind(room.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Why a player could not join.
#[derive(Debug)]
pub enum JoinError {
    /// Another player has this nickname.
    Taken,
    /// The database failed.
    Site(SiteError),
}

/// Adds a player; the nickname is unique in the room, case-insensitively.
pub async fn join(
    db: &Db,
    room: &Room,
    nickname: &str,
    user_id: Option<i64>,
    token_hash: &str,
) -> Result<Player, JoinError> {
    let key = nickname.to_lowercase();
    let taken = sqlx::query(
        "SELECT COUNT(*) AS n FROM live_players WHERE room_id = $1 AND nickname_key = $2",
    )
    .bind(room.id)
    .bind(&key)
    .fetch_one(db.pool())
    .await
    .and_then(|r| r.try_get::<i64, _>("n"))
    .map_err(|e| JoinError::Site(e.into()))?;
    if taken > 0 {
        return Err(JoinError::Taken);
    }
    let row = sqlx::query(
        "INSERT INTO live_players (room_id, nickname, nickname_key, user_id, token_hash, joined_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(room.id)
    .bind(nickname)
    .bind(&key)
    .bind(user_id)
    .bind(token_hash)
    .bind(now())
    .fetch_one(db.pool())
    .await;
    match row {
        Ok(row) => Ok(Player {
            id: row.try_get("id").map_err(|e| JoinError::Site(e.into()))?,
            nickname: nickname.to_owned(),
            score: 0,
            streak: 0,
        }),
        // Two joins with one name at the same moment: the key decides.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(JoinError::Taken),
        Err(e) => Err(JoinError::Site(e.into())),
    }
}

fn player_from_row(row: &AnyRow) -> Result<Player, SiteError> {
    Ok(Player {
        id: row.try_get("id")?,
        nickname: row.try_get("nickname")?,
        score: row.try_get("score")?,
        streak: row.try_get("streak")?,
    })
}

/// The player of `room` whose cookie token hashes to `token_hash`.
pub async fn player(db: &Db, room: &Room, token_hash: &str) -> Result<Option<Player>, SiteError> {
    let row = sqlx::query(
        "SELECT id, nickname, score, streak FROM live_players WHERE room_id = $1 AND token_hash = $2",
    )
    .bind(room.id)
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(player_from_row).transpose()
}

/// The best `limit` players, best first (ties by who joined first).
pub async fn top(db: &Db, room: &Room, limit: i64) -> Result<Vec<Player>, SiteError> {
    let rows = sqlx::query(
        "SELECT id, nickname, score, streak FROM live_players WHERE room_id = $1
         ORDER BY score DESC, id LIMIT $2",
    )
    .bind(room.id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(player_from_row).collect()
}

/// A player's place: one more than the players with a higher score (ties share it).
pub async fn rank(db: &Db, room: &Room, player: &Player) -> Result<i64, SiteError> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM live_players WHERE room_id = $1 AND score > $2")
            .bind(room.id)
            .bind(player.score)
            .fetch_one(db.pool())
            .await?;
    Ok(row.try_get::<i64, _>("n")? + 1)
}

/// One player's answer to question `index`: (right, points).
pub async fn own_answer(
    db: &Db,
    player: &Player,
    index: i64,
) -> Result<Option<(bool, i64)>, SiteError> {
    let row = sqlx::query(
        "SELECT correct, points FROM live_answers WHERE player_id = $1 AND question_index = $2",
    )
    .bind(player.id)
    .bind(index)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((r.try_get::<i64, _>("correct")? != 0, r.try_get("points")?)))
        .transpose()
}

/// Why an answer was not taken.
#[derive(Debug)]
pub enum AnswerError {
    /// This player already answered this question.
    Twice,
    /// The database failed.
    Site(SiteError),
}

/// One graded answer of a live room.
#[derive(Debug, Clone)]
pub struct Scored<'a> {
    /// The question's index in the room.
    pub index: i64,
    /// What was answered.
    pub response: &'a Response,
    /// Fully right.
    pub correct: bool,
    /// Points earned.
    pub points: i64,
    /// Time from the question's start.
    pub elapsed_ms: i64,
}

/// Records one answer and adds its points to the player (one transaction). The key
/// (player, question) refuses a second answer.
pub async fn answer(
    db: &Db,
    room: &Room,
    player: &Player,
    scored: &Scored<'_>,
) -> Result<(), AnswerError> {
    let text = serde_json::to_string(scored.response)
        .map_err(|e| AnswerError::Site(SiteError::Internal(format!("JSON: {e}"))))?;
    let run = async {
        let mut tx = db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO live_answers (room_id, player_id, question_index, response, correct, points, elapsed_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(room.id)
        .bind(player.id)
        .bind(scored.index)
        .bind(&text)
        .bind(i64::from(scored.correct))
        .bind(scored.points)
        .bind(scored.elapsed_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE live_players SET score = score + $1,
                 streak = CASE WHEN $2 = 1 THEN streak + 1 ELSE 0 END
             WHERE id = $3",
        )
        .bind(scored.points)
        .bind(i64::from(scored.correct))
        .bind(player.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    };
    match run.await {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(AnswerError::Twice),
        Err(e) => Err(AnswerError::Site(e.into())),
    }
}

/// The answers to question `index`: (response, correct, points) per player id.
pub async fn answers(
    db: &Db,
    room: &Room,
    index: i64,
) -> Result<Vec<(i64, Response, bool, i64)>, SiteError> {
    let rows = sqlx::query(
        "SELECT player_id, response, correct, points FROM live_answers
         WHERE room_id = $1 AND question_index = $2",
    )
    .bind(room.id)
    .bind(index)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.try_get("response")?;
        if let Ok(response) = serde_json::from_str(&text) {
            out.push((
                row.try_get("player_id")?,
                response,
                row.try_get::<i64, _>("correct")? != 0,
                row.try_get("points")?,
            ));
        }
    }
    Ok(out)
}

/// How many players answered question `index`, and how many are in the room.
pub async fn tally(db: &Db, room: &Room, index: i64) -> Result<(i64, i64), SiteError> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM live_answers WHERE room_id = $1 AND question_index = $2) AS answered,
                (SELECT COUNT(*) FROM live_players WHERE room_id = $1) AS players",
    )
    .bind(room.id)
    .bind(index)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("answered")?, row.try_get("players")?))
}
