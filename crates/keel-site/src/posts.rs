//! Posts and tags in the database: the listing with its tag filter and pages, one post by
//! slug, and the admin's create, update and delete. Tags belong to posts: a tag that no
//! post uses any more is removed with the last post that had it.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now, Db};
use crate::error::SiteError;
use crate::markdown;

/// Posts per page of the listing.
pub const PAGE_SIZE: i64 = 5;
/// Characters of text in a listing's excerpt.
const EXCERPT_CHARS: usize = 240;

/// A post as pages and the admin read it.
#[derive(Debug, Clone)]
pub struct Post {
    /// Database id.
    pub id: i64,
    /// URL name, unique.
    pub slug: String,
    /// Title as typed.
    pub title: String,
    /// Markdown source.
    pub body: String,
    /// Sanitized HTML of `body`.
    pub body_html: String,
    /// Plain-text start of the body.
    pub excerpt: String,
    /// The author's username; `None` once the account is gone.
    pub author: Option<String>,
    /// Visible on the site.
    pub published: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Unix seconds of first publication.
    pub published_at: Option<i64>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
}

/// One page of the listing.
#[derive(Debug)]
pub struct Listing {
    /// The posts on this page, newest first.
    pub posts: Vec<Post>,
    /// Posts matching the filter, on all pages.
    pub total: i64,
}

/// What the admin's form sets on a post.
#[derive(Debug, Clone)]
pub struct PostInput {
    /// Title.
    pub title: String,
    /// URL name (already valid and chosen).
    pub slug: String,
    /// Markdown.
    pub body: String,
    /// Tag names (already normalized).
    pub tags: Vec<String>,
    /// Visible on the site.
    pub published: bool,
}

const POST_COLUMNS: &str =
    "p.id, p.slug, p.title, p.body, p.body_html, p.excerpt, u.username AS author,
     p.published, p.created_at, p.updated_at, p.published_at";

fn post_from_row(row: &AnyRow) -> Result<Post, sqlx::Error> {
    Ok(Post {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        body_html: row.try_get("body_html")?,
        excerpt: row.try_get("excerpt")?,
        author: row.try_get("author")?,
        published: row.try_get::<i64, _>("published")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        published_at: row.try_get("published_at")?,
        tags: Vec::new(),
    })
}

/// Tag names typed in the admin ("Rust, deploy ,, rust") → sorted, unique, lowercase.
pub fn normalize_tags(input: &str) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for raw in input.split(',') {
        let tag = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > 40 {
            return Err(format!("Tag \"{tag}\" is longer than 40 characters."));
        }
        if tag.chars().any(char::is_control) {
            return Err("Tags cannot contain control characters.".into());
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > 10 {
        return Err("A post can have at most 10 tags.".into());
    }
    tags.sort();
    Ok(tags)
}

/// The published posts, newest first, `page` (1-based) of them, optionally with one tag.
pub async fn published(db: &Db, tag: Option<&str>, page: i64) -> Result<Listing, SiteError> {
    let offset = (page - 1).max(0) * PAGE_SIZE;
    // With a tag, $1 is the tag and the page's numbers come after it.
    let (filter, next) = match tag {
        Some(_) => (
            "AND EXISTS (SELECT 1 FROM post_tags pt JOIN tags t ON t.id = pt.tag_id
                         WHERE pt.post_id = p.id AND t.name = $1)",
            2,
        ),
        None => ("", 1),
    };
    let count_sql = format!("SELECT COUNT(*) AS n FROM posts p WHERE p.published = 1 {filter}");
    let page_sql = format!(
        "SELECT {POST_COLUMNS} FROM posts p LEFT JOIN users u ON u.id = p.author_id
         WHERE p.published = 1 {filter}
         ORDER BY p.published_at DESC, p.id DESC LIMIT ${next} OFFSET ${}",
        next + 1
    );
    let mut count = sqlx::query(&count_sql);
    let mut rows = sqlx::query(&page_sql);
    if let Some(tag) = tag {
        count = count.bind(tag);
        rows = rows.bind(tag);
    }
    let total: i64 = count.fetch_one(db.pool()).await?.try_get("n")?;
    let rows = rows
        .bind(PAGE_SIZE)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    let posts = with_tags(db, &rows).await?;
    Ok(Listing { posts, total })
}

