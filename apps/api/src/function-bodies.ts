import type { DeletionRow, DeploymentRow, FunctionRow } from './functions-store.js';

const DAY_MS = 24 * 3600 * 1000;

/** The JSON shapes the control plane answers with, one place for each. */
export function functionBody(fn: FunctionRow) {
  return {
    id: fn.id,
    name: fn.name,
    status: fn.status,
    active_version: fn.active_version,
    latest_version: fn.latest_version,
    skip_signing: fn.skip_signing,
    public: fn.public,
    url: `/fn/${fn.name}`,
    config: {
      mode: fn.mode,
      concurrency: fn.concurrency,
      min_instances: fn.min_instances,
      timeout_ms: fn.timeout_ms,
      memory_mb: fn.memory_mb,
      cpus: fn.cpus,
      // Values may be secrets: only their names leave the server.
      env_keys: Object.keys(fn.env),
    },
    created_at: fn.created_at,
    updated_at: fn.updated_at,
  };
}

export function deploymentBody(d: DeploymentRow, activeVersion: number | null) {
  return {
    uuid: d.id,
    id: d.id,
    function_id: d.function_id,
    version: d.version,
    status: d.status,
    is_active: d.version === activeVersion,
    image_tag: d.image_tag,
    runtime: d.runtime,
    handler: d.handler,
    archive_sha256: d.archive_sha256,
    archive_bytes: d.archive_bytes,
    // False once the archive was dropped (retention): a retired image can then not be rebuilt.
    archive_retained: d.archive_dropped_at === null,
    pinned: d.pinned,
    env_keys: Object.keys(d.env),
    ...(d.error_code ? { error: { code: d.error_code, message: d.error_message } } : {}),
    created_at: d.created_at,
    deployed_at: d.status === 'succeeded' ? d.finished_at : null,
    finished_at: d.finished_at,
  };
}

export function deletionInfo(d: DeletionRow, now: Date) {
  return {
    id: d.id,
    reason: d.reason,
    deletion_date: d.deletion_date,
    days_remaining: Math.max(0, Math.ceil((d.deletion_date.getTime() - now.getTime()) / DAY_MS)),
    scheduled_at: d.scheduled_at,
  };
}

export function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS);
}
