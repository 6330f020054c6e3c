import type { FunctionConfigPatch, FunctionMode, FunctionRuntime } from '@wharf/shared';
import { SIGNING_HEADERS, signedHeaders } from '@wharf/shared/signing';

export class WharfApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'WharfApiError';
  }
}

export interface FunctionInfo {
  id: string;
  name: string;
  status: 'init' | 'building' | 'active' | 'failed' | 'pending_deletion' | 'deleted';
  active_version: number | null;
  latest_version: number | null;
  skip_signing: boolean;
  public: boolean;
  /** Where it answers over HTTP: `/fn/<name>/…`. */
  url: string;
  config: { mode: FunctionMode; concurrency: number; min_instances: number; timeout_ms: number | null; memory_mb: number | null; cpus: number | null; env_keys: string[] };
  created_at: string;
  updated_at: string;
  message?: string;
  already_exists?: boolean;
  deployment_version?: number | null;
  active_deployment?: DeploymentInfo | null;
}

export interface DeploymentInfo {
  id: string;
  uuid: string;
  version: number;
  status: 'building' | 'succeeded' | 'failed';
  is_active: boolean;
  archive_sha256: string;
  archive_bytes: number;
  /** False once retention dropped the archive: with its image retired too, the version cannot serve again. */
  archive_retained: boolean;
  /** Kept past WHARF_KEEP_VERSIONS (its archive stays, so a rollback can rebuild it). */
  pinned: boolean;
  image_tag: string | null;
  /** What the build found (or was told) the archive holds; null while building. */
  runtime: FunctionRuntime | null;
  handler: string | null;
  env_keys: string[];
  error?: { code: string; message: string };
  created_at: string;
  deployed_at: string | null;
  /** When the build ended, succeeded or failed. */
  finished_at: string | null;
}

export interface DeploymentPage {
  function_uuid: string;
  function_name: string;
  function_status: string;
  page: number;
  per_page: number;
  count: number;
  total_pages: number;
  has_next: boolean;
  deployments: DeploymentInfo[];
}

export interface DeletionInfo {
  id: string;
  reason: string;
  deletion_date: string;
  days_remaining: number;
  scheduled_at: string;
}

/** What `updateConfig` may change: the API's own contract. */
export type FunctionConfig = FunctionConfigPatch;

/** An API key to invoke with instead of the owner's token; `sign: false` sends the secret as is (functions that skip signing). */
export interface InvokeKey {
  keyId: string;
  secret: string;
  sign?: boolean;
}

export interface InvokeOptions {
  /** A string goes as text/plain, bytes as application/octet-stream, anything else as JSON. */
  body?: unknown;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  key?: InvokeKey;
}

export interface AsyncInvokeOptions extends InvokeOptions {
  /** The same key for the same function within 24 h returns the first invocation instead of running again. */
  idempotencyKey?: string;
  /** POSTed the final record when the invocation finishes. */
  callbackUrl?: string;
}

export interface RunnerInfo {
  id: string;
  host: string;
  engine: string;
  slots: number;
  running: number;
  warm_instances: number;
  /** Warm-mode invocations since the runner started that found a live instance, and that had to start one. */
  warm_hits: number;
  warm_misses: number;
  started_at: string;
  seen_at: string;
}

export interface ClusterInfo {
  runners: RunnerInfo[];
  totals: { runners: number; slots: number; running: number; warm_instances: number; warm_hits: number; warm_misses: number };
}

export interface InvokeResponse {
  status: number;
  headers: Headers;
  body: string;
  json<T = unknown>(): T;
}

/** A thin wrapper over Wharf's HTTP API; every non-2xx answer becomes a WharfApiError (except a synchronous invoke's). */
export class WharfClient {
  constructor(
    readonly baseUrl: string,
    public token?: string,
  ) {}

  async register(email: string, password: string): Promise<string> {
    this.token = (await this.request<{ token: string }>('POST', '/api/auth/register', { email, password })).token;
    return this.token;
  }

  async login(email: string, password: string): Promise<string> {
    this.token = (await this.request<{ token: string }>('POST', '/api/auth/login', { email, password })).token;
    return this.token;
  }

  initFunction(name: string, options: { skipSigning?: boolean } = {}): Promise<FunctionInfo> {
    return this.request('POST', '/api/functions/init', { name, ...(options.skipSigning !== undefined ? { skip_signing: options.skipSigning } : {}) });
  }

  async listFunctions(): Promise<FunctionInfo[]> {
    return (await this.request<{ functions: FunctionInfo[] }>('GET', '/api/functions')).functions;
  }

  getFunction(id: string): Promise<FunctionInfo> {
    return this.request('GET', `/api/functions/${id}`);
  }

