-- The service documentation uploaded with a dispute's evidence: the provider's file id (Stripe's
-- `file_…`), kept beside the evidence text it was sent with.

ALTER TABLE disputes ADD COLUMN evidence_file_id TEXT;
