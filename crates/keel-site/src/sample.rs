//! Sample posts for a new site, so `keel up` shows a real home page at once. They are
//! added once, on a database with no posts, and never again (deleting them all does not
//! bring them back); `--no-sample-data` skips them.

use sqlx::Row;

use crate::accounts::{self, CreateUserError};
use crate::db::Db;
use crate::error::SiteError;
use crate::posts::{self, PostInput};

const MARKER: &str = "sample_data";

/// The author of the samples: an account that cannot log in (unusable password).
const AUTHOR: &str = "keel";

struct Sample {
    title: &'static str,
    slug: &'static str,
    tags: &'static [&'static str],
    body: &'static str,
}

const SAMPLES: &[Sample] = &[
    Sample {
        title: "Welcome to keel",
        slug: "welcome-to-keel",
        tags: &["getting started"],
        body: "keel is one binary that does the job of **nginx, gunicorn, Django and Redis** in the classic stack.\n\n\
This site is running on it right now: the page you are reading was rendered from a template, its stylesheet came from the edge's \
static files with a content-hashed name, and your requests passed nginx-style rate limiting on the way in.\n\n\
## What to try\n\n\
- Register an account, log in, and send some feedback.\n\
- Click a tag to filter the posts.\n\
- Open [the live events page](/events/) and publish something: `keel publish demo_stream \"Hello\"`.\n\
- Create a superuser with `keel createsuperuser` and write a post in the [admin](/admin/): open pages hear about it at once.\n",
    },
    Sample {
        title: "Running keel in production",
        slug: "running-keel-in-production",
        tags: &["deploy", "getting started"],
        body: "`keel up` runs everything in one process with SQLite and an in-memory broker. In production the same binary runs split:\n\n\
```sh\n\
keel serve --bind 127.0.0.1:8000 --workers 4 --threads 10 \\\n    --database-url postgres://keel@db/keel --redis-url redis://cache:6379/\n\
keel edge --listen 0.0.0.0:443 --upstream 127.0.0.1:8000 \\\n    --tls-cert cert.pem --tls-key key.pem --static-root /srv/static\n\
```\n\n\
Several `keel serve` share PostgreSQL for data and Redis for events; one or more `keel edge` balance across them. \
`deploy/` has a Dockerfile, a docker-compose topology and systemd units.\n",
    },
    Sample {
        title: "Rate limiting, decision for decision",
        slug: "rate-limiting-decision-for-decision",
        tags: &["edge", "nginx"],
        body: "The edge limits requests per client address exactly as nginx's `limit_req` does: \
`rate=10r/s burst=20 nodelay` lets a burst of 21 requests through at once, then one every 100 ms.\n\n\
> Rejections cost nothing: nginx does not charge the zone for a request it refuses, and neither does keel.\n\n\
Static files are never limited, like in the classic nginx configuration where `limit_req` sits on the proxied location only.\n",
    },
    Sample {
        title: "Live events without a thread per browser",
        slug: "live-events-without-a-thread-per-browser",
        tags: &["events", "redis"],
        body: "The classic Django view held a Redis connection and a polling loop per browser, so forty browsers filled a 4 × 10 gunicorn. \
keel keeps **one subscription per channel** for the whole process and fans out to every client.\n\n\
`redis-cli publish demo_stream \"Test Event\"` still reaches every browser as `data: Test Event`, and messages published \
through keel carry ids and are replayed after a reconnect.\n",
    },
];

/// Adds the sample posts if this database never had them and has no posts.
pub async fn seed(db: &Db) -> Result<bool, SiteError> {
    let marker = sqlx::query("SELECT value FROM site_meta WHERE name = $1")
        .bind(MARKER)
        .fetch_optional(db.pool())
        .await?;
    if marker.is_some() || posts::count(db).await? > 0 {
        return Ok(false);
    }
    let author = match accounts::insert_user(db, AUTHOR, "keel@localhost", "!", false).await {
        Ok(user) => user.id,
        Err(CreateUserError::UsernameTaken) => {
            let row = sqlx::query("SELECT id FROM users WHERE username_key = $1")
                .bind(AUTHOR)
                .fetch_one(db.pool())
                .await?;
            row.try_get("id")?
        }
        Err(CreateUserError::Site(e)) => return Err(e),
    };
    // Oldest first, so the welcome post (first in the list) ends up on top.
    for sample in SAMPLES.iter().rev() {
        let input = PostInput {
            title: sample.title.to_owned(),
            slug: sample.slug.to_owned(),
            body: sample.body.to_owned(),
            tags: sample.tags.iter().map(|t| (*t).to_owned()).collect(),
            published: true,
        };
        // Saved in one second, they are ordered by id: the last saved is the newest.
        posts::save(db, None, author, &input).await?;
    }
    sqlx::query("INSERT INTO site_meta (name, value) VALUES ($1, $2)")
        .bind(MARKER)
        .bind("added")
        .execute(db.pool())
        .await?;
    Ok(true)
}

