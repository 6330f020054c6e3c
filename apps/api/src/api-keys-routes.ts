import { Router } from 'express';
import { WharfError } from '@wharf/shared';
import { createApiKey, listApiKeys, revokeApiKey } from './api-keys-store.js';
import type { ApiDeps } from './deps.js';
import { ownFunction } from './function-access.js';

export function apiKeysRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.post('/:id/api-keys', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const { key, secret } = await createApiKey(deps.pool, deps.signingSecret, fn.id);
    deps.logger.info({ functionId: fn.id, keyId: key.id }, 'api key created');
    res.status(201).json({
      key_id: key.id,
      // Shown this once: only its hash is stored.
      secret,
      function_id: fn.id,
      signing_required: !fn.skip_signing,
      created_at: key.created_at,
    });
  });

  router.get('/:id/api-keys', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const keys = await listApiKeys(deps.pool, fn.id);
    res.json({
      api_keys: keys.map((k) => ({ key_id: k.id, created_at: k.created_at, last_used_at: k.last_used_at })),
      count: keys.length,
    });
  });

  router.delete('/:id/api-keys/:keyId', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    if (!(await revokeApiKey(deps.pool, fn.id, req.params.keyId))) {
      throw new WharfError('API_KEY_NOT_FOUND', `function ${fn.name} has no key ${req.params.keyId}`);
    }
    deps.logger.info({ functionId: fn.id, keyId: req.params.keyId }, 'api key revoked');
    res.json({ revoked: true, key_id: req.params.keyId });
  });

  return router;
}
