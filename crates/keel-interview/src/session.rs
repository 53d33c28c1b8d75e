//! The interview as a state machine: a [`Session`] picks its questions from a seed, asks,
//! listens ([`Session::answer`], [`Session::skip`]), follows up on what was missed, challenges
//! misconceptions, and ends with an honest [`Report`]. It is plain serde data: the site
//! stores it as JSON between requests and passes the [`Track`] in on every call, so a bank
//! edit reaches running sessions ([`Session::regrade`]).
//!
//! # The turn loop (AutoTutor's expectation coverage, made deterministic)
//! 1. **Ask** the question. After each answer the interviewer says which key points the
//!    answer covered.
//! 2. A **misconception** the answer shows is **challenged** once ([`Step::Challenge`]);
//!    after the reader replies, the interviewer gives its correction (in both modes: it is
//!    feedback on what the reader said, not the answer to what they missed).
//! 3. Otherwise, while fewer than [`MAX_FOLLOW_UPS`] follow-ups have been asked, the
//!    interviewer **follows up** on the heaviest key point still missing, climbing a ladder:
//!    its prompt ([`Stage::Prompt`]), then its hint ([`Stage::Hint`]) if the reader still
//!    missed it. A point that is still missing when the question ends is **stated**
//!    ([`Stage::State`], recorded in [`Session::ladder`]), which ends its ladder.
//! 4. Then the interview **moves on**. "I don't know" (and empty) is an answer that covers
//!    nothing, so it climbs the ladder; [`Session::skip`] moves on at once.
//!
//! A question's score is its best combination over the reader's answers: the points covered
//! in any explained answer (the main one or a follow-up; not a keyword list, not an off-topic
//! one) minus the penalties of every misconception shown, or the best single answer's
//! score if that is higher. Points the interviewer stated never count. The report's score is
//! the mean over the questions reached.
//!
//! **Practice** mode shows the stated point, the points missed and the model answer as the
//! interview moves on; **Interview** mode holds them for the report.
//!
//! How it differs from LLM interview agents: the interviewer's decisions (what to ask next,
//! what counts) are the rubric's, never the model's; a model may only propose a verdict,
//! which [`crate::check`] verifies, and may rephrase [`Reply::says`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bank::{BankQuestion, KeyPoint, Level, Track};
use crate::error::SetupError;
use crate::model::{check, rubric_says, Proposal};
use crate::score::{assess, clamp_score, score_of, Verdict};
use keel_seed as rng;

/// The lengths the site offers.
pub const LENGTHS: [usize; 3] = [5, 8, 12];

/// At most this many follow-ups per question (challenges are not counted).
pub const MAX_FOLLOW_UPS: usize = 2;

/// Sub-stream purpose for the question draw (see `rng::stream`): fixed forever.
const DOMAIN_PICK: u64 = 1;

/// How the interview treats feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Stated points, missed points and model answers are shown as you go.
    Practice,
    /// They are held for the report.
    Interview,
}

impl Mode {
    /// `"practice"` or `"interview"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Practice => "practice",
            Mode::Interview => "interview",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not `practice` or `interview`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode `{0}` (expected practice or interview)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "practice" => Ok(Mode::Practice),
            "interview" => Ok(Mode::Interview),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}

/// What the reader chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// The track's slug.
    pub track: String,
    /// The level asked for.
    pub level: Level,
    /// How many questions: one of [`LENGTHS`].
    pub length: usize,
    /// Practice or interview.
    pub mode: Mode,
    /// The draw's seed: the same seed picks the same questions, forever.
    pub seed: u64,
}

/// A rung of the follow-up ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The point's follow-up question.
    Prompt,
    /// The point's hint.
    Hint,
    /// The point, stated by the interviewer; ends the ladder.
    State,
}