/// Posts from rows of `POST_COLUMNS`, each with its tags.
async fn with_tags(db: &Db, rows: &[AnyRow]) -> Result<Vec<Post>, SiteError> {
    let mut posts = rows
        .iter()
        .map(post_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_tags(db, &mut posts).await?;
    Ok(posts)
}

/// Every post, drafts included, newest first: the admin's list.
pub async fn all(db: &Db) -> Result<Vec<Post>, SiteError> {
    let rows = sqlx::query(&format!(
        "SELECT {POST_COLUMNS} FROM posts p LEFT JOIN users u ON u.id = p.author_id
         ORDER BY p.created_at DESC, p.id DESC"
    ))
    .fetch_all(db.pool())
    .await?;
    with_tags(db, &rows).await
}

async fn attach_tags(db: &Db, posts: &mut [Post]) -> Result<(), SiteError> {
    if posts.is_empty() {
        return Ok(());
    }
    let placeholders = (1..=posts.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT pt.post_id, t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id
         WHERE pt.post_id IN ({placeholders}) ORDER BY t.name"
    );
    let mut query = sqlx::query(&sql);
    for post in posts.iter() {
        query = query.bind(post.id);
    }
    for row in query.fetch_all(db.pool()).await? {
        let post_id: i64 = row.try_get("post_id")?;
        let name: String = row.try_get("name")?;
        if let Some(post) = posts.iter_mut().find(|p| p.id == post_id) {
            post.tags.push(name);
        }
    }
    Ok(())
}

/// A published post by slug.
pub async fn published_by_slug(db: &Db, slug: &str) -> Result<Option<Post>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {POST_COLUMNS} FROM posts p LEFT JOIN users u ON u.id = p.author_id
         WHERE p.slug = $1 AND p.published = 1"
    ))
    .bind(slug)
    .fetch_optional(db.pool())
    .await?;
    one_with_tags(db, row).await
}

