// Onboarding: one-time invite links (make, list, revoke, accept), a new enterprise with its
// first admin invited, and changing your own password. An invite's token is in the API's
// answer and nowhere else, so its link is shown once, like a device secret. The link carries
// the token after '#', which browsers never send to a server (no access log holds it).
import { useState } from "preact/hooks";
import { api, enc, getSession, setSession, toSeconds } from "../api.js";
import { navigate } from "../router.jsx";
import { fmtTime, useAsync } from "../util.js";
import { CopyBlock, Empty, ErrorBox, TableHead } from "../components/common.jsx";

const ROLES = ["viewer", "operator", "admin"];
const TTLS = [
  ["1 day", 24],
  ["7 days", 168],
  ["30 days", 720],
];

export const inviteLink = (path) => `${location.origin}${path}`;

function NewLink({ made, onDone }) {
  return (
    <div class="new-secret" data-testid="new-invite">
      <p class="warn-line">
        Send this link to {made.invite.username}: it works once, until {fmtTime(toSeconds(made.invite.expires_at))}, and is not shown again. They open it, set a password and are logged in as {made.invite.role}.
      </p>
      <CopyBlock label={`Invite link for ${made.invite.username}`} text={inviteLink(made.path)} testid="invite-link" />
      <button class="btn small" onClick={onDone} data-testid="new-invite-done">
        Done
      </button>
    </div>
  );
}

