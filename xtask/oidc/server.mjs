// The tests' OpenID Connect provider: oidc-provider (the version pinned in package.json) with
// everything in memory, started by `cargo xtask services up` (xtask/src/services/oidc.rs).
//
// Usage: node server.mjs --port P [--issuer URL] [--keys FILE] [--rotate]
//   --port    where to listen (loopback only)
//   --issuer  the issuer identifier (default http://127.0.0.1:P)
//   --keys    a JSON file holding the private signing JWKS `{"keys":[...]}`; when missing, one
//             RS256 RSA-2048 key with a random `kid` is generated and written (mode 0600)
//   --rotate  before starting, replace the file's key with a fresh one (new `kid`)
// Prints `ready <issuer>` on stdout once listening; exits cleanly on SIGTERM/SIGINT.
//
// Clients (client_secret_basic):
//   onex-service / onex-service-secret: client_credentials, refresh_token, password; scopes
//     `openid profile email offline_access onex:ingress onex:read onex:metrics`; the only client
//     allowed to introspect (POST /token/introspection; any other caller gets `active: false`).
//   onex-limited / onex-limited-secret: client_credentials only; scope `onex:read`.
//
// client_credentials: the resource defaults to `urn:onex:admin` (audience `onex-admin`), so a
// request without `resource` yields an RS256 JWT access token (`typ: at+jwt`, header `kid` of
// the current key; claims jti, sub = client_id, iat, exp, scope, client_id, iss, aud), 300 s.
// `resource=urn:onex:admin` is the same; any other `resource` is refused (invalid_target).
// On `scope`, oidc-provider 8 on its own: grants only what is requested (no `scope` -> a token
// without any `scope` claim), refuses a scope the client may not get (invalid_scope; it checks
// only scopes listed in `scopes`, hence the onex:* ones are listed there), and silently drops
// requested scopes the resource server does not define (`scope=openid onex:read` -> `onex:read`;
// `scope=openid` -> no `scope` claim). This script adds one rule: a request without `scope`
// asks for every scope the client may get, so onex-service gets `onex:ingress onex:read
// onex:metrics` and onex-limited `onex:read`. oidc-provider stores no JWT access token (they
// are meant to be checked locally) and introspects none; this script stores the ones it issues
// under their value, so introspection answers for them (not for JWTs minted elsewhere, even
// when signed with the provider's key).
//
// password (Keycloak's "direct access grants", which oidc-provider lacks): client_secret_basic
// plus `username`, `password` and optional `scope` (default `openid`). Only the OIDC scopes
// (openid profile email offline_access) count: others are dropped, ones the client may not get
// refused (invalid_scope). Wrong credentials: 400 invalid_grant. It answers an opaque access
// token for the userinfo endpoint (GET /me; 300 s), an ID token when `openid` is granted and,
// with `offline_access`, a refresh token (1 day) bound to a Grant (1 day) for the account,
// which the built-in refresh_token grant accepts. That grant keeps the refresh token (it rotates
// a confidential client's token only past 70% of its lifetime) and answers a new access and ID
// token. Account: alice / alice-password (sub alice-0001; email alice@example.test, verified;
// preferred_username alice; name Alice Example).
//
// Everything lives in memory: a restart forgets every token (the keys file is kept).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';
// oidc-provider has no `exports` map; the built-in client_credentials handler is wrapped to
// default the requested scope (the version is pinned exactly, so this path is stable).
import * as clientCredentials from 'oidc-provider/lib/actions/grants/client_credentials.js';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

/** The built-in in-memory store, on purpose (a subclass: oidc-provider warns about its own). */
class InMemoryAdapter extends MemoryAdapter {}

/** The resource client_credentials tokens are for when the request names none. */
const ADMIN_RESOURCE = 'urn:onex:admin';
/** The resource server behind ADMIN_RESOURCE: JWT access tokens for audience onex-admin. */
const ADMIN_SERVER = {
  audience: 'onex-admin',
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'RS256' } },
  scope: 'onex:ingress onex:read onex:metrics',
};
/** The OIDC scopes (the password grant's tokens carry only these). */
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

/** The registered clients (confidential, non-interactive: no redirect URIs or response types). */
const CLIENTS = [
  {
    client_id: 'onex-service',
    client_secret: 'onex-service-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'refresh_token', 'password'],
    response_types: [],
    redirect_uris: [],
    scope: 'openid profile email offline_access onex:ingress onex:read onex:metrics',
  },
  {
    client_id: 'onex-limited',
    client_secret: 'onex-limited-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'onex:read',
  },
];