  /** The caller's live function of that name, or a FUNCTION_NOT_FOUND error. */
  async findFunction(name: string): Promise<FunctionInfo> {
    const fn = (await this.listFunctions()).find((f) => f.name === name);
    if (!fn) throw new WharfApiError(404, 'FUNCTION_NOT_FOUND', `no function named ${name}`);
    return fn;
  }

  listDeployments(functionId: string, options: { page?: number; perPage?: number } = {}): Promise<DeploymentPage> {
    const query = new URLSearchParams();
    if (options.page !== undefined) query.set('page', String(options.page));
    if (options.perPage !== undefined) query.set('per_page', String(options.perPage));
    return this.request('GET', `/api/functions/${functionId}/deployments${query.size ? `?${query}` : ''}`);
  }

  getDeployment(functionId: string, version: number): Promise<DeploymentInfo> {
    return this.request('GET', `/api/functions/${functionId}/deployments/${version}`);
  }

  /** `runtime`: what the archive holds, when the builder should not choose it from the archive. */
  async deploy(functionId: string, archive: Buffer, options: { env?: Record<string, string>; runtime?: FunctionRuntime } = {}): Promise<{ id: string; version: number; status: string }> {
    const form = new FormData();
    form.set('function_id', functionId);
    if (options.env) form.set('env', JSON.stringify(options.env));
    if (options.runtime) form.set('runtime', options.runtime);
    form.set('archive', new Blob([new Uint8Array(archive)], { type: 'application/gzip' }), 'function.tar.gz');
    return (await this.request<{ deployment: { id: string; version: number; status: string } }>('POST', '/api/functions/deploy', form)).deployment;
  }

  /** Polls until the build is over; resolves with the deployment whether it succeeded or failed. */
  buildLog(functionId: string, version: number, offset = 0): Promise<{ version: number; status: string; log: string; next_offset: number; finished: boolean }> {
    return this.request('GET', `/api/functions/${functionId}/deployments/${version}/logs?offset=${offset}`);
  }

