-- The AI Interviewer: sessions (the interview's state machine as keel_interview JSON, and
-- its transcript), staff-edited interview banks, and the per-day count of answers that
-- used a model (the budget is per reader, or per address for guests).

CREATE TABLE interview_sessions (
    id {{id}},
    -- a signed-in reader's session, or a guest's: SHA-256 of the guest cookie's token
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    guest_key TEXT,
    track TEXT NOT NULL,
    -- keel_interview::Session as JSON
    state TEXT NOT NULL,
    -- [{"who": "interviewer" | "reader", "text": "…", "model": bool}], JSON
    transcript TEXT NOT NULL,
    -- hundredths of a point out of 100, once the interview is over
    score BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX interview_sessions_user ON interview_sessions (user_id, created_at);
CREATE INDEX interview_sessions_guest ON interview_sessions (guest_key, created_at);
CREATE INDEX interview_sessions_track ON interview_sessions (track);

-- A bank staff edited replaces the shipped one of the same track.
CREATE TABLE interview_banks (
    track TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE interview_usage (
    -- "user:ID" or "addr:IP"
    subject TEXT NOT NULL,
    -- Unix day number
    day BIGINT NOT NULL,
    turns BIGINT NOT NULL,
    PRIMARY KEY (subject, day)
);