/** The clients allowed to introspect tokens. */
const INTROSPECTORS = new Set(['onex-service']);

/** The accounts, by username. */
const ACCOUNTS = new Map([
  ['alice', {
    password: 'alice-password',
    sub: 'alice-0001',
    claims: {
      email: 'alice@example.test',
      email_verified: true,
      preferred_username: 'alice',
      name: 'Alice Example',
    },
  }],
]);

/** The accounts, by subject. */
const SUBJECTS = new Map([...ACCOUNTS.values()].map((account) => [account.sub, account]));

/** Token lifetimes in seconds. */
const TTL = {
  AccessToken: 300,
  ClientCredentials: 300,
  IdToken: 300,
  RefreshToken: 24 * 60 * 60,
  Grant: 24 * 60 * 60,
  Session: 24 * 60 * 60,
  Interaction: 60 * 60,
};

/** Says what went wrong on stderr and exits with status 2. */
function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

/** The command line: `{ port, issuer, keys, rotate }`. */
function parseArguments() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        issuer: { type: 'string' },
        keys: { type: 'string' },
        rotate: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    fail(err.message);
  }
  const port = Number(values.port);
  if (!values.port || !Number.isInteger(port) || port <= 0 || port > 65535) {
    fail('--port P (1-65535) is required');
  }
  if (values.rotate && !values.keys) {
    fail('--rotate needs --keys FILE');
  }
  return {
    port,
    issuer: values.issuer ?? `http://127.0.0.1:${port}`,
    keys: values.keys,
    rotate: values.rotate,
  };
}

/** A fresh private RS256 signing JWK with a random `kid`. */
function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(12).toString('base64url'),
    use: 'sig',
    alg: 'RS256',
  };
}

/** Writes `jwks` to `file` (mode 0600) through a temp file, so a reader never sees half. */
function writeKeys(file, jwks) {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(temp, 0o600);
  fs.renameSync(temp, file);
}

/** The private JWKS to sign with: from `file` (made or rotated as asked), else a fresh one. */
function loadKeys(file, rotate) {
  if (!file) {
    return { keys: [newKey()] };
  }
  if (rotate || !fs.existsSync(file)) {
    writeKeys(file, { keys: [newKey()] });
  }
  let jwks;
  try {
    jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`cannot read the keys file ${file}: ${err.message}`);
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) {
    fail(`the keys file ${file} holds no {"keys": [...]}`);
  }
  writePems(file, jwks.keys[0]);
  return jwks;
}

/**
 * Writes the signing key beside the keys file as PEM, for tests written in languages whose JWT
 * library reads PEM: `<keys>.pem` (PKCS#8 private, mode 0600) and `<keys>.pub.pem` (SPKI public:
 * what an attacker would use as an HMAC secret).
 */
