/** One versioned schema change. Applied in order, once, inside a transaction. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * The control plane's schema, as an ordered list of migrations. Never edit a released migration:
 * add a new one. Everything here is metadata: identifiers, names, statuses, counts and times.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE data_planes (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  token_sha256 text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

-- Workflow versions announced by this data plane's workers (self-registration on Hello).
CREATE TABLE workflow_versions (
  data_plane_id uuid NOT NULL REFERENCES data_planes (id),
  name text NOT NULL,
  version text NOT NULL,
  task_queue text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (data_plane_id, name, version)
);

CREATE TABLE runs (
  id uuid PRIMARY KEY,
  data_plane_id uuid NOT NULL REFERENCES data_planes (id),
  workflow_name text NOT NULL,
  workflow_version text NOT NULL,
  task_queue text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'suspended', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out')),
  -- Grows by one on every claim; the data plane fences journal writes with it.
  epoch integer NOT NULL DEFAULT 0,
  lease_session uuid,
  lease_worker uuid,
  lease_expires_at timestamptz,
  wake_at timestamptz,
  -- Why the run was last queued; becomes the RunTask reason.
  wake_reason text CHECK (wake_reason IN ('start', 'timer', 'signal', 'retry', 'recovery')),
  waiting_signal text,
  signals_consumed integer NOT NULL DEFAULT 0,
  suspend_reason text CHECK (suspend_reason IN ('sleep', 'signal', 'retry_backoff')),
  idempotency_digest text,
  error_code integer,
  error_ref uuid,
  input_size bigint NOT NULL DEFAULT 0,
  output_size bigint,
  dispatch_count integer NOT NULL DEFAULT 0,
  cancel_requested boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  queued_at timestamptz,
  started_at timestamptz,
  ended_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX runs_idempotency ON runs (data_plane_id, workflow_name, idempotency_digest) WHERE idempotency_digest IS NOT NULL;
-- The claim: queued runs of one data plane, oldest first.
CREATE INDEX runs_claim ON runs (data_plane_id, queued_at) WHERE status = 'queued';
-- The sweeps: expired leases and due timers.
CREATE INDEX runs_lease_expiry ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_wake ON runs (wake_at) WHERE status = 'suspended';
-- Listing, newest first, with keyset pagination.
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_status_created ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_workflow_created ON runs (workflow_name, created_at DESC, id DESC);

CREATE TABLE run_steps (
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  position bigint NOT NULL,
  attempt bigint NOT NULL,
  kind text NOT NULL CHECK (kind IN ('step', 'sleep', 'signal')),
  name text NOT NULL,
  key_digest text,
  status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'retrying', 'waiting')),
  error_code integer,
  retryable boolean NOT NULL DEFAULT false,
  error_ref uuid,
  started_at timestamptz,
  ended_at timestamptz,
  due_at timestamptz,
  output_size bigint,
  -- The lease epoch the attempt ran under.
  epoch bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, position, attempt)
);

-- One row per signal the gateway recorded; the body stays in the data plane.
CREATE TABLE signal_notices (
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  signal_id uuid NOT NULL,
  signal_name text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, signal_id)
);
CREATE INDEX signal_notices_name ON signal_notices (run_id, signal_name);

-- The lease history: one row per (run, epoch), ended with the reason the lease ended.
CREATE TABLE run_leases (
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  epoch integer NOT NULL,
  session_id uuid NOT NULL,
  worker_id uuid NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  reattached_at timestamptz,
  ended_at timestamptz,
  end_reason text CHECK (end_reason IN ('suspended', 'completed', 'failed', 'cancelled', 'released', 'expired')),
  PRIMARY KEY (run_id, epoch)
);
`,
  },
  {
    version: 2,
    name: 'model calls on the step timeline',
    sql: `
-- ctx.model calls: the provider and model names and the token counts of each attempt. Names are
-- checked against the contract's patterns before they are stored; prompts and outputs never come here.
ALTER TABLE run_steps DROP CONSTRAINT run_steps_kind_check;
ALTER TABLE run_steps ADD CONSTRAINT run_steps_kind_check CHECK (kind IN ('step', 'sleep', 'signal', 'model'));
ALTER TABLE run_steps
  ADD COLUMN input_tokens bigint,
  ADD COLUMN output_tokens bigint,
  ADD COLUMN provider text,
  ADD COLUMN model text;
`,
  },
  {
    version: 3,
    name: 'dispatch for cancellation',
    sql: `
-- A suspended run whose cancellation is requested is dispatched once more, with the wake reason
-- 'cancel', so its worker can run the compensations it registered before reporting it cancelled.
ALTER TABLE runs DROP CONSTRAINT runs_wake_reason_check;
ALTER TABLE runs ADD CONSTRAINT runs_wake_reason_check CHECK (wake_reason IN ('start', 'timer', 'signal', 'retry', 'recovery', 'cancel'));
`,
  },
  {
    version: 4,
    name: 'child workflows',
    sql: `
-- A child workflow run remembers its parent; a parent suspended until a child ends names it.
ALTER TABLE runs ADD COLUMN parent_run_id uuid, ADD COLUMN waiting_child uuid;
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
ALTER TABLE runs DROP CONSTRAINT runs_wake_reason_check;
ALTER TABLE runs ADD CONSTRAINT runs_wake_reason_check
  CHECK (wake_reason IN ('start', 'timer', 'signal', 'retry', 'recovery', 'cancel', 'child'));
ALTER TABLE runs DROP CONSTRAINT runs_suspend_reason_check;
ALTER TABLE runs ADD CONSTRAINT runs_suspend_reason_check CHECK (suspend_reason IN ('sleep', 'signal', 'retry_backoff', 'child'));
ALTER TABLE run_steps DROP CONSTRAINT run_steps_kind_check;
ALTER TABLE run_steps ADD CONSTRAINT run_steps_kind_check CHECK (kind IN ('step', 'sleep', 'signal', 'model', 'child'));
`,
  },
];
