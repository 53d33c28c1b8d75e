//! `keel createsuperuser`'s questions: asked on a terminal (the password twice, without
//! echo), or taken from flags and standard input for scripts, like Django's command.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};

use crate::cli::SuperuserArgs;

/// What the new superuser is to be.
#[derive(Debug)]
pub struct Answers {
    pub username: String,
    pub email: String,
    pub password: String,
}

/// Django's `DJANGO_SUPERUSER_PASSWORD`, for scripts that cannot pipe stdin; the
/// configuration reads it (`Settings::superuser_password`).
const PASSWORD_ENV: &str = "KEEL_SUPERUSER_PASSWORD";

/// Collects the answers: flags first, then the terminal, then a clear refusal.
pub fn ask(args: &SuperuserArgs, password_env: Option<String>) -> anyhow::Result<Answers> {
    let interactive = !args.no_input && std::io::stdin().is_terminal() && !args.password_stdin;
    let username = match &args.username {
        Some(name) => name.trim().to_owned(),
        None if interactive => prompt_until("Username: ", keel_site::check_username)?,
        None => bail!("--username is required without a terminal (or with --no-input)"),
    };
    let email = match &args.email {
        Some(email) => email.trim().to_owned(),
        None if interactive => prompt_until("Email address: ", keel_site::check_email)?,
        None => bail!("--email is required without a terminal (or with --no-input)"),
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("could not read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("--password-stdin: standard input held no password");
        }
        password
    } else if let Some(password) = password_env {
        password
    } else if interactive {
        ask_password(&username, &email)?
    } else {
        bail!("give the password with --password-stdin (or {PASSWORD_ENV}) without a terminal");
    };
    Ok(Answers {
        username,
        email,
        password,
    })
}

fn prompt_until(label: &str, check: fn(&str) -> Result<(), String>) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    loop {
        print!("{label}");
        std::io::stdout().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("standard input closed");
        }
        let value = line.trim().to_owned();
        match check(&value) {
            Ok(()) => return Ok(value),
            Err(message) => eprintln!("Error: {message}"),
        }
    }
}

fn ask_password(username: &str, email: &str) -> anyhow::Result<String> {
    loop {
        let password = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password (again): ")?;
        if password != again {
            eprintln!("Error: Your passwords didn't match.");
            continue;
        }
        let problems = keel_site::check_password(&password, username, email);
        if problems.is_empty() {
            return Ok(password);
        }
        for problem in problems {
            eprintln!("Error: {problem}");
        }
    }
}
