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
  status: string;
  active_version: number | null;
  already_exists?: boolean;
  active_deployment?: DeploymentInfo | null;
}

export interface DeploymentInfo {
  id: string;
  version: number;
  status: 'building' | 'active' | 'failed';
  archive_sha256: string;
  image_tag: string | null;
  error: { code: string; message: string } | null;
}

export interface InvokeResponse {
  status: number;
  headers: Headers;
  body: string;
  json<T = unknown>(): T;
}

/** A thin wrapper over Wharf's HTTP API; every non-2xx answer becomes a WharfApiError. */
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

  initFunction(name: string): Promise<FunctionInfo> {
    return this.request('POST', '/api/functions/init', { name });
  }

  getFunction(id: string): Promise<FunctionInfo> {
    return this.request('GET', `/api/functions/${id}`);
  }

  getDeployment(functionId: string, version: number): Promise<DeploymentInfo> {
    return this.request('GET', `/api/functions/${functionId}/deployments/${version}`);
  }

  async deploy(functionId: string, archive: Buffer, env?: Record<string, string>): Promise<{ id: string; version: number; status: string }> {
    const form = new FormData();
    form.set('function_id', functionId);
    if (env) form.set('env', JSON.stringify(env));
    form.set('archive', new Blob([new Uint8Array(archive)], { type: 'application/gzip' }), 'function.tar.gz');
    return (await this.request<{ deployment: { id: string; version: number; status: string } }>('POST', '/api/functions/deploy', form)).deployment;
  }

  /** Polls until the build is over; resolves with the deployment whether it became active or failed. */
  async waitForDeployment(functionId: string, version: number, { timeoutMs = 60_000, pollMs = 100 } = {}): Promise<DeploymentInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const deployment = await this.getDeployment(functionId, version);
      if (deployment.status !== 'building') return deployment;
      if (Date.now() > deadline) throw new Error(`deployment ${functionId} v${version} still building after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Synchronous invoke: returns the function's HTTP response as it is, whatever its status. */
  async invoke(functionId: string, options: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<InvokeResponse> {
    const query = options.query ? `?${new URLSearchParams(options.query)}` : '';
    const headers: Record<string, string> = { ...this.authHeader(), ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] ??= typeof options.body === 'string' ? 'text/plain' : 'application/json';
    }
    const res = await fetch(`${this.baseUrl}/api/functions/${functionId}/invoke${query}`, { method: 'POST', headers, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text, json: () => JSON.parse(text) };
  }

  getInvocation<T = Record<string, unknown>>(id: string): Promise<T> {
    return this.request('GET', `/api/invocations/${id}`);
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
    const parsed = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      throw new WharfApiError(res.status, parsed?.error?.code ?? 'UNKNOWN', parsed?.error?.message ?? text);
    }
    return parsed as T;
  }
}
