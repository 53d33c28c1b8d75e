//! Live quiz rooms, Kahoot's game on the site's quizzes. Staff open a room for a quiz and
//! get a six-digit PIN and a host screen; readers join at `/quizzes/live/` with the PIN and
//! a nickname (their username when signed in). The host moves the room along — a
//! question, its reveal with the tally and the leaderboard, the next one, the podium —
//! and every move is an event on the room's channel of the live-event hub, so every
//! player's page follows at once, whichever `keel serve` it is connected to (the hub is
//! Redis across processes; the room's state is in the shared database).
//!
//! Points follow Kahoot: a right answer earns `round(1000 × (1 − (t / limit) / 2))`,
//! timed on the server from the moment the question was shown; a streak bonus can be
//! turned on per room. One answer per player and question, checked by the table's key.
//!
//! Events carry no answer key: a question event says which question is on, the pages
//! render it; the right answer is in the reveal, sent after answers close.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use keel_quiz::Kind;
use minijinja::{context, Value};
use serde::Deserialize;

use super::live_store::{self as rooms, now_ms, AnswerError, JoinError, Phase, Player, Room};
use super::pages::{inline_html, question_view};
use super::store::{self, StoredQuestion};
use crate::accounts::{random_token, token_hash};
use crate::admin::{require_staff, staff};
use crate::error::SiteError;
use crate::web::{cookies, plausible_token, see_other, Visitor};
use crate::Inner;

/// The player's cookie: a random token whose hash is the player in the room.
const LIVE_COOKIE: &str = "keel_live";
/// A day: a room is an evening's game.
const LIVE_COOKIE_SECONDS: i64 = 24 * 3600;
/// Answers sent this long after the limit still count: the request was on its way.
const GRACE_MS: i64 = 500;
/// Players shown on the leaderboard of a reveal.
const LEADERS: usize = 5;

/// The hub channel of the room `pin`.
pub fn channel(pin: &str) -> String {
    format!("quiz-live-{pin}")
}

/// Kinds a live room asks: the ones a phone answers in a few seconds.
fn playable(q: &StoredQuestion) -> bool {
    matches!(
        q.question.kind,
        Kind::Single { .. }
            | Kind::Multiple { .. }
            | Kind::TrueFalse { .. }
            | Kind::Short { .. }
            | Kind::Numeric { .. }
    )
}

fn valid_pin(pin: &str) -> bool {
    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit())
}

async fn room_or_404(inner: &Inner, pin: &str) -> Result<Room, SiteError> {
    if !valid_pin(pin) {
        return Err(SiteError::NotFound);
    }
    rooms::room(&inner.db, pin)
        .await?
        .ok_or(SiteError::NotFound)
}

fn hub(inner: &Inner) -> Result<&keel_stream::Hub, SiteError> {
    inner.hub.as_ref().ok_or_else(|| {
        SiteError::Conflict("Live rooms need live events, which this server runs without.".into())
    })
}

/// How often a room's answer tally and player count are published at most: one event per
/// answer would be players² deliveries per question (a million at 1,000 players).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Publishes the room's tally (`kind` "tally") or player count ("players") a moment from
/// now, once for every change in between. The count is read from the database when it is
/// sent, after every answer before it was committed, so counts never go backwards within
/// a process (pages keep the highest they saw, for several processes).
fn coalesce(inner: Arc<Inner>, room: &Room, kind: &'static str) {
    let key = (room.id, kind);
    {
        let mut pending = inner
            .live_pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !pending.insert(key) {
            return;
        }
    }
    let room = room.clone();
    tokio::spawn(async move {
        tokio::time::sleep(COALESCE).await;
        inner
            .live_pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        let (answered, players) = match rooms::tally(&inner.db, &room, room.current).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, pin = %room.pin, "live room count not read");
                return;
            }
        };
        let event = match kind {
            "tally" => {
                serde_json::json!({ "type": "tally", "index": room.current, "answered": answered, "players": players, "sent_ms": now_ms() })
            }
            _ => serde_json::json!({ "type": "players", "count": players, "sent_ms": now_ms() }),
        };
        publish(&inner, &room, event).await;
    });
}

