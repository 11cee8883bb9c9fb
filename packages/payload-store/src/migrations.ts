/** Versioned migrations of the payload store. Append only; never edit an applied one. */
export const migrations: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE dp_runs (
  run_id uuid PRIMARY KEY,
  workflow_name text NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed', 'failed', 'cancelled')),
  epoch integer NOT NULL DEFAULT 0,
  seed bytea NOT NULL,
  input_key_id text NOT NULL,
  input bytea NOT NULL,
  input_size integer NOT NULL,
  output_key_id text,
  output bytea,
  output_size integer,
  error_ref uuid,
  idempotency_digest text,
  created_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz
);

CREATE TABLE dp_errors (
  error_ref uuid PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  position integer,
  attempt integer,
  key_id text NOT NULL,
  payload bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dp_errors_run ON dp_errors (run_id);

CREATE TABLE dp_signals (
  signal_id uuid PRIMARY KEY,
  seq bigserial NOT NULL,
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  name text NOT NULL,
  key_id text NOT NULL,
  body bytea NOT NULL,
  size integer NOT NULL,
  consumed_position integer,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dp_signals_pending ON dp_signals (run_id, name, seq) WHERE consumed_position IS NULL;

CREATE TABLE dp_journal (
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  position integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('step', 'sleep', 'signal', 'now')),
  name text NOT NULL,
  key_digest text,
  status text NOT NULL CHECK (status IN ('completed', 'failed', 'retrying', 'waiting', 'timed_out')),
  attempt integer NOT NULL DEFAULT 1,
  key_id text,
  payload bytea,
  output_size integer NOT NULL DEFAULT 0,
  error_ref uuid,
  signal_id uuid,
  due_at timestamptz,
  started_at timestamptz NOT NULL,
  ended_at timestamptz,
  epoch integer NOT NULL,
  PRIMARY KEY (run_id, position)
);
`,
  },
  {
    version: 2,
    name: 'model calls',
    sql: `
-- ctx.model calls are journal entries of their own kind.
ALTER TABLE dp_journal DROP CONSTRAINT dp_journal_kind_check;
ALTER TABLE dp_journal ADD CONSTRAINT dp_journal_kind_check CHECK (kind IN ('step', 'sleep', 'signal', 'now', 'model'));

-- The one final transcript of a model call (request, response, usage, attempts), sealed like
-- every other payload and written in the same statement as the call's final journal entry.
CREATE TABLE dp_transcripts (
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  position integer NOT NULL,
  key_id text NOT NULL,
  payload bytea NOT NULL,
  size integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, position)
);
`,
  },
  {
    version: 3,
    name: 'child workflows',
    sql: `
-- ctx.child calls are journal entries of their own kind.
ALTER TABLE dp_journal DROP CONSTRAINT dp_journal_kind_check;
ALTER TABLE dp_journal ADD CONSTRAINT dp_journal_kind_check CHECK (kind IN ('step', 'sleep', 'signal', 'now', 'model', 'child'));
`,
  },
  {
    version: 4,
    name: 'forked runs',
    sql: `
-- A run forked from another one: its input and the source's journal entries before fork_position
-- were copied into it (re-sealed for the new run) when it was first dispatched.
ALTER TABLE dp_runs ADD COLUMN forked_from uuid, ADD COLUMN fork_position integer;
`,
  },
  {
    version: 5,
    name: 'schedule input payloads',
    sql: `
