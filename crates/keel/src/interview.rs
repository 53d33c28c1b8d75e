//! `keel interview`: the AI Interviewer in a terminal, on the shipped tracks and the
//! rubric engine (no model, no database, nothing leaves the machine). Questions go to
//! standard output; answers come from standard input, one per line when it is not a
//! terminal, so a script can drive it. An empty line is "I don't know"; once input ends,
//! every remaining turn, follow-ups included, is unanswered.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use clap::Args;
use keel_interview::{Level, Mode, Session, Setup, Track};

/// `keel interview`.
#[derive(Debug, Args)]
pub struct InterviewArgs {
    /// The track, by name (see --list-tracks)
    #[arg(long, value_name = "NAME", required_unless_present = "list_tracks")]
    pub track: Option<String>,
    /// Questions in the interview: 5, 8 or 12
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub questions: usize,
    /// Seed of the question draw: the same seed asks the same questions [default: random]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// junior, mid or senior
    #[arg(long, value_name = "LEVEL", default_value = "mid")]
    pub level: String,
    /// The report's format
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Print the tracks, one per line, name first, and exit
    #[arg(long)]
    pub list_tracks: bool,
}

/// Runs the interview (or lists the tracks).
pub fn run(args: InterviewArgs) -> anyhow::Result<()> {
    let tracks = keel_interview::shipped();
    let mut out = std::io::stdout().lock();
    if args.list_tracks {
        for t in &tracks {
            writeln!(
                out,
                "{}  {} ({} questions)",
                t.name,
                t.title,
                t.questions.len()
            )?;
        }
        return Ok(());
    }
    let name = args.track.unwrap_or_default();
    let Some(track) = tracks.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = tracks.iter().map(|t| t.name.as_str()).collect();
        bail!(
            "there is no track {name:?}; the tracks are {}",
            names.join(", ")
        );
    };
    let level: Level = args
        .level
        .parse()
        .map_err(|_| anyhow::anyhow!("--level {:?}: use junior, mid or senior", args.level))?;
    let setup = Setup {
        track: track.name.clone(),
        level,
        length: args.questions,
        // The terminal holds hints and model answers for the report, as an interview does.
        mode: Mode::Interview,
        seed: args.seed.unwrap_or_else(keel_quiz::new_seed),
    };
    let mut session = Session::new(track, setup).context("cannot start the interview")?;
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    let json = args.format == "json";
    let mut said = session.prompt(track);
    let mut input_ended = false;
    while !session.is_done() {
        if !json {
            writeln!(out, "\ninterviewer: {said}")?;
            if interactive {
                write!(out, "you> ")?;
                out.flush()?;
            }
        }
        let answer = if input_ended {
            None
        } else {
            match lines.next() {
                Some(line) => Some(line.context("cannot read standard input")?),
                None => {
                    input_ended = true;
                    None
                }
            }
        };
        // An empty line is "I don't know"; no line at all (input ended) is unanswered.
        let text = answer.as_deref().map(str::trim).unwrap_or("");
        let reply = session.answer(track, text, None);
        said = reply.says.join(" ");
        if !json && !input_ended {
            if let Some(verdict) = &reply.verdict {
                writeln!(out, "  (covered: {})", list(&verdict.covered))?;
            }
        }
    }
    let report = session.report(track);
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&json_report(track, &report))?
        )?;
    } else {
        writeln!(out, "\ninterviewer: {said}\n")?;
        write!(out, "{}", report.markdown)?;
        if !report.markdown.ends_with('\n') {
            writeln!(out)?;
        }
        writeln!(out, "score: {:.0}/100", report.score)?;
    }
    Ok(())
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "nothing yet".to_owned()
    } else {
        ids.join(", ")
    }
}

/// The report as one JSON object: `score` and the `questions` with their key point ids.
fn json_report(track: &Track, report: &keel_interview::Report) -> serde_json::Value {
    serde_json::json!({
        "track": track.name,
        "score": (report.score * 100.0).round() / 100.0,
        "finished": report.finished,
        "questions": report.questions.iter().map(|q| serde_json::json!({
            "id": q.question_id,
            "question": q.question,
            "answer": q.answer,
            "covered": q.covered,
            "missed": q.missed,
            "misconceptions": q.misconceptions,
            "score": q.score,
            "model_answer": q.model_answer,
            "links": q.links,
        })).collect::<Vec<_>>(),
    })
}
