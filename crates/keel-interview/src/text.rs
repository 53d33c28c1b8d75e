//! Normalising English answers for the rubric: words with their byte spans, a light
//! suffix-stripping stemmer, function words, negators, clause boundaries and a bounded
//! edit distance. Everything the rubric compares goes through here, bank words and reader
//! words alike, so that both sides are normalised by the same rules.
//!
//! Design choices, and why:
//! - **Lowercase, punctuation splits words, apostrophes join them**: `X-Forwarded-For` is
//!   three words `x forwarded for` and `limit_req` is `limit req`, but `doesn't` is one word
//!   `doesnt`, so negators stay recognisable (and `nginx's` stems to `nginx`).
//! - **A small suffix stripper instead of Porter or Snowball**: it only has to make
//!   `workers`/`worker`, `queued`/`queue`/`queuing`, `buffering`/`buffer` and
//!   `proxies`/`proxy` meet, and it must never change with a dependency upgrade, because a
//!   stored session is re-graded exactly ([`crate::Session::regrade`]). It over-stems a few
//!   words (`speeds` → `speed`, `rate` → `rat`); that is harmless because bank words are
//!   stemmed by the same function.
//! - **Typo tolerance on stems**: one edit when both stems have 5–7 letters, two when both
//!   have 8 or more, none for shorter stems or anything with a digit (`429` must not match
//!   `428`). The first letter must agree: typos there are rare, and the rule keeps
//!   `token`/`taken`-style accidents down to a handful. Tolerance still finds real words
//!   one letter apart (`stuck`/`stock`), so bank authors avoid such matcher words; the
//!   off-topic paragraphs in `tests/score.rs` catch them.

/// One word of a text, as the rubric sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Lowercased, apostrophes removed.
    pub word: String,
    /// [`stem`] of `word`.
    pub stem: String,
    /// Byte span in the original text, for evidence.
    pub start: usize,
    /// End of the byte span (exclusive).
    pub end: usize,
    /// The clause the word is in: punctuation that ends a clause (`.,;:!?` and line
    /// breaks) starts a new one. Negation does not reach across clauses.
    pub clause: u32,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

fn ends_clause(c: char) -> bool {
    matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '\n' | '(' | ')')
}

/// Splits `text` into words: runs of alphanumeric characters, lowercased, with apostrophes
/// inside a word dropped.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut clause = 0u32;
    let mut word = String::new();
    let mut start = 0usize;
    let mut end = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() {
            if word.is_empty() {
                start = i;
            }
            word.extend(c.to_lowercase());
            end = i + c.len_utf8();
            continue;
        }
        // An apostrophe between two letters joins them (`doesn't` → `doesnt`).
        if is_apostrophe(c) && !word.is_empty() {
            if let Some(&(_, next)) = chars.peek() {
                if next.is_alphanumeric() {
                    continue;
                }
            }
        }
        if !word.is_empty() {
            tokens.push(Token {
                stem: stem(&word),
                word: std::mem::take(&mut word),
                start,
                end,
                clause,
            });
        }
        if ends_clause(c) {
            clause = clause.saturating_add(1);
        }
    }
    if !word.is_empty() {
        tokens.push(Token {
            stem: stem(&word),
            word,
            start,
            end,
            clause,
        });
    }
    tokens
}

/// The words of `text`, stemmed: how bank words (matchers, the vocabulary of a question)
/// are normalised.
pub(crate) fn stems(text: &str) -> Vec<String> {
    tokenize(text).into_iter().map(|t| t.stem).collect()
}

