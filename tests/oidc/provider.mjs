// The OpenID provider that ragchat's single sign-on tests log in through: Node's oidc-provider (the
// OpenID-certified implementation) with one confidential client (authorization code flow, PKCE required),
// accounts that sign in with a password, a `groups` scope and claim, and RP-initiated logout.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/oidc/fixture.py):
//   {"port": 41234, "issuer": "http://127.0.0.1:41234",
//    "client": {"client_id", "client_secret", "redirect_uris": [...], "post_logout_redirect_uris": [...]},
//    "jwks": {"keys": [<private RSA JWK>]}, "cookie_keys": ["..."],
//    "accounts": [{"id", "password", "name", "email", "groups": [...]}]}
//
// Prints one line "listening <issuer>" once it accepts connections. The login and consent pages are
// served here (plain HTML forms), because oidc-provider's own development pages accept any password.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = new Map(config.accounts.map((account) => [account.id, account]));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;

const provider = new Provider(config.issuer, {
  clients: [{
    ...config.client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: config.jwks,
  cookies: { keys: config.cookie_keys },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" name="logout"
          value="yes">Yes, sign me out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  async findAccount(ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: account.name,
          email: account.email,
          email_verified: true,
          groups: account.groups,
        };
      },
    };
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([key, value]) => `<p><strong>${escape(key)}</strong>: ${escape(value)}</p>`).join(''));
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

function loginForm(uid, message) {
  const error = message ? `<p role="alert">${escape(message)}</p>` : '';
  return page('Sign in to the test provider', `${error}
    <form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
      <label>Username <input required type="text" name="login" autofocus></label>
      <label>Password <input required type="password" name="password"></label>
      <button type="submit">Sign in</button>
    </form>`);
}

function consentForm(uid, clientId, scopes) {
  return page('Authorize', `<p>${escape(clientId)} asks for: ${escape(scopes.join(' '))}</p>
    <form method="post" action="/interaction/${escape(uid)}/confirm">
      <button type="submit">Continue</button>
    </form>`);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const send = (html) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  };
  const { prompt, params, session, grantId } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') return send(loginForm(uid));
    return send(consentForm(uid, params.client_id, String(params.scope).split(' ')));
  }
  const form = await readForm(req);
  if (action === 'login' && prompt.name === 'login') {
    const account = accounts.get(form.get('login') ?? '');
    if (!account || account.password !== form.get('password')) {
      return send(loginForm(uid, 'Wrong username or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: account.id } },
      { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
  }
  res.writeHead(400, { 'content-type': 'text/plain' });
  return res.end('unexpected interaction step');
}

const handle = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login|confirm))?(?:\?.*)?$/.exec(req.url ?? '');
  if (!match) return handle(req, res);
  return interaction(req, res, match[1], match[2]).catch((error) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${error.message}`);
  });
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${config.issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
