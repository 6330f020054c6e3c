import type { ErrorRequestHandler, RequestHandler } from 'express';
import multer from 'multer';
import { ZodError } from 'zod';
import { WharfError, type Logger } from '@wharf/shared';

/** The one place where anything thrown in a route becomes `{"error":{"code","message"}}`. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (thrown, req, res, _next) => {
    const err = toWharfError(thrown);
    if (err.code === 'INTERNAL') logger.error({ err: thrown, method: req.method, url: req.originalUrl }, 'request failed');
    if (res.headersSent) return;
    if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
    res.status(err.status).json(err.toBody());
  };
}

export const notFound: RequestHandler = (req) => {
  throw new WharfError('NOT_FOUND', `no route for ${req.method} ${req.path}`);
};

function toWharfError(thrown: unknown): WharfError {
  if (thrown instanceof WharfError) return thrown;
  if (thrown instanceof ZodError) {
    const first = thrown.issues[0];
    const field = first?.path.join('.') || 'body';
    return new WharfError('VALIDATION_FAILED', `${field}: ${first?.message ?? 'invalid'}`);
  }
  if (thrown instanceof multer.MulterError) {
    if (thrown.code === 'LIMIT_FILE_SIZE') return new WharfError('PAYLOAD_TOO_LARGE', 'the archive is larger than the upload limit');
    return new WharfError('VALIDATION_FAILED', `multipart upload: ${thrown.message}`);
  }
  const bodyParser = thrown as { type?: string; status?: number; message?: string };
  if (bodyParser?.type === 'entity.too.large') return new WharfError('PAYLOAD_TOO_LARGE', 'the request body is larger than the limit');
  if (bodyParser?.type === 'entity.parse.failed') return new WharfError('VALIDATION_FAILED', `the body is not valid JSON: ${bodyParser.message}`);
  if (isRedisUnavailable(thrown)) return new WharfError('QUEUE_UNAVAILABLE', 'the job queue is unavailable; try again shortly');
  return new WharfError('INTERNAL', 'internal error');
}

/**
 * ioredis, with its offline queue disabled, refuses commands at once while Redis is unreachable;
 * a command cut by a dying connection fails after its one retry; a restarted Redis answers
 * LOADING until its AOF is read back.
 */
function isRedisUnavailable(thrown: unknown): boolean {
  const message = (thrown as Error)?.message ?? '';
  return /Stream isn't writeable|Connection is closed|enableOfflineQueue|ECONNREFUSED|max retries per request|^LOADING /.test(message);
}