/// Where the interview is: what the reader is answering now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// The question itself.
    Ask {
        /// The question.
        question_id: String,
    },
    /// A follow-up on a missing key point (`stage` is `Prompt` or `Hint` while waiting).
    FollowUp {
        /// The question.
        question_id: String,
        /// The key point aimed at.
        point_id: String,
        /// The rung.
        stage: Stage,
    },
    /// A challenge of a misconception the reader showed.
    Challenge {
        /// The question.
        question_id: String,
        /// The misconception.
        misconception_id: String,
    },
    /// The interview is over.
    Done,
}

impl Step {
    /// The question this step belongs to (`None` when done).
    pub fn question_id(&self) -> Option<&str> {
        match self {
            Step::Ask { question_id }
            | Step::FollowUp { question_id, .. }
            | Step::Challenge { question_id, .. } => Some(question_id),
            Step::Done => None,
        }
    }
}

/// One reply of the reader (or a skip), with its assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The question it belongs to.
    pub question_id: String,
    /// What the reader was answering.
    pub step: Step,
    /// What they wrote ("" when skipped).
    pub answer: String,
    /// "Skip" rather than an answer.
    pub skipped: bool,
    /// The assessment (`None` when skipped, or when the question left the bank).
    pub verdict: Option<Verdict>,
    /// The model's proposal, kept so that [`Session::regrade`] re-checks it exactly.
    pub proposal: Option<Proposal>,
}

/// A follow-up rung the interviewer climbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// The question.
    pub question_id: String,
    /// The key point.
    pub point_id: String,
    /// Prompt, hint, or stated.
    pub stage: Stage,
}

/// One interview in progress or finished. Serde: the site stores it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    setup: Setup,
    questions: Vec<String>,
    turns: Vec<Turn>,
    ladder: Vec<Rung>,
    step: Step,
    /// Index into `questions` of the current question (`questions.len()` when done).
    current: usize,
    /// Follow-ups asked on the current question.
    follow_ups: usize,
    /// Misconceptions challenged on the current question.
    challenged: Vec<String>,
}

/// What the interviewer says after an answer or a skip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The assessment of the answer (`None` for a skip).
    pub verdict: Option<Verdict>,
    /// The interviewer's sentences, in order: what the answer covered, the correction after
    /// a challenge, what was missed (Practice mode), and last, unless the interview is
    /// done, exactly what [`Session::prompt`] now returns (the follow-up, the challenge or
    /// the next question). The site streams them one by one when no model phrases them.
    pub says: Vec<String>,
    /// A model's proposal was checked for this verdict.
    pub model_used: bool,
    /// The interview is over.
    pub done: bool,
}

/// The end-of-interview report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Mean of the question scores, 0..=100 (0 when no question was reached).
    pub score: f64,
    /// The questions reached, in order.
    pub questions: Vec<ReportItem>,
    /// The whole report as Markdown.
    pub markdown: String,
    /// Questions in the interview.
    pub total: usize,
    /// The interview reached [`Step::Done`].
    pub finished: bool,
}

/// One question of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportItem {
    /// The question id.
    pub question_id: String,
    /// The question's prompt.
    pub question: String,
    /// All the reader's answers to it, joined by blank lines.
    pub answer: String,
    /// Key point ids covered in any answer, bank order.
    pub covered: Vec<String>,
    /// Key point ids never covered, bank order.
    pub missed: Vec<String>,
    /// Misconception ids shown, bank order.
    pub misconceptions: Vec<String>,
    /// 0..=100 (see the module doc).
    pub score: f64,
    /// The bank's model answer.
    pub model_answer: String,
    /// Where to read more.
    pub links: Vec<String>,
    /// Skipped without an answer.
    pub skipped: bool,
}

const MISSING_QUESTION: &str =
    "This question is no longer in the bank. Say anything, or skip, to move on.";

