// chatgate's chat app: plain JavaScript, no framework, no build step but the hashing and
// compression of components/ui/build.rs.
//
// Model output is untrusted. Answers are rendered by building DOM nodes and setting
// `textContent`; no model text is ever parsed as HTML, and links keep only http(s) and
// mailto targets (anything else, `javascript:` included, stays plain text).

const STORE_KEY = 'chatgate.conversations';
const CURRENT_KEY = 'chatgate.current';
const MODEL_KEY = 'chatgate.model';
const API_KEY = 'chatgate.apiKey'; // sessionStorage: this tab only
const OIDC_PENDING = 'chatgate.oidcPending'; // sessionStorage: one sign-in round trip

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'text') node.textContent = value;
    else if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
};

// ---- State --------------------------------------------------------------------------

let conversations = load();
let currentId = localStorage.getItem(CURRENT_KEY);
let streaming = null; // { controller, message }
let pendingAfterKey = null;
let oidc = null; // { authority, client_id, scopes } from /config.json, when sign-in is set up
let oidcMetadata = null;
let tokens = null; // { access_token, refresh_token, expires_in }: in memory only
let idClaims = null; // the claims of this sign-in's validated ID token, in memory only
let signingKeys = null; // the provider's JWKS `keys`, fetched once per page load
let refreshTimer = 0;

function load() {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORE_KEY) || '[]');
    return Array.isArray(parsed) ? parsed.filter((c) => c && Array.isArray(c.messages)) : [];
  } catch {
    return [];
  }
}

function save() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(conversations));
    if (currentId) localStorage.setItem(CURRENT_KEY, currentId);
    else localStorage.removeItem(CURRENT_KEY);
  } catch (error) {
    showStatus(`Could not save the history in this browser: ${error.message}`);
  }
}

function current() {
  return conversations.find((c) => c.id === currentId) || null;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function apiKey() {
  return sessionStorage.getItem(API_KEY) || '';
}

// ---- Markdown, sanitised by construction ----------------------------------------------

const SAFE_SCHEMES = ['http:', 'https:', 'mailto:'];

function safeHref(url) {
  try {
    const parsed = new URL(url, location.href);
    return SAFE_SCHEMES.includes(parsed.protocol) && /^(https?:|mailto:)/i.test(url.trim())
      ? parsed.href
      : null;
  } catch {
    return null;
  }
}

// Inline markdown: `code`, **bold**, *italic*, [text](url), bare http(s) URLs and [docN].
function inline(text, ctx) {
  const out = document.createDocumentFragment();
  const pattern =
    /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|\[([^\]\n]+)\]\(([^)\s]+)\)|(\[doc(\d+)\])|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) out.append(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1]) out.append(el('code', { text: m[1].slice(1, -1) }));
    else if (m[2]) out.append(el('strong', {}, inline(m[2].slice(2, -2), ctx)));
    else if (m[3]) out.append(el('em', {}, inline(m[3].slice(1, -1), ctx)));
    else if (m[4] !== undefined) {
      const href = safeHref(m[5]);
      out.append(
        href
          ? el('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank', text: m[4] })
          : document.createTextNode(m[0]),
      );
    } else if (m[6]) out.append(citationChip(Number(m[7]), ctx));
    else if (m[8]) {
      const href = safeHref(m[8]);
      out.append(href ? el('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank', text: m[8] }) : m[8]);
    }
  }
  if (last < text.length) out.append(text.slice(last));
  return out;
}

function citationChip(n, ctx) {
  const citation = ctx.citations[n - 1];
  if (!citation) {
    // A marker naming no source the answer came with: shown as text, linked to nothing.
    return el('span', { class: 'unknown-cite', title: 'No such source in this answer', text: `[doc${n}]` });
  }
  return el('a', {
    class: 'chip',
    href: `#${ctx.prefix}-cite-${n}`,
    'aria-label': `Source ${n}: ${citation.title || citation.filepath || citation.url || ''}`,
    text: String(n),
  });
}

