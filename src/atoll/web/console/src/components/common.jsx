// Small shared widgets.
import { useState } from "preact/hooks";
import { copy } from "../util.js";

export function ErrorBox({ error, testid = "error" }) {
  if (!error) return null;
  const details = error.details;
  const code = error.code ?? (typeof error.error === "string" ? error.error : null);
  return (
    <div class="error-box" role="alert" data-testid={testid}>
      <strong>{code ? `${code}: ` : ""}</strong>
      {error.message || String(error)}
      {error.hint && <div class="hint">Hint: {error.hint}</div>}
      {Array.isArray(details) && details.length > 0 && (
        <ul>
          {details.map((d, i) => (
            <li key={i}>{typeof d === "string" ? d : `${(d.loc || d.path || []).join ? (d.loc || d.path || []).join(".") : d.loc || d.path || ""}: ${d.msg || d.message || JSON.stringify(d)}`}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function CopyBlock({ label, text, testid }) {
  const [done, setDone] = useState(false);
  return (
    <div class="copy-block">
      <div class="copy-head">
        <span>{label}</span>
        <button
          class="btn small"
          onClick={() => copy(text).then(() => {
            setDone(true);
            setTimeout(() => setDone(false), 1200);
          })}
        >
          {done ? "Copied" : "Copy"}
        </button>
      </div>
      <pre data-testid={testid}>{text}</pre>
    </div>
  );
}

export function Dot({ state, title }) {
  return <span class={`dot ${state}`} title={title || state} />;
}

export function Severity({ value }) {
  const v = (value || "info").toLowerCase();
  return <span class={`sev sev-${v}`}>{v}</span>;
}

export function Empty({ children }) {
  return <div class="empty">{children}</div>;
}

export function Spinner() {
  return <span class="spinner" aria-label="loading" />;
}

// The header row of a table.grid; an empty string leaves a column (actions) unnamed.
export function TableHead({ cols }) {
  return (
    <thead>
      <tr>
        {cols.map((c, i) => (
          <th key={i}>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

// A panel that asks for its data only once opened (its children mount then), so a page's
// first view costs only its own requests; open or closed is remembered per `id`.
export function Fold({ id, title, hint, children }) {
  const key = `atoll.fold.${id}`;
  const [open, setOpen] = useState(() => localStorage.getItem(key) === "1");
  const toggle = () => {
    localStorage.setItem(key, open ? "0" : "1");
    setOpen(!open);
  };
  return (
    <div class={`fold ${open ? "open" : ""}`} data-testid={`fold-${id}`}>
      <button class="fold-head" aria-expanded={open} data-testid={`fold-${id}-toggle`} onClick={toggle}>
        <span class="fold-arrow">{open ? "▾" : "▸"}</span> {title}
        {hint && !open && <span class="muted small"> {hint}</span>}
      </button>
      {open && children}
    </div>
  );
}