/// Any post by id (the admin's edit and delete).
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Post>, SiteError> {
    let row = sqlx::query(&format!(
        "SELECT {POST_COLUMNS} FROM posts p LEFT JOIN users u ON u.id = p.author_id WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    one_with_tags(db, row).await
}

async fn one_with_tags(db: &Db, row: Option<AnyRow>) -> Result<Option<Post>, SiteError> {
    let Some(row) = row else { return Ok(None) };
    Ok(with_tags(db, &[row]).await?.pop())
}

/// Whether `slug` is used by a post other than `except`.
pub async fn slug_taken(db: &Db, slug: &str, except: Option<i64>) -> Result<bool, SiteError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM posts WHERE slug = $1 AND id <> $2")
        .bind(slug)
        .bind(except.unwrap_or(-1))
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// `base`, or `base-2`, `base-3`… whichever is free.
pub async fn free_slug(db: &Db, base: &str, except: Option<i64>) -> Result<String, SiteError> {
    if !slug_taken(db, base, except).await? {
        return Ok(base.to_owned());
    }
    for n in 2..1000 {
        let candidate = format!("{base}-{n}");
        if !slug_taken(db, &candidate, except).await? {
            return Ok(candidate);
        }
    }
    Err(SiteError::Internal(format!("no free slug for {base}")))
}

/// Tag names with how many published posts carry each, by name.
pub async fn tag_counts(db: &Db) -> Result<Vec<(String, i64)>, SiteError> {
    let rows = sqlx::query(
        "SELECT t.name, COUNT(*) AS n FROM tags t
         JOIN post_tags pt ON pt.tag_id = t.id
         JOIN posts p ON p.id = pt.post_id
         WHERE p.published = 1
         GROUP BY t.name ORDER BY t.name",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("name")?, row.try_get("n")?)))
        .collect()
}

/// What a save did, for the live "new post" event.
#[derive(Debug)]
pub struct Saved {
    /// The post's id.
    pub id: i64,
    /// True when this save made the post visible for the first time.
    pub newly_published: bool,
}

/// Creates (`id` = `None`) or updates a post and its tags in one transaction.
pub async fn save(
    db: &Db,
    id: Option<i64>,
    author_id: i64,
    input: &PostInput,
) -> Result<Saved, SiteError> {
    let body_html = markdown::render(&input.body);
    let excerpt = markdown::excerpt(&input.body, EXCERPT_CHARS);
    let at = now();
    let mut tx = db.pool().begin().await?;
    let (id, newly_published) = match id {
        None => {
            let row = sqlx::query(
                "INSERT INTO posts (slug, title, body, body_html, excerpt, author_id, published,
                                    created_at, updated_at, published_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(&input.slug)
            .bind(&input.title)
            .bind(&input.body)
            .bind(&body_html)
            .bind(&excerpt)
            .bind(author_id)
            .bind(i64::from(input.published))
            .bind(at)
            .bind(at)
            .bind(input.published.then_some(at))
            .fetch_one(&mut *tx)
            .await?;
            (row.try_get::<i64, _>("id")?, input.published)
        }
        Some(id) => {
            let row = sqlx::query("SELECT published_at FROM posts WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(SiteError::NotFound)?;
            let first_published: Option<i64> = row.try_get("published_at")?;
            let published_at = match first_published {
                Some(t) => Some(t),
                None => input.published.then_some(at),
            };
            sqlx::query(
                "UPDATE posts SET slug = $1, title = $2, body = $3, body_html = $4, excerpt = $5,
                        published = $6, updated_at = $7, published_at = $8
                 WHERE id = $9",
            )
            .bind(&input.slug)
            .bind(&input.title)
            .bind(&input.body)
            .bind(&body_html)
            .bind(&excerpt)
            .bind(i64::from(input.published))
            .bind(at)
            .bind(published_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            (id, input.published && first_published.is_none())
        }
    };

    sqlx::query("DELETE FROM post_tags WHERE post_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for name in &input.tags {
        let tag_id = tag_id(&mut tx, name).await?;
        sqlx::query("INSERT INTO post_tags (post_id, tag_id) VALUES ($1, $2)")
            .bind(id)
            .bind(tag_id)
            .execute(&mut *tx)
            .await?;
    }
    prune_tags(&mut tx).await?;
    tx.commit().await?;
    Ok(Saved {
        id,
        newly_published,
    })
}

/// Deletes a post (its tag links go with it, and tags left without posts).
pub async fn delete(db: &Db, id: i64) -> Result<bool, SiteError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM post_tags WHERE post_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM posts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    prune_tags(&mut tx).await?;
    tx.commit().await?;
    Ok(deleted > 0)
}

/// The id of the tag `name`, created when new.
pub(crate) async fn tag_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
) -> Result<i64, SiteError> {
    let existing = sqlx::query("SELECT id FROM tags WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match existing {
        Some(row) => row.try_get("id")?,
        None => sqlx::query("INSERT INTO tags (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?,
    })
}

/// Removes the tags that neither a post nor a quiz uses any more.
pub(crate) async fn prune_tags(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), SiteError> {
    sqlx::query(
        "DELETE FROM tags WHERE id NOT IN (SELECT tag_id FROM post_tags)
                            AND id NOT IN (SELECT tag_id FROM quiz_tags)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many posts exist, drafts included.
pub async fn count(db: &Db) -> Result<i64, SiteError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM posts")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}

#[cfg(test)]
mod tests {
    use super::normalize_tags;

    #[test]
    fn tags_are_normalized() {
        assert_eq!(
            normalize_tags(" Rust, deploy ,, rust,  Getting   Started ").unwrap(),
            vec!["deploy", "getting started", "rust"]
        );
        assert!(normalize_tags(&"x".repeat(41)).is_err());
        assert!(normalize_tags("a,b,c,d,e,f,g,h,i,j,k").is_err());
        assert_eq!(normalize_tags("").unwrap(), Vec::<String>::new());
    }
}