/// Publishes one of the room's events (JSON); a broker failure is logged, not the
/// request's failure: the pages render the state from the database on their next load.
async fn publish(inner: &Inner, room: &Room, event: serde_json::Value) {
    let Some(hub) = &inner.hub else { return };
    if let Err(error) = hub.publish(&channel(&room.pin), &event.to_string()).await {
        tracing::warn!(%error, pin = %room.pin, "live room event not published");
    }
}

/// The room's questions in order (a question deleted since is skipped).
async fn room_questions(inner: &Inner, room: &Room) -> Result<Vec<StoredQuestion>, SiteError> {
    let mut bank: BTreeMap<i64, StoredQuestion> = store::questions(&inner.db, room.quiz_id)
        .await?
        .into_iter()
        .map(|q| (q.id, q))
        .collect();
    Ok(room
        .question_ids
        .iter()
        .filter_map(|id| bank.remove(id))
        .collect())
}

#[derive(Debug, Deserialize)]
pub(crate) struct OpenForm {
    #[serde(default)]
    seconds: String,
    streak: Option<String>,
}

/// `POST /admin/quizzes/<id>/live/`: opens a room for the quiz and goes to its host
/// screen.
pub(crate) async fn open(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
    Form(form): Form<OpenForm>,
) -> Result<Response, SiteError> {
    let user = require_staff!(visitor, "/admin/quizzes/");
    hub(&inner)?;
    let id: i64 = id.parse().map_err(|_| SiteError::NotFound)?;
    let quiz = store::quiz_by_id(&inner.db, id, true)
        .await?
        .ok_or(SiteError::NotFound)?;
    let seconds: i64 = match form.seconds.trim() {
        "" => 20,
        text => text
            .parse()
            .ok()
            .filter(|s| (5..=300).contains(s))
            .ok_or_else(|| SiteError::BadRequest("Give each question 5 to 300 seconds.".into()))?,
    };
    let bank = store::questions(&inner.db, quiz.id).await?;
    let playable: Vec<keel_quiz::Pool> = bank
        .iter()
        .filter(|q| playable(q))
        .map(|q| keel_quiz::Pool {
            id: q.id,
            category: q.question.category.as_deref(),
        })
        .collect();
    let seed = keel_quiz::new_seed();
    let count = usize::try_from(quiz.draw_count).ok().filter(|n| *n > 0);
    let ids = keel_quiz::draw(
        &playable,
        count,
        quiz.draw_category.as_deref(),
        &Default::default(),
        quiz.shuffle,
        seed,
    );
    if ids.is_empty() {
        return Err(SiteError::Conflict(
            "This quiz has no question a live room can ask (choice, true/false, short answer or number)."
                .into(),
        ));
    }
    // A PIN is six random digits; a taken one is drawn again.
    for _ in 0..20 {
        let pin = format!("{:06}", keel_quiz::new_seed() % 1_000_000);
        let new = rooms::NewRoom {
            quiz_id: quiz.id,
            host_id: user.id,
            question_ids: &ids,
            seed,
            limit_ms: seconds * 1000,
            streak_bonus: form.streak.is_some(),
        };
        let created = rooms::create_room(&inner.db, &pin, &new).await?;
        if created.is_some() {
            return Ok(see_other(&format!("/quizzes/live/{pin}/host/")));
        }
    }
    Err(SiteError::Internal("no free PIN after 20 draws".into()))
}

/// Who is looking at a room's page.
#[derive(Debug, Clone, Copy)]
enum Viewer<'a> {
    Host,
    Player(&'a Player),
}

/// The reveal of the current question, computed once when the host reveals and stored
/// with the room: a thousand players' pages then read it instead of every answer.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Reveal {
    /// How many picked each choice (choice id, or `true`/`false`).
    counts: BTreeMap<String, i64>,
    /// How many answered right.
    right: i64,
}