// Block markdown: fenced code, headings, lists, quotes and paragraphs.
function renderMarkdown(text, ctx) {
  const root = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) root.append(el('p', {}, inline(paragraph.join('\n'), ctx)));
    paragraph = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+-]*)/);
    if (fence) {
      flush();
      const code = [];
      i += 1;
      while (i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i++]);
      i += 1;
      root.append(el('pre', {}, el('code', { text: code.join('\n') })));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      // Headings in an answer sit under the page's own: h3 at most.
      const level = Math.min(6, heading[1].length + 2);
      root.append(el(`h${level}`, {}, inline(heading[2], ctx)));
      i += 1;
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      flush();
      const ordered = /\d/.test(item[1]);
      const list = el(ordered ? 'ol' : 'ul');
      while (i < lines.length) {
        const next = lines[i].match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
        if (!next || /\d/.test(next[1]) !== ordered) break;
        list.append(el('li', {}, inline(next[2], ctx)));
        i += 1;
      }
      root.append(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
      root.append(el('blockquote', {}, inline(quoted.join('\n'), ctx)));
      continue;
    }
    if (line.trim() === '') flush();
    else paragraph.push(line);
    i += 1;
  }
  flush();
  return root;
}

// ---- Rendering ----------------------------------------------------------------------

function renderSidebar() {
  const list = $('conversations');
  list.replaceChildren();
  for (const conversation of [...conversations].sort((a, b) => b.updated - a.updated)) {
    const title = conversation.title || 'New conversation';
    const item = el(
      'li',
      { 'aria-current': String(conversation.id === currentId) },
      el('button', { type: 'button', class: 'open', text: title, onclick: () => select(conversation.id) }),
      el('button', {
        type: 'button',
        class: 'delete',
        'aria-label': `Delete conversation: ${title}`,
        text: '✕',
        onclick: () => remove(conversation.id),
      }),
    );
    list.append(item);
  }
}

function renderMessages() {
  const box = $('messages');
  box.replaceChildren();
  const conversation = current();
  if (!conversation || conversation.messages.length === 0) {
    box.append(el('p', { class: 'empty', text: 'Ask a question about your documents. Answers cite their sources.' }));
    return;
  }
  conversation.messages.forEach((message, index) => box.append(messageNode(message, index, conversation)));
  box.scrollTop = box.scrollHeight;
}

function messageNode(message, index, conversation) {
  const node = el('article', { class: `message ${message.role}`, 'data-index': String(index) });
  node.append(el('div', { class: 'role', text: message.role === 'user' ? 'You' : 'Assistant' }));
  const body = el('div', { class: 'body' });
  node.append(body);
  fillMessage(node, message, index, conversation);
  return node;
}

function fillMessage(node, message, index, conversation) {
  const body = node.querySelector('.body');
  node.querySelectorAll('.citations, .note, .tools').forEach((n) => n.remove());
  node.classList.toggle('error-state', Boolean(message.error));
  if (message.role === 'user') {
    body.textContent = message.content;
    return;
  }
  const ctx = { citations: message.citations || [], prefix: `m${index}` };
  body.replaceChildren(renderMarkdown(message.content || '', ctx));
  if (ctx.citations.length) {
    const list = el('ol', { class: 'citations', 'aria-label': 'Sources' });
    ctx.citations.forEach((c, i) => {
      const source = c.url && safeHref(c.url)
        ? el('a', { href: safeHref(c.url), rel: 'noopener noreferrer nofollow', target: '_blank', text: c.url })
        : el('span', { text: c.filepath || c.url || '' });
      const excerpt = (c.content || '').length > 320 ? `${c.content.slice(0, 320)}…` : c.content || '';
      list.append(
        el(
          'li',
          { id: `${ctx.prefix}-cite-${i + 1}`, tabindex: '-1' },
          el('strong', { text: c.title || `Source ${i + 1}` }),
          ' ',
          el('span', { class: 'source' }, source),
          el('blockquote', { text: excerpt }),
        ),
      );
    });
    node.append(list);
  }
  if (message.note) node.append(el('p', { class: 'note', text: message.note }));
  if (message.pending) return;
  const tools = el('div', { class: 'tools' });
  if (message.content) {
    tools.append(el('button', { type: 'button', text: 'Copy', 'aria-label': 'Copy this answer', onclick: (e) => copy(message, e.target) }));
  }
  if (index === conversation.messages.length - 1) {
    tools.append(el('button', { type: 'button', class: 'retry', text: 'Retry', 'aria-label': 'Ask again', onclick: retry }));
  }
  node.append(tools);
}