function writePems(file, jwk) {
  const base = file.replace(/\.json$/, '');
  const privateKey = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  fs.writeFileSync(`${base}.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const publicKey = crypto.createPublicKey(privateKey);
  fs.writeFileSync(`${base}.pub.pem`, publicKey.export({ type: 'spki', format: 'pem' }));
}

/** The account `sub` as oidc-provider wants it. */
function findAccount(ctx, sub) {
  const account = SUBJECTS.get(sub);
  if (!account) {
    return undefined;
  }
  return {
    accountId: account.sub,
    async claims() {
      return { sub: account.sub, ...account.claims };
    },
  };
}

/** Whether `given` is `expected`, in time independent of where they differ. */
function sameSecret(given, expected) {
  const digest = (text) => crypto.createHash('sha256').update(String(text)).digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

/** Stores the JWT access token `value` issued as `token` under its value, as an opaque token
 * is stored, so introspection finds it (oidc-provider stores no JWT access token: they are
 * meant to be checked locally, and its introspection answers `active: false` for them). */
async function storeJwt(token, value) {
  if (!token || typeof value !== 'string' || value.split('.').length !== 3) {
    return;
  }
  const { iat, exp, jti } = JSON.parse(Buffer.from(value.split('.')[1], 'base64url').toString());
  const payload = {};
  for (const key of token.constructor.IN_PAYLOAD) {
    if (token[key] !== undefined) {
      payload[key] = token[key];
    }
  }
  await token.adapter.upsert(value, { ...payload, iat, exp, jti }, exp - iat);
}

/** The client_credentials handler: the built-in one, with a missing `scope` meaning all the
 * client may get, and its JWT stored for introspection. */
async function clientCredentialsHandler(ctx, next) {
  if (!ctx.oidc.params.scope && ctx.oidc.client.scope) {
    ctx.oidc.params.scope = ctx.oidc.client.scope;
  }
  await clientCredentials.handler(ctx, next);
  await storeJwt(ctx.oidc.entities.ClientCredentials, ctx.body?.access_token);
}

/** The OIDC scopes a password grant request asks for (unknown ones dropped; disallowed ones
 * refused). */
function passwordScopes(ctx) {
  const requested = [...new Set((ctx.oidc.params.scope || 'openid').split(' ').filter(Boolean))];
  const allowed = new Set((ctx.oidc.client.scope || '').split(' '));
  const known = requested.filter((scope) => OIDC_SCOPES.includes(scope));
  const refused = known.find((scope) => !allowed.has(scope));
  if (refused) {
    throw new errors.InvalidScope('requested scope is not allowed', refused);
  }
  return known;
}

/** The password grant: checks the account's credentials, then issues tokens as the
 * authorization_code grant does (a Grant, an opaque AccessToken for the userinfo endpoint, an
 * IdToken, and with offline_access a RefreshToken). */
async function passwordHandler(ctx, next) {
  const { client, params, provider } = ctx.oidc;
  if (!params.username || !params.password) {
    throw new errors.InvalidRequest('missing required parameter(s) (username, password)');
  }
  const entry = ACCOUNTS.get(params.username);
  const valid = sameSecret(params.password, entry ? entry.password : crypto.randomUUID());
  if (!entry || !valid) {
    throw new errors.InvalidGrant('invalid resource owner credentials');
  }
  const scopes = passwordScopes(ctx);
  const account = await provider.Account.findAccount(ctx, entry.sub);
  ctx.oidc.entity('Account', account);
  const authTime = Math.floor(Date.now() / 1000);
  const gty = 'password';

  const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
  if (scopes.length) {
    grant.addOIDCScope(scopes.join(' '));
  }
  ctx.oidc.entity('Grant', grant);
  const grantId = await grant.save();
  const scope = grant.getOIDCScopeFiltered(new Set(scopes));

  const at = new provider.AccessToken({
    accountId: account.accountId, client, grantId, gty, scope,
  });
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken;
  if (scopes.includes('offline_access') && client.grantTypeAllowed('refresh_token')) {
    const rt = new provider.RefreshToken({
      accountId: account.accountId,
      amr: ['pwd'],
      authTime,
      client,
      grantId,
      gty,
      rotations: 0,
      scope,
    });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }

  let idToken;
  if (scopes.includes('openid')) {
    const token = new provider.IdToken({
      ...await account.claims('id_token', scope, {}, []),
      auth_time: authTime,
    }, { ctx });
    // As the built-in grants do for an access token without audience (conformIdTokenClaims):
    // the claims are for the userinfo endpoint, the ID token holds only `sub` and the like.
    token.scope = 'openid';
    token.set('at_hash', accessToken);
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    id_token: idToken,
    refresh_token: refreshToken,
    scope: scope || undefined,
    token_type: at.tokenType,
  };
  await next();
}

/** oidc-provider's configuration, signing with the private `jwks`. */
function configuration(jwks) {
  return {
    adapter: InMemoryAdapter,
    clients: CLIENTS,
    jwks,
    findAccount,
    scopes: [...OIDC_SCOPES, ...ADMIN_SERVER.scope.split(' ')],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    ttl: TTL,
    // Signed with a fresh secret per run: the provider sets no cookies the tests rely on.
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, caller) => INTROSPECTORS.has(caller.clientId),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => ADMIN_RESOURCE,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, resource) => {
          if (resource === ADMIN_RESOURCE) {
            return ADMIN_SERVER;
          }
          throw new errors.InvalidTarget();
        },
      },
    },
  };
}

/** Starts the provider and prints `ready <issuer>` once it listens. */
function main() {
  const args = parseArguments();
  const provider = new Provider(args.issuer, configuration(loadKeys(args.keys, args.rotate)));
  // Re-registering replaces the built-in handler; the parameters are the built-in ones plus
  // `resource` (as oidc-provider registers them with resourceIndicators enabled).
  provider.registerGrantType(
    'client_credentials',
    clientCredentialsHandler,
    new Set([...clientCredentials.parameters, 'resource']),
    new Set(['resource']),
  );
  provider.registerGrantType('password', passwordHandler, ['username', 'password', 'scope']);

  const server = provider.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`ready ${args.issuer}\n`);
  });
  server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${args.port}: ${err.message}`));
  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
