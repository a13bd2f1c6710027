// Access: the tenant's API keys and console users (admin only). A new key's token is in the
// API's answer and nowhere else, so it is shown once, like a device secret.
import { useState } from "preact/hooks";
import { api, enc, getSession, toSeconds } from "../api.js";
import { can, useMe } from "../me.js";
import { fmtTime, useAsync } from "../util.js";
import { CopyBlock, Empty, ErrorBox, TableHead } from "../components/common.jsx";
import { Invites } from "./Onboarding.jsx";

const ROLES = ["viewer", "operator", "admin"];
const SESSION = "session:";
const LIFETIMES = [
  ["never expires", ""],
  ["1 day", 86400],
  ["30 days", 30 * 86400],
  ["90 days", 90 * 86400],
  ["1 year", 365 * 86400],
];

export function Access() {
  const me = useMe({ full: true });
  if (!me) return <div class="page muted">Loading…</div>;
  if (!can(me, "admin"))
    return (
      <div class="page">
        <div class="page-head">
          <h1>Access</h1>
        </div>
        <Empty>
          <span data-testid="access-denied">API keys and console users are managed by a tenant admin; you are {me.role}.</span>
        </Empty>
      </div>
    );
  return (
    <div class="page access">
      <div class="page-head">
        <h1>Access</h1>
        <span class="muted">tenant {me.tenant}</span>
      </div>
      <div class="access-grid">
        <ApiKeys me={me} />
        <Users />
        <Invites />
      </div>
    </div>
  );
}

function keyState(k) {
  if (k.revoked) return "revoked";
  const exp = toSeconds(k.expires_at);
  if (exp && exp < Date.now() / 1000) return "expired";
  return "active";
}