function showStatus(text) {
  const status = $('status');
  status.textContent = text;
  status.hidden = !text;
}

async function copy(message, button) {
  try {
    await navigator.clipboard.writeText(message.content);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// ---- Conversations ------------------------------------------------------------------

function select(id) {
  if (streaming) stop();
  currentId = id;
  save();
  renderSidebar();
  renderMessages();
  showStatus('');
  closeSidebar();
  $('prompt').focus();
}

function newConversation() {
  if (streaming) stop();
  const empty = conversations.find((c) => c.messages.length === 0);
  if (empty) return select(empty.id);
  const conversation = { id: newId(), title: '', messages: [], updated: Date.now() };
  conversations.push(conversation);
  select(conversation.id);
}

function remove(id) {
  if (streaming && currentId === id) stop();
  conversations = conversations.filter((c) => c.id !== id);
  if (currentId === id) currentId = conversations.length ? conversations[conversations.length - 1].id : null;
  save();
  renderSidebar();
  renderMessages();
  $('new-chat').focus();
}

// ---- Errors -------------------------------------------------------------------------

// Rule families by rule id: chatgate's default rule files (components/waf/rules/*.conf,
// their tags) and OWASP CRS's numbering (9xxxxx, its rule file names).
const FAMILIES = [
  [41000, 41999, 'prompt injection'], [31000, 31999, 'SQL injection'], [30000, 30999, 'cross-site scripting'],
  [26000, 26999, 'session fixation'], [25000, 25999, 'Java attack'], [24000, 24999, 'Node.js injection'],
  [23000, 23999, 'PHP injection'], [22000, 22999, 'remote command execution'], [21000, 21999, 'remote file inclusion'],
  [20000, 20999, 'local file inclusion'], [13000, 13999, 'scanner detection'], [11000, 12999, 'protocol enforcement'],
  [39000, 39999, 'protocol enforcement'],
  [913000, 913999, 'scanner detection'], [920000, 921999, 'protocol enforcement'], [930000, 930999, 'local file inclusion'],
  [931000, 931999, 'remote file inclusion'], [932000, 932999, 'remote command execution'], [933000, 933999, 'PHP injection'],
  [934000, 934999, 'generic injection'], [941000, 941999, 'cross-site scripting'], [942000, 942999, 'SQL injection'],
  [943000, 943999, 'session fixation'], [944000, 944999, 'Java attack'],
];

function ruleFamilies(error) {
  const ids = [];
  const deciding = /^waf_rule_(\d+)$/.exec(error.code || '');
  if (deciding) ids.push(Number(deciding[1]));
  const matched = /matched rules ([\d, ]+)/.exec(error.message || '');
  if (matched) ids.push(...matched[1].split(',').map((s) => Number(s.trim())));
  const families = [];
  for (const id of ids) {
    const family = FAMILIES.find(([lo, hi]) => id >= lo && id <= hi);
    if (family && !families.includes(family[2])) families.push(family[2]);
  }
  return { rule: deciding ? deciding[1] : null, families };
}

function retryAfterSeconds(response) {
  const header = response.headers.get('retry-after');
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function errorOf(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // Not JSON: only the status is known.
  }
  return error;
}

// A gateway's message inside a sentence of ours: without its final full stop.
function clause(text) {
  return String(text).trim().replace(/\.+$/, '');
}

// What to tell the person, for a failed API call.
async function describeFailure(response) {
  const error = await errorOf(response);
  const detail = error.message ? `: ${clause(error.message)}` : '';
  switch (response.status) {
    case 401:
      return { kind: 'auth', text: 'The gateway needs an API key: enter it and the question is sent again.' };
    case 403: {
      if (!/^waf_rule_/.test(error.code || '')) return { kind: 'forbidden', text: `Not allowed${detail}.` };
      const { rule, families } = ruleFamilies(error);
      const family = families.length ? families.join(', ') : 'a security rule';
      return {
        kind: 'waf',
        text: `Blocked by the web application firewall: it looked like ${family} (rule ${rule}). Rephrase the question in plain words, without code, markup or instructions to the assistant, and send it again.`,
      };
    }
    case 429: {
      const seconds = retryAfterSeconds(response);
      const when = seconds === null ? 'in a moment' : `in ${seconds} second${seconds === 1 ? '' : 's'}`;
      return { kind: 'rate', text: `Too many requests: you can try again ${when}.`, retryAfter: seconds };
    }
    default:
      if (response.status >= 500) {
        return { kind: 'server', text: `The gateway failed (HTTP ${response.status})${detail}. Retry in a moment.` };
      }
      return { kind: 'client', text: `The request was refused (HTTP ${response.status})${detail}.` };
  }
}

// ---- API ----------------------------------------------------------------------------

function headers() {
  const h = { 'content-type': 'application/json' };
  const key = apiKey();
  if (tokens) h.authorization = `Bearer ${tokens.access_token}`;
  else if (key) h.authorization = `Bearer ${key}`;
  return h;
}

// A 401: sign in when OpenID Connect is set up, else ask for an API key.
function needCredential(reason, then) {
  if (oidc) {
    showStatus('The gateway needs you to sign in: use “Sign in” at the top (the question is sent once you are back).');
    $('sign-in').focus();
  } else {
    askForKey(reason, then);
  }
}

// ---- OpenID Connect: authorization code with PKCE ------------------------------------

function b64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(bytes) {
  return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function redirectUri() {
  return `${location.origin}/`;
}

// The provider's discovery document (OpenID Connect Discovery 1.0). Its issuer must be
// the authority (section 4.3: otherwise another provider's document could stand in), and
// the endpoints the page calls must be on the authority's origin, the only one besides
// the page's that its Content-Security-Policy lets it reach (`connect-src`).
async function discover() {
  if (oidcMetadata) return oidcMetadata;
  const response = await fetch(`${oidc.authority}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`its discovery document answered HTTP ${response.status}`);
  const metadata = await response.json();
  if (String(metadata.issuer).replace(/\/+$/, '') !== oidc.authority) {
    throw new Error(`its discovery document names the issuer ${metadata.issuer}, not ${oidc.authority}`);
  }
  const origin = new URL(oidc.authority).origin;
  for (const name of ['token_endpoint', 'jwks_uri']) {
    let url = null;
    try {
      url = new URL(metadata[name]);
    } catch {
      // Missing or not a URL: refused below.
    }
    if (!url || url.origin !== origin) throw new Error(`its ${name} is not on ${origin}`);
  }
  oidcMetadata = metadata;
  return oidcMetadata;
}

async function signIn() {
  try {
    const metadata = await discover();
    const verifier = randomString(32);
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    const state = randomString(16);
    const nonce = randomString(16);
    sessionStorage.setItem(OIDC_PENDING, JSON.stringify({ verifier, state, nonce }));
    const url = new URL(metadata.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: oidc.client_id,
      redirect_uri: redirectUri(),
      // OpenID Connect requires `openid` (Core 3.1.2.1); without it no ID token comes back.
      scope: oidcScopes(),
      state,
      nonce,
      code_challenge: b64url(new Uint8Array(digest)),
      code_challenge_method: 'S256',
    }).toString();
    location.assign(url.href);
  } catch (error) {
    showStatus(`Sign-in is unavailable: ${error.message}.`);
  }
}

function signOut() {
  tokens = null;
  idClaims = null;
  clearTimeout(refreshTimer);
  renderSignIn();
}

function oidcScopes() {
  const scopes = oidc.scopes.split(/\s+/).filter(Boolean);
  return (scopes.includes('openid') ? scopes : ['openid', ...scopes]).join(' ');
}

function b64urlBytes(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '='));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function b64urlJson(text) {
  return JSON.parse(new TextDecoder().decode(b64urlBytes(text)));
}

async function fetchSigningKeys() {
  const url = (await discover()).jwks_uri;
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`its JWKS (${url}) cannot be fetched: ${error.message}`);
  }
  if (!response.ok) throw new Error(`its JWKS answered HTTP ${response.status}`);
  const keys = (await response.json().catch(() => ({}))).keys;
  return Array.isArray(keys) ? keys : [];
}

// The provider's key for `kid`, from its JWKS (`jwks_uri`), as a WebCrypto RS256 key.
// Keys kept from earlier in this page's life are fetched again once when the kid is not
// among them: the provider may have rotated its keys since.
async function verifyingKey(kid) {
  const pick = (keys) => {
    const usable = keys.filter((k) => k && k.kty === 'RSA' && (!k.use || k.use === 'sig')
      && (!k.alg || k.alg === 'RS256'));
    // Without a kid, only a JWKS of one usable key says which key signed (Core 10.1).
    const matching = kid === undefined ? usable : usable.filter((k) => k.kid === kid);
    return matching.length === 1 ? matching[0] : null;
  };
  let fresh = false;
  if (!signingKeys) {
    signingKeys = await fetchSigningKeys();
    fresh = true;
  }
  let jwk = pick(signingKeys);
  if (!jwk && !fresh) {
    signingKeys = await fetchSigningKeys();
    jwk = pick(signingKeys);
  }
  if (!jwk) throw new Error(`no key ${kid === undefined ? 'without a kid' : `with kid ${kid}`} in the provider's JWKS`);
  return crypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, alg: 'RS256', ext: true },
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
}

// Allowed difference between this device's clock and the provider's (MSAL's default).
const CLOCK_SKEW_SECONDS = 300;

// Validates an ID token as OpenID Connect Core 3.1.3.7 says, signature included: RS256
// against the provider's published key, `iss` exactly the discovery document's issuer,
// this client in `aud` (and `azp` when present or when there are several audiences), not
// expired, not issued in the future nor valid only later (`nbf`), and the `nonce` of
// this sign-in. Core 3.1.3.7 lets a client that got the token straight from the token
// endpoint over TLS skip the signature; it is checked anyway, because the authority may be plain `http` on a loopback host and
// because a forged or substituted token is then refused by the page itself rather than
// only by the API. After a refresh (`original`: the sign-in's claims), Core 12.2: the
// same `iss` and `sub`, and no nonce to match.
async function validateIdToken(idToken, { nonce, original }) {
  const metadata = await discover();
  const parts = String(idToken).split('.');
  let header;
  let claims;
  try {
    if (parts.length !== 3) throw new Error();
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
    if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object') throw new Error();
  } catch {
    throw new Error('the ID token is not a signed JWT');
  }
  // Only RS256: never `none`, and never an algorithm chosen by whoever wrote the token.
  if (header.alg !== 'RS256') throw new Error(`the ID token is signed with ${header.alg}, not RS256`);
  const key = await verifyingKey(header.kid);
  let signature;
  try {
    signature = b64urlBytes(parts[2]);
  } catch {
    signature = new Uint8Array();
  }
  const signed = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
  if (!(await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, signature, signed))) {
    throw new Error('the ID token\'s signature does not verify with the provider\'s key');
  }
  if (claims.iss !== metadata.issuer) throw new Error(`the ID token's issuer is ${claims.iss}, not ${metadata.issuer}`);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(oidc.client_id)) throw new Error('the ID token is not for this app (aud)');
  if ((audiences.length > 1 || claims.azp !== undefined) && claims.azp !== oidc.client_id) {
    throw new Error('the ID token is not for this app (azp)');
  }
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || claims.exp + CLOCK_SKEW_SECONDS <= now) {
    throw new Error('the ID token has expired (exp)');
  }
  if (typeof claims.iat !== 'number' || claims.iat - CLOCK_SKEW_SECONDS > now) {
    throw new Error('the ID token is issued in the future (iat)');
  }
  // Not an OpenID Connect rule, but a JWT's (RFC 7519, 4.1.5); Entra ID sets it.
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf - CLOCK_SKEW_SECONDS > now)) {
    throw new Error('the ID token is not valid yet (nbf)');
  }
  if (typeof claims.sub !== 'string' || !claims.sub) throw new Error('the ID token names no subject (sub)');
  if (original) {
    if (claims.iss !== original.iss || claims.sub !== original.sub) {
      throw new Error('the refreshed ID token is for another user (sub)');
    }
  } else if (typeof nonce !== 'string' || claims.nonce !== nonce) {
    throw new Error('the ID token is not for this sign-in (nonce)');
  }
  return claims;
}

