//! Quizzes in the database: the quiz settings, the question bank (each question stored as
//! `keel_quiz::Question` JSON, answer key included, never sent to a reader as such),
//! attempts with their seed and drawn questions, saved answers, and what item analysis
//! reads. Same SQL on SQLite and PostgreSQL, as the rest of the site.

use std::collections::{HashMap, HashSet};

use keel_quiz::{GradingMethod, Question, Response, ReviewPolicy};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now, Db};
use crate::error::SiteError;
use crate::markdown;
use crate::posts;

/// Scores are stored in hundredths of a percent.
const SCORE_SCALE: f64 = 100.0;
/// Credit is stored in millionths.
const CREDIT_SCALE: f64 = 1_000_000.0;

/// One band of overall feedback: shown when the score is at least `min` percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Lowest score (percent) of the band.
    pub min: f64,
    /// What the reader is told (Markdown).
    pub text: String,
}

/// A quiz's settings, as the pages and the admin read them.
#[derive(Debug, Clone)]
pub struct Quiz {
    /// Database id.
    pub id: i64,
    /// URL name.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Markdown introduction.
    pub description: String,
    /// Its sanitized HTML.
    pub description_html: String,
    /// Listed and open to readers.
    pub published: bool,
    /// Seconds; 0 = none.
    pub time_limit: i64,
    /// Percent needed to pass.
    pub pass_mark: i64,
    /// Attempts per reader; 0 = unlimited.
    pub attempt_limit: i64,
    /// How several attempts make the quiz's grade.
    pub grading: GradingMethod,
    /// When a reader may see the right answers.
    pub review: ReviewPolicy,
    /// Questions per attempt; 0 = all.
    pub draw_count: i64,
    /// Draw only from this category.
    pub draw_category: Option<String>,
    /// Shuffle questions and choices.
    pub shuffle: bool,
    /// Unix seconds before which it cannot be started.
    pub opens_at: Option<i64>,
    /// Unix seconds after which it cannot be started.
    pub closes_at: Option<i64>,
    /// Overall feedback by score, highest band first.
    pub bands: Vec<Band>,
    /// Topic tags, sorted.
    pub tags: Vec<String>,
    /// Graded questions in the bank.
    pub questions: i64,
}

impl Quiz {
    /// Questions an attempt asks: the draw count, or the whole bank.
    pub fn asked(&self) -> i64 {
        if self.draw_count > 0 {
            self.draw_count.min(self.questions)
        } else {
            self.questions
        }
    }

    /// Whether a new attempt may start at `at`; the message says why not.
    pub fn open_at(&self, at: i64) -> Result<(), String> {
        if !self.published {
            return Err("This quiz is not published.".into());
        }
        if self.opens_at.is_some_and(|t| at < t) {
            return Err("This quiz is not open yet.".into());
        }
        if self.closes_at.is_some_and(|t| at > t) {
            return Err("This quiz is closed.".into());
        }
        if self.questions == 0 {
            return Err("This quiz has no questions yet.".into());
        }
        Ok(())
    }

    /// The overall feedback for `score` percent, if a band covers it.
    pub fn band_for(&self, score: f64) -> Option<&Band> {
        self.bands.iter().find(|b| score + 1e-9 >= b.min)
    }
}

/// What the admin's form sets on a quiz.
#[derive(Debug, Clone)]
pub struct QuizInput {
    /// URL name (valid).
    pub slug: String,
    /// Title.
    pub title: String,
    /// Markdown.
    pub description: String,
    /// Listed and open to readers.
    pub published: bool,
    /// Seconds; 0 = none.
    pub time_limit: i64,
    /// Percent to pass.
    pub pass_mark: i64,
    /// 0 = unlimited.
    pub attempt_limit: i64,
    /// Grading of several attempts.
    pub grading: GradingMethod,
    /// Review policy.
    pub review: ReviewPolicy,
    /// 0 = all.
    pub draw_count: i64,
    /// Category to draw from.
    pub draw_category: Option<String>,
    /// Shuffle.
    pub shuffle: bool,
    /// Opens at (Unix seconds).
    pub opens_at: Option<i64>,
    /// Closes at (Unix seconds).
    pub closes_at: Option<i64>,
    /// Bands, highest first.
    pub bands: Vec<Band>,
    /// Tags (normalized).
    pub tags: Vec<String>,
}