-- Inputs for schedules, stored through the gateway and referenced by the control plane by ID only.
-- A scheduled run's input is created from one when the run is first dispatched.
CREATE TABLE dp_payloads (
  payload_id uuid PRIMARY KEY,
  key_id text NOT NULL,
  payload bytea NOT NULL,
  size integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 6,
    name: 'schema catalogue',
    sql: `
-- The workflow versions whose schemas workers have catalogued, with a digest of their whole schema
-- list: a version with no schema is catalogued too, so a schema added later to the same version
-- is noticed. Versions are immutable; a worker whose code differs is refused at start.
CREATE TABLE dp_workflow_versions (
  workflow_name text NOT NULL,
  workflow_version text NOT NULL,
  schemas_digest text NOT NULL CHECK (schemas_digest ~ '^[0-9a-f]{64}$'),
  catalogued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_name, workflow_version)
);

-- The JSON Schemas a version declares in code: its input, its output and its signals' bodies.
-- Developer-written metadata (not customer data), so kept as plain JSON; the digest is the SHA-256
-- of the schema's RFC 8785 canonical JSON, the only trace of a schema the control plane gets.
CREATE TABLE dp_schemas (
  workflow_name text NOT NULL,
  workflow_version text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('input', 'output', 'signal')),
  -- The signal's name for kind 'signal'; empty otherwise.
  signal_name text NOT NULL DEFAULT '',
  schema jsonb NOT NULL,
  digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (workflow_name, workflow_version, kind, signal_name),
  FOREIGN KEY (workflow_name, workflow_version) REFERENCES dp_workflow_versions (workflow_name, workflow_version) ON DELETE CASCADE,
  CHECK ((kind = 'signal') = (signal_name <> ''))
);
`,
  },
  {
    version: 7,
    name: 'stored stream events',
    sql: `
-- Live model output (text deltas, call ends) of a run, stored as it is published so that a
-- subscriber that reconnects (SSE Last-Event-ID) reads what it missed. seq counts 1, 2, 3, … per
-- run; dp_stream_heads holds the last one given out, and its row lock orders the publishers of a
-- run, so events commit (and are NOTIFYed) in seq order. Kept as long as the run's data: deleted
-- with the run.
CREATE TABLE dp_stream_heads (
  run_id uuid PRIMARY KEY REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  last_seq bigint NOT NULL
);
CREATE TABLE dp_stream_events (
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  seq bigint NOT NULL,
  key_id text NOT NULL,
  payload bytea NOT NULL,
  size integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, seq)
);
`,
  },
  {
    version: 8,
    name: 'key checks',
    sql: `
-- One check per key, recorded by the first process that starts with it: for each encryption key ID,
-- a fixed constant sealed with that key; for the HMAC key (key_id ''), a keyed digest of a fixed
-- constant. Nothing secret. A process whose key does not reproduce the check refuses to start, so a
-- wrong key never seals or digests anything. Processes compare and record under an advisory lock,
-- all their keys in one transaction, so of two racing first starts with different keys one is refused.
CREATE TABLE dp_key_checks (
  purpose text NOT NULL CHECK (purpose IN ('encryption', 'hmac')),
  key_id text NOT NULL,
  check_value bytea NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (purpose, key_id)
);
`,
  },
  {
    version: 10,
    name: 'journal hash chain',
    sql: `
-- Each run's journal is a hash chain (docs/compliance.md, "Run histories"): entry n's hash covers
-- entry n-1's hash and the entry's RFC 8785 canonical content, including the SHA-256 of its
-- recorded value, error, signal body and transcript in plain text (so re-encryption under a new
-- key changes nothing). The chain starts from a hash of the run ID and chain_salt, 32 random bytes
-- that never leave the data plane, so the head the control plane is told cannot be recomputed
-- there from guessed values. chain_entries/chain_head: how far the chain was sealed (final entries
-- only, in position order, without gaps) and its hash there.
ALTER TABLE dp_runs
  ADD COLUMN chain_salt bytea NOT NULL DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
  ADD COLUMN chain_entries integer NOT NULL DEFAULT 0,
  ADD COLUMN chain_head text CHECK (chain_head ~ '^[0-9a-f]{64}$');
ALTER TABLE dp_journal ADD COLUMN chain_hash text CHECK (chain_hash ~ '^[0-9a-f]{64}$');

-- Retention (applyRetention): a transcript deleted by retention leaves its plain-text digest here,
-- so the entry's chain hash still verifies; each retention run leaves a record of counts, never
-- contents or IDs.
ALTER TABLE dp_journal ADD COLUMN transcript_pruned_digest text CHECK (transcript_pruned_digest ~ '^[0-9a-f]{64}$');
CREATE TABLE dp_retention_runs (
  id bigserial PRIMARY KEY,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  runs_ended_before timestamptz,
  transcripts_ended_before timestamptz,
  runs_deleted integer NOT NULL,
  transcripts_deleted integer NOT NULL
);
`,
  },
  {
    version: 11,
    name: 'digest versions and keys',
    sql: `
-- How a run's user-chosen keys (idempotency, step and approval keys) are digested for the control
-- plane: 1 with the HMAC key itself, 2 with a key derived per purpose and workflow. Runs started
-- before this migration, and by processes not yet rolled to a version that knows it, stay at 1 (the
-- default), so their recorded journal keys keep matching on replay; newer code writes 2.
ALTER TABLE dp_runs ADD COLUMN digest_version smallint NOT NULL DEFAULT 1 CHECK (digest_version IN (1, 2));
-- The HMAC key (its ID in CAIRN_DP_HMAC_KEY; '' for the key written without an ID) the run's keys
-- are digested with: a run keeps it through an HMAC key rotation.
ALTER TABLE dp_runs ADD COLUMN hmac_key_id text NOT NULL DEFAULT '';
`,
  },
  {
    version: 12,
    name: 'replay checks',
    sql: `
-- A request to replay a run's journal against another registered version of its workflow, answered
-- by a worker of this data plane that runs that version (NOTIFY cairn_dp_replay_checks wakes them).
-- pending: nobody claimed it yet; running: claimed_by replays it; done: result holds the replay's
-- outcome; failed: result holds why the worker could not replay; expired: no worker running the
-- version claimed it in time. The result is sealed: it names calls and carries error messages.
-- Checks are short-lived (deleted an hour after they are requested) and go with their run.
CREATE TABLE dp_replay_checks (
  check_id uuid PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES dp_runs (run_id) ON DELETE CASCADE,
  workflow_name text NOT NULL,
  workflow_version text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'expired')),
  requested_at timestamptz NOT NULL DEFAULT now(),
  claimed_by text,
  claimed_at timestamptz,
  finished_at timestamptz,
  key_id text,
  result bytea,
  CHECK ((key_id IS NULL) = (result IS NULL))
);
CREATE INDEX dp_replay_checks_pending ON dp_replay_checks (workflow_name, workflow_version, requested_at) WHERE status = 'pending';
CREATE INDEX dp_replay_checks_requested ON dp_replay_checks (requested_at);
`,
  },
  {
    version: 13,
    name: 'unstarted runs',
    sql: `
-- The gateway's orphan sweep (orphanRunCandidates) looks for open runs no worker took past the
-- first lease's epoch, oldest first; this keeps it off the runs that ended or moved on.
CREATE INDEX dp_runs_unstarted ON dp_runs (created_at, run_id) WHERE status = 'open' AND epoch = 1;
`,
  },
  {
    version: 14,
    name: 'signal notices owed',
    sql: `
-- Whether the control plane has been told of the signal (SignalRun answered). The gateway stores a
-- signal with false and sets it once SignalRun answers; a signal whose SignalRun failed without a
-- definite answer, or whose gateway died before asking, stays false and the gateway's signal sweep
-- tells the control plane later. Rows stored before this migration, copied by a fork, or stored by
-- a gateway that predates it default to true: nothing is owed for them.
ALTER TABLE dp_signals ADD COLUMN notified boolean NOT NULL DEFAULT true;
CREATE INDEX dp_signals_unnotified ON dp_signals (received_at, signal_id) WHERE NOT notified;
`,
  },
];