async function tokenRequest(form) {
  const metadata = await discover();
  const response = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.access_token !== 'string') {
    throw new Error(`the token endpoint answered HTTP ${response.status}${body.error ? ` (${body.error})` : ''}`);
  }
  return body;
}

// Keeps the tokens in memory and refreshes them before they expire.
function keep(answer) {
  const refreshToken = answer.refresh_token || (tokens && tokens.refresh_token) || null;
  const lifetime = Number(answer.expires_in) > 0 ? Number(answer.expires_in) : 3600;
  tokens = { access_token: answer.access_token, refresh_token: refreshToken, expires_in: lifetime };
  clearTimeout(refreshTimer);
  if (refreshToken) {
    const seconds = Math.max(1, Math.min(lifetime * 0.8, lifetime - 60));
    refreshTimer = setTimeout(refresh, seconds * 1000);
  }
  renderSignIn();
}

async function refresh() {
  try {
    const answer = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token,
      client_id: oidc.client_id,
      scope: oidcScopes(),
    });
    // A refresh may or may not bring a new ID token (Core 12.2); one that comes is checked.
    if (typeof answer.id_token === 'string') idClaims = await validateIdToken(answer.id_token, { original: idClaims });
    keep(answer);
  } catch (error) {
    signOut();
    showStatus(`Your session ended (${error.message}): sign in again.`);
  }
}