impl QuizInput {
    /// A new quiz's defaults: published unless `draft`, no limits, highest grade, review
    /// immediately.
    pub fn new(slug: &str, title: &str, draft: bool) -> QuizInput {
        QuizInput {
            slug: slug.to_owned(),
            title: title.to_owned(),
            description: String::new(),
            published: !draft,
            time_limit: 0,
            pass_mark: 50,
            attempt_limit: 0,
            grading: GradingMethod::Highest,
            review: ReviewPolicy::Immediately,
            draw_count: 0,
            draw_category: None,
            shuffle: true,
            opens_at: None,
            closes_at: None,
            bands: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// The input that leaves `quiz` as it is.
    pub fn of(quiz: &Quiz) -> QuizInput {
        QuizInput {
            slug: quiz.slug.clone(),
            title: quiz.title.clone(),
            description: quiz.description.clone(),
            published: quiz.published,
            time_limit: quiz.time_limit,
            pass_mark: quiz.pass_mark,
            attempt_limit: quiz.attempt_limit,
            grading: quiz.grading,
            review: quiz.review,
            draw_count: quiz.draw_count,
            draw_category: quiz.draw_category.clone(),
            shuffle: quiz.shuffle,
            opens_at: quiz.opens_at,
            closes_at: quiz.closes_at,
            bands: quiz.bands.clone(),
            tags: quiz.tags.clone(),
        }
    }
}

/// A question of the bank.
#[derive(Debug, Clone)]
pub struct StoredQuestion {
    /// Database id (choice ids are indexes inside `question`).
    pub id: i64,
    /// Order in the bank.
    pub position: i64,
    /// The question, answer key included.
    pub question: Question,
    /// The post that teaches it.
    pub post_slug: Option<String>,
}

/// Whose attempt: a signed-in reader's or a guest's (the hash of the guest cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A user id.
    User(i64),
    /// SHA-256 (hex) of the guest token.
    Guest(String),
}

/// An attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Database id.
    pub id: i64,
    /// The quiz.
    pub quiz_id: i64,
    /// Who takes it.
    pub owner: Owner,
    /// Seed of the draw and the shuffles.
    pub seed: u64,
    /// Drawn question ids, in presentation order.
    pub question_ids: Vec<i64>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` without a time limit.
    pub deadline: Option<i64>,
    /// Unix seconds, once graded.
    pub finished_at: Option<i64>,
    /// Percent, once graded.
    pub score: Option<f64>,
}

impl Attempt {
    /// Whether `owner` may see it (anyone else gets a 404: its id tells nothing).
    pub fn belongs_to(&self, owner: Option<&Owner>) -> bool {
        owner.is_some_and(|o| *o == self.owner)
    }
}

/// A saved answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What was answered.
    pub response: Response,
    /// Credit 0..=1, once graded.
    pub credit: Option<f64>,
}

const QUIZ_COLUMNS: &str = "id, slug, title, description, description_html, published, time_limit,
     pass_mark, attempt_limit, grading, review, draw_count, draw_category, shuffle, opens_at,
     closes_at, feedback_bands,
     (SELECT COUNT(*) FROM quiz_questions qq WHERE qq.quiz_id = quizzes.id AND qq.graded = 1)
        AS question_count";

fn quiz_from_row(row: &AnyRow) -> Result<Quiz, SiteError> {
    let grading: String = row.try_get("grading")?;
    let review: String = row.try_get("review")?;
    let bands: String = row.try_get("feedback_bands")?;
    Ok(Quiz {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        description_html: row.try_get("description_html")?,
        published: row.try_get::<i64, _>("published")? != 0,
        time_limit: row.try_get("time_limit")?,
        pass_mark: row.try_get("pass_mark")?,
        attempt_limit: row.try_get("attempt_limit")?,
        grading: grading.parse().unwrap_or(GradingMethod::Highest),
        review: review.parse().unwrap_or(ReviewPolicy::Immediately),
        draw_count: row.try_get("draw_count")?,
        draw_category: row.try_get("draw_category")?,
        shuffle: row.try_get::<i64, _>("shuffle")? != 0,
        opens_at: row.try_get("opens_at")?,
        closes_at: row.try_get("closes_at")?,
        bands: serde_json::from_str(&bands).unwrap_or_default(),
        tags: Vec::new(),
        questions: row.try_get("question_count")?,
    })
}

async fn with_tags(db: &Db, mut quizzes: Vec<Quiz>) -> Result<Vec<Quiz>, SiteError> {
    let rows = sqlx::query(
        "SELECT qt.quiz_id, t.name FROM quiz_tags qt JOIN tags t ON t.id = qt.tag_id ORDER BY t.name",
    )
    .fetch_all(db.pool())
    .await?;
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows {
        tags.entry(row.try_get("quiz_id")?)
            .or_default()
            .push(row.try_get("name")?);
    }
    for quiz in &mut quizzes {
        quiz.tags = tags.remove(&quiz.id).unwrap_or_default();
    }
    Ok(quizzes)
}

/// Every quiz (drafts too when `drafts`), by title.
pub async fn quizzes(db: &Db, drafts: bool) -> Result<Vec<Quiz>, SiteError> {
    let filter = if drafts { "" } else { "WHERE published = 1" };
    let rows = sqlx::query(&format!(
        "SELECT {QUIZ_COLUMNS} FROM quizzes {filter} ORDER BY title, id"
    ))
    .fetch_all(db.pool())
    .await?;
    let quizzes = rows
        .iter()
        .map(quiz_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    with_tags(db, quizzes).await
}

/// The quiz `slug`; drafts only when `drafts`.
pub async fn quiz_by_slug(db: &Db, slug: &str, drafts: bool) -> Result<Option<Quiz>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {QUIZ_COLUMNS} FROM quizzes WHERE slug = $1"
    ))
    .bind(slug)
    .fetch_optional(db.pool())
    .await?;
    one(db, row, drafts).await
}

/// The quiz `id`; drafts only when `drafts`.
pub async fn quiz_by_id(db: &Db, id: i64, drafts: bool) -> Result<Option<Quiz>, SiteError> {
    let row = sqlx::query(&format!("SELECT {QUIZ_COLUMNS} FROM quizzes WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    one(db, row, drafts).await
}

async fn one(db: &Db, row: Option<AnyRow>, drafts: bool) -> Result<Option<Quiz>, SiteError> {
    let Some(row) = row else { return Ok(None) };
    let quiz = quiz_from_row(&row)?;
    if !quiz.published && !drafts {
        return Ok(None);
    }
    Ok(with_tags(db, vec![quiz]).await?.pop())
}

/// Published quizzes that share a tag with a post, for its "Check yourself" box.
pub async fn quizzes_for_tags(db: &Db, tags: &[String]) -> Result<Vec<Quiz>, SiteError> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let all = quizzes(db, false).await?;
    Ok(all
        .into_iter()
        .filter(|q| q.questions > 0 && q.tags.iter().any(|t| tags.contains(t)))
        .collect())
}

/// Saves a quiz's settings (new when `id` is `None`); returns its id. The caller has
/// checked the slug with [`slug_taken`].
pub async fn save_quiz(db: &Db, id: Option<i64>, input: &QuizInput) -> Result<i64, SiteError> {
    let mut tx = db.pool().begin().await?;
    let id = save_quiz_in(&mut tx, id, input).await?;
    tx.commit().await?;
    Ok(id)
}

async fn save_quiz_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: Option<i64>,
    input: &QuizInput,
) -> Result<i64, SiteError> {
    let at = now();
    let html = markdown::render(&input.description);
    let bands = serde_json::to_string(&input.bands)
        .map_err(|e| SiteError::Internal(format!("bands: {e}")))?;
    let query = match id {
        None => sqlx::query(
            "INSERT INTO quizzes (slug, title, description, description_html, published,
                 time_limit, pass_mark, attempt_limit, grading, review, draw_count,
                 draw_category, shuffle, opens_at, closes_at, feedback_bands, created_at,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
             RETURNING id",
        ),
        Some(_) => sqlx::query(
            "UPDATE quizzes SET slug = $1, title = $2, description = $3, description_html = $4,
                 published = $5, time_limit = $6, pass_mark = $7, attempt_limit = $8,
                 grading = $9, review = $10, draw_count = $11, draw_category = $12,
                 shuffle = $13, opens_at = $14, closes_at = $15, feedback_bands = $16,
                 updated_at = $17
             WHERE id = $18 RETURNING id",
        ),
    }
    .bind(&input.slug)
    .bind(&input.title)
    .bind(&input.description)
    .bind(&html)
    .bind(i64::from(input.published))
    .bind(input.time_limit)
    .bind(input.pass_mark)
    .bind(input.attempt_limit)
    .bind(input.grading.to_string())
    .bind(input.review.to_string())
    .bind(input.draw_count)
    .bind(input.draw_category.as_deref())
    .bind(i64::from(input.shuffle))
    .bind(input.opens_at)
    .bind(input.closes_at)
    .bind(&bands)
    .bind(at);
    let query = match id {
        Some(id) => query.bind(id),
        None => query,
    };
    let id: i64 = query
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(SiteError::NotFound)?
        .try_get("id")?;
    sqlx::query("DELETE FROM quiz_tags WHERE quiz_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for name in &input.tags {
        let tag = posts::tag_id(tx, name).await?;
        sqlx::query("INSERT INTO quiz_tags (quiz_id, tag_id) VALUES ($1, $2)")
            .bind(id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    posts::prune_tags(tx).await?;
    Ok(id)
}

/// Whether another quiz than `except` has `slug`.
pub async fn slug_taken(db: &Db, slug: &str, except: Option<i64>) -> Result<bool, SiteError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM quizzes WHERE slug = $1 AND id <> $2")
        .bind(slug)
        .bind(except.unwrap_or(-1))
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Publishes or unpublishes a quiz; `false` when there is no such quiz.
pub async fn set_published(db: &Db, id: i64, published: bool) -> Result<bool, SiteError> {
    let done = sqlx::query("UPDATE quizzes SET published = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(published))
        .bind(now())
        .bind(id)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(done > 0)
}

/// Deletes a quiz with its questions and attempts.
pub async fn delete_quiz(db: &Db, id: i64) -> Result<bool, SiteError> {
    let mut tx = db.pool().begin().await?;
    // Children first: SQLite enforces the cascade only with foreign keys on, and the
    // order keeps PostgreSQL from checking rows that are about to go.
    for sql in [
        "DELETE FROM quiz_answers WHERE attempt_id IN (SELECT id FROM quiz_attempts WHERE quiz_id = $1)",
        "DELETE FROM quiz_attempts WHERE quiz_id = $1",
        "DELETE FROM quiz_questions WHERE quiz_id = $1",
        "DELETE FROM quiz_tags WHERE quiz_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    let deleted = sqlx::query("DELETE FROM quizzes WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    posts::prune_tags(&mut tx).await?;
    tx.commit().await?;
    Ok(deleted > 0)
}

fn question_from_row(row: &AnyRow) -> Result<StoredQuestion, SiteError> {
    let data: String = row.try_get("data")?;
    let question: Question = serde_json::from_str(&data)
        .map_err(|e| SiteError::Internal(format!("a stored question does not parse: {e}")))?;
    Ok(StoredQuestion {
        id: row.try_get("id")?,
        position: row.try_get("position")?,
        question,
        post_slug: row.try_get("post_slug")?,
    })
}

/// The bank of a quiz, in order.
pub async fn questions(db: &Db, quiz_id: i64) -> Result<Vec<StoredQuestion>, SiteError> {
    let rows = sqlx::query(
        "SELECT id, position, data, post_slug FROM quiz_questions WHERE quiz_id = $1
         ORDER BY position, id",
    )
    .bind(quiz_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(question_from_row).collect()
}

/// One question of a quiz.
pub async fn question(db: &Db, quiz_id: i64, id: i64) -> Result<Option<StoredQuestion>, SiteError> {
    let row = sqlx::query(
        "SELECT id, position, data, post_slug FROM quiz_questions WHERE quiz_id = $1 AND id = $2",
    )
    .bind(quiz_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(question_from_row).transpose()
}

/// Replaces one question (the admin's edit).
pub async fn update_question(
    db: &Db,
    quiz_id: i64,
    id: i64,
    question: &Question,
    post_slug: Option<&str>,
) -> Result<bool, SiteError> {
    let data = to_json(question)?;
    let done = sqlx::query(
        "UPDATE quiz_questions SET data = $1, category = $2, graded = $3, post_slug = $4
         WHERE quiz_id = $5 AND id = $6",
    )
    .bind(&data)
    .bind(question.category.as_deref())
    .bind(i64::from(question.is_graded()))
    .bind(post_slug)
    .bind(quiz_id)
    .bind(id)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Removes one question (answers to it go with it).
pub async fn delete_question(db: &Db, quiz_id: i64, id: i64) -> Result<bool, SiteError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM quiz_answers WHERE question_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM quiz_questions WHERE quiz_id = $1 AND id = $2")
        .bind(quiz_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(done > 0)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, SiteError> {
    serde_json::to_string(value).map_err(|e| SiteError::Internal(format!("JSON: {e}")))
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The quiz's id.
    pub quiz_id: i64,
    /// Whether the quiz was created by this import.
    pub created: bool,
    /// Graded questions added (descriptions are not counted).
    pub questions: usize,
}

/// Adds `questions` to the quiz `slug`, creating it (with `new_quiz`'s settings) when it
/// does not exist. One transaction: all or nothing.
pub async fn import(
    db: &Db,
    new_quiz: &QuizInput,
    questions: &[Question],
) -> Result<Imported, SiteError> {
    let mut tx = db.pool().begin().await?;
    let existing = sqlx::query("SELECT id FROM quizzes WHERE slug = $1")
        .bind(&new_quiz.slug)
        .fetch_optional(&mut *tx)
        .await?;
    let (quiz_id, created) = match existing {
        Some(row) => (row.try_get::<i64, _>("id")?, false),
        None => (save_quiz_in(&mut tx, None, new_quiz).await?, true),
    };
    let row = sqlx::query(
        "SELECT COALESCE(MAX(position), 0) AS p FROM quiz_questions WHERE quiz_id = $1",
    )
    .bind(quiz_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut position: i64 = row.try_get("p")?;
    let at = now();
    for question in questions {
        position += 1;
        sqlx::query(
            "INSERT INTO quiz_questions (quiz_id, position, data, category, graded, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(quiz_id)
        .bind(position)
        .bind(to_json(question)?)
        .bind(question.category.as_deref())
        .bind(i64::from(question.is_graded()))
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE quizzes SET updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(quiz_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Imported {
        quiz_id,
        created,
        questions: questions.iter().filter(|q| q.is_graded()).count(),
    })
}

/// Slug, title, graded questions and finished attempts of every quiz (`keel quiz list`).
pub async fn summary(db: &Db) -> Result<Vec<(String, String, i64, i64)>, SiteError> {
    let rows = sqlx::query(
        "SELECT q.slug, q.title,
            (SELECT COUNT(*) FROM quiz_questions qq WHERE qq.quiz_id = q.id AND qq.graded = 1) AS questions,
            (SELECT COUNT(*) FROM quiz_attempts a WHERE a.quiz_id = q.id AND a.finished_at IS NOT NULL) AS attempts
         FROM quizzes q ORDER BY q.slug",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("slug")?,
                r.try_get("title")?,
                r.try_get("questions")?,
                r.try_get("attempts")?,
            ))
        })
        .collect()
}

// ---- attempts ---------------------------------------------------------------------------

const ATTEMPT_COLUMNS: &str =
    "id, quiz_id, user_id, guest_key, seed, question_ids, started_at, deadline, finished_at, score";

fn attempt_from_row(row: &AnyRow) -> Result<Attempt, SiteError> {
    let user: Option<i64> = row.try_get("user_id")?;
    let guest: Option<String> = row.try_get("guest_key")?;
    let owner = match (user, guest) {
        (Some(id), _) => Owner::User(id),
        (None, Some(key)) => Owner::Guest(key),
        (None, None) => Owner::Guest(String::new()),
    };
    let ids: String = row.try_get("question_ids")?;
    let score: Option<i64> = row.try_get("score")?;
    Ok(Attempt {
        id: row.try_get("id")?,
        quiz_id: row.try_get("quiz_id")?,
        owner,
        // The seed is a u64 stored bit for bit in a signed BIGINT.
        seed: u64::from_ne_bytes(row.try_get::<i64, _>("seed")?.to_ne_bytes()),
        question_ids: serde_json::from_str(&ids).unwrap_or_default(),
        started_at: row.try_get("started_at")?,
        deadline: row.try_get("deadline")?,
        finished_at: row.try_get("finished_at")?,
        score: score.map(|s| s as f64 / SCORE_SCALE),
    })
}

fn owner_filter(owner: &Owner) -> (&'static str, OwnerBind) {
    match owner {
        Owner::User(id) => ("user_id = $1", OwnerBind::Id(*id)),
        Owner::Guest(key) => (
            "guest_key = $1 AND user_id IS NULL",
            OwnerBind::Key(key.clone()),
        ),
    }
}

enum OwnerBind {
    Id(i64),
    Key(String),
}

/// Every attempt of `owner` at `quiz_id` (or at every quiz), oldest first.
pub async fn attempts_of(
    db: &Db,
    owner: &Owner,
    quiz_id: Option<i64>,
) -> Result<Vec<Attempt>, SiteError> {
    let (filter, bind) = owner_filter(owner);
    let quiz = if quiz_id.is_some() {
        " AND quiz_id = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE {filter}{quiz} ORDER BY started_at, id"
    );
    let query = sqlx::query(&sql);
    let query = match bind {
        OwnerBind::Id(id) => query.bind(id),
        OwnerBind::Key(key) => query.bind(key),
    };
    let query = match quiz_id {
        Some(q) => query.bind(q),
        None => query,
    };
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(attempt_from_row).collect()
}

/// One attempt by id (the caller checks whose it is).
pub async fn attempt(db: &Db, id: i64) -> Result<Option<Attempt>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(attempt_from_row).transpose()
}

/// Question ids `owner` was asked in earlier attempts at `quiz_id` (drawn last next time).
pub async fn seen(db: &Db, owner: &Owner, quiz_id: i64) -> Result<HashSet<i64>, SiteError> {
    let mut seen = HashSet::new();
    for attempt in attempts_of(db, owner, Some(quiz_id)).await? {
        seen.extend(attempt.question_ids);
    }
    Ok(seen)
}

/// Starts an attempt with its drawn questions; returns it.
pub async fn create_attempt(
    db: &Db,
    quiz_id: i64,
    owner: &Owner,
    seed: u64,
    question_ids: &[i64],
    deadline: Option<i64>,
) -> Result<Attempt, SiteError> {
    let (user, guest) = match owner {
        Owner::User(id) => (Some(*id), None),
        Owner::Guest(key) => (None, Some(key.as_str())),
    };
    let row = sqlx::query(&format!(
        "INSERT INTO quiz_attempts (quiz_id, user_id, guest_key, seed, question_ids, started_at, deadline)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ATTEMPT_COLUMNS}"
    ))
    .bind(quiz_id)
    .bind(user)
    .bind(guest)
    .bind(i64::from_ne_bytes(seed.to_ne_bytes()))
    .bind(to_json(&question_ids)?)
    .bind(now())
    .bind(deadline)
    .fetch_one(db.pool())
    .await?;
    attempt_from_row(&row)
}

/// The saved answers of an attempt, by question id.
pub async fn answers(db: &Db, attempt_id: i64) -> Result<HashMap<i64, Answer>, SiteError> {
    let rows =
        sqlx::query("SELECT question_id, response, credit FROM quiz_answers WHERE attempt_id = $1")
            .bind(attempt_id)
            .fetch_all(db.pool())
            .await?;
    let mut out = HashMap::new();
    for row in rows {
        let text: String = row.try_get("response")?;
        let Ok(response) = serde_json::from_str::<Response>(&text) else {
            continue;
        };
        let credit: Option<i64> = row.try_get("credit")?;
        out.insert(
            row.try_get("question_id")?,
            Answer {
                response,
                credit: credit.map(|c| c as f64 / CREDIT_SCALE),
            },
        );
    }
    Ok(out)
}

/// Why answers were not saved.
#[derive(Debug)]
pub enum SaveError {
    /// The attempt is already graded (or past its deadline and now graded).
    Finished,
    /// The database failed.
    Site(SiteError),
}

impl From<SiteError> for SaveError {
    fn from(e: SiteError) -> Self {
        SaveError::Site(e)
    }
}

impl From<sqlx::Error> for SaveError {
    fn from(e: sqlx::Error) -> Self {
        SaveError::Site(e.into())
    }
}

/// Saves answers to an open attempt: each replaces the question's earlier answer (a
/// double submit stores one), `None` clears it. Refused once the attempt is finished.
pub async fn save_answers(
    db: &Db,
    attempt_id: i64,
    answers: &[(i64, Option<Response>)],
) -> Result<(), SaveError> {
    let mut tx = db.pool().begin().await?;
    // Only an unfinished attempt takes answers; the UPDATE also takes the row's write
    // lock on PostgreSQL, so a concurrent finish waits for this save or sees it.
    let open = sqlx::query(
        "UPDATE quiz_attempts SET started_at = started_at WHERE id = $1 AND finished_at IS NULL",
    )
    .bind(attempt_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if open == 0 {
        return Err(SaveError::Finished);
    }
    let at = now();
    for (question_id, response) in answers {
        sqlx::query("DELETE FROM quiz_answers WHERE attempt_id = $1 AND question_id = $2")
            .bind(attempt_id)
            .bind(question_id)
            .execute(&mut *tx)
            .await?;
        if let Some(response) = response {
            sqlx::query(
                "INSERT INTO quiz_answers (attempt_id, question_id, response, updated_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(attempt_id)
            .bind(question_id)
            .bind(to_json(response)?)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Records the grades of a finished attempt: the credit of each answer and the score.
/// Only the first finish counts; `false` when the attempt was already finished.
pub async fn finish(
    db: &Db,
    attempt_id: i64,
    credits: &[(i64, f64)],
    score: f64,
    at: i64,
) -> Result<bool, SiteError> {
    let mut tx = db.pool().begin().await?;
    let done = sqlx::query(
        "UPDATE quiz_attempts SET finished_at = $1, score = $2 WHERE id = $3 AND finished_at IS NULL",
    )
    .bind(at)
    .bind((score * SCORE_SCALE).round() as i64)
    .bind(attempt_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    for (question_id, credit) in credits {
        sqlx::query(
            "UPDATE quiz_answers SET credit = $1 WHERE attempt_id = $2 AND question_id = $3",
        )
        .bind((credit * CREDIT_SCALE).round() as i64)
        .bind(attempt_id)
        .bind(question_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The finished attempts of a quiz with their answers, for item analysis.
pub async fn finished_attempts(
    db: &Db,
    quiz_id: i64,
) -> Result<Vec<(Attempt, HashMap<i64, Answer>)>, SiteError> {
    let rows = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM quiz_attempts WHERE quiz_id = $1 AND finished_at IS NOT NULL
         ORDER BY finished_at, id"
    ))
    .bind(quiz_id)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let attempt = attempt_from_row(row)?;
        let answers = answers(db, attempt.id).await?;
        out.push((attempt, answers));
    }
    Ok(out)
}

/// The quiz grades of a user (by the quiz's grading method), by quiz id.
pub async fn grades(db: &Db, owner: &Owner) -> Result<HashMap<i64, f64>, SiteError> {
    let quizzes: HashMap<i64, GradingMethod> = quizzes(db, true)
        .await?
        .into_iter()
        .map(|q| (q.id, q.grading))
        .collect();
    let mut scores: HashMap<i64, Vec<f64>> = HashMap::new();
    for attempt in attempts_of(db, owner, None).await? {
        if let Some(score) = attempt.score {
            scores.entry(attempt.quiz_id).or_default().push(score);
        }
    }
    Ok(scores
        .into_iter()
        .filter_map(|(quiz, scores)| {
            let method = quizzes
                .get(&quiz)
                .copied()
                .unwrap_or(GradingMethod::Highest);
            keel_quiz::overall(method, &scores).map(|g| (quiz, g))
        })
        .collect())
}

/// Links every question of a quiz that has no post yet to the post `slug`.
pub async fn link_post(db: &Db, quiz_id: i64, slug: &str) -> Result<(), SiteError> {
    sqlx::query(
        "UPDATE quiz_questions SET post_slug = $1 WHERE quiz_id = $2 AND post_slug IS NULL",
    )
    .bind(slug)
    .bind(quiz_id)
    .execute(db.pool())
    .await?;
    Ok(())
}
