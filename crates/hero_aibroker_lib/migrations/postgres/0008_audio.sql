-- Speech endpoints (issue 22): what a request used, beside its tokens: seconds of audio
-- transcribed or translated, characters of text spoken. NULL on every other request.
ALTER TABLE request_logs ADD COLUMN audio_seconds DOUBLE PRECISION;
ALTER TABLE request_logs ADD COLUMN characters BIGINT;