impl Session {
    /// Starts an interview: checks the setup and draws `length` questions of the level (the
    /// same seed draws the same questions), topping up from adjacent levels when the level
    /// has too few, easiest first. A track with fewer questions than `length` gives all of
    /// them.
    pub fn new(track: &Track, setup: Setup) -> Result<Session, SetupError> {
        if setup.track != track.name {
            return Err(SetupError::WrongTrack {
                wanted: setup.track,
                got: track.name.clone(),
            });
        }
        if !LENGTHS.contains(&setup.length) {
            return Err(SetupError::Length(setup.length));
        }
        if track.questions.is_empty() {
            return Err(SetupError::EmptyTrack(track.name.clone()));
        }
        let questions = draw(track, setup.level, setup.length, setup.seed);
        let step = match questions.first() {
            Some(id) => Step::Ask {
                question_id: id.clone(),
            },
            None => Step::Done,
        };
        Ok(Session {
            setup,
            questions,
            turns: Vec::new(),
            ladder: Vec::new(),
            step,
            current: 0,
            follow_ups: 0,
            challenged: Vec::new(),
        })
    }

    /// Starts an interview on the given questions, in that order ("practise the weak ones
    /// again": the ids a report scored low). Ids not in the track are left out; `setup`'s
    /// length is not checked against [`LENGTHS`] here, the questions decide it.
    pub fn with_questions(
        track: &Track,
        setup: Setup,
        ids: &[String],
    ) -> Result<Session, SetupError> {
        if setup.track != track.name {
            return Err(SetupError::WrongTrack {
                wanted: setup.track,
                got: track.name.clone(),
            });
        }
        let mut questions: Vec<String> = Vec::new();
        for id in ids {
            if track.question(id).is_some() && !questions.contains(id) {
                questions.push(id.clone());
            }
        }
        let Some(first) = questions.first().cloned() else {
            return Err(SetupError::EmptyTrack(track.name.clone()));
        };
        Ok(Session {
            setup: Setup {
                length: questions.len(),
                ..setup
            },
            questions,
            turns: Vec::new(),
            ladder: Vec::new(),
            step: Step::Ask { question_id: first },
            current: 0,
            follow_ups: 0,
            challenged: Vec::new(),
        })
    }

    /// The setup it started with.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The drawn question ids, in order.
    pub fn questions(&self) -> &[String] {
        &self.questions
    }

    /// Every answer and skip so far.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Every follow-up rung climbed so far, including points stated.
    pub fn ladder(&self) -> &[Rung] {
        &self.ladder
    }

    /// What the reader is answering now.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// The interview is over.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// What the interviewer asks now: the question, the follow-up, the hint, or the
    /// challenge.
    pub fn prompt(&self, track: &Track) -> String {
        let q = self.step.question_id().and_then(|id| track.question(id));
        match (&self.step, q) {
            (Step::Done, _) => "That's the end of the interview. Your report is ready.".to_owned(),
            (_, None) => MISSING_QUESTION.to_owned(),
            (Step::Ask { .. }, Some(q)) => q.prompt.clone(),
            (Step::FollowUp { point_id, stage, .. }, Some(q)) => match q.point(point_id) {
                None => MISSING_QUESTION.to_owned(),
                Some(p) => match stage {
                    Stage::Prompt => p.prompt.clone(),
                    Stage::Hint => format!("Here's a hint: {}", p.hint),
                    Stage::State => p.text.clone(),
                },
            },
            (
                Step::Challenge {
                    misconception_id, ..
                },
                Some(q),
            ) => match q.misconception(misconception_id) {
                None => MISSING_QUESTION.to_owned(),
                Some(m) => format!(
                    "Hold on. It sounded like you said: \"{}\" Are you sure about that? Walk me through why.",
                    m.text.trim()
                ),
            },
        }
    }