async fn compute_reveal(inner: &Inner, room: &Room) -> Result<Reveal, SiteError> {
    let mut reveal = Reveal::default();
    for (_, response, correct, _) in rooms::answers(&inner.db, room, room.current).await? {
        for key in picked(&response) {
            *reveal.counts.entry(key).or_default() += 1;
        }
        reveal.right += i64::from(correct);
    }
    Ok(reveal)
}

/// What the host screen and a player's page show of the room's state. A player's page
/// reads only what it shows (its own answer and rank, the top of the board, the stored
/// reveal): its cost does not grow with the room.
async fn room_context(inner: &Inner, room: &Room, viewer: Viewer<'_>) -> Result<Value, SiteError> {
    let questions = room_questions(inner, room).await?;
    let index = usize::try_from(room.current).ok();
    let current = index.and_then(|i| questions.get(i));
    let player = match viewer {
        Viewer::Player(p) => Some(p),
        Viewer::Host => None,
    };
    let mut question = None;
    let mut reveal = None;
    let mut answered = None;
    if let (Some(q), Some(i)) = (current, index) {
        question = Some(question_view(i + 1, q, room.seed, None));
        if let Some(p) = player {
            answered = rooms::own_answer(&inner.db, p, room.current)
                .await?
                .map(|(correct, points)| context! { correct => correct, points => points });
        }
        if room.phase == Phase::Reveal {
            let stored: Reveal = room
                .reveal
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default();
            let count = |key: String| stored.counts.get(&key).copied().unwrap_or(0);
            let choices: Vec<Value> = match &q.question.kind {
                Kind::Single { choices } | Kind::Multiple { choices } => {
                    keel_quiz::choice_order(&q.question, room.seed, q.id)
                        .into_iter()
                        .filter_map(|i| choices.get(i).map(|c| (i, c)))
                        .map(|(i, c)| {
                            context! {
                                html => inline_html(&c.text),
                                count => count(i.to_string()),
                                right => c.weight > 0.0,
                            }
                        })
                        .collect()
                }
                Kind::TrueFalse { answer, .. } => [true, false]
                    .iter()
                    .map(|v| {
                        context! {
                            html => if *v { "True" } else { "False" },
                            count => count(v.to_string()),
                            right => v == answer,
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            reveal = Some(context! {
                right_answer => keel_quiz::grade(&q.question, None).right_answer,
                choices => choices,
                right_count => stored.right,
                general_html => q.question.general_feedback.as_deref().map(crate::markdown::render),
            });
        }
    }
    let (answered_count, players) = rooms::tally(&inner.db, room, room.current).await?;
    // The whole ranking only for the host's podium; a player sees the top and their place.
    let board = match (room.phase, viewer) {
        (Phase::Finished, Viewer::Host) => players,
        (Phase::Finished, Viewer::Player(_)) => 10,
        (Phase::Reveal, _) => i64::try_from(LEADERS).unwrap_or(5),
        _ => 3,
    };
    let leaders = rooms::top(&inner.db, room, board).await?;
    let me = match player {
        Some(p) => {
            let rank = rooms::rank(&inner.db, room, p).await?;
            Some(context! { nickname => p.nickname.clone(), score => p.score, rank => rank })
        }
        None => None,
    };
    let names = match (viewer, room.phase) {
        (Viewer::Host, Phase::Lobby) => rooms::top(&inner.db, room, players)
            .await?
            .into_iter()
            .map(|p| p.nickname)
            .collect(),
        _ => Vec::new(),
    };
    Ok(context! {
        pin => room.pin.clone(),
        phase => match room.phase {
            Phase::Lobby => "lobby",
            Phase::Question => "question",
            Phase::Reveal => "reveal",
            Phase::Finished => "finished",
        },
        index => room.current,
        total => questions.len(),
        is_last => index.is_some_and(|i| i + 1 >= questions.len()),
        question => question,
        reveal => reveal,
        answered => answered,
        seconds_left => room.deadline_ms().map(|d| ((d - now_ms()).max(0) + 999) / 1000),
        tally => context! { answered => answered_count, players => players },
        players => names,
        player_count => players,
        leaders => leaders_ctx(&leaders),
        podium => leaders_ctx(&leaders.iter().take(3).cloned().collect::<Vec<_>>()),
        me => me,
        events_url => format!("/quizzes/live/{}/events/", room.pin),
    })
}

fn leaders_ctx(players: &[Player]) -> Vec<Value> {
    players
        .iter()
        .enumerate()
        .map(|(i, p)| context! { rank => i + 1, nickname => p.nickname.clone(), score => p.score })
        .collect()
}

/// The keys a response counts under in the reveal's tally.
fn picked(response: &keel_quiz::Response) -> Vec<String> {
    match response {
        keel_quiz::Response::Choice { id } => vec![id.to_string()],
        keel_quiz::Response::Choices { ids } => ids.iter().map(ToString::to_string).collect(),
        keel_quiz::Response::Bool { value } => vec![value.to_string()],
        _ => Vec::new(),
    }
}

/// `GET /quizzes/live/<pin>/host/`: the host screen.
pub(crate) async fn host(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(pin): Path<String>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/quizzes/live/");
    let room = room_or_404(&inner, &pin).await?;
    let quiz = store::quiz_by_id(&inner.db, room.quiz_id, true)
        .await?
        .ok_or(SiteError::NotFound)?;
    let ctx = context! {
        room => room_context(&inner, &room, Viewer::Host).await?,
        quiz_title => quiz.title,
        join_url => "/quizzes/live/",
    };
    inner.page(
        &visitor,
        "quiz/live_host.html",
        "quizzes",
        StatusCode::OK,
        ctx,
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct HostForm {
    #[serde(default)]
    action: String,
    /// The question index the host's screen showed: a stale click moves nothing.
    index: Option<i64>,
}

/// `POST /quizzes/live/<pin>/host/`: `action=next` (the next question, or the podium after
/// the last), `reveal` (close answers, show the tally) or `finish`.
pub(crate) async fn host_action(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Path(pin): Path<String>,
    Form(form): Form<HostForm>,
) -> Result<Response, SiteError> {
    require_staff!(visitor, "/quizzes/live/");
    let room = room_or_404(&inner, &pin).await?;
    let back = see_other(&format!("/quizzes/live/{pin}/host/"));
    if form.index.is_some_and(|i| i != room.current) {
        return Ok(back);
    }
    let total = i64::try_from(room.question_ids.len()).unwrap_or(0);
    let at = now_ms();
    let (current, phase, started) = match (form.action.as_str(), room.phase) {
        ("next", Phase::Lobby | Phase::Reveal) if room.current + 1 < total => {
            (room.current + 1, Phase::Question, Some(at))
        }
        ("next" | "finish", Phase::Lobby | Phase::Reveal | Phase::Question) => {
            (room.current, Phase::Finished, room.started_ms)
        }
        ("reveal", Phase::Question) => (room.current, Phase::Reveal, room.started_ms),
        (_, Phase::Finished) => return Ok(back),
        _ => {
            return Err(SiteError::BadRequest(
                "The room cannot do that now; reload the host screen.".into(),
            ))
        }
    };
    if !rooms::advance(&inner.db, &room, current, phase, started).await? {
        // Another click (or another host) moved the room first.
        return Ok(back);
    }
    let moved = Room {
        current,
        phase,
        started_ms: started,
        ..room
    };
    let event = match phase {
        Phase::Question => serde_json::json!({
            "type": "question", "index": current, "total": total,
            "limit_ms": moved.limit_ms, "deadline_ms": moved.deadline_ms(), "sent_ms": at,
        }),
        Phase::Reveal => {
            let reveal = compute_reveal(&inner, &moved).await?;
            let text = serde_json::to_string(&reveal)
                .map_err(|e| SiteError::Internal(format!("JSON: {e}")))?;
            rooms::store_reveal(&inner.db, &moved, &text).await?;
            let ranking =
                rooms::top(&inner.db, &moved, i64::try_from(LEADERS).unwrap_or(5)).await?;
            let top: Vec<serde_json::Value> = ranking
                .iter()
                .map(|p| serde_json::json!({ "nickname": p.nickname, "score": p.score }))
                .collect();
            serde_json::json!({ "type": "reveal", "index": current, "leaders": top, "sent_ms": at })
        }
        Phase::Finished | Phase::Lobby => {
            serde_json::json!({ "type": "podium", "sent_ms": at })
        }
    };
    publish(&inner, &moved, event).await;
    Ok(back)
}

/// `GET /quizzes/live/`: the join form.
pub(crate) async fn join_form(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
) -> Result<Response, SiteError> {
    let nickname = visitor
        .user
        .as_ref()
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let ctx =
        context! { form => context! { pin => "", nickname => nickname }, error => None::<String> };
    inner.page(
        &visitor,
        "quiz/live_join.html",
        "quizzes",
        StatusCode::OK,
        ctx,
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct JoinForm {
    #[serde(default)]
    pin: String,
    #[serde(default)]
    nickname: String,
}

/// `POST /quizzes/live/`: joins a room with its PIN and a nickname.
pub(crate) async fn join(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    Form(form): Form<JoinForm>,
) -> Result<Response, SiteError> {
    let pin: String = form.pin.chars().filter(|c| !c.is_whitespace()).collect();
    let nickname = form
        .nickname
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let again = |error: &str| {
        let ctx = context! { form => context! { pin => pin.clone(), nickname => nickname.clone() }, error => error };
        inner.page(
            &visitor,
            "quiz/live_join.html",
            "quizzes",
            StatusCode::BAD_REQUEST,
            ctx,
        )
    };
    if nickname.is_empty()
        || nickname.chars().count() > 20
        || nickname.chars().any(char::is_control)
    {
        return again("Choose a nickname of 1 to 20 characters.");
    }
    let room = match valid_pin(&pin) {
        true => rooms::room(&inner.db, &pin).await?,
        false => None,
    };
    let Some(room) = room.filter(|r| r.phase != Phase::Finished) else {
        return again("No open room has this PIN. Check the number on the host's screen.");
    };
    let token = random_token()?;
    let user_id = visitor.user.as_ref().map(|u| u.id);
    match rooms::join(&inner.db, &room, &nickname, user_id, &token_hash(&token)).await {
        Ok(_) => {}
        Err(JoinError::Taken) => return again("Another player has this nickname; choose another."),
        Err(JoinError::Site(e)) => return Err(e),
    }
    coalesce(inner.clone(), &room, "players");
    let mut response = see_other(&format!("/quizzes/live/{pin}/"));
    response.headers_mut().append(
        header::SET_COOKIE,
        visitor.cookie(LIVE_COOKIE, token, LIVE_COOKIE_SECONDS),
    );
    Ok(response)
}

/// The player this visitor is in `room`, from the live cookie.
async fn player_of(
    inner: &Inner,
    room: &Room,
    headers: &HeaderMap,
) -> Result<Option<Player>, SiteError> {
    let token = cookies(headers)
        .find(|c| c.name() == LIVE_COOKIE && plausible_token(c.value()))
        .map(|c| token_hash(c.value()));
    match token {
        Some(hash) => rooms::player(&inner.db, room, &hash).await,
        None => Ok(None),
    }
}

/// `GET /quizzes/live/<pin>/`: the player's page; someone who has not joined is sent to
/// the join form.
pub(crate) async fn play(
    State(inner): State<Arc<Inner>>,
    Extension(visitor): Extension<Visitor>,
    headers: HeaderMap,
    Path(pin): Path<String>,
) -> Result<Response, SiteError> {
    let room = room_or_404(&inner, &pin).await?;
    let Some(player) = player_of(&inner, &room, &headers).await? else {
        return Ok(see_other("/quizzes/live/"));
    };
    let ctx = context! { room => room_context(&inner, &room, Viewer::Player(&player)).await? };
    inner.page(
        &visitor,
        "quiz/live_play.html",
        "quizzes",
        StatusCode::OK,
        ctx,
    )
}

/// `POST /quizzes/live/<pin>/answer/`: one answer to the question on screen. Late, twice,
/// or for another question: 409 and nothing changes.
pub(crate) async fn answer(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(pin): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, SiteError> {
    let at = now_ms();
    let room = room_or_404(&inner, &pin).await?;
    let player = player_of(&inner, &room, &headers)
        .await?
        .ok_or_else(|| SiteError::Forbidden("Join the room first.".into()))?;
    let index: Option<i64> = fields
        .iter()
        .find(|(k, _)| k == "index")
        .and_then(|(_, v)| v.parse().ok());
    if room.phase != Phase::Question || index != Some(room.current) {
        return Err(SiteError::Conflict(
            "This question is closed; wait for the next one.".into(),
        ));
    }
    let started = room.started_ms.unwrap_or(at);
    if at > started + room.limit_ms + GRACE_MS {
        return Err(SiteError::Conflict("Time is up for this question.".into()));
    }
    let questions = room_questions(&inner, &room).await?;
    let q = usize::try_from(room.current)
        .ok()
        .and_then(|i| questions.get(i))
        .ok_or_else(|| SiteError::Conflict("This question is no longer in the quiz.".into()))?;
    let name = format!("q{}", q.id);
    let values: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    let response = keel_quiz::parse_response(&q.question, &values)
        .map_err(|e| SiteError::BadRequest(e.to_string()))?
        .ok_or_else(|| SiteError::BadRequest("Choose an answer first.".into()))?;
    let grade = keel_quiz::grade(&q.question, Some(&response));
    let elapsed = (at - started).clamp(0, room.limit_ms);
    let streak = room
        .streak_bonus
        .then(|| u32::try_from(player.streak + 1).unwrap_or(u32::MAX));
    let points = keel_quiz::live_points(
        grade.correct,
        u64::try_from(elapsed).unwrap_or(0),
        u64::try_from(room.limit_ms).unwrap_or(1),
        streak,
    );
    let scored = rooms::Scored {
        index: room.current,
        response: &response,
        correct: grade.correct,
        points: i64::from(points),
        elapsed_ms: elapsed,
    };
    match rooms::answer(&inner.db, &room, &player, &scored).await {
        Ok(()) => {}
        Err(AnswerError::Twice) => {
            return Err(SiteError::Conflict(
                "You already answered this question.".into(),
            ))
        }
        Err(AnswerError::Site(e)) => return Err(e),
    }
    coalesce(inner.clone(), &room, "tally");
    if headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
    {
        let body = serde_json::json!({ "accepted": true, "index": room.current }).to_string();
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    Ok(see_other(&format!("/quizzes/live/{pin}/")))
}

/// `GET /quizzes/live/<pin>/events/`: the room's events as Server-Sent Events. Served
/// outside the request timeout (see [`crate::Site::live_router`]); anyone with the PIN may
/// listen, as on the host's screen: no event carries the key before the reveal.
pub(crate) async fn events(
    State(inner): State<Arc<Inner>>,
    Path(pin): Path<String>,
    request: Request,
) -> Result<Response, SiteError> {
    let room = room_or_404(&inner, &pin).await?;
    let hub = hub(&inner)?;
    let ip = keel_stream::http::client_ip(&request);
    let mut parsed = keel_stream::http::client_request(request.uri(), request.headers(), ip)
        .map_err(|e| SiteError::BadRequest(e.to_string()))?;
    parsed.channels = vec![channel(&room.pin)];
    keel_stream::http::sse_response_unlisted(hub, parsed).map_err(|e| match e {
        keel_stream::StreamError::TooManyClients { .. }
        | keel_stream::StreamError::ShuttingDown => SiteError::Conflict(e.to_string()),
        other => SiteError::BadRequest(other.to_string()),
    })
}