function ApiKeys({ me }) {
  const list = useAsync(() => api.get("/keys"), []);
  const [all, setAll] = useState(false);
  const [form, setForm] = useState({ name: "", role: "viewer", ttl: "" });
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);

  async function create(e) {
    e.preventDefault();
    setError(null);
    try {
      const r = await api.post("/keys", { name: form.name, role: form.role, ttl_s: form.ttl ? Number(form.ttl) : undefined });
      setCreated(r);
      setForm({ ...form, name: "" });
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function revoke(k) {
    if (!confirm(`Revoke API key "${k.name}"? Programs using it get 401 at once.`)) return;
    setError(null);
    try {
      await api.del(`/keys/${enc(k.id)}`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  // Console logins are keys too ("session:<user>"); they are noise unless asked for.
  const rows = (list.data || []).filter((k) => all || (!k.name.startsWith(SESSION) && keyState(k) === "active"));
  return (
    <section class="panel pad" data-testid="api-keys">
      <div class="panel-head">
        <strong>API keys</strong>
        <span class="grow" />
        <label class="check small">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} data-testid="keys-all" /> console sessions, revoked and expired
        </label>
      </div>
      <ErrorBox error={list.error} />
      <table class="grid" data-testid="key-table">
        <TableHead cols={["Name", "Role", "Created", "Expires", "State", ""]} />
        <tbody>
          {rows.map((k) => {
            const st = keyState(k);
            return (
              <tr key={k.id} data-key={k.name} class={st === "active" ? "" : "muted"}>
                <td>
                  {k.name}
                  {k.id === me.key_id && <span class="muted small"> (this session)</span>}
                  <div class="muted small mono">{k.id}</div>
                </td>
                <td>
                  <span class={`tag role-${k.role}`}>{k.role}</span>
                </td>
                <td class="small">{fmtTime(toSeconds(k.created_at))}</td>
                <td class="small">{k.expires_at ? fmtTime(toSeconds(k.expires_at)) : "never"}</td>
                <td class="small" data-testid="key-state">
                  {st}
                </td>
                <td>
                  <div class="actions">
                    {st === "active" && k.id !== me.key_id && (
                      <button class="btn small danger" onClick={() => revoke(k)} data-testid="key-revoke">
                        Revoke
                      </button>
                    )}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {list.data && !rows.length && <Empty>No API keys{all ? "" : " in use"}.</Empty>}
      <p class="muted small">Atoll does not record when a key was last used: revoke keys nobody can vouch for.</p>

      {created && (
        <div class="new-secret" data-testid="new-key">
          <p class="warn-line">
            Copy this key now: you will not see it again. Atoll stores only its SHA-256; if it is lost, revoke it and create another.
          </p>
          <CopyBlock label={`API key "${created.key.name}" (${created.key.role})`} text={created.token} testid="new-key-token" />
          <p class="muted small">
            Send it as <code>Authorization: Bearer …</code>.
          </p>
          <button class="btn small" onClick={() => setCreated(null)} data-testid="new-key-done">
            I have stored it
          </button>
        </div>
      )}

      <h3>New API key</h3>
      <form class="inline-form" onSubmit={create} data-testid="key-form">
        <label>
          Name
          <input value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} required maxLength={200} placeholder="e.g. grafana-reader" data-testid="key-name" />
        </label>
        <label>
          Role
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.currentTarget.value })} data-testid="key-role">
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Lifetime
          <select value={form.ttl} onChange={(e) => setForm({ ...form, ttl: e.currentTarget.value })} data-testid="key-ttl">
            {LIFETIMES.map(([label, v]) => (
              <option key={label} value={v}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button class="btn primary" type="submit" data-testid="key-create">
          Create key
        </button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}

// A password the admin can pass on; the user changes it after the first login.
function generatePassword() {
  const abc = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => abc[b % abc.length]).join("");
}

function Users() {
  const list = useAsync(() => api.get("/users"), []);
  const [form, setForm] = useState({ username: "", role: "operator", password: "" });
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const self = getSession()?.user;

  async function create(e) {
    e.preventDefault();
    setError(null);
    try {
      const u = await api.post("/users", form);
      setCreated({ ...u, password: form.password });
      setForm({ username: "", role: form.role, password: "" });
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function patch(u, body, question) {
    if (question && !confirm(question)) return;
    setError(null);
    try {
      await api.patch(`/users/${enc(u.username)}`, body);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function remove(u) {
    if (!confirm(`Delete console user ${u.username}? Their sessions end now.`)) return;
    setError(null);
    try {
      await api.del(`/users/${enc(u.username)}`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <section class="panel pad" data-testid="users">
      <div class="panel-head">
        <strong>Console users</strong>
      </div>
      <ErrorBox error={list.error} />
      <table class="grid" data-testid="user-table">
        <TableHead cols={["User", "Role", "Created", "State", ""]} />
        <tbody>
          {(list.data || []).map((u) => {
            const me = u.username === self;
            return (
              <tr key={u.username} data-user={u.username} class={u.disabled ? "muted" : ""}>
                <td>
                  {u.username}
                  {me && <span class="muted small"> (you)</span>}
                </td>
                <td>
                  {me ? (
                    <span class={`tag role-${u.role}`}>{u.role}</span>
                  ) : (
                    <select value={u.role} onChange={(e) => patch(u, { role: e.currentTarget.value }, `Make ${u.username} ${e.currentTarget.value}? Their sessions end; they log in again.`)} data-testid="user-role">
                      {ROLES.map((r) => (
                        <option key={r}>{r}</option>
                      ))}
                    </select>
                  )}
                </td>
                <td class="small">{fmtTime(toSeconds(u.created_at))}</td>
                <td class="small" data-testid="user-state">
                  {u.disabled ? "disabled" : "active"}
                </td>
                <td>
                  <div class="actions">
                    {!me && (
                      <>
                        <button
                          class="btn small"
                          onClick={() => patch(u, { disabled: !u.disabled }, u.disabled ? null : `Disable ${u.username}? They are logged out and cannot log in.`)}
                          data-testid="user-toggle"
                        >
                          {u.disabled ? "Enable" : "Disable"}
                        </button>
                        <button class="btn small danger" onClick={() => remove(u)} data-testid="user-delete">
                          Delete
                        </button>
                      </>
                    )}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>

      {created && (
        <div class="new-secret" data-testid="new-user">
          <p class="warn-line">
            {created.username} can log in now as {created.role}. Pass the password on safely; you will not see it again here. They can change it after logging in.
          </p>
          <CopyBlock label={`Password of ${created.username}`} text={created.password} testid="new-user-password" />
          <button class="btn small" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}

      <h3>Add a user</h3>
      <form class="inline-form" onSubmit={create} data-testid="user-form">
        <label>
          User name
          <input value={form.username} onInput={(e) => setForm({ ...form, username: e.currentTarget.value })} required maxLength={200} autocomplete="off" data-testid="user-name" />
        </label>
        <label>
          Role
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.currentTarget.value })} data-testid="user-new-role">
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label class="grow">
          Initial password (10+ characters)
          <span class="with-button">
            <input value={form.password} onInput={(e) => setForm({ ...form, password: e.currentTarget.value })} required minLength={10} autocomplete="new-password" class="mono" data-testid="user-password" />
            <button type="button" class="btn small" onClick={() => setForm({ ...form, password: generatePassword() })} data-testid="user-generate">
              Generate
            </button>
          </span>
        </label>
        <button class="btn primary" type="submit" data-testid="user-create">
          Add user
        </button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