    /// The reader answers the current step. `proposal` is a model's proposed verdict, which
    /// the rubric checks ([`crate::check`]); without one the rubric assesses alone.
    pub fn answer(&mut self, track: &Track, text: &str, proposal: Option<&Proposal>) -> Reply {
        if self.is_done() {
            return over();
        }
        let Some(qid) = self.step.question_id().map(str::to_owned) else {
            return over();
        };
        let Some(q) = track.question(&qid) else {
            return self.skip(track);
        };
        let verdict = match proposal {
            Some(p) => check(q, text, p),
            None => assess(q, text),
        };
        let answered = self.step.clone();
        self.turns.push(Turn {
            question_id: qid.clone(),
            step: answered.clone(),
            answer: text.to_owned(),
            skipped: false,
            verdict: Some(verdict.clone()),
            proposal: proposal.cloned(),
        });
        let mut says = rubric_says(q, &verdict);
        if let Step::Challenge {
            misconception_id, ..
        } = &answered
        {
            if let Some(m) = q.misconception(misconception_id) {
                says.push(format!("Here's the thing: {}", m.correction.trim()));
            }
        }
        // 1. Challenge a misconception not yet challenged.
        let unchallenged = q
            .misconceptions
            .iter()
            .find(|m| verdict.misconceptions.contains(&m.id) && !self.challenged.contains(&m.id));
        if let Some(m) = unchallenged {
            self.challenged.push(m.id.clone());
            self.step = Step::Challenge {
                question_id: qid,
                misconception_id: m.id.clone(),
            };
            says.push(self.prompt(track));
            return self.reply(Some(verdict), says, proposal.is_some());
        }
        // 2. Follow up on the heaviest missing point.
        if self.follow_ups < MAX_FOLLOW_UPS {
            if let Some(target) = self.heaviest_missing(q) {
                let last = self.last_rung(&qid);
                let stage = match last {
                    Some(r) if r.point_id == target.id && r.stage == Stage::Prompt => Stage::Hint,
                    _ => Stage::Prompt,
                };
                let climbed_out =
                    matches!(last, Some(r) if r.point_id == target.id && r.stage == Stage::Hint);
                if !climbed_out {
                    self.follow_ups += 1;
                    self.ladder.push(Rung {
                        question_id: qid.clone(),
                        point_id: target.id.clone(),
                        stage,
                    });
                    self.step = Step::FollowUp {
                        question_id: qid,
                        point_id: target.id.clone(),
                        stage,
                    };
                    says.push(self.prompt(track));
                    return self.reply(Some(verdict), says, proposal.is_some());
                }
            }
        }
        // 3. Move on.
        self.move_on(track, q, &mut says);
        self.reply(Some(verdict), says, proposal.is_some())
    }

    /// "Skip": moves on to the next question at once.
    pub fn skip(&mut self, track: &Track) -> Reply {
        if self.is_done() {
            return over();
        }
        let Some(qid) = self.step.question_id().map(str::to_owned) else {
            return over();
        };
        self.turns.push(Turn {
            question_id: qid.clone(),
            step: self.step.clone(),
            answer: String::new(),
            skipped: true,
            verdict: None,
            proposal: None,
        });
        let mut says = vec!["Let's skip this one.".to_owned()];
        match track.question(&qid) {
            Some(q) => self.move_on(track, q, &mut says),
            None => self.advance(track, &mut says),
        }
        self.reply(None, says, false)
    }

    fn reply(&self, verdict: Option<Verdict>, says: Vec<String>, model_used: bool) -> Reply {
        Reply {
            verdict,
            says,
            model_used,
            done: self.is_done(),
        }
    }

    /// The most recent prompt or hint rung of this question.
    fn last_rung(&self, qid: &str) -> Option<&Rung> {
        self.ladder
            .iter()
            .rev()
            .take_while(|r| r.question_id == qid)
            .find(|r| r.stage != Stage::State)
    }

