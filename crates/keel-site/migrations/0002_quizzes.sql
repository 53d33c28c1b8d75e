-- Quizzes: the question bank, attempts and answers. Same rules as 0001: `{{id}}` is the
-- backend's auto-numbered key, times are Unix seconds, flags are BIGINT 0/1, and numbers
-- that are fractions are stored as integers (scores in hundredths of a percent, answer
-- credit in millionths), because sqlx's Any driver has no portable decimal type.

CREATE TABLE quizzes (
    id {{id}},
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    -- Markdown, and its sanitized HTML rendered at save time
    description TEXT NOT NULL DEFAULT '',
    description_html TEXT NOT NULL DEFAULT '',
    published BIGINT NOT NULL DEFAULT 0,
    -- seconds; 0 = no limit
    time_limit BIGINT NOT NULL DEFAULT 0,
    -- percent needed to pass
    pass_mark BIGINT NOT NULL DEFAULT 50,
    -- attempts per reader; 0 = unlimited
    attempt_limit BIGINT NOT NULL DEFAULT 0,
    -- keel_quiz::GradingMethod and ReviewPolicy, as their text
    grading TEXT NOT NULL DEFAULT 'highest',
    review TEXT NOT NULL DEFAULT 'immediately',
    -- questions drawn per attempt; 0 = all of them
    draw_count BIGINT NOT NULL DEFAULT 0,
    -- draw only from this category (and its subcategories)
    draw_category TEXT,
    shuffle BIGINT NOT NULL DEFAULT 1,
    opens_at BIGINT,
    closes_at BIGINT,
    -- overall feedback by score band: JSON [{"min": 80, "text": "…"}], highest min first
    feedback_bands TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX quizzes_listing ON quizzes (published, title);

CREATE TABLE quiz_tags (
    quiz_id BIGINT NOT NULL REFERENCES quizzes (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (quiz_id, tag_id)
);
CREATE INDEX quiz_tags_tag ON quiz_tags (tag_id);

CREATE TABLE quiz_questions (
    id {{id}},
    quiz_id BIGINT NOT NULL REFERENCES quizzes (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    -- keel_quiz::Question as JSON: the answer key lives here and is never sent to a reader
    data TEXT NOT NULL,
    category TEXT,
    -- 1 for a graded question, 0 for a description block
    graded BIGINT NOT NULL DEFAULT 1,
    -- the post that teaches it, linked from the review
    post_slug TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX quiz_questions_quiz ON quiz_questions (quiz_id, position);

CREATE TABLE quiz_attempts (
    id {{id}},
    quiz_id BIGINT NOT NULL REFERENCES quizzes (id) ON DELETE CASCADE,
    -- a signed-in reader's attempt, or a guest's: SHA-256 of the guest cookie's token
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    guest_key TEXT,
    -- the seed of the draw and of every shuffle: a reload shows the same attempt
    seed BIGINT NOT NULL,
    -- the drawn question ids in presentation order, JSON
    question_ids TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    -- past it the attempt is graded with what was saved; NULL = no time limit
    deadline BIGINT,
    finished_at BIGINT,
    -- hundredths of a percent, set when finished
    score BIGINT
);
CREATE INDEX quiz_attempts_user ON quiz_attempts (user_id, quiz_id);
CREATE INDEX quiz_attempts_guest ON quiz_attempts (guest_key, quiz_id);
CREATE INDEX quiz_attempts_quiz ON quiz_attempts (quiz_id, finished_at);

CREATE TABLE quiz_answers (
    attempt_id BIGINT NOT NULL REFERENCES quiz_attempts (id) ON DELETE CASCADE,
    question_id BIGINT NOT NULL REFERENCES quiz_questions (id) ON DELETE CASCADE,
    -- keel_quiz::Response as JSON
    response TEXT NOT NULL,
    -- millionths of full credit, set when the attempt is graded
    credit BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (attempt_id, question_id)
);
