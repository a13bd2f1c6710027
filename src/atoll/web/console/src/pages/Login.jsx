import { useState } from "preact/hooks";
import { api, setSession } from "../api.js";
import { ErrorBox } from "../components/common.jsx";

// Console users log in with name + password; the API answers with a session API key.
// An existing API key (e.g. the bootstrap admin key) works too.
export function Login() {
  const [mode, setMode] = useState("password");
  const [username, setUsername] = useState("admin");
  const [password, setPassword] = useState("");
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === "password") {
        const r = await api.post("/auth/login", { username, password });
        const token = r.api_key || r.token || r.key || r.access_token;
        if (!token) throw new Error("login answered without a key");
        setSession({ token, user: r.user?.username || r.username || username, role: r.role || r.user?.role, tenant: r.tenant || r.tenant_id || r.user?.tenant });
      } else {
        setSession({ token: key.trim(), user: "api key" });
        // Checks the key, and keeps its role so pages know which buttons to draw.
        const me = await api.get("/auth/me");
        setSession({ token: key.trim(), user: me.name || "api key", role: me.role, tenant: me.tenant });
      }
    } catch (err) {
      if (mode === "key") setSession(null);
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="login-wrap">
      <form class="login panel" onSubmit={submit} data-testid="login-form">
        <div class="brand big">
          <span class="logo" /> Atoll
        </div>
        <p class="muted">Sign in to the console.</p>
        <div class="tabs small">
          <button type="button" class={mode === "password" ? "active" : ""} onClick={() => setMode("password")}>
            User
          </button>
          <button type="button" class={mode === "key" ? "active" : ""} onClick={() => setMode("key")}>
            API key
          </button>
        </div>
        {mode === "password" ? (
          <>
            <label>
              User name
              <input name="username" autocomplete="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} required />
            </label>
            <label>
              Password
              <input name="password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
            </label>
          </>
        ) : (
          <label>
            API key
            <input name="api_key" value={key} onInput={(e) => setKey(e.currentTarget.value)} required />
          </label>
        )}
        <ErrorBox error={error} />
        <button class="btn primary" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="muted small">The first `atoll up` prints the admin user's password once.</p>
        {/* Usernames chosen in a tenant live in its namespace (see docs/API.md, "Ids"). */}
        <p class="muted small" data-testid="login-tenant-hint">
          Users of an enterprise other than the default one sign in as <code>enterprise~name</code>, e.g. <code>acme~alice</code>.
        </p>
      </form>
    </div>
  );
}