/// A light English suffix stripper (see the module doc for why not Porter). Words with a
/// digit or a non-ASCII letter, and words of three letters or fewer, are left alone.
pub(crate) fn stem(word: &str) -> String {
    if word.len() <= 3 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_owned();
    }
    let mut s = word.to_owned();
    // Plurals and third person: one rule, longest suffix first.
    if s.ends_with("ies") && s.len() > 4 {
        s.truncate(s.len() - 3);
        s.push('y');
    } else if s.ends_with("sses")
        || s.ends_with("ches")
        || s.ends_with("shes")
        || s.ends_with("xes")
        || s.ends_with("zes")
    {
        s.truncate(s.len() - 2);
    } else if s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s.truncate(s.len() - 1);
    }
    // Then -ing, -ed, -ly (after a plural: `settings` → `setting` → `set`).
    if s.ends_with("ing") && s.len() >= 6 {
        s.truncate(s.len() - 3);
        undouble(&mut s);
    } else if s.ends_with("ied") && s.len() > 4 {
        s.truncate(s.len() - 3);
        s.push('y');
    } else if s.ends_with("ed") && !s.ends_with("eed") && s.len() >= 5 {
        s.truncate(s.len() - 2);
        undouble(&mut s);
    } else if s.ends_with("ly") && s.len() >= 6 {
        s.truncate(s.len() - 2);
    }
    // A final e goes, so `queue`, `queued` and `queues` meet at `queu`.
    if s.ends_with('e') && s.len() > 3 {
        s.truncate(s.len() - 1);
    }
    s
}

/// `dropp` → `drop`, `runn` → `run`, but `stall` and `pass` keep their double letter.
fn undouble(s: &mut String) {
    let b = s.as_bytes();
    let n = b.len();
    if n >= 3 && b[n - 1] == b[n - 2] && !matches!(b[n - 1], b'l' | b's' | b'z' | b'e' | b'o') {
        s.truncate(n - 1);
    }
}

/// English function words: articles, pronouns, auxiliaries, prepositions, conjunctions.
/// They carry sentence structure, not topic, so they count for the stuffing test and
/// against nothing else. Kept sorted for `binary_search`.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "although", "am", "an", "and", "any", "are",
    "arent", "as", "at", "be", "because", "been", "before", "being", "both", "but", "by", "can",
    "cannot", "cant", "could", "couldnt", "did", "didnt", "do", "does", "doesnt", "doing", "done",
    "dont", "down", "each", "either", "else", "every", "few", "for", "from", "had", "has", "hasnt",
    "have", "havent", "having", "he", "her", "here", "hers", "him", "his", "how", "however", "i",
    "if", "im", "in", "into", "is", "isnt", "it", "its", "itself", "ive", "just", "less", "may",
    "me", "might", "more", "most", "much", "must", "my", "neither", "never", "no", "nor", "not",
    "of", "off", "on", "once", "one", "only", "onto", "or", "other", "our", "out", "over", "own",
    "per", "same", "shall", "she", "should", "shouldnt", "since", "so", "some", "such", "than",
    "that", "thats", "the", "their", "them", "then", "there", "theres", "these", "they", "theyre",
    "this", "those", "though", "through", "thus", "to", "too", "under", "unless", "until", "up",
    "upon", "us", "very", "via", "was", "wasnt", "we", "were", "werent", "what", "when", "where",
    "whereas", "whether", "which", "while", "who", "whom", "whose", "why", "will", "with",
    "within", "without", "wont", "would", "wouldnt", "yet", "you", "your", "youre",
];

/// Whether `word` (lowercased, apostrophes removed) is a function word.
pub(crate) fn is_function_word(word: &str) -> bool {
    FUNCTION_WORDS.binary_search(&word).is_ok()
}

