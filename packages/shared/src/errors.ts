/**
 * Every machine-readable error code Wharf returns, with the HTTP status it maps to.
 * Clients match on `code`; messages may change, codes may not.
 */
export const ERROR_CODES = {
  // request validation
  VALIDATION_FAILED: 400,
  INVALID_NAME: 400,
  ARCHIVE_MISSING: 400,
  // auth
  UNAUTHENTICATED: 401,
  INVALID_CREDENTIALS: 401,
  INVALID_API_KEY: 401,
  INVALID_SIGNATURE: 401,
  EMAIL_TAKEN: 409,
  // resources
  NOT_FOUND: 404,
  FUNCTION_NOT_FOUND: 404,
  DEPLOYMENT_NOT_FOUND: 404,
  INVOCATION_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  NOT_DEPLOYED: 409,
  VERSION_NOT_DEPLOYABLE: 409,
  FUNCTION_PENDING_DELETION: 410,
  PUBLIC_NAME_TAKEN: 409,
  INVOCATION_FINISHED: 409,
  NO_PENDING_DELETION: 409,
  PAYLOAD_TOO_LARGE: 413,
  // build failures (recorded on the deployment)
  NO_SOURCE_FILES: 422,
  NO_FUNCTION_CLASS: 422,
  MULTIPLE_FUNCTION_CLASSES: 422,
  NOT_A_CLOUD_FUNCTION: 422,
  MAIN_NOT_ALLOWED: 422,
  HANDLE_NOT_IMPLEMENTED: 422,
  RUNTIME_ENTRY_MISSING: 422,
  ARCHIVE_INVALID: 422,
  ARCHIVE_TOO_LARGE: 422,
  ARCHIVE_UNSAFE_PATH: 422,
  ARCHIVE_LINK_REJECTED: 422,
  ANALYSIS_UNSAFE_REFERENCE: 422,
  BUNDLE_FAILED: 422,
  TYPECHECK_FAILED: 422,
  /** A build step (archive, analysis, install, typecheck, bundle, image, push) ran past its time limit; the message names it. */
  BUILD_TIMEOUT: 422,
  /** The analysis or type-check of the project needed more memory than its process may have. */
  BUILD_OUT_OF_MEMORY: 422,
  /** The sources nest too deeply for the analysis, the type-checker or the bundler (a stack overflow). */
  SOURCE_TOO_COMPLEX: 422,
  DEPENDENCY_INSTALL_FAILED: 422,
  BUILD_FAILED: 500,
  // invocation outcomes
  FUNCTION_ERROR: 500,
  FUNCTION_CRASHED: 502,
  FUNCTION_OOM: 502,
  RESULT_TOO_LARGE: 502,
  INVOCATION_CANCELLED: 409,
  FUNCTION_TIMEOUT: 504,
  RUNNER_ERROR: 502,
  // platform
  QUEUE_UNAVAILABLE: 503,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  // quotas (per user)
  // Each message names the setting, its value and what the user has now.
  FUNCTION_QUOTA_EXCEEDED: 403,
  STORAGE_QUOTA_EXCEEDED: 403,
  DEPLOY_RATE_EXCEEDED: 429,
  MIN_INSTANCES_QUOTA_EXCEEDED: 403,
  // retention: a version whose image was retired and whose archive was dropped cannot serve again
  VERSION_NOT_RETAINED: 409,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** An error that is the caller's (or the function author's) to fix: never retried. */
export class WharfError extends Error {
  readonly code: ErrorCode;
  /** For a refusal that passes with time (a rate limit): sent as `Retry-After`. */
  readonly retryAfterSeconds?: number;
  constructor(code: ErrorCode, message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = 'WharfError';
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
  get status(): number {
    return ERROR_CODES[this.code];
  }
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Turns anything thrown into an Error, so that logs and records always have a message. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
