/** Every response carries x-request-id: the caller's own (if it looks like an id) or a fresh UUID. */
import type { MiddlewareHandler } from 'hono';

export const REQUEST_ID_HEADER = 'x-request-id';
const VALID = /^[A-Za-z0-9._:-]{1,128}$/;

export type RequestIdEnv = { Variables: { requestId: string } };

export const requestId: MiddlewareHandler<RequestIdEnv> = async (c, next) => {
  const given = c.req.header(REQUEST_ID_HEADER);
  const id = given && VALID.test(given) ? given : crypto.randomUUID();
  c.set('requestId', id);
  await next();
  c.res.headers.set(REQUEST_ID_HEADER, id);
};
