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
  {
    version: 5,
    name: 'organisations, projects, API keys',
    sql: `
-- Tenants. A project is an environment (prod, staging); data planes, runs and everything
-- defined later belong to one project.
CREATE TABLE organizations (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL REFERENCES organizations (id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, name)
);

-- API keys: shown once, stored as the SHA-256 of the secret. project_id NULL is an
-- organisation-wide key (it acts in every project of its organisation).
CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  organization_id uuid NOT NULL REFERENCES organizations (id),
  project_id uuid REFERENCES projects (id),
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'developer', 'operator', 'viewer', 'auditor')),
  prefix text NOT NULL,
  secret_sha256 text NOT NULL UNIQUE,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz
);
CREATE INDEX api_keys_project ON api_keys (organization_id, project_id, created_at DESC);

-- Data planes belong to a project. Data planes registered before projects existed move to a
-- 'default' organisation and project.
ALTER TABLE data_planes ADD COLUMN project_id uuid REFERENCES projects (id);
DO $$
DECLARE org uuid; proj uuid;
BEGIN
  IF EXISTS (SELECT 1 FROM data_planes) THEN
    INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'default')
      ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id INTO org;
    INSERT INTO projects (id, organization_id, name) VALUES (gen_random_uuid(), org, 'default')
      ON CONFLICT (organization_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id INTO proj;
    UPDATE data_planes SET project_id = proj;
  END IF;
END $$;
ALTER TABLE data_planes ALTER COLUMN project_id SET NOT NULL;
CREATE INDEX data_planes_project ON data_planes (project_id, created_at DESC);

-- Runs carry their project, so every project-scoped query filters on one column.
ALTER TABLE runs ADD COLUMN project_id uuid;
UPDATE runs SET project_id = d.project_id FROM data_planes d WHERE d.id = runs.data_plane_id;
ALTER TABLE runs ALTER COLUMN project_id SET NOT NULL;
CREATE INDEX runs_project_created ON runs (project_id, created_at DESC, id DESC);
`,
  },
  {
    version: 6,
    name: 'workflow registry and flow control',
    sql: `
-- Registered workflow versions of a project (immutable once registered; deprecation only stops
-- new runs). Schemas, retry policy, timeouts and declared schedules are developer-written metadata.
CREATE TABLE workflow_definitions (
  project_id uuid NOT NULL REFERENCES projects (id),
  name text NOT NULL,
  version text NOT NULL,
  task_queue text NOT NULL,
  input_schema jsonb,
  output_schema jsonb,
  -- {maxAttempts, initialIntervalMs, maxIntervalMs, backoffCoefficient}, or null for the SDK's defaults.
  retry_policy jsonb,
  run_timeout_ms bigint,
  step_timeout_ms bigint,
  -- Declared schedules: [{cron, timezone}], read by the schedule feature.
  schedules jsonb NOT NULL DEFAULT '[]',
  -- 'api' (registered through the API) or 'worker' (announced by a worker in development mode).
  source text NOT NULL CHECK (source IN ('api', 'worker')),
  registered_by uuid,
  registered_at timestamptz NOT NULL DEFAULT now(),
  deprecated_at timestamptz,
  deprecated_by uuid,
  PRIMARY KEY (project_id, name, version)
);

-- Flow control per workflow name in a project. A row exists only while a limit is set, so the
-- dispatch claim can tell limited workflows from the others with one index probe.
CREATE TABLE workflow_flow_control (
  project_id uuid NOT NULL REFERENCES projects (id),
  name text NOT NULL,
  concurrency_limit integer CHECK (concurrency_limit > 0),
  concurrency_per_key boolean NOT NULL DEFAULT false,
  rate_limit integer CHECK (rate_limit > 0),
  rate_period_ms integer CHECK (rate_period_ms > 0),
  rate_per_key boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name),
  CHECK (concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL),
  CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL))
);

-- First dispatches of runs of rate-limited workflows, for the sliding window; pruned by the claim.
CREATE TABLE flow_starts (
  project_id uuid NOT NULL,
  workflow_name text NOT NULL,
  key_digest text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flow_starts_window ON flow_starts (project_id, workflow_name, started_at);

-- Runs carry a priority (higher first) and the HMAC of their concurrency key.
ALTER TABLE runs ADD COLUMN priority smallint NOT NULL DEFAULT 50, ADD COLUMN concurrency_key_digest text;
DROP INDEX runs_claim;
CREATE INDEX runs_claim ON runs (data_plane_id, priority DESC, queued_at) WHERE status = 'queued';
-- Running runs per (project, workflow, key): what a concurrency limit counts.
CREATE INDEX runs_flow_running ON runs (project_id, workflow_name, concurrency_key_digest) WHERE status = 'running';
`,
  },
  {
    version: 7,
    name: 'schedules',
    sql: `
-- Schedules: a cron expression in an IANA time zone that fires runs of one workflow in one data
-- plane of the project. The input is a payload stored in that data plane, referenced here by its
-- opaque ID only; the control plane never sees it.
CREATE TABLE schedules (
  id uuid PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES projects (id),
  data_plane_id uuid NOT NULL REFERENCES data_planes (id),
  name text,
  workflow_name text NOT NULL,
  -- Null: the newest version announced by a worker of the data plane when the tick fires.
  workflow_version text,
  cron text NOT NULL,
  time_zone text NOT NULL,
  overlap_policy text NOT NULL CHECK (overlap_policy IN ('skip', 'buffer_one', 'allow_all', 'cancel_previous')),
  catch_up_window_ms bigint NOT NULL CHECK (catch_up_window_ms >= 0),
  input_payload_id uuid,
  paused boolean NOT NULL DEFAULT false,
  -- The earliest tick not handled yet; null when the expression has no later tick.
  next_tick_at timestamptz,
  -- buffer_one: the firing that waits for the schedule's open run to end.
  buffered_firing_id uuid,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);
CREATE INDEX schedules_project ON schedules (project_id, created_at DESC, id DESC);
CREATE INDEX schedules_due ON schedules (next_tick_at) WHERE NOT paused;
CREATE INDEX schedules_buffered ON schedules (id) WHERE buffered_firing_id IS NOT NULL;

-- One row per handled tick, trigger-now or backfilled tick. The unique (schedule, tick) index,
-- written in the same transaction that creates the run, is what makes a tick fire exactly once
-- however many replicas tick; trigger-now firings are not ticks and may share a time.
CREATE TABLE schedule_firings (
  id uuid PRIMARY KEY,
  schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
  tick_at timestamptz NOT NULL,
  kind text NOT NULL CHECK (kind IN ('tick', 'trigger', 'backfill')),
  outcome text NOT NULL CHECK (outcome IN ('started', 'skipped', 'buffered', 'workflow_not_found', 'quota_exceeded')),
  run_id uuid,
  cancelled_runs integer NOT NULL DEFAULT 0,
  fired_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX schedule_firings_tick ON schedule_firings (schedule_id, tick_at) WHERE kind <> 'trigger';
CREATE INDEX schedule_firings_recent ON schedule_firings (schedule_id, fired_at DESC, tick_at DESC);

-- A run fired by a schedule remembers the schedule, the tick and the input payload reference the
-- worker creates its input from (re-sent on every dispatch).
ALTER TABLE runs ADD COLUMN schedule_id uuid, ADD COLUMN schedule_tick_at timestamptz, ADD COLUMN input_payload_id uuid;
CREATE INDEX runs_schedule_open ON runs (schedule_id) WHERE schedule_id IS NOT NULL AND status IN ('queued', 'running', 'suspended');
`,
  },
  {
    version: 8,
    name: 'run management: terminate, fork lineage, list filters',
    sql: `
-- A forked run remembers its source run and the journal position it was forked at; the data plane
-- copied the source's entries before that position.
ALTER TABLE runs ADD COLUMN forked_from_run_id uuid, ADD COLUMN fork_position integer;
CREATE INDEX runs_forked_from ON runs (forked_from_run_id) WHERE forked_from_run_id IS NOT NULL;

-- A terminated run's lease ends with its own reason.
ALTER TABLE run_leases DROP CONSTRAINT run_leases_end_reason_check;
ALTER TABLE run_leases ADD CONSTRAINT run_leases_end_reason_check
  CHECK (end_reason IN ('suspended', 'completed', 'failed', 'cancelled', 'released', 'expired', 'terminated'));

-- Listing filters within a project, newest first with keyset pagination. The indexes of the first
-- migration were not scoped to a project, which every listing is now.
DROP INDEX IF EXISTS runs_status_created;
DROP INDEX IF EXISTS runs_workflow_created;
CREATE INDEX runs_project_status_created ON runs (project_id, status, created_at DESC, id DESC);
CREATE INDEX runs_project_workflow_created ON runs (project_id, workflow_name, created_at DESC, id DESC);
CREATE INDEX runs_project_version_created ON runs (project_id, workflow_name, workflow_version, created_at DESC, id DESC);
CREATE INDEX runs_project_parent_created ON runs (project_id, parent_run_id, created_at DESC, id DESC) WHERE parent_run_id IS NOT NULL;
-- runs.schedule_id comes from migration 7, applied before this one.
CREATE INDEX runs_project_schedule_created ON runs (project_id, schedule_id, created_at DESC, id DESC) WHERE schedule_id IS NOT NULL;
`,
  },
  {
    version: 9,
    name: 'metering and quotas',
    sql: `
-- Usage per project per UTC day. Each (project, day) is split into slots chosen by the writing
-- connection (pg_backend_pid() % 8), so step-report batches committing at once on many connections
-- do not queue on one counter row; readers sum the slots.
CREATE TABLE usage_daily (
  project_id uuid NOT NULL REFERENCES projects (id),
  day date NOT NULL,
  slot smallint NOT NULL,
  runs_started bigint NOT NULL DEFAULT 0,
  steps_executed bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, day, slot)
);

-- Model tokens per project, UTC day, provider and model (names as the data plane reported them).
CREATE TABLE usage_tokens_daily (
  project_id uuid NOT NULL REFERENCES projects (id),
  day date NOT NULL,
  provider text NOT NULL,
  model text NOT NULL,
  slot smallint NOT NULL,
  calls bigint NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, day, provider, model, slot)
);

-- Runs started: every insert into runs (StartRun, StartChild, schedule firings, forks), counted
-- once per statement in the inserting transaction.
CREATE FUNCTION cairn_meter_runs_started() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO usage_daily AS u (project_id, day, slot, runs_started)
  SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, count(*)
  FROM started_runs GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (project_id, day, slot) DO UPDATE SET runs_started = u.runs_started + EXCLUDED.runs_started;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER runs_meter_started AFTER INSERT ON runs REFERENCING NEW TABLE AS started_runs
  FOR EACH STATEMENT EXECUTE FUNCTION cairn_meter_runs_started();

-- Steps executed and model tokens: an attempt of a step or model call is counted when it first
-- reaches a final status (completed, failed, or retrying: the attempt ended and another follows).
-- The transition tables hold the rows as they were before and after the statement under the row
-- lock, so a resent report (the same final status again) is never counted twice, even when two
-- resends race. One counter upsert per statement (a step-report batch), on the CP's UTC day.
CREATE FUNCTION cairn_meter_steps(ended_steps run_steps[]) RETURNS void LANGUAGE sql AS $fn$
  WITH ended AS (
    SELECT r.project_id, s.kind, s.provider, s.model, s.input_tokens, s.output_tokens
    FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id
  ), steps AS (
    INSERT INTO usage_daily AS u (project_id, day, slot, steps_executed)
    SELECT project_id, (now() AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, count(*) FROM ended GROUP BY 1 ORDER BY 1
    ON CONFLICT (project_id, day, slot) DO UPDATE SET steps_executed = u.steps_executed + EXCLUDED.steps_executed
  )
  INSERT INTO usage_tokens_daily AS t (project_id, day, provider, model, slot, calls, input_tokens, output_tokens)
  SELECT project_id, (now() AT TIME ZONE 'UTC')::date, coalesce(provider, 'unknown'), coalesce(model, 'unknown'), pg_backend_pid() % 8,
         count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0)
  FROM ended WHERE kind = 'model' GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
  ON CONFLICT (project_id, day, provider, model, slot) DO UPDATE SET
    calls = t.calls + EXCLUDED.calls, input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens;
$fn$;

CREATE FUNCTION cairn_meter_steps_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE ended run_steps[];
BEGIN
  SELECT array_agg(n) INTO ended FROM new_steps n
  WHERE n.kind IN ('step', 'model') AND n.status IN ('completed', 'failed', 'retrying');
  IF ended IS NOT NULL THEN PERFORM cairn_meter_steps(ended); END IF;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION cairn_meter_steps_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE ended run_steps[];
BEGIN
  SELECT array_agg(n) INTO ended FROM new_steps n JOIN old_steps o USING (run_id, position, attempt)
  WHERE n.kind IN ('step', 'model') AND n.status IN ('completed', 'failed', 'retrying')
    AND o.status NOT IN ('completed', 'failed', 'retrying');
  IF ended IS NOT NULL THEN PERFORM cairn_meter_steps(ended); END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER run_steps_meter_inserted AFTER INSERT ON run_steps REFERENCING NEW TABLE AS new_steps
  FOR EACH STATEMENT EXECUTE FUNCTION cairn_meter_steps_inserted();
CREATE TRIGGER run_steps_meter_updated AFTER UPDATE ON run_steps REFERENCING OLD TABLE AS old_steps NEW TABLE AS new_steps
  FOR EACH STATEMENT EXECUTE FUNCTION cairn_meter_steps_updated();

-- Quotas per project; a null column is no limit, no row is no quota at all.
CREATE TABLE project_quotas (
  project_id uuid PRIMARY KEY REFERENCES projects (id),
  max_concurrent_runs integer CHECK (max_concurrent_runs >= 0),
  max_steps_per_month bigint CHECK (max_steps_per_month >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by uuid
);
-- What the concurrent-run quota counts: the project's runs that have not ended.
CREATE INDEX runs_project_open ON runs (project_id) WHERE status IN ('queued', 'running', 'suspended');
`,
  },
  {
    version: 10,
    name: 'audit log',
    sql: `
-- The audit log: administrative actions and run lifecycle transitions, metadata only. Rows are
-- inserted unsealed (position and hash null) by whatever transaction makes the change, so no
-- writer waits on another; the sealer (one replica at a time) then gives each project's new rows
-- consecutive positions and chains their hashes: hash = sha256(previous hash || canonical row).
CREATE TABLE audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  organization_id uuid NOT NULL,
  project_id uuid NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type text NOT NULL CHECK (actor_type IN ('api_key', 'data_plane', 'system')),
  actor_id uuid,
  action text NOT NULL,
  target_type text NOT NULL,
  target_id text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  position bigint,
  hash text,
  CHECK ((position IS NULL) = (hash IS NULL)),
  CHECK ((actor_type = 'system') = (actor_id IS NULL))
);
CREATE UNIQUE INDEX audit_log_chain ON audit_log (project_id, position) WHERE position IS NOT NULL;
CREATE INDEX audit_log_unsealed ON audit_log (project_id, occurred_at, id) WHERE position IS NULL;
CREATE INDEX audit_log_time ON audit_log (project_id, occurred_at DESC, id DESC);
CREATE INDEX audit_log_target ON audit_log (project_id, target_id, occurred_at DESC, id DESC);

-- The last sealed position and hash of each project's chain (a verification also checks that the
-- chain still reaches it, so deleting the newest entries is detected).
CREATE TABLE audit_chain_heads (
  project_id uuid PRIMARY KEY,
  position bigint NOT NULL,
  hash text NOT NULL,
  sealed_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: the only change allowed is sealing an unsealed row; deletes are refused.
CREATE FUNCTION cairn_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.position IS NULL AND NEW.position IS NOT NULL
     AND (NEW.id, NEW.organization_id, NEW.project_id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.action,
          NEW.target_type, NEW.target_id, NEW.metadata)
         IS NOT DISTINCT FROM (OLD.id, OLD.organization_id, OLD.project_id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.action,
          OLD.target_type, OLD.target_id, OLD.metadata) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only: entries cannot be changed or deleted' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION cairn_audit_append_only();

-- Run lifecycle transitions, from every code path, in the transaction that makes them. The actor
-- is the one the transaction named (set_config('cairn.audit_actor', 'api_key:<id>', true)), else
-- the run's data plane for what its gateway or workers reported, else the control plane itself.
CREATE FUNCTION cairn_audit_run_transition() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  named text := nullif(current_setting('cairn.audit_actor', true), '');
  from_status text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END;
  a_type text;
  a_id uuid;
BEGIN
  IF named IS NOT NULL THEN
    a_type := split_part(named, ':', 1);
    a_id := nullif(split_part(named, ':', 2), '')::uuid;
  ELSIF TG_OP = 'INSERT' OR NEW.status IN ('running', 'suspended', 'completed', 'failed')
        OR (NEW.status = 'cancelled' AND from_status = 'running')
        OR (NEW.status = 'queued' AND NEW.wake_reason = 'signal') THEN
    a_type := 'data_plane';
    a_id := NEW.data_plane_id;
  ELSE
    a_type := 'system';
  END IF;
  INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata)
  SELECT p.organization_id, NEW.project_id, a_type, a_id, 'run.' || NEW.status, 'run', NEW.id::text,
         jsonb_strip_nulls(jsonb_build_object(
           'from', from_status,
           'status', NEW.status,
           'epoch', NEW.epoch,
           'workflow', NEW.workflow_name,
           'version', NEW.workflow_version,
           'dataPlaneId', NEW.data_plane_id,
           'workerId', CASE WHEN NEW.status = 'running' THEN NEW.lease_worker END,
           'wakeReason', CASE WHEN NEW.status = 'queued' THEN NEW.wake_reason END,
           'suspendReason', CASE WHEN NEW.status = 'suspended' THEN NEW.suspend_reason END,
           'errorCode', NEW.error_code,
           'parentRunId', CASE WHEN TG_OP = 'INSERT' THEN NEW.parent_run_id END))
  FROM projects p WHERE p.id = NEW.project_id;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER runs_audit_inserted AFTER INSERT ON runs FOR EACH ROW EXECUTE FUNCTION cairn_audit_run_transition();
CREATE TRIGGER runs_audit_status AFTER UPDATE OF status ON runs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION cairn_audit_run_transition();
`,
  },
  {
    version: 11,
    name: 'run timeouts: deadlines from the workflow registry',
    sql: `
-- When a run times out: its creation plus the run timeout registered for its workflow version.
-- Set by a trigger, so every way a run is created (StartRun, StartChild, schedule firings, forks,
-- and any added later) records it; versions are immutable, so the deadline never changes.
ALTER TABLE runs ADD COLUMN deadline_at timestamptz;

CREATE FUNCTION cairn_run_deadline() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.deadline_at IS NULL THEN
    SELECT NEW.created_at + d.run_timeout_ms * interval '1 millisecond' INTO NEW.deadline_at
    FROM workflow_definitions d
    WHERE d.project_id = NEW.project_id AND d.name = NEW.workflow_name AND d.version = NEW.workflow_version
      AND d.run_timeout_ms IS NOT NULL;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER runs_deadline BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION cairn_run_deadline();

-- What the sweeper scans: runs that have not ended and have a deadline, earliest first.
CREATE INDEX runs_deadline_open ON runs (deadline_at)
  WHERE deadline_at IS NOT NULL AND status IN ('queued', 'running', 'suspended');

-- A lease taken from its worker because the run timed out ends with its own reason.
ALTER TABLE run_leases DROP CONSTRAINT run_leases_end_reason_check;
ALTER TABLE run_leases ADD CONSTRAINT run_leases_end_reason_check
  CHECK (end_reason IN ('suspended', 'completed', 'failed', 'cancelled', 'released', 'expired', 'terminated', 'timed_out'));
`,
  },
  {
    version: 12,
    name: 'workflow registry: schema digests only, one retry-policy shape',
    sql: `
-- Schemas stay in the data plane (its schema catalogue); the registry keeps at most the SHA-256 of
-- a schema's RFC 8785 canonical JSON. Schema text registered before is dropped, not converted: a
-- digest computed here would be of text the control plane must not hold.
ALTER TABLE workflow_definitions
  DROP COLUMN input_schema,
  DROP COLUMN output_schema,
  ADD COLUMN input_schema_digest text CHECK (input_schema_digest ~ '^[0-9a-f]{64}$'),
  ADD COLUMN output_schema_digest text CHECK (output_schema_digest ~ '^[0-9a-f]{64}$');

-- Registered retry policies take the SDK's shape: {maximumAttempts, initialInterval,
-- backoffCoefficient, maximumInterval}, durations in milliseconds, every default filled in.
UPDATE workflow_definitions
   SET retry_policy = jsonb_build_object(
         'maximumAttempts', retry_policy -> 'maxAttempts',
         'initialInterval', retry_policy -> 'initialIntervalMs',
         'backoffCoefficient', retry_policy -> 'backoffCoefficient',
         'maximumInterval', retry_policy -> 'maxIntervalMs')
 WHERE retry_policy ? 'maxAttempts';
`,
  },
  {
    version: 13,
    name: 'tenancy: who made an organisation or key; credential changes reach every replica',
    sql: `
-- How an organisation came to be: the self-hosted bootstrap (CAIRN_BOOTSTRAP_ADMIN_KEY, or
-- \`data-planes create\` on a fresh install), the operator's \`organizations create\` (a tenant), or
-- before this migration ('legacy'). The bootstrap mints keys only into organisations it made.
ALTER TABLE organizations ADD COLUMN origin text NOT NULL DEFAULT 'legacy'
  CHECK (origin IN ('bootstrap', 'operator', 'legacy'));
ALTER TABLE organizations ALTER COLUMN origin DROP DEFAULT;

-- How a key was minted: through the API by another key, by the bootstrap, by an operator command
-- (\`organizations create\`, \`api-keys create\`), or before this migration.
ALTER TABLE api_keys ADD COLUMN minted_by text NOT NULL DEFAULT 'legacy'
  CHECK (minted_by IN ('api', 'bootstrap', 'command', 'legacy'));
ALTER TABLE api_keys ALTER COLUMN minted_by DROP DEFAULT;
CREATE INDEX api_keys_bootstrap ON api_keys (organization_id) WHERE minted_by = 'bootstrap' AND revoked_at IS NULL;

-- A rotated or revoked credential, however it was changed (REST, the command line, SQL), tells
-- every replica at commit, so each ends the streams and long polls still using the old secret.
-- The payload is the data plane's ID only.
CREATE FUNCTION cairn_data_plane_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cairn_data_plane_revoked', NEW.id::text);
  RETURN NULL;
END $$;
CREATE TRIGGER data_planes_credential_changed
  AFTER UPDATE OF token_sha256, revoked_at ON data_planes
  FOR EACH ROW
  WHEN (OLD.token_sha256 IS DISTINCT FROM NEW.token_sha256 OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
  EXECUTE FUNCTION cairn_data_plane_credential_changed();
`,
  },
  {
    version: 14,
    name: 'audit log: signed checkpoints, sealing through one function, a boundary the service role cannot cross',
    sql: `
-- The control plane may run with a service role that is not the schema's owner (the owner runs
-- the migrations; \`control-plane migrate\` grants the service role with CAIRN_CP_SERVICE_ROLE).
-- That role can only SELECT the audit tables, INSERT entries (not their position, hash or time)
-- and checkpoints, and seal through cairn_audit_seal() below: it cannot UPDATE, DELETE or TRUNCATE
-- them, and not being the owner it cannot disable their triggers.

-- Entries arrive unsealed and timed by the database; a sealed row is never changed or deleted;
-- the table is never truncated. (Someone who bypasses this — the owner disabling the triggers,
-- a superuser — is caught by the chain against a signed checkpoint kept elsewhere.)
CREATE OR REPLACE FUNCTION cairn_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.position IS NOT NULL OR NEW.hash IS NOT NULL THEN
      RAISE EXCEPTION 'audit entries are inserted unsealed: only cairn_audit_seal() gives them a position and a hash' USING ERRCODE = '42501';
    END IF;
    NEW.occurred_at := clock_timestamp();
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.position IS NULL AND NEW.position IS NOT NULL
     AND (NEW.id, NEW.organization_id, NEW.project_id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.action,
          NEW.target_type, NEW.target_id, NEW.metadata)
         IS NOT DISTINCT FROM (OLD.id, OLD.organization_id, OLD.project_id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.action,
          OLD.target_type, OLD.target_id, OLD.metadata) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only: entries cannot be changed or deleted' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_log_inserted BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION cairn_audit_append_only();

CREATE FUNCTION cairn_audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '% is append-only: it cannot be truncated', TG_TABLE_NAME USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_no_truncate();

-- A chain head only moves forward.
CREATE FUNCTION cairn_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.project_id = OLD.project_id AND NEW.position > OLD.position THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'an audit chain head only moves forward: it cannot be moved back or deleted' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_chain_heads_forward BEFORE UPDATE OR DELETE ON audit_chain_heads FOR EACH ROW EXECUTE FUNCTION cairn_audit_head_forward();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_no_truncate();

-- Checkpoints: a project's chain head (position, hash, entry count) signed with the control plane's
-- Ed25519 key at signed_at. The signature covers the RFC 8785 JSON of these columns (docs/audit.md).
-- Kept here so that any signed checkpoint can be fetched later; customers keep their own copies,
-- which is what makes deleting them here pointless.
CREATE TABLE audit_checkpoints (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  organization_id uuid NOT NULL,
  project_id uuid NOT NULL,
  position bigint NOT NULL CHECK (position >= 0),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  entries bigint NOT NULL CHECK (entries >= 0),
  signed_at timestamptz NOT NULL,
  key_id text NOT NULL,
  signature text NOT NULL
);
CREATE INDEX audit_checkpoints_project ON audit_checkpoints (project_id, id DESC);

CREATE FUNCTION cairn_audit_checkpoint_kept() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit checkpoints cannot be changed or deleted' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_checkpoints_kept BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION cairn_audit_checkpoint_kept();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_no_truncate();

-- Sealing: gives unsealed entries of one project the next positions and their hashes (computed by
-- the sealer) and moves the head, checking that the positions continue the chain. It runs with
-- the owner's rights, so the service role needs no UPDATE on the audit tables at all.
CREATE FUNCTION cairn_audit_seal(p_project uuid, p_ids bigint[], p_positions bigint[], p_hashes text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
  n integer := coalesce(array_length(p_ids, 1), 0);
  last_position bigint;
  sealed integer;
BEGIN
  IF n = 0 THEN
    RETURN;
  END IF;
  IF coalesce(array_length(p_positions, 1), 0) <> n OR coalesce(array_length(p_hashes, 1), 0) <> n THEN
    RAISE EXCEPTION 'cairn_audit_seal: ids, positions and hashes must have the same length' USING ERRCODE = '22023';
  END IF;
  SELECT h.position INTO last_position FROM audit_chain_heads h WHERE h.project_id = p_project FOR UPDATE;
  last_position := coalesce(last_position, 0);
  IF EXISTS (SELECT 1 FROM unnest(p_positions) WITH ORDINALITY AS p(position, i) WHERE p.position IS DISTINCT FROM last_position + p.i) THEN
    RAISE EXCEPTION 'cairn_audit_seal: positions must continue the chain from position %', last_position + 1 USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(p_hashes) AS h(hash) WHERE h.hash IS NULL OR h.hash !~ '^[0-9a-f]{64}$') THEN
    RAISE EXCEPTION 'cairn_audit_seal: every hash must be 64 lowercase hex digits' USING ERRCODE = '22023';
  END IF;
  UPDATE audit_log a SET position = s.position, hash = s.hash
    FROM unnest(p_ids, p_positions, p_hashes) AS s(id, position, hash)
   WHERE a.id = s.id AND a.project_id = p_project AND a.position IS NULL;
  GET DIAGNOSTICS sealed = ROW_COUNT;
  IF sealed <> n THEN
    RAISE EXCEPTION 'cairn_audit_seal: % of % entries are not unsealed entries of the project', n - sealed, n USING ERRCODE = '22023';
  END IF;
  INSERT INTO audit_chain_heads (project_id, position, hash) VALUES (p_project, p_positions[n], p_hashes[n])
  ON CONFLICT (project_id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash, sealed_at = now();
END
$fn$;
REVOKE ALL ON FUNCTION cairn_audit_seal(uuid, bigint[], bigint[], text[]) FROM PUBLIC;

-- Functions that write the audit tables resolve names in this schema only, never in pg_temp: a
-- temporary table named audit_log cannot divert their writes.
DO $do$
DECLARE
  fn text;
BEGIN
  FOREACH fn IN ARRAY ARRAY['cairn_audit_append_only()', 'cairn_audit_run_transition()', 'cairn_audit_no_truncate()',
                            'cairn_audit_head_forward()', 'cairn_audit_checkpoint_kept()', 'cairn_audit_seal(uuid, bigint[], bigint[], text[])']
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, current_schema());
  END LOOP;
END
$do$;
`,
  },
  {
    version: 15,
    name: 'residency: signal notices and waits matched by a keyed digest of the signal name',
    sql: `
-- A signal whose name an HTTP caller chose and code did not declare reaches the control plane only
-- as an HMAC digest of its name (keyed in the data plane, per run); the worker reports the same
-- digest when the run suspends on the signal, so the notice still wakes it.
ALTER TABLE signal_notices ALTER COLUMN signal_name DROP NOT NULL;
ALTER TABLE signal_notices ADD COLUMN signal_digest text CHECK (signal_digest ~ '^[0-9a-f]{64}$');
ALTER TABLE signal_notices ADD CONSTRAINT signal_notices_named CHECK (signal_name IS NOT NULL OR signal_digest IS NOT NULL);
CREATE INDEX signal_notices_digest ON signal_notices (run_id, signal_digest) WHERE signal_digest IS NOT NULL;
ALTER TABLE runs ADD COLUMN waiting_signal_digest text CHECK (waiting_signal_digest ~ '^[0-9a-f]{64}$');
`,
  },
  {
    version: 16,
    name: 'operator-set limits per organisation; sweeps by data plane',
    sql: `
-- What one organisation's credentials may use of a shared control plane, set by the operator
-- (\`control-plane limits set\`); NULL: the replica's configured default. No REST route writes it,
-- so a tenant's own API key can never raise its limits. Numbers only.
CREATE TABLE organization_limits (
  organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
  max_slots_per_stream integer CHECK (max_slots_per_stream > 0),
  max_streams_per_data_plane integer CHECK (max_streams_per_data_plane > 0),
  max_waits_per_data_plane integer CHECK (max_waits_per_data_plane > 0),
  requests_per_second_per_key integer CHECK (requests_per_second_per_key > 0),
  requests_per_second_per_data_plane integer CHECK (requests_per_second_per_data_plane > 0),
  requests_per_second integer CHECK (requests_per_second > 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The sweep takes a share of due timers (and of expired leases) per data plane (earliest first within each), so one
-- tenant's backlog cannot fill every batch.
CREATE INDEX runs_wake_by_data_plane ON runs (data_plane_id, wake_at) WHERE status = 'suspended';
-- The same for expired leases.
CREATE INDEX runs_lease_expiry_by_data_plane ON runs (data_plane_id, lease_expires_at) WHERE status = 'running';
`,
  },
  {
    version: 17,
    name: 'run journal heads',
    sql: `
-- The newest head of each run's journal hash chain that a worker reported: how many entries the
-- chain covers and its hash there (a digest over the data plane's journal, which stays there).
-- \`cairn runs verify\` recomputes the chain in the data plane and compares it with this row, so an
-- edit on either side shows. A head only moves forward (more entries).
CREATE TABLE run_journal_heads (
  run_id uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
  entries integer NOT NULL CHECK (entries > 0),
  head text NOT NULL CHECK (head ~ '^[0-9a-f]{64}$'),
  epoch integer NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 19,
    name: 'audit log retention: prunes up to a signed checkpoint, anchored',
    sql: `
-- Retention for the audit log (\`control-plane audit prune\`, run as the owner). A prune deletes a
-- project's oldest entries only up to and including a signed checkpoint, and first records that
-- checkpoint here as the chain's anchor: the remaining chain starts from a signed point (its
-- position and hash), so a verifier starts there instead of at the genesis, and a kept checkpoint
-- older than the anchor is reported as pruned under policy. Anchors are never changed or deleted.
-- An anchor holds the whole signed checkpoint (its row in audit_checkpoints is only referenced by
-- ID), so it verifies on its own.
CREATE TABLE audit_prune_anchors (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  organization_id uuid NOT NULL,
  project_id uuid NOT NULL,
  checkpoint_id bigint NOT NULL,
  position bigint NOT NULL CHECK (position > 0),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  entries bigint NOT NULL CHECK (entries > 0),
  signed_at timestamptz NOT NULL,
  key_id text NOT NULL,
  signature text NOT NULL,
  pruned bigint NOT NULL CHECK (pruned >= 0),
  pruned_before timestamptz NOT NULL,
  pruned_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX audit_prune_anchors_project ON audit_prune_anchors (project_id, position);

CREATE FUNCTION cairn_audit_anchor_kept() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit prune anchors cannot be changed or deleted' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_prune_anchors_kept BEFORE UPDATE OR DELETE ON audit_prune_anchors FOR EACH ROW EXECUTE FUNCTION cairn_audit_anchor_kept();
CREATE TRIGGER audit_prune_anchors_no_truncate BEFORE TRUNCATE ON audit_prune_anchors FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_no_truncate();

-- The append-only rule, with one exception: while cairn_audit_prune() runs, a sealed entry at or
-- before the project's newest anchor may be deleted. Any other DELETE is still refused, also the
-- owner's while the triggers are on.
CREATE OR REPLACE FUNCTION cairn_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.position IS NOT NULL OR NEW.hash IS NOT NULL THEN
      RAISE EXCEPTION 'audit entries are inserted unsealed: only cairn_audit_seal() gives them a position and a hash' USING ERRCODE = '42501';
    END IF;
    NEW.occurred_at := clock_timestamp();
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.position IS NULL AND NEW.position IS NOT NULL
     AND (NEW.id, NEW.organization_id, NEW.project_id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.action,
          NEW.target_type, NEW.target_id, NEW.metadata)
         IS NOT DISTINCT FROM (OLD.id, OLD.organization_id, OLD.project_id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.action,
          OLD.target_type, OLD.target_id, OLD.metadata) THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' AND OLD.position IS NOT NULL
     AND current_setting('cairn.audit_pruning', true) = OLD.project_id::text
     AND EXISTS (SELECT 1 FROM audit_prune_anchors a WHERE a.project_id = OLD.project_id AND a.position >= OLD.position) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only: entries cannot be changed or deleted (only pruned up to a signed checkpoint by control-plane audit prune)' USING ERRCODE = '42501';
END
$fn$;

-- Prunes one project's chain up to and including the signed checkpoint p_checkpoint, whose
-- entries must all be older than p_before: records the anchor, then deletes. The caller
-- (\`control-plane audit prune\`) has checked the checkpoint's signature and walked the chain up to
-- it; this function checks what the database can: the checkpoint is past the last anchor, the
-- entry at its position carries its hash, every entry it removes is older than p_before. It runs
-- with the owner's rights and is not granted to anyone: the service role cannot call it.
CREATE FUNCTION cairn_audit_prune(p_checkpoint bigint, p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
  cp audit_checkpoints%ROWTYPE;
  last_anchor bigint;
  boundary_hash text;
  doomed bigint;
  deleted bigint;
BEGIN
  SELECT * INTO cp FROM audit_checkpoints c WHERE c.id = p_checkpoint;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'cairn_audit_prune: there is no checkpoint %', p_checkpoint USING ERRCODE = '22023';
  END IF;
  -- Sealing takes the same row lock: no entry is sealed while the cut is made.
  PERFORM 1 FROM audit_chain_heads h WHERE h.project_id = cp.project_id FOR UPDATE;
  SELECT max(a.position) INTO last_anchor FROM audit_prune_anchors a WHERE a.project_id = cp.project_id;
  IF cp.position <= coalesce(last_anchor, 0) THEN
    RAISE EXCEPTION 'cairn_audit_prune: the chain is already pruned up to position %, the checkpoint at position % is not past it', coalesce(last_anchor, 0), cp.position USING ERRCODE = '22023';
  END IF;
  SELECT l.hash INTO boundary_hash FROM audit_log l WHERE l.project_id = cp.project_id AND l.position = cp.position;
  IF boundary_hash IS DISTINCT FROM cp.hash THEN
    RAISE EXCEPTION 'cairn_audit_prune: the entry at position % does not carry the checkpoint''s hash: it is not a checkpoint of this chain', cp.position USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_log l WHERE l.project_id = cp.project_id AND l.position <= cp.position AND l.occurred_at >= p_before) THEN
    RAISE EXCEPTION 'cairn_audit_prune: entries up to position % are not all older than %', cp.position, p_before USING ERRCODE = '22023';
  END IF;
  SELECT count(*) INTO doomed FROM audit_log l WHERE l.project_id = cp.project_id AND l.position <= cp.position;
  INSERT INTO audit_prune_anchors (organization_id, project_id, checkpoint_id, position, hash, entries, signed_at, key_id, signature,
                                   pruned, pruned_before)
  VALUES (cp.organization_id, cp.project_id, cp.id, cp.position, cp.hash, cp.entries, cp.signed_at, cp.key_id, cp.signature,
          doomed, p_before);
  PERFORM set_config('cairn.audit_pruning', cp.project_id::text, true);
  DELETE FROM audit_log l WHERE l.project_id = cp.project_id AND l.position <= cp.position;
  GET DIAGNOSTICS deleted = ROW_COUNT;
  PERFORM set_config('cairn.audit_pruning', '', true);
  RETURN deleted;
END
$fn$;
REVOKE ALL ON FUNCTION cairn_audit_prune(bigint, timestamptz) FROM PUBLIC;

DO $do$
DECLARE
  fn text;
BEGIN
  FOREACH fn IN ARRAY ARRAY['cairn_audit_append_only()', 'cairn_audit_anchor_kept()', 'cairn_audit_prune(bigint, timestamptz)']
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, current_schema());
  END LOOP;
END
$do$;
`,
  },
  {
    version: 20,
    name: 'runs waiting for an approval',
    sql: `
-- The console's approvals inbox lists a project's runs suspended on a ctx.approval (a signal named
-- approval.<name>, with a key digest suffix when keyed), newest first: a small partial index, so
-- the inbox reads only those runs however many others the project has.
CREATE INDEX runs_project_waiting_approval ON runs (project_id, created_at DESC, id DESC)
  WHERE status = 'suspended' AND suspend_reason = 'signal' AND waiting_signal LIKE 'approval.%';
`,
  },
  {
    version: 21,
    name: 'runs list: an index in creation order for each filter the console offers',
    sql: `
-- Measured at 100,000 runs (bench/results/2026-12-06-console.md): a version without its workflow
-- read two thirds of the project's runs for one page, and a workflow with a status read the runs of
-- that status until a page of the workflow's turned up (all of them when fewer match). A list of
-- statuses is one scan per status (runListStatement), on these or on runs_project_status_created.
CREATE INDEX runs_project_any_version_created ON runs (project_id, workflow_version, created_at DESC, id DESC);
CREATE INDEX runs_project_workflow_status_created ON runs (project_id, workflow_name, status, created_at DESC, id DESC);
`,
  },
  {
    version: 22,
    name: 'usage per workflow; the workers each data plane connected',
    sql: `
-- Usage per project, UTC day and workflow (the name as the runs table holds it: in strict residency
-- mode a keyed digest), slotted like usage_daily. Written by the same metering triggers, so the
-- per-workflow numbers add up to the project's.
CREATE TABLE usage_workflows_daily (
  project_id uuid NOT NULL REFERENCES projects (id),
  day date NOT NULL,
  workflow_name text NOT NULL,
  slot smallint NOT NULL,
  runs_started bigint NOT NULL DEFAULT 0,
  steps_executed bigint NOT NULL DEFAULT 0,
  model_calls bigint NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, day, workflow_name, slot)
);

CREATE OR REPLACE FUNCTION cairn_meter_runs_started() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO usage_daily AS u (project_id, day, slot, runs_started)
  SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, count(*)
  FROM started_runs GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (project_id, day, slot) DO UPDATE SET runs_started = u.runs_started + EXCLUDED.runs_started;
  INSERT INTO usage_workflows_daily AS w (project_id, day, workflow_name, slot, runs_started)
  SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, workflow_name, pg_backend_pid() % 8, count(*)
  FROM started_runs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (project_id, day, workflow_name, slot) DO UPDATE SET runs_started = w.runs_started + EXCLUDED.runs_started;
  RETURN NULL;
END
$fn$;

-- One statement per table, in the order cairn_meter_runs_started takes them (usage_daily, then
-- usage_workflows_daily): the data-modifying CTEs this replaces run in no set order, and a start and
-- a step report taking the same two rows in opposite orders deadlock. usage_daily's row for the
-- backend's slot is always taken first, so two transactions on one slot queue there.
CREATE OR REPLACE FUNCTION cairn_meter_steps(ended_steps run_steps[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO usage_daily AS u (project_id, day, slot, steps_executed)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, count(*) FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id GROUP BY 1 ORDER BY 1
  ON CONFLICT (project_id, day, slot) DO UPDATE SET steps_executed = u.steps_executed + EXCLUDED.steps_executed;

  INSERT INTO usage_workflows_daily AS w (project_id, day, workflow_name, slot, steps_executed, model_calls, input_tokens, output_tokens)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, r.workflow_name, pg_backend_pid() % 8, count(*),
         count(*) FILTER (WHERE s.kind = 'model'),
         coalesce(sum(s.input_tokens) FILTER (WHERE s.kind = 'model'), 0), coalesce(sum(s.output_tokens) FILTER (WHERE s.kind = 'model'), 0)
  FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id GROUP BY 1, 3 ORDER BY 1, 3
  ON CONFLICT (project_id, day, workflow_name, slot) DO UPDATE SET
    steps_executed = w.steps_executed + EXCLUDED.steps_executed, model_calls = w.model_calls + EXCLUDED.model_calls,
    input_tokens = w.input_tokens + EXCLUDED.input_tokens, output_tokens = w.output_tokens + EXCLUDED.output_tokens;

  INSERT INTO usage_tokens_daily AS t (project_id, day, provider, model, slot, calls, input_tokens, output_tokens)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, coalesce(s.provider, 'unknown'), coalesce(s.model, 'unknown'), pg_backend_pid() % 8,
         count(*), coalesce(sum(s.input_tokens), 0), coalesce(sum(s.output_tokens), 0)
  FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id WHERE s.kind = 'model' GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
  ON CONFLICT (project_id, day, provider, model, slot) DO UPDATE SET
    calls = t.calls + EXCLUDED.calls, input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens;
END
$fn$;

-- Days metered before this migration: runs by the day they were created, step and model-call
-- attempts by the day they ended (the counters used the control plane's day of the report, which
-- is the same day but for reports that crossed midnight). Only runs still kept are counted.
INSERT INTO usage_workflows_daily (project_id, day, workflow_name, slot, runs_started)
SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, workflow_name, 0, count(*) FROM runs GROUP BY 1, 2, 3;
INSERT INTO usage_workflows_daily AS w (project_id, day, workflow_name, slot, steps_executed, model_calls, input_tokens, output_tokens)
SELECT r.project_id, (coalesce(s.ended_at, s.updated_at) AT TIME ZONE 'UTC')::date, r.workflow_name, 0, count(*),
       count(*) FILTER (WHERE s.kind = 'model'),
       coalesce(sum(s.input_tokens) FILTER (WHERE s.kind = 'model'), 0), coalesce(sum(s.output_tokens) FILTER (WHERE s.kind = 'model'), 0)
FROM run_steps s JOIN runs r ON r.id = s.run_id
WHERE s.kind IN ('step', 'model') AND s.status IN ('completed', 'failed', 'retrying')
GROUP BY 1, 2, 3
ON CONFLICT (project_id, day, workflow_name, slot) DO UPDATE SET
  steps_executed = w.steps_executed + EXCLUDED.steps_executed, model_calls = w.model_calls + EXCLUDED.model_calls,
  input_tokens = w.input_tokens + EXCLUDED.input_tokens, output_tokens = w.output_tokens + EXCLUDED.output_tokens;

-- The workers each data plane has connected, as their Hello announced them: the worker's random
-- ID, its SDK version, protocol revision, slots and how many workflow versions it runs. Classified
-- metadata only. A replica refreshes last_seen_at while the stream is open and sets
-- disconnected_at when it ends; a replica that died leaves last_seen_at to go stale.
CREATE TABLE data_plane_workers (
  data_plane_id uuid NOT NULL REFERENCES data_planes (id),
  worker_id uuid NOT NULL,
  session_id uuid NOT NULL,
  sdk_version text NOT NULL,
  protocol_version integer NOT NULL,
  slots integer NOT NULL,
  workflows integer NOT NULL,
  connected_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  disconnected_at timestamptz,
  PRIMARY KEY (data_plane_id, worker_id)
);
CREATE INDEX data_plane_workers_seen ON data_plane_workers (data_plane_id, last_seen_at DESC);
`,
  },
  {
    version: 23,
    name: 'usage counters in 64 slots',
    sql: `
-- The usage counters took one of 8 rows per project and day by the writing backend (pg_backend_pid()
-- % 8). A counter row stays locked until its transaction commits, so two transactions whose
-- backends share a slot queue one behind the other: with a pool of more than a handful of
-- connections, concurrent starts and step reports mostly waited for each other there. 64 slots
-- make that rare; readers sum every slot, so nothing else changes.
CREATE OR REPLACE FUNCTION cairn_meter_runs_started() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO usage_daily AS u (project_id, day, slot, runs_started)
  SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, pg_backend_pid() % 64, count(*)
  FROM started_runs GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (project_id, day, slot) DO UPDATE SET runs_started = u.runs_started + EXCLUDED.runs_started;
  INSERT INTO usage_workflows_daily AS w (project_id, day, workflow_name, slot, runs_started)
  SELECT project_id, (created_at AT TIME ZONE 'UTC')::date, workflow_name, pg_backend_pid() % 64, count(*)
  FROM started_runs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (project_id, day, workflow_name, slot) DO UPDATE SET runs_started = w.runs_started + EXCLUDED.runs_started;
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION cairn_meter_steps(ended_steps run_steps[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO usage_daily AS u (project_id, day, slot, steps_executed)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, pg_backend_pid() % 64, count(*) FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id GROUP BY 1 ORDER BY 1
  ON CONFLICT (project_id, day, slot) DO UPDATE SET steps_executed = u.steps_executed + EXCLUDED.steps_executed;

  INSERT INTO usage_workflows_daily AS w (project_id, day, workflow_name, slot, steps_executed, model_calls, input_tokens, output_tokens)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, r.workflow_name, pg_backend_pid() % 64, count(*),
         count(*) FILTER (WHERE s.kind = 'model'),
         coalesce(sum(s.input_tokens) FILTER (WHERE s.kind = 'model'), 0), coalesce(sum(s.output_tokens) FILTER (WHERE s.kind = 'model'), 0)
  FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id GROUP BY 1, 3 ORDER BY 1, 3
  ON CONFLICT (project_id, day, workflow_name, slot) DO UPDATE SET
    steps_executed = w.steps_executed + EXCLUDED.steps_executed, model_calls = w.model_calls + EXCLUDED.model_calls,
    input_tokens = w.input_tokens + EXCLUDED.input_tokens, output_tokens = w.output_tokens + EXCLUDED.output_tokens;

  INSERT INTO usage_tokens_daily AS t (project_id, day, provider, model, slot, calls, input_tokens, output_tokens)
  SELECT r.project_id, (now() AT TIME ZONE 'UTC')::date, coalesce(s.provider, 'unknown'), coalesce(s.model, 'unknown'), pg_backend_pid() % 64,
         count(*), coalesce(sum(s.input_tokens), 0), coalesce(sum(s.output_tokens), 0)
  FROM unnest(ended_steps) s JOIN runs r ON r.id = s.run_id WHERE s.kind = 'model' GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
  ON CONFLICT (project_id, day, provider, model, slot) DO UPDATE SET
    calls = t.calls + EXCLUDED.calls, input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens;
END
$fn$;
`,
  },
  {
    version: 24,
    name: 'a run started straight onto a connected worker',
    sql: `
-- StartRun can insert a run already leased to a worker stream of the replica that received it (the
-- statement that inserts it also claims it: one commit instead of two). The audit trail stays the
-- one a queued-then-claimed run leaves: such an insert records run.queued, then run.running.
CREATE OR REPLACE FUNCTION cairn_audit_run_transition() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  named text := nullif(current_setting('cairn.audit_actor', true), '');
  from_status text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END;
  started_leased boolean := TG_OP = 'INSERT' AND NEW.status = 'running';
  a_type text;
  a_id uuid;
BEGIN
  IF named IS NOT NULL THEN
    a_type := split_part(named, ':', 1);
    a_id := nullif(split_part(named, ':', 2), '')::uuid;
  ELSIF TG_OP = 'INSERT' OR NEW.status IN ('running', 'suspended', 'completed', 'failed')
        OR (NEW.status = 'cancelled' AND from_status = 'running')
        OR (NEW.status = 'queued' AND NEW.wake_reason = 'signal') THEN
    a_type := 'data_plane';
    a_id := NEW.data_plane_id;
  ELSE
    a_type := 'system';
  END IF;
  IF started_leased THEN
    INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata)
    SELECT p.organization_id, NEW.project_id, a_type, a_id, 'run.queued', 'run', NEW.id::text,
           jsonb_strip_nulls(jsonb_build_object(
             'status', 'queued',
             'epoch', NEW.epoch - 1,
             'workflow', NEW.workflow_name,
             'version', NEW.workflow_version,
             'dataPlaneId', NEW.data_plane_id,
             'wakeReason', NEW.wake_reason,
             'parentRunId', NEW.parent_run_id))
    FROM projects p WHERE p.id = NEW.project_id;
    from_status := 'queued';
  END IF;
  INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata)
  SELECT p.organization_id, NEW.project_id, a_type, a_id, 'run.' || NEW.status, 'run', NEW.id::text,
         jsonb_strip_nulls(jsonb_build_object(
           'from', from_status,
           'status', NEW.status,
           'epoch', NEW.epoch,
           'workflow', NEW.workflow_name,
           'version', NEW.workflow_version,
           'dataPlaneId', NEW.data_plane_id,
           'workerId', CASE WHEN NEW.status = 'running' THEN NEW.lease_worker END,
           'wakeReason', CASE WHEN NEW.status = 'queued' THEN NEW.wake_reason END,
           'suspendReason', CASE WHEN NEW.status = 'suspended' THEN NEW.suspend_reason END,
           'errorCode', NEW.error_code,
           'parentRunId', CASE WHEN TG_OP = 'INSERT' AND NOT started_leased THEN NEW.parent_run_id END))
  FROM projects p WHERE p.id = NEW.project_id;
  RETURN NULL;
END
$fn$;
DO $do$
BEGIN
  EXECUTE format('ALTER FUNCTION cairn_audit_run_transition() SET search_path = %I, pg_temp', current_schema());
END
$do$;
`,
  },
  {
    version: 25,
    name: 'the workflow versions each connected worker runs',
    sql: `
-- The name@version pairs a worker's Hello announced (names as they cross: declared in code, or keyed
-- digests in strict residency mode), so that any replica can tell whether a connected worker runs
-- the version a run is pinned to.
ALTER TABLE data_plane_workers ADD COLUMN workflow_versions text[] NOT NULL DEFAULT '{}';
`,
  },
  {
    version: 26,
    name: 'forked runs: copied journal entries are marked and not metered',
    sql: `
-- A forked run's entries below its fork position were copied from its source's journal in the data
-- plane, not executed: the step-report upsert marks them (from the run's fork position), the
-- timeline shows them as copied, and usage (steps executed, model calls, tokens, and with it the
-- monthly step quota) leaves them out. Counters already written for copies are left as they were.
ALTER TABLE run_steps ADD COLUMN copied boolean NOT NULL DEFAULT false;
UPDATE run_steps s SET copied = true FROM runs r
 WHERE r.id = s.run_id AND r.forked_from_run_id IS NOT NULL AND s.position < r.fork_position;

CREATE OR REPLACE FUNCTION cairn_meter_steps_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE ended run_steps[];
BEGIN
  SELECT array_agg(n) INTO ended FROM new_steps n
  WHERE n.kind IN ('step', 'model') AND n.status IN ('completed', 'failed', 'retrying') AND NOT n.copied;
  IF ended IS NOT NULL THEN PERFORM cairn_meter_steps(ended); END IF;
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION cairn_meter_steps_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE ended run_steps[];
BEGIN
  SELECT array_agg(n) INTO ended FROM new_steps n JOIN old_steps o USING (run_id, position, attempt)
  WHERE n.kind IN ('step', 'model') AND n.status IN ('completed', 'failed', 'retrying')
    AND o.status NOT IN ('completed', 'failed', 'retrying') AND NOT n.copied;
  IF ended IS NOT NULL THEN PERFORM cairn_meter_steps(ended); END IF;
  RETURN NULL;
END
$fn$;
`,
  },
  {
    version: 27,
    name: 'lease history in statement time',
    sql: `
-- A lease's grant and end are recorded at the moment the statement runs (clock_timestamp()), not
-- when its transaction began (now()): a claim whose transaction began before the previous lease's
-- release committed would otherwise record a grant before that release, and the history would show
-- two leases held at once when they never were.
ALTER TABLE run_leases ALTER COLUMN acquired_at SET DEFAULT clock_timestamp();
`,
  },
  {
    version: 28,
    name: 'parents left suspended on a child that had ended go on',
    sql: `
-- Before this version, a child's end racing its parent's suspension on it could leave the parent
-- suspended for good: each transaction checked the other's row before the other committed. Both
-- sides now decide under the parent's row lock; parents already caught are queued here, as the
-- child's end would have queued them (wake reason 'child').
UPDATE runs p SET status = 'queued', wake_reason = 'child', wake_at = NULL, waiting_signal = NULL, waiting_child = NULL,
       queued_at = now(), updated_at = now()
  FROM runs c
 WHERE p.status = 'suspended' AND p.waiting_child = c.id
   AND c.status IN ('completed', 'failed', 'cancelled', 'terminated', 'timed_out');
`,
  },
];
