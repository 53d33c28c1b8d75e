-- A live room's reveal, computed once when the host reveals (how many picked each choice,
-- how many were right, the top of the leaderboard; JSON), instead of by each of a
-- thousand players' pages as they reload.
ALTER TABLE live_rooms ADD COLUMN reveal TEXT;