// The invites of one tenant. `tenant`: the platform admin's enterprise page names it; an
// enterprise admin's own tenant otherwise.
export function Invites({ tenant }) {
  const opts = tenant ? { tenant } : undefined;
  const list = useAsync(() => api.get("/invites", undefined, opts), [tenant]);
  const [form, setForm] = useState({ username: "", role: "operator", ttl_hours: 168 });
  const [made, setMade] = useState(null);
  const [error, setError] = useState(null);

  async function create(e) {
    e.preventDefault();
    setError(null);
    try {
      setMade(await api.post("/invites", { ...form, ttl_hours: Number(form.ttl_hours) }, opts));
      setForm({ ...form, username: "" });
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function revoke(i) {
    if (!confirm(`Revoke the invite of ${i.username}? Its link stops working.`)) return;
    setError(null);
    try {
      await api.del(`/invites/${enc(i.id)}`, opts);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  const rows = (list.data || []).slice().reverse();
  return (
    <section class="panel pad" data-testid="invites">
      <div class="panel-head">
        <strong>Invites</strong>
      </div>
      <ErrorBox error={list.error} />
      {rows.length ? (
        <table class="grid" data-testid="invite-table">
          <TableHead cols={["User", "Role", "State", "Expires", "Invited by", ""]} />
          <tbody>
            {rows.map((i) => (
              <tr key={i.id} data-invite={i.username} class={i.state === "pending" ? "" : "muted"}>
                <td>{i.username}</td>
                <td>
                  <span class={`tag role-${i.role}`}>{i.role}</span>
                </td>
                <td class="small" data-testid="invite-state">
                  {i.state}
                </td>
                <td class="small">{fmtTime(toSeconds(i.expires_at))}</td>
                <td class="small">{i.created_by}</td>
                <td>
                  {i.state === "pending" && (
                    <button class="btn small danger" onClick={() => revoke(i)} data-testid="invite-revoke">
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        list.data && <Empty>No invites yet.</Empty>
      )}
      {made && <NewLink made={made} onDone={() => setMade(null)} />}
      <h3>Invite a user</h3>
      <form class="inline-form" onSubmit={create} data-testid="invite-form">
        <label>
          User name
          <input value={form.username} onInput={(e) => setForm({ ...form, username: e.currentTarget.value })} required maxLength={200} autocomplete="off" data-testid="invite-name" />
        </label>
        <label>
          Role
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.currentTarget.value })} data-testid="invite-role">
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Link works for
          <select value={form.ttl_hours} onChange={(e) => setForm({ ...form, ttl_hours: e.currentTarget.value })} data-testid="invite-ttl">
            {TTLS.map(([label, h]) => (
              <option key={h} value={h}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button class="btn primary" type="submit" data-testid="invite-create">
          Make invite link
        </button>
      </form>
      <ErrorBox error={error} testid="invite-error" />
    </section>
  );
}

// The platform admin's "New enterprise": the tenant, then an invite for its first admin.
export function NewEnterprise({ onCreated }) {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ name: "", id: "", admin: "admin" });
  const [made, setMade] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function create(e) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const t = await api.post("/tenants", { name: form.name, ...(form.id ? { id: form.id } : {}) }, { tenant: "" });
      const inv = await api.post("/invites", { username: form.admin, role: "admin" }, { tenant: t.tenant.id });
      setMade({ ...inv, tenant: t.tenant });
      setForm({ name: "", id: "", admin: "admin" });
      onCreated?.();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (!open && !made)
    return (
      <button class="btn primary" onClick={() => setOpen(true)} data-testid="new-enterprise">
        + New enterprise
      </button>
    );
  return (
    <section class="panel pad new-enterprise" data-testid="new-enterprise-panel">
      {made ? (
        <>
          <p>
            Enterprise <strong>{made.tenant.name}</strong> (<span class="mono">{made.tenant.id}</span>) created.
          </p>
          <NewLink
            made={made}
            onDone={() => {
              setMade(null);
              setOpen(false);
            }}
          />
        </>
      ) : (
        <form class="inline-form" onSubmit={create} data-testid="enterprise-form">
          <label>
            Name
            <input value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} required maxLength={200} data-testid="enterprise-name" />
          </label>
          <label>
            Id (optional)
            <input value={form.id} onInput={(e) => setForm({ ...form, id: e.currentTarget.value })} maxLength={64} placeholder="e.g. acme" class="mono" data-testid="enterprise-id" />
          </label>
          <label>
            Admin user name
            <input value={form.admin} onInput={(e) => setForm({ ...form, admin: e.currentTarget.value })} required maxLength={200} data-testid="enterprise-admin" />
          </label>
          <button class="btn primary" type="submit" disabled={busy} data-testid="enterprise-create">
            Create and invite admin
          </button>
          <button type="button" class="btn ghost" onClick={() => setOpen(false)}>
            Cancel
          </button>
        </form>
      )}
      <ErrorBox error={error} testid="enterprise-error" />
    </section>
  );
}

// /invite#<token>: the invitee sets a password and is logged in. No session needed.
export function AcceptInvite() {
  const token = decodeURIComponent(location.hash.slice(1));
  const info = useAsync(() => (token ? api.post("/auth/invite", { token }, { tenant: "" }) : Promise.reject(new Error("this link has no invite token"))), [token]);
  const [pw, setPw] = useState({ password: "", again: "" });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function accept(e) {
    e.preventDefault();
    setError(null);
    if (pw.password !== pw.again) return setError(new Error("the two passwords differ"));
    setBusy(true);
    try {
      const r = await api.post("/auth/invite/accept", { token, password: pw.password }, { tenant: "" });
      navigate("/", { replace: true }); // first: the shell that setSession draws reads the path
      setSession({ token: r.token, user: r.username, role: r.role, tenant: r.tenant });
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const i = info.data;
  return (
    <div class="login-wrap">
      <form class="login panel" onSubmit={accept} data-testid="invite-accept">
        <div class="brand big">
          <span class="logo" /> Atoll
        </div>
        {info.error && <ErrorBox error={info.error} testid="invite-invalid" />}
        {i && (
          <>
            <p data-testid="invite-welcome">
              You are invited to <strong>{i.tenant_name}</strong> as <strong>{i.role}</strong>. Your user name is <code>{i.username}</code>.
            </p>
            {getSession() && (
              <p class="muted small" data-testid="invite-signed-in">
                You are signed in as {getSession().user}; accepting signs you in as {i.username} instead.
              </p>
            )}
            <input type="text" name="username" autocomplete="username" value={i.username} hidden readOnly />
            <label>
              Password (at least 10 characters)
              <input type="password" autocomplete="new-password" value={pw.password} onInput={(e) => setPw({ ...pw, password: e.currentTarget.value })} required data-testid="invite-password" />
            </label>
            <label>
              Password again
              <input type="password" autocomplete="new-password" value={pw.again} onInput={(e) => setPw({ ...pw, again: e.currentTarget.value })} required data-testid="invite-password-again" />
            </label>
            <ErrorBox error={error} />
            <button class="btn primary" type="submit" disabled={busy} data-testid="invite-submit">
              Set password and sign in
            </button>
            <p class="muted small">The link works once; it expires {fmtTime(toSeconds(i.expires_at))}.</p>
          </>
        )}
      </form>
    </div>
  );
}

// /account: change your own password (console users; API keys have none).
export function Account() {
  const s = getSession();
  const [form, setForm] = useState({ current: "", next: "", again: "" });
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);

  async function change(e) {
    e.preventDefault();
    setError(null);
    setDone(false);
    if (form.next !== form.again) return setError(new Error("the two new passwords differ"));
    try {
      await api.post("/auth/password", { current_password: form.current, new_password: form.next });
      setForm({ current: "", next: "", again: "" });
      setDone(true);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <div class="page">
      <div class="page-head">
        <h1>Account</h1>
        <span class="muted">{s?.user}</span>
      </div>
      <section class="panel pad narrow" data-testid="password-panel">
        <h3>Change password</h3>
        <p class="muted small">At least 10 characters, not the current one. Your other sessions (other browsers, CLI logins) end; this one goes on.</p>
        <form class="stack-form" onSubmit={change} data-testid="password-form">
          <input type="text" name="username" autocomplete="username" value={s?.user || ""} hidden readOnly />
          <label>
            Current password
            <input type="password" autocomplete="current-password" value={form.current} onInput={(e) => setForm({ ...form, current: e.currentTarget.value })} required data-testid="password-current" />
          </label>
          <label>
            New password
            <input type="password" autocomplete="new-password" value={form.next} onInput={(e) => setForm({ ...form, next: e.currentTarget.value })} required data-testid="password-new" />
          </label>
          <label>
            New password again
            <input type="password" autocomplete="new-password" value={form.again} onInput={(e) => setForm({ ...form, again: e.currentTarget.value })} required data-testid="password-again" />
          </label>
          <ErrorBox error={error} testid="password-error" />
          {done && (
            <p class="ok-line" data-testid="password-done">
              Password changed. Your other sessions have ended.
            </p>
          )}
          <button class="btn primary" type="submit" data-testid="password-submit">
            Change password
          </button>
        </form>
      </section>
    </div>
  );
}

const QUOTAS = [
  ["devices", "Devices"],
  ["api_keys", "API keys"],
  ["storage_points", "Stored points"],
];

// An enterprise's quotas as usage bars (used / limit); the platform admin sets them here.
// `initial`: the quotas as the enterprise page's one request brought them (GET
// /lab/enterprises/{t}); they are asked for again only after a change.
export function Quotas({ tenant, editable, rate, initial }) {
  const opts = { tenant: "" }; // the tenant is in the path
  const [changed, setChanged] = useState(0);
  const q = useAsync(() => (initial && !changed ? Promise.resolve(initial) : api.get(`/tenants/${enc(tenant)}/quotas`, undefined, opts)), [tenant, changed, initial]);
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);

  async function save(e) {
    e.preventDefault();
    setError(null);
    const body = {};
    for (const [k] of QUOTAS) body[k] = form[k] === "" ? null : Number(form[k]);
    body.ingest_rate = form.ingest_rate === "" ? null : Number(form.ingest_rate);
    try {
      await api.put(`/tenants/${enc(tenant)}/quotas`, body, opts);
      setForm(null);
      setChanged((n) => n + 1);
    } catch (err) {
      setError(err);
    }
  }

  const d = q.data;
  return (
    <section class="panel pad quotas" data-testid="quotas">
      <div class="panel-head">
        <strong>Quotas</strong>
        <span class="grow" />
        {editable && d && !form && (
          <button class="btn small" onClick={() => setForm({ ...Object.fromEntries(QUOTAS.map(([k]) => [k, d[k].limit ?? ""])), ingest_rate: d.ingest_rate ?? "" })} data-testid="quota-edit">
            Set quotas
          </button>
        )}
      </div>
      <ErrorBox error={q.error} />
      {d && (
        <div class="quota-bars">
          {QUOTAS.map(([k, label]) => {
            const { used, limit } = d[k];
            const pct = limit ? Math.min(100, Math.round((100 * used) / limit)) : 0;
            const full = limit !== null && used >= limit;
            return (
              <div class="quota" key={k} data-quota={k}>
                <span class="quota-label">{label}</span>
                <span class={`bar ${full ? "full" : ""}`} title={limit === null ? "no limit" : `${pct}% used`}>
                  <span style={{ width: `${limit === null ? 0 : pct}%` }} />
                </span>
                <span class="mono small" data-testid="quota-usage">
                  {used.toLocaleString()} / {limit === null ? "no limit" : limit.toLocaleString()}
                </span>
              </div>
            );
          })}
          <div class="quota" data-quota="ingest_rate">
            <span class="quota-label">Ingest</span>
            <span class="bar" title={d.ingest_rate ? "points/s now, of the quota" : "the configured default applies"}>
              <span style={{ width: `${d.ingest_rate ? Math.min(100, Math.round((100 * (rate || 0)) / d.ingest_rate)) : 0}%` }} />
            </span>
            <span class="mono small" data-testid="quota-usage">
              {(rate || 0).toLocaleString()} / {d.ingest_rate === null ? "default" : d.ingest_rate.toLocaleString()} points/s
            </span>
          </div>
        </div>
      )}
      {form && (
        <form class="inline-form" onSubmit={save} data-testid="quota-form">
          {QUOTAS.map(([k, label]) => (
            <label key={k}>
              {label} (empty: no limit)
              <input type="number" min="0" step="1" value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} data-testid={`quota-${k}`} />
            </label>
          ))}
          <label>
            Ingest points/s (empty: default)
            <input type="number" min="0.1" step="any" value={form.ingest_rate} onInput={(e) => setForm({ ...form, ingest_rate: e.currentTarget.value })} data-testid="quota-ingest_rate" />
          </label>
          <button class="btn primary" type="submit" data-testid="quota-save">
            Save
          </button>
          <button type="button" class="btn ghost" onClick={() => setForm(null)}>
            Cancel
          </button>
        </form>
      )}
      <ErrorBox error={error} testid="quota-error" />
    </section>
  );
}