// The identity provider sent the browser back to `/?code=...&state=...` (or `?error=`).
async function completeSignIn(params) {
  const pending = JSON.parse(sessionStorage.getItem(OIDC_PENDING) || 'null');
  sessionStorage.removeItem(OIDC_PENDING);
  history.replaceState(null, '', '/');
  if (params.get('error')) {
    throw new Error(`the identity provider refused: ${params.get('error_description') || params.get('error')}`);
  }
  if (!pending || pending.state !== params.get('state')) {
    throw new Error('the answer does not belong to a sign-in started in this tab');
  }
  const answer = await tokenRequest({
    grant_type: 'authorization_code',
    code: params.get('code'),
    redirect_uri: redirectUri(),
    client_id: oidc.client_id,
    code_verifier: pending.verifier,
  });
  if (typeof answer.id_token !== 'string') throw new Error('the token endpoint sent no ID token');
  // Nothing of the answer is kept unless its ID token is valid.
  idClaims = await validateIdToken(answer.id_token, { nonce: pending.nonce });
  keep(answer);
}

function renderSignIn() {
  const button = $('sign-in');
  button.hidden = !oidc;
  button.textContent = tokens ? 'Sign out' : 'Sign in';
}

async function loadModels() {
  const select = $('model');
  let response;
  try {
    response = await fetch('/v1/models', { headers: headers() });
  } catch {
    showStatus('The gateway cannot be reached. Check the connection and reload.');
    return;
  }
  if (response.status === 401) {
    needCredential('The gateway needs an API key to list its models.', loadModels);
    return;
  }
  if (!response.ok) {
    showStatus((await describeFailure(response)).text);
    return;
  }
  const models = ((await response.json()).data || []).map((m) => m.id).filter((id) => typeof id === 'string');
  const chosen = localStorage.getItem(MODEL_KEY);
  select.replaceChildren(...models.map((id) => el('option', { value: id, text: id })));
  if (chosen && models.includes(chosen)) select.value = chosen;
}