/// Content words too common to tell one subject of the blog from another: everyday verbs
/// and nouns, and the web-stack words every track uses (`request`, `server`, `thread`,
/// `timeout`...). The off-topic test ignores them, so that an answer about live events is
/// not taken as on topic for a rate-limiting question because both say "server" and
/// "client". Fixed here rather than derived from the banks, so that grading depends only on
/// the question being graded.
const GENERIC_WORDS: &[&str] = &[
    "actually",
    "add",
    "again",
    "already",
    "answer",
    "anyone",
    "api",
    "app",
    "application",
    "arrive",
    "async",
    "back",
    "balancer",
    "browser",
    "busy",
    "byte",
    "call",
    "client",
    "close",
    "closed",
    "code",
    "compare",
    "connection",
    "control",
    "cost",
    "count",
    "cpu",
    "data",
    "default",
    "django",
    "down",
    "error",
    "even",
    "event",
    "everything",
    "exactly",
    "example",
    "fail",
    "fast",
    "first",
    "fit",
    "fix",
    "free",
    "full",
    "get",
    "go",
    "gone",
    "good",
    "great",
    "gunicorn",
    "hand",
    "happen",
    "header",
    "help",
    "hold",
    "http",
    "idea",
    "keep",
    "know",
    "last",
    "latency",
    "left",
    "let",
    "like",
    "limit",
    "little",
    "load",
    "long",
    "look",
    "loop",
    "machine",
    "make",
    "many",
    "mean",
    "memory",
    "minute",
    "moment",
    "need",
    "network",
    "new",
    "nginx",
    "nobody",
    "notice",
    "now",
    "number",
    "often",
    "old",
    "open",
    "page",
    "part",
    "pass",
    "past",
    "point",
    "proxy",
    "python",
    "queue",
    "rate",
    "really",
    "request",
    "response",
    "retry",
    "right",
    "run",
    "say",
    "second",
    "see",
    "send",
    "separate",
    "server",
    "set",
    "several",
    "slow",
    "small",
    "socket",
    "something",
    "start",
    "still",
    "stop",
    "sync",
    "take",
    "tell",
    "thing",
    "think",
    "thread",
    "time",
    "timeout",
    "two",
    "use",
    "user",
    "view",
    "wait",
    "watch",
    "way",
    "web",
    "whole",
    "work",
    "worker",
    "write",
    "wrong",
    "year",
];

/// Whether a stem is one of [`GENERIC_WORDS`] (compared stem to stem).
pub(crate) fn is_generic(stem_of_word: &str) -> bool {
    static STEMS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    STEMS
        .get_or_init(|| GENERIC_WORDS.iter().map(|w| stem(w)).collect())
        .contains(stem_of_word)
}

/// Words that negate what follows them in the same clause (`not`, `doesnt`, `instead of`).
const NEGATORS: &[&str] = &[
    "arent", "cannot", "cant", "couldnt", "didnt", "doesnt", "dont", "hardly", "hasnt", "havent",
    "instead", "isnt", "neither", "never", "no", "none", "nor", "not", "nothing", "rather",
    "shouldnt", "unlike", "wasnt", "werent", "without", "wont", "wouldnt",
];

/// Whether `word` negates what follows it.
pub(crate) fn is_negator(word: &str) -> bool {
    NEGATORS.binary_search(&word).is_ok()
}

/// Words that turn a clause around (`not X but Y`): negation stops at them.
fn is_contrast(word: &str) -> bool {
    matches!(
        word,
        "but" | "however" | "although" | "though" | "whereas" | "yet" | "while"
    )
}

/// How far back a negator reaches: `does not actually store` is negated, a `not` five words
/// earlier is about something else.
pub(crate) const NEGATION_REACH: usize = 3;

/// Whether the word at `at` is negated: a negator among the [`NEGATION_REACH`] words before
/// it, in the same clause, with no contrast word in between. Words in `skip` (the other
/// words of the same match, such as the `never` of the phrase `never lose`) do not count.
pub(crate) fn negated(tokens: &[Token], at: usize, skip: &[usize]) -> bool {
    let Some(here) = tokens.get(at) else {
        return false;
    };
    let from = at.saturating_sub(NEGATION_REACH);
    for i in (from..at).rev() {
        let Some(t) = tokens.get(i) else { break };
        if t.clause != here.clause || is_contrast(&t.word) {
            return false;
        }
        if is_negator(&t.word) && !skip.contains(&i) {
            return true;
        }
    }
    false
}

/// How many edits a bank stem tolerates: none under 5 letters or with a non-letter, one
/// for 5–7 letters, two from 8.
pub(crate) fn tolerance(stem: &str) -> usize {
    if !stem.bytes().all(|b| b.is_ascii_lowercase()) {
        return 0;
    }
    match stem.len() {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    }
}