  /** Yields the build log as it grows, until the build has finished. */
  async *followBuildLog(functionId: string, version: number, { timeoutMs = 10 * 60_000, pollMs = 250 } = {}): AsyncGenerator<string> {
    const deadline = Date.now() + timeoutMs;
    let offset = 0;
    for (;;) {
      const page = await this.buildLog(functionId, version, offset);
      if (page.log) yield page.log;
      offset = page.next_offset;
      if (page.finished) return;
      if (Date.now() > deadline) throw new Error(`deployment ${functionId} v${version} still building after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  async waitForDeployment(functionId: string, version: number, { timeoutMs = 60_000, pollMs = 100 } = {}): Promise<DeploymentInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const deployment = await this.getDeployment(functionId, version);
      if (deployment.status !== 'building') return deployment;
      if (Date.now() > deadline) throw new Error(`deployment ${functionId} v${version} still building after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  rollback(functionId: string, version: number): Promise<{ message: string; function: FunctionInfo; previous_version: number | null; rebuilding?: boolean }> {
    return this.request('POST', `/api/functions/${functionId}/rollback`, { version });
  }

  /** Keeps a successful version's archive past WHARF_KEEP_VERSIONS, so that a rollback to it can rebuild it. */
  pin(functionId: string, version: number): Promise<DeploymentInfo> {
    return this.request('PUT', `/api/functions/${functionId}/deployments/${version}/pin`);
  }

  /** Lets the version's archive go once it is past WHARF_KEEP_VERSIONS (at the function's next build). */
  unpin(functionId: string, version: number): Promise<DeploymentInfo> {
    return this.request('DELETE', `/api/functions/${functionId}/deployments/${version}/pin`);
  }

  updateConfig(functionId: string, config: FunctionConfig): Promise<FunctionInfo> {
    return this.request('PATCH', `/api/functions/${functionId}/config`, config);
  }

  deleteFunction(functionId: string): Promise<{ message: string; function_uuid: string; status: string; deletion_info: DeletionInfo }> {
    return this.request('DELETE', `/api/functions/${functionId}`);
  }

  pendingDeletions(): Promise<{ pending_deletions: Array<DeletionInfo & { function_uuid: string; function_name: string; function_status: string; image_tag: string | null }>; count: number }> {
    return this.request('GET', '/api/functions/pending-deletions');
  }

  deletionStatus(functionId: string): Promise<{ function_uuid: string; function_name: string; function_status: string; has_pending_deletion: boolean; deletion_info?: DeletionInfo }> {
    return this.request('GET', `/api/functions/${functionId}/deletion-status`);
  }

  cancelDeletion(functionId: string): Promise<{ success: true; message: string; function: { uuid: string; name: string; status: string } }> {
    return this.request('POST', `/api/functions/${functionId}/cancel-deletion`);
  }

  createApiKey(functionId: string): Promise<{ key_id: string; secret: string; function_id: string; signing_required: boolean; created_at: string }> {
    return this.request('POST', `/api/functions/${functionId}/api-keys`);
  }

  async listApiKeys(functionId: string): Promise<Array<{ key_id: string; created_at: string; last_used_at: string | null }>> {
    return (await this.request<{ api_keys: Array<{ key_id: string; created_at: string; last_used_at: string | null }> }>('GET', `/api/functions/${functionId}/api-keys`)).api_keys;
  }

  revokeApiKey(functionId: string, keyId: string): Promise<{ revoked: true; key_id: string }> {
    return this.request('DELETE', `/api/functions/${functionId}/api-keys/${encodeURIComponent(keyId)}`);
  }

  /** Synchronous invoke: returns the function's HTTP response as it is, whatever its status. */
  invoke(functionId: string, options: InvokeOptions = {}): Promise<InvokeResponse> {
    return this.send('POST', `/api/functions/${functionId}/invoke`, options);
  }

  /** Asynchronous invoke: resolves once the invocation is durably queued; poll `getInvocation` for its outcome. */
  async invokeAsync(functionId: string, options: AsyncInvokeOptions = {}): Promise<{ invocation_id: string; status: string; status_url: string }> {
    const { idempotencyKey, callbackUrl, ...rest } = options;
    const headers = {
      ...rest.headers,
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
      ...(callbackUrl ? { 'x-wharf-callback-url': callbackUrl } : {}),
    };
    const res = await this.send('POST', `/api/functions/${functionId}/invoke-async`, { ...rest, headers });
    if (res.status !== 202) throw apiError(res.status, res.body);
    return res.json();
  }

  /** The runners on the container hosts, with their slots and load. */
  cluster(): Promise<ClusterInfo> {
    return this.request('GET', '/api/cluster');
  }

  getInvocation<T = Record<string, unknown>>(id: string): Promise<T> {
    return this.request('GET', `/api/invocations/${id}`);
  }

  /** Polls an invocation until it has a final status. */
  async waitForInvocation<T extends { status: string } = { status: string } & Record<string, unknown>>(id: string, { timeoutMs = 60_000, pollMs = 100 } = {}): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const invocation = await this.getInvocation<T>(id);
      if (invocation.status !== 'queued' && invocation.status !== 'running') return invocation;
      if (Date.now() > deadline) throw new Error(`invocation ${id} still ${invocation.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Cancels a queued or running invocation; resolves with its (cancelled) record. */
  cancelInvocation<T = Record<string, unknown>>(id: string): Promise<T> {
    return this.request('DELETE', `/api/invocations/${id}`);
  }

  listInvocations(functionId: string, filter: { status?: string; page?: number; per_page?: number } = {}): Promise<{ invocations: Array<Record<string, unknown> & { id: string; status: string }>; count: number; page: number; total_pages: number }> {
    return this.request('GET', `/api/functions/${functionId}/invocations${queryString(filter)}`);
  }

  logs(functionId: string, filter: { limit?: number; since?: string } = {}): Promise<{ function_id: string; function_name: string; invocations: Array<Record<string, unknown> & { logs: unknown[] }> }> {
    return this.request('GET', `/api/functions/${functionId}/logs${queryString(filter)}`);
  }

  private async send(method: string, path: string, options: InvokeOptions): Promise<InvokeResponse> {
    const fullPath = `${path}${options.query ? `?${new URLSearchParams(options.query)}` : ''}`;
    const headers: Record<string, string> = { ...(options.key ? {} : this.authHeader()), ...options.headers };
    let body: string | Uint8Array | undefined;
    if (options.body instanceof Uint8Array) {
      body = options.body;
      headers['content-type'] ??= 'application/octet-stream';
    } else if (options.body !== undefined) {
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] ??= typeof options.body === 'string' ? 'text/plain' : 'application/json';
    }
    if (options.key?.sign === false) {
      Object.assign(headers, { [SIGNING_HEADERS.keyId]: options.key.keyId, [SIGNING_HEADERS.apiKey]: options.key.secret });
    } else if (options.key) {
      Object.assign(headers, signedHeaders(options.key, method, fullPath, typeof body === 'string' || body === undefined ? new TextEncoder().encode(body ?? '') : body));
    }
    const res = await fetch(`${this.baseUrl}${fullPath}`, { method, headers, body: body as BodyInit | undefined });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text, json: () => JSON.parse(text) };
  }

  private authHeader(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = this.authHeader();
    let payload: BodyInit | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload });
    const text = await res.text();
    if (!res.ok) throw apiError(res.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

function queryString(params: Record<string, string | number | undefined>): string {
  const defined = Object.entries(params).filter(([, value]) => value !== undefined).map(([name, value]) => [name, String(value)]);
  return defined.length ? `?${new URLSearchParams(defined)}` : '';
}

function apiError(status: number, text: string): WharfApiError {
  let parsed: { error?: { code?: string; message?: string } } | undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return new WharfApiError(status, parsed?.error?.code ?? 'UNKNOWN', parsed?.error?.message ?? text);
}