/// Marks that the sample quizzes were added (a database upgraded from before quizzes
/// gets them once, even though it already has posts).
const QUIZ_MARKER: &str = "sample_quizzes";

struct SampleQuiz {
    slug: &'static str,
    title: &'static str,
    description: &'static str,
    tags: &'static [&'static str],
    /// The sample post that teaches it, linked from every question's review.
    post: &'static str,
    gift: &'static str,
}

/// The sample quizzes: GIFT files shipped in `quizzes/`, loaded through the importer
/// staff use.
const SAMPLE_QUIZZES: &[SampleQuiz] = &[
    SampleQuiz {
        slug: "edge-and-limit-req",
        title: "The edge and limit_req",
        description: "Rate limiting the way nginx does it: rate, burst, `nodelay`, and who the client is behind a proxy.",
        tags: &["edge", "nginx"],
        post: "rate-limiting-decision-for-decision",
        gift: include_str!("../quizzes/edge-and-limit-req.gift"),
    },
    SampleQuiz {
        slug: "app-server-workers-threads",
        title: "App servers: workers × threads",
        description: "How many requests a gunicorn-style server runs at once, and what its timeouts protect.",
        tags: &["deploy"],
        post: "running-keel-in-production",
        gift: include_str!("../quizzes/app-server-workers-threads.gift"),
    },
    SampleQuiz {
        slug: "live-events-redis",
        title: "Live events and Redis pub/sub",
        description: "Server-Sent Events end to end: the wire format, reconnects, proxies, and what Redis pub/sub does and does not promise.",
        tags: &["events", "redis"],
        post: "live-events-without-a-thread-per-browser",
        gift: include_str!("../quizzes/live-events-redis.gift"),
    },
    SampleQuiz {
        slug: "sync-vs-async",
        title: "Sync vs async views",
        description: "What happens to a site whose views wait on a slow outside API.",
        tags: &["getting started"],
        post: "welcome-to-keel",
        gift: include_str!("../quizzes/sync-vs-async.gift"),
    },
];

/// Adds the sample quizzes once, on a database that has no quiz.
pub async fn seed_quizzes(db: &Db) -> Result<bool, SiteError> {
    let marker = sqlx::query("SELECT value FROM site_meta WHERE name = $1")
        .bind(QUIZ_MARKER)
        .fetch_optional(db.pool())
        .await?;
    if marker.is_some() || !crate::quiz::store::summary(db).await?.is_empty() {
        return Ok(false);
    }
    for sample in SAMPLE_QUIZZES {
        let questions = keel_quiz::gift::parse(sample.gift).map_err(|errors| {
            SiteError::Internal(format!(
                "sample quiz {}: {}",
                sample.slug,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let mut input = crate::quiz::store::QuizInput::new(sample.slug, sample.title, false);
        input.description = sample.description.to_owned();
        input.tags = sample.tags.iter().map(|t| (*t).to_owned()).collect();
        input.pass_mark = 60;
        input.bands = vec![
            crate::quiz::store::Band {
                min: 80.0,
                text: "Well done: you know this part of the stack.".into(),
            },
            crate::quiz::store::Band {
                min: 0.0,
                text: "Read the explanations below, and the post each question links to, then try again.".into(),
            },
        ];
        let imported = crate::quiz::store::import(db, &input, &questions).await?;
        crate::quiz::store::link_post(db, imported.quiz_id, sample.post).await?;
    }
    sqlx::query("INSERT INTO site_meta (name, value) VALUES ($1, $2)")
        .bind(QUIZ_MARKER)
        .bind("added")
        .execute(db.pool())
        .await?;
    Ok(true)
}