/// Whether `a` and `b` are within `k` edits (Levenshtein), computed with early exit: the
/// answer side is untrusted, so the work is bounded by `k` and the word lengths. Words are
/// compared as bytes; only ASCII words ever get here (see [`tolerance`]).
pub(crate) fn within(a: &str, b: &str, k: usize) -> bool {
    const MAX: usize = 64;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > k {
        return false;
    }
    if k == 0 || a.len() > MAX || b.len() > MAX {
        return a == b;
    }
    // Two rows on the stack: this runs for many word pairs per answer.
    let mut prev = [0usize; MAX + 1];
    let mut cur = [0usize; MAX + 1];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j;
    }
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > k {
            return false;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()] <= k
}

/// Whether an answer stem `word` matches a bank stem `pattern`: equal, or within the
/// [`tolerance`] of the shorter of the two, with the same first letter. The shorter one
/// decides so that a 5-letter bank word does not swallow every 4-letter word one edit
/// away (`reset` and `rest`).
pub(crate) fn stem_matches(pattern: &str, word: &str) -> bool {
    if pattern == word {
        return true;
    }
    // Cheapest tests first: this runs for every bank word against every answer word.
    if pattern.as_bytes().first() != word.as_bytes().first()
        || pattern.len().abs_diff(word.len()) > 2
    {
        return false;
    }
    let k = tolerance(pattern).min(tolerance(word));
    k > 0 && within(pattern, word, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        assert!(FUNCTION_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(NEGATORS.windows(2).all(|w| w[0] < w[1]));
        assert!(GENERIC_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_generic(&stem("requests")) && is_generic(&stem("threads")));
    }

    #[test]
    fn tokenize_splits_punctuation_and_joins_apostrophes() {
        let t = tokenize("nginx's limit_req doesn't X-Forwarded-For; 429.");
        let words: Vec<&str> = t.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(
            words,
            [
                "nginxs",
                "limit",
                "req",
                "doesnt",
                "x",
                "forwarded",
                "for",
                "429"
            ]
        );
        assert_eq!(t[0].stem, "nginx");
        assert_eq!(&"nginx's limit_req"[t[1].start..t[1].end], "limit");
        assert_eq!(t[6].clause, 0);
        assert_eq!(t[7].clause, 1);
    }

    #[test]
    fn stems_meet() {
        for group in [
            &["worker", "workers"][..],
            &["queue", "queued", "queues", "queuing"],
            &["buffer", "buffering", "buffered", "buffers"],
            &["proxy", "proxies"],
            &["drop", "dropped", "dropping", "drops"],
            &["cache", "caches", "cached", "caching"],
            &["persist", "persisted", "persists", "persisting"],
            &["retry", "retries", "retried"],
            &["setting", "settings"],
            &["stall", "stalled", "stalls"],
            &["exceed", "exceeds", "exceeded"],
            &["process", "processes", "processed", "processing"],
        ] {
            let s: Vec<String> = group.iter().map(|w| stem(w)).collect();
            assert!(s.windows(2).all(|w| w[0] == w[1]), "{group:?} → {s:?}");
        }
        assert_eq!(stem("redis"), "redis");
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("429"), "429");
        assert_eq!(stem("http2"), "http2");
    }

    #[test]
    fn edit_distance_is_bounded() {
        assert!(within("persist", "presist", 2));
        assert!(!within("persist", "presist", 1));
        assert!(within("connection", "conection", 1));
        assert!(!within("abc", "abcdef", 2));
        assert!(stem_matches("gunicorn", "gunicron"));
        assert!(stem_matches("bucket", "buket"));
        assert!(!stem_matches("bucket", "pocket"), "first letter differs");
        assert!(!stem_matches("429", "428"));
        assert!(!stem_matches("rat", "cat"));
        assert!(!stem_matches("reset", "rest"), "the shorter word decides");
    }

    #[test]
    fn negation_stays_in_its_clause() {
        let t = tokenize("It does not actually store messages, it drops them");
        let store = t.iter().position(|t| t.word == "store").unwrap();
        let drops = t.iter().position(|t| t.word == "drops").unwrap();
        assert!(negated(&t, store, &[]));
        assert!(!negated(&t, drops, &[]));
        let t = tokenize("not a leaky bucket but a token bucket");
        let token = t.iter().position(|t| t.word == "token").unwrap();
        assert!(!negated(&t, token, &[]));
    }
}