// Sends the conversation and streams the answer into its last message.
async function ask(conversation) {
  // A question the gateway refused (its answer is an error) is not sent again: a WAF
  // block would otherwise refuse every later turn of the conversation.
  const history = conversation.messages
    .filter((m, i, all) => {
      if (m.role === 'user') return !(all[i + 1] && all[i + 1].error);
      return !m.error && m.content;
    })
    .map((m) => ({ role: m.role, content: m.content }));
  const message = { role: 'assistant', content: '', citations: [], pending: true };
  conversation.messages.push(message);
  conversation.updated = Date.now();
  const index = conversation.messages.length - 1;
  renderMessages();
  const node = $('messages').querySelector(`[data-index="${index}"]`);
  const controller = new AbortController();
  streaming = { controller, message };
  setBusy(true);
  showStatus('');

  let frame = 0;
  const paint = () => {
    frame = 0;
    fillMessage(node, message, index, conversation);
    $('messages').scrollTop = $('messages').scrollHeight;
  };
  const schedule = () => { if (!frame) frame = requestAnimationFrame(paint); };

  try {
    const body = { messages: history, stream: true };
    if ($('model').value) body.model = $('model').value;
    const response = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers(),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const failure = await describeFailure(response);
      conversation.messages.pop();
      if (failure.kind === 'auth') {
        needCredential(failure.text, () => ask(conversation));
      } else {
        message.pending = false;
        message.error = failure.kind;
        message.note = failure.text;
        conversation.messages.push(message);
        showStatus(failure.text);
      }
      return;
    }
    await readStream(response, message, schedule);
    if (!message.finished && !message.error) {
      message.error = 'network';
      message.note = 'The answer was cut off: the connection closed before it ended. Retry to ask again.';
      showStatus(message.note);
    }
  } catch (error) {
    if (error.name === 'AbortError') {
      message.note = 'Stopped.';
      message.stopped = true;
    } else {
      message.error = 'network';
      message.note = 'The connection to the gateway was lost. Check the network and retry.';
      showStatus(message.note);
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    message.pending = false;
    streaming = null;
    setBusy(false);
    save();
    renderSidebar();
    renderMessages();
  }
}