    /// Key points the reader's explained answers to `q` covered so far (the ones the
    /// question's score credits).
    fn credited(&self, q: &BankQuestion) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.verdicts(&q.id) {
            if v.stuffing || v.off_topic {
                continue;
            }
            for id in &v.covered {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    fn verdicts<'s>(&'s self, qid: &'s str) -> impl Iterator<Item = &'s Verdict> + 's {
        self.turns
            .iter()
            .filter(move |t| t.question_id == qid)
            .filter_map(|t| t.verdict.as_ref())
    }

    fn stated(&self, qid: &str, point: &str) -> bool {
        self.ladder
            .iter()
            .any(|r| r.question_id == qid && r.point_id == point && r.stage == Stage::State)
    }

    /// The heaviest key point not yet covered (or stated); the first in bank order on ties.
    fn heaviest_missing<'q>(&self, q: &'q BankQuestion) -> Option<&'q KeyPoint> {
        let credited = self.credited(q);
        let mut best: Option<&KeyPoint> = None;
        for p in &q.key_points {
            if credited.contains(&p.id) || self.stated(&q.id, &p.id) {
                continue;
            }
            if best.is_none_or(|b| p.weight > b.weight) {
                best = Some(p);
            }
        }
        best
    }

    /// Ends the current question: states the point the ladder was on if still missing,
    /// shows what was missed and the model answer (Practice mode), then asks the next one.
    fn move_on(&mut self, track: &Track, q: &BankQuestion, says: &mut Vec<String>) {
        let credited = self.credited(q);
        let practice = self.setup.mode == Mode::Practice;
        let on_ladder = self.last_rung(&q.id).map(|r| r.point_id.clone());
        if let Some(point_id) = on_ladder {
            if !credited.contains(&point_id) && !self.stated(&q.id, &point_id) {
                self.ladder.push(Rung {
                    question_id: q.id.clone(),
                    point_id: point_id.clone(),
                    stage: Stage::State,
                });
                if let Some(p) = q.point(&point_id) {
                    says.push(if practice {
                        format!("The point I was after: {}", p.text.trim())
                    } else {
                        "Let's leave that one for the report.".to_owned()
                    });
                }
            }
        }
        if practice {
            for p in &q.key_points {
                if !credited.contains(&p.id)
                    && Some(&p.id) != self.last_rung(&q.id).map(|r| &r.point_id)
                {
                    says.push(format!("You could also have said: {}", p.text.trim()));
                }
            }
            says.push(format!("A model answer: {}", q.model_answer.trim()));
        }
        self.advance(track, says);
    }

    /// Goes to the next question, or to the end.
    fn advance(&mut self, track: &Track, says: &mut Vec<String>) {
        self.current = self.current.saturating_add(1);
        self.follow_ups = 0;
        self.challenged.clear();
        match self.questions.get(self.current) {
            Some(next) => {
                self.step = Step::Ask {
                    question_id: next.clone(),
                };
                says.push(format!(
                    "Question {} of {}.",
                    self.current + 1,
                    self.questions.len()
                ));
                says.push(self.prompt(track));
            }
            None => {
                self.current = self.questions.len();
                self.step = Step::Done;
                says.push("That's the end of the interview. Your report is ready.".to_owned());
            }
        }
    }

    /// The score of one question of this session, 0..=100 (see the module doc).
    pub fn question_score(&self, track: &Track, question_id: &str) -> f64 {
        let Some(q) = track.question(question_id) else {
            return 0.0;
        };
        let credited = self.credited(q);
        let mut miscs: Vec<String> = Vec::new();
        let mut best_single: f64 = 0.0;
        for v in self.verdicts(question_id) {
            best_single = best_single.max(clamp_score(v.score));
            for m in &v.misconceptions {
                if !miscs.contains(m) {
                    miscs.push(m.clone());
                }
            }
        }
        clamp_score(score_of(q, &credited, &miscs).max(best_single))
    }

    /// The report: every question reached, what was covered and missed, the model answers,
    /// and the mean score. Available at any time; `finished` says whether it is final.
    pub fn report(&self, track: &Track) -> Report {
        let reached = self.current.min(self.questions.len());
        let mut items = Vec::new();
        for (i, qid) in self.questions.iter().enumerate() {
            let has_turns = self.turns.iter().any(|t| &t.question_id == qid);
            if i > reached || (i == reached && !has_turns) {
                continue;
            }
            items.push(self.item(track, qid));
        }
        let score = if items.is_empty() {
            0.0
        } else {
            clamp_score(items.iter().map(|i| i.score).sum::<f64>() / items.len() as f64)
        };
        let mut report = Report {
            score,
            questions: items,
            markdown: String::new(),
            total: self.questions.len(),
            finished: self.is_done(),
        };
        report.markdown = self.markdown(track, &report);
        report
    }

    fn item(&self, track: &Track, qid: &str) -> ReportItem {
        let q = track.question(qid);
        let answers: Vec<&str> = self
            .turns
            .iter()
            .filter(|t| t.question_id == qid && !t.skipped)
            .map(|t| t.answer.trim())
            .filter(|a| !a.is_empty())
            .collect();
        let skipped = self
            .turns
            .iter()
            .filter(|t| t.question_id == qid)
            .all(|t| t.skipped);
        let mut covered_any: Vec<String> = Vec::new();
        let mut miscs_any: Vec<String> = Vec::new();
        for v in self.verdicts(qid) {
            covered_any.extend(v.covered.iter().cloned());
            miscs_any.extend(v.misconceptions.iter().cloned());
        }
        let (covered, missed, misconceptions) = match q {
            Some(q) => (
                q.key_points
                    .iter()
                    .filter(|p| covered_any.contains(&p.id))
                    .map(|p| p.id.clone())
                    .collect(),
                q.key_points
                    .iter()
                    .filter(|p| !covered_any.contains(&p.id))
                    .map(|p| p.id.clone())
                    .collect(),
                q.misconceptions
                    .iter()
                    .filter(|m| miscs_any.contains(&m.id))
                    .map(|m| m.id.clone())
                    .collect(),
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        ReportItem {
            question_id: qid.to_owned(),
            question: q
                .map(|q| q.prompt.clone())
                .unwrap_or_else(|| MISSING_QUESTION.to_owned()),
            answer: answers.join("\n\n"),
            covered,
            missed,
            misconceptions,
            score: self.question_score(track, qid),
            model_answer: q.map(|q| q.model_answer.clone()).unwrap_or_default(),
            links: q.map(|q| q.links.clone()).unwrap_or_default(),
            skipped,
        }
    }

    fn markdown(&self, track: &Track, report: &Report) -> String {
        let mut md = String::new();
        md.push_str(&format!("# Interview report: {}\n\n", track.title.trim()));
        md.push_str(&format!(
            "Level: {} · Mode: {} · Questions: {} of {}{}\n\n",
            self.setup.level,
            self.setup.mode,
            report.questions.len(),
            report.total,
            if report.finished {
                ""
            } else {
                " (not finished)"
            }
        ));
        md.push_str(&format!("**Score: {:.0} / 100**\n", report.score));
        for (n, item) in report.questions.iter().enumerate() {
            let q = track.question(&item.question_id);
            md.push_str(&format!(
                "\n## {}. {}\n\n",
                n + 1,
                first_line(&item.question)
            ));
            md.push_str(&format!("Score: {:.0} / 100\n\n", item.score));
            if item.skipped {
                md.push_str("You skipped this question.\n\n");
            } else {
                md.push_str("**Your answer:**\n\n");
                for l in item.answer.lines() {
                    md.push_str(&format!("> {l}\n"));
                }
                md.push('\n');
            }
            let texts = |ids: &[String],
                         f: &dyn Fn(&BankQuestion, &str) -> Option<String>|
             -> Vec<String> {
                q.map(|q| ids.iter().filter_map(|id| f(q, id)).collect())
                    .unwrap_or_default()
            };
            let covered = texts(&item.covered, &|q, id| {
                q.point(id).map(|p| p.text.trim().to_owned())
            });
            let missed = texts(&item.missed, &|q, id| {
                q.point(id).map(|p| p.text.trim().to_owned())
            });
            let miscs = texts(&item.misconceptions, &|q, id| {
                q.misconception(id)
                    .map(|m| format!("{} — {}", m.text.trim(), m.correction.trim()))
            });
            for (title, list) in [
                ("Covered", covered),
                ("Missed", missed),
                ("Misconceptions", miscs),
            ] {
                if !list.is_empty() {
                    md.push_str(&format!("**{title}:**\n"));
                    for t in list {
                        md.push_str(&format!("- {t}\n"));
                    }
                    md.push('\n');
                }
            }
            if !item.model_answer.is_empty() {
                md.push_str(&format!(
                    "**Model answer:** {}\n\n",
                    item.model_answer.trim()
                ));
            }
            if !item.links.is_empty() {
                md.push_str("**Read more:** ");
                md.push_str(
                    &item
                        .links
                        .iter()
                        .map(|l| format!("<{l}>"))
                        .collect::<Vec<_>>()
                        .join(" · "),
                );
                md.push('\n');
            }
        }
        md
    }

    /// Re-assesses every stored answer against the current bank (a model proposal stored with
    /// an answer is re-checked, minus ids the bank no longer has). Deterministic, so the
    /// report after a regrade is exact. The path the interview took is history and stays.
    pub fn regrade(&mut self, track: &Track) {
        for turn in &mut self.turns {
            if turn.skipped {
                continue;
            }
            let Some(q) = track.question(&turn.question_id) else {
                turn.verdict = None;
                continue;
            };
            turn.verdict = Some(match &turn.proposal {
                Some(p) => {
                    let p = Proposal {
                        covered: p
                            .covered
                            .iter()
                            .filter(|id| q.point(id).is_some())
                            .cloned()
                            .collect(),
                        misconceptions: p
                            .misconceptions
                            .iter()
                            .filter(|id| q.misconception(id).is_some())
                            .cloned()
                            .collect(),
                    };
                    check(q, &turn.answer, &p)
                }
                None => assess(q, &turn.answer),
            });
        }
    }
}

fn over() -> Reply {
    Reply {
        verdict: None,
        says: vec!["The interview is over; your report is ready.".to_owned()],
        model_used: false,
        done: true,
    }
}

fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.to_owned()
}

