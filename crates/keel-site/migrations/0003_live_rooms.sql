-- Live quiz rooms (Kahoot's game, on the site's quizzes): a room with a PIN, its players
-- and their answers. The state lives here, so every `keel serve` sharing the database
-- sees the same room; the events that move it along go over the live-event hub (Redis
-- across several processes). Times in milliseconds where answers are timed.

CREATE TABLE live_rooms (
    id {{id}},
    -- six digits, unique among rooms (finished rooms keep theirs until deleted)
    pin TEXT NOT NULL UNIQUE,
    quiz_id BIGINT NOT NULL REFERENCES quizzes (id) ON DELETE CASCADE,
    host_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- the drawn question ids in order, JSON, and the seed of their choice order
    question_ids TEXT NOT NULL,
    seed BIGINT NOT NULL,
    -- -1 in the lobby, then the index of the question on screen
    current BIGINT NOT NULL DEFAULT -1,
    -- lobby, question, reveal or finished
    phase TEXT NOT NULL DEFAULT 'lobby',
    -- Unix milliseconds when the current question appeared
    question_started_ms BIGINT,
    limit_ms BIGINT NOT NULL,
    streak_bonus BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE live_players (
    id {{id}},
    room_id BIGINT NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    nickname TEXT NOT NULL,
    -- lowercased: "Ann" and "ann" cannot both play
    nickname_key TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- SHA-256 of the player's cookie token
    token_hash TEXT NOT NULL UNIQUE,
    score BIGINT NOT NULL DEFAULT 0,
    streak BIGINT NOT NULL DEFAULT 0,
    joined_at BIGINT NOT NULL,
    UNIQUE (room_id, nickname_key)
);

CREATE TABLE live_answers (
    room_id BIGINT NOT NULL REFERENCES live_rooms (id) ON DELETE CASCADE,
    player_id BIGINT NOT NULL REFERENCES live_players (id) ON DELETE CASCADE,
    question_index BIGINT NOT NULL,
    -- keel_quiz::Response as JSON
    response TEXT NOT NULL,
    correct BIGINT NOT NULL,
    points BIGINT NOT NULL,
    elapsed_ms BIGINT NOT NULL,
    -- one answer per player and question: a second one is refused by the key
    PRIMARY KEY (player_id, question_index)
);
CREATE INDEX live_answers_room ON live_answers (room_id, question_index);