// Reads OpenAI's server-sent events: `data: {chunk}` lines, `data: [DONE]` at the end,
// or one `data: {"error": ...}` when the stream fails after it began.
async function readStream(response, message, onChange) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) continue;
      if (data === '[DONE]') {
        message.finished = true;
        continue;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue;
      }
      if (chunk.error) {
        message.error = 'server';
        message.note = `The answer failed part-way: ${clause(chunk.error.message || 'server error')}. Retry to ask again.`;
        showStatus(message.note);
        continue;
      }
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (!delta) continue;
      const citations = delta.context && delta.context.citations;
      if (Array.isArray(citations)) message.citations = citations.filter((c) => c && typeof c === 'object');
      if (typeof delta.content === 'string' && delta.content) {
        message.content += delta.content;
        onChange();
      } else if (citations) onChange();
    }
  }
}

function setBusy(busy) {
  $('send').hidden = busy;
  $('stop').hidden = !busy;
  $('composer').setAttribute('aria-busy', String(busy));
  if (busy) $('stop').focus();
  else if (document.activeElement === document.body || document.activeElement === $('stop')) $('prompt').focus();
}

function stop() {
  if (streaming) streaming.controller.abort();
}

function send(text) {
  if (streaming) return;
  let conversation = current();
  if (!conversation) {
    conversation = { id: newId(), title: '', messages: [], updated: Date.now() };
    conversations.push(conversation);
    currentId = conversation.id;
  }
  if (!conversation.title) conversation.title = text.slice(0, 60);
  conversation.messages.push({ role: 'user', content: text });
  save();
  renderSidebar();
  ask(conversation);
}

