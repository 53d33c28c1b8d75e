//! A micro-cache of what the public pages read from the database: a listing page (posts,
//! their tags and the tag counts) and a published post, each kept for a short time.
//!
//! On SQLite most of a page's cost is handing queries and rows to sqlx's database thread
//! and back, not the queries themselves; a page served from here makes none. Writes made
//! through this process (the admin) empty the cache at once, so an editor never sees a
//! stale page. Writes made by another `keel serve` on the same database show here within
//! the time-to-live (one second by default), like nginx's `proxy_cache_valid 1s`
//! micro-caching. Only what is found is kept: a missing post is looked up every time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::posts::{Listing, Post};

/// Entries kept per kind before the map is emptied and refilled.
const MAX_ENTRIES: usize = 1024;

/// A listing page: its tag filter and page number.
type HomeKey = (Option<String>, i64);

/// What the home page needs.
#[derive(Debug)]
pub(crate) struct Home {
    pub(crate) listing: Listing,
    pub(crate) tags: Vec<(String, i64)>,
}

/// The cache; `ttl` zero turns it off.
#[derive(Debug)]
pub(crate) struct PageCache {
    ttl: Duration,
    generation: AtomicU64,
    homes: Mutex<HashMap<HomeKey, Entry<Home>>>,
    posts: Mutex<HashMap<String, Entry<Post>>>,
}

#[derive(Debug)]
struct Entry<V> {
    at: Instant,
    value: Arc<V>,
}

/// The cache's generation when a read began; a write in between makes its result unfit
/// to keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl PageCache {
    pub(crate) fn new(ttl: Duration) -> PageCache {
        PageCache {
            ttl,
            generation: AtomicU64::new(0),
            homes: Mutex::new(HashMap::new()),
            posts: Mutex::new(HashMap::new()),
        }
    }

    /// Taken before reading the database for a page.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Forgets everything: called after every write to posts or tags.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.homes).clear();
        lock(&self.posts).clear();
    }

    pub(crate) fn home(&self, tag: Option<&str>, page: i64) -> Option<Arc<Home>> {
        get(&self.homes, &(tag.map(str::to_owned), page), self.ttl)
    }

    pub(crate) fn keep_home(
        &self,
        ticket: Ticket,
        tag: Option<&str>,
        page: i64,
        home: Home,
    ) -> Arc<Home> {
        self.keep(&self.homes, ticket, (tag.map(str::to_owned), page), home)
    }

    pub(crate) fn post(&self, slug: &str) -> Option<Arc<Post>> {
        get(&self.posts, slug, self.ttl)
    }

    pub(crate) fn keep_post(&self, ticket: Ticket, post: Post) -> Arc<Post> {
        let slug = post.slug.clone();
        self.keep(&self.posts, ticket, slug, post)
    }

    fn keep<K: Eq + Hash, V>(
        &self,
        map: &Mutex<HashMap<K, Entry<V>>>,
        ticket: Ticket,
        key: K,
        value: V,
    ) -> Arc<V> {
        let value = Arc::new(value);
        if self.ttl.is_zero() {
            return value;
        }
        let mut map = lock(map);
        // Checked under the lock that `invalidate` also takes: a read that overlapped a
        // write is not kept.
        if self.generation.load(Ordering::Acquire) == ticket.0 {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(
                key,
                Entry {
                    at: Instant::now(),
                    value: value.clone(),
                },
            );
        }
        value
    }
}

fn get<K, Q, V>(map: &Mutex<HashMap<K, Entry<V>>>, key: &Q, ttl: Duration) -> Option<Arc<V>>
where
    K: Eq + Hash + std::borrow::Borrow<Q>,
    Q: Eq + Hash + ?Sized,
{
    let map = lock(map);
    let entry = map.get(key)?;
    (entry.at.elapsed() < ttl).then(|| entry.value.clone())
}

/// A poisoned lock only means another request panicked mid-insert; the map is still a map.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(slug: &str) -> Post {
        Post {
            id: 1,
            slug: slug.into(),
            title: "t".into(),
            body: String::new(),
            body_html: String::new(),
            excerpt: String::new(),
            author: None,
            published: true,
            created_at: 0,
            updated_at: 0,
            published_at: Some(0),
            tags: Vec::new(),
        }
    }

    #[test]
    fn kept_until_the_ttl_or_a_write() {
        let cache = PageCache::new(Duration::from_millis(200));
        let t = cache.ticket();
        cache.keep_post(t, post("a"));
        assert!(cache.post("a").is_some());
        cache.invalidate();
        assert!(cache.post("a").is_none());

        let t = cache.ticket();
        cache.keep_post(t, post("a"));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.post("a").is_none(), "kept past its ttl");
    }

    #[test]
    fn a_read_that_overlapped_a_write_is_not_kept() {
        let cache = PageCache::new(Duration::from_secs(60));
        let before_write = cache.ticket();
        cache.invalidate();
        cache.keep_post(before_write, post("a"));
        assert!(cache.post("a").is_none());
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let cache = PageCache::new(Duration::ZERO);
        let t = cache.ticket();
        cache.keep_post(t, post("a"));
        assert!(cache.post("a").is_none());
    }
}
