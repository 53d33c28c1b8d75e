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