function retry() {
  const conversation = current();
  if (!conversation || streaming) return;
  while (conversation.messages.length && conversation.messages[conversation.messages.length - 1].role === 'assistant') {
    conversation.messages.pop();
  }
  if (!conversation.messages.length) return;
  ask(conversation);
}

// ---- API key ------------------------------------------------------------------------

function askForKey(reason, then) {
  pendingAfterKey = then || null;
  $('key-reason').textContent = reason;
  $('key-input').value = apiKey();
  const dialog = $('key-dialog');
  if (!dialog.open) dialog.showModal();
  $('key-input').focus();
}

// ---- Wiring -------------------------------------------------------------------------

function closeSidebar() {
  $('sidebar').classList.remove('open');
  $('toggle-sidebar').setAttribute('aria-expanded', 'false');
  $('toggle-sidebar').setAttribute('aria-label', 'Show conversations');
}

async function init() {
  if (currentId && !current()) currentId = null;
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('prompt').value.trim();
    if (!text) return;
    $('prompt').value = '';
    send(text);
  });
  $('prompt').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('stop').addEventListener('click', stop);
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    if (streaming) stop();
    else if ($('sidebar').classList.contains('open')) {
      closeSidebar();
      $('toggle-sidebar').focus();
    }
  });
  $('new-chat').addEventListener('click', newConversation);
  $('model').addEventListener('change', () => localStorage.setItem(MODEL_KEY, $('model').value));
  $('key-button').addEventListener('click', () => askForKey('Enter the API key for this gateway.', loadModels));
  $('toggle-sidebar').addEventListener('click', () => {
    const open = $('sidebar').classList.toggle('open');
    $('toggle-sidebar').setAttribute('aria-expanded', String(open));
    $('toggle-sidebar').setAttribute('aria-label', open ? 'Hide conversations' : 'Show conversations');
    if (open) $('new-chat').focus();
  });
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    sessionStorage.setItem(API_KEY, key);
    $('key-dialog').close();
    const then = pendingAfterKey;
    pendingAfterKey = null;
    if (then) then();
  });
  $('key-cancel').addEventListener('click', () => {
    pendingAfterKey = null;
    $('key-dialog').close();
    renderMessages();
  });
  $('sign-in').addEventListener('click', () => (tokens ? signOut() : signIn()));
  renderSidebar();
  renderMessages();
  try {
    const config = await (await fetch('/config.json')).json();
    oidc = config.oidc || null;
    if (config.oidc_error) showStatus(`Sign-in is not set up correctly: ${config.oidc_error}.`);
  } catch {
    oidc = null;
  }
  renderSignIn();
  const params = new URLSearchParams(location.search);
  if (oidc && (params.has('code') || params.has('error'))) {
    try {
      await completeSignIn(params);
      // The question that met the 401 before the sign-in is asked now.
      const conversation = current();
      const last = conversation && conversation.messages[conversation.messages.length - 1];
      if (last && last.role === 'user') ask(conversation);
    } catch (error) {
      // Said, and not replaced by the 401 that listing the models would now meet.
      showStatus(`Sign-in failed: ${error.message}.`);
      return;
    }
  }
  loadModels();
}

init();