/// Draws the questions: the level's own first, then the adjacent levels (Mid's neighbours
/// together), each tier shuffled by the seed; presented easiest first.
fn draw(track: &Track, level: Level, length: usize, seed: u64) -> Vec<String> {
    let tiers: Vec<Vec<Level>> = match level {
        Level::Junior => vec![vec![Level::Junior], vec![Level::Mid], vec![Level::Senior]],
        Level::Mid => vec![vec![Level::Mid], vec![Level::Junior, Level::Senior]],
        Level::Senior => vec![vec![Level::Senior], vec![Level::Mid], vec![Level::Junior]],
    };
    let mut rng = rng::stream(seed, DOMAIN_PICK, 0);
    let mut picked: Vec<&BankQuestion> = Vec::new();
    for tier in tiers {
        let mut pool: Vec<&BankQuestion> = track
            .questions
            .iter()
            .filter(|q| tier.contains(&q.level))
            .collect();
        rng.shuffle(&mut pool);
        for q in pool {
            if picked.len() >= length {
                break;
            }
            // Duplicate ids (possible only in a bank that did not come through parse_track)
            // would make the session ambiguous.
            if !picked.iter().any(|p| p.id == q.id) {
                picked.push(q);
            }
        }
    }
    // Stable: within a level the shuffled order stays.
    picked.sort_by_key(|q| q.level);
    picked.into_iter().map(|q| q.id.clone()).collect()
}
