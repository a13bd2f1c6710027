// Rule editor: a form for the common cases and YAML for everything (composites, schedules,
// escalation). Both edit the same object; the server validates and its errors are shown as-is.
import { useEffect, useState } from "preact/hooks";
import YAML from "yaml";
import { api, enc, items } from "../api.js";
import { currentProject, fmtDuration, useAsync, useDebounced } from "../util.js";
import { Empty, ErrorBox, Severity } from "../components/common.jsx";
import { Channels } from "./Channels.jsx";
import { can, useMe } from "../me.js";

const NEW_RULE = {
  name: "",
  severity: "major",
  enabled: true,
  target: { device_type: "" },
  condition: { type: "threshold", metric: "temperature", op: ">", value: 80, clear: 75, for: "0s" },
};

function ruleId(r) {
  return r.id ?? r.rule_id ?? r.name;
}

export function Rules() {
  const project = currentProject.use();
  const list = useAsync(async () => (project ? items(await api.get(`/projects/${enc(project)}/rules`)) : []), [project]);
  const [editing, setEditing] = useState(null); // {rule, isNew}
  const operator = can(useMe(), "operator");

  return (
    <div class="page rules">
      <div class="page-head">
        <h1>Rules</h1>
        <span class="muted">{project}</span>
        <span class="grow" />
        {operator && (
          <button class="btn primary" onClick={() => setEditing({ rule: structuredClone(NEW_RULE), isNew: true })} data-testid="rule-new">
            + New rule
          </button>
        )}
      </div>
      <div class="rules-grid">
        <div class="rules-left">
          <div class="panel">
            <ErrorBox error={list.error} />
            <table class="grid" data-testid="rule-table">
              <thead>
                <tr>
                  <th>Rule</th>
                  <th>Severity</th>
                  <th>Condition</th>
                  <th>Target</th>
                  <th>On</th>
                </tr>
              </thead>
              <tbody>
                {(list.data || []).map((r) => (
                  <tr key={ruleId(r)} class={`clickable ${editing && !editing.isNew && ruleId(editing.rule) === ruleId(r) ? "selected" : ""}`} onClick={() => setEditing({ rule: structuredClone(r), isNew: false })}>
                    <td>
                      <strong>{r.name}</strong>
                      <div class="muted small mono">{ruleId(r)}</div>
                    </td>
                    <td>
                      <Severity value={r.severity} />
                    </td>
                    <td class="mono small">{describe(r.condition)}</td>
                    <td class="small">{describeTarget(r.target)}</td>
                    <td>{r.enabled === false ? "off" : "on"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {list.data && !list.data.length && <Empty>No rules in this project yet.</Empty>}
          </div>
          <Channels project={project} operator={operator} />
        </div>
        {editing && (
          <RuleEditor
            key={editing.isNew ? "new" : ruleId(editing.rule)}
            project={project}
            initial={editing.rule}
            isNew={editing.isNew}
            operator={operator}
            justSaved={!!editing.saved}
            onSaved={(r) => {
              list.reload();
              setEditing({ rule: r, isNew: false, saved: true });
            }}
            onDeleted={() => {
              list.reload();
              setEditing(null);
            }}
            onClose={() => setEditing(null)}
          />
        )}
      </div>
    </div>
  );
}

// Durations come back from the API in seconds; "30s"-style strings are shown as typed.
export function dur(v) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v === "number") return fmtDuration(v);
  return String(v);
}

export function describe(c) {
  if (!c) return "";
  const f = c.for && c.for !== "0s" && c.for !== 0 ? ` for ${dur(c.for)}` : "";
  switch (c.type) {
    case "threshold":
      return `${c.metric} ${c.op} ${c.value}${c.clear != null ? ` (clear ${c.clear})` : ""}${f}`;
    case "rate":
      return `Δ${c.metric} per ${dur(c.per ?? 1)} ${c.op} ${c.value}${f}`;
    case "anomaly": {
      // Without a score threshold the detector's own decision counts.
      const when = c.value === null || c.value === undefined ? "flagged by its detector" : `score ≥ ${c.value}`;
      const k = c.min_count ? `, ${c.min_count}× in ${dur(c.window ?? 60)}` : "";
      return `anomaly(${c.metric ?? "any metric"}) ${when}${k}${f}`;
    }
    case "no_data":
      return `no data${c.metric ? ` on ${c.metric}` : ""} for ${dur(c.timeout)}`;
    case "forecast": {
      const side = c.below !== null && c.below !== undefined ? "below" : "above";
      return `forecast(${c.metric}) goes ${side} ${c[side]} within ${dur(c.within)}`;
    }
    case "all":
      return `ALL(${(c.conditions || []).map(describe).join(", ")})`;
    case "any":
      return `ANY(${(c.conditions || []).map(describe).join(", ")})`;
    default:
      return c.type;
  }
}

function describeTarget(t) {
  if (!t) return "";
  if (t.device) return `device ${t.device}`;
  if (t.devices) return `${t.devices.length} devices`;
  if (t.device_type) return `type ${t.device_type}`;
  return "";
}

function clean(obj) {
  // Drop empty strings and nulls so the YAML stays minimal and the server sees no noise.
  if (Array.isArray(obj)) return obj.map(clean);
  if (obj && typeof obj === "object") {
    const out = {};
    for (const [k, v] of Object.entries(obj)) if (v !== "" && v !== null && v !== undefined) out[k] = clean(v);
    return out;
  }
  return obj;
}

function RuleEditor({ project, initial, isNew, justSaved, onSaved, onDeleted, onClose, operator }) {
  const [rule, setRule] = useState(initial);
  const [mode, setMode] = useState("form");
  const [yamlText, setYamlText] = useState(() => YAML.stringify(clean(initial)));
  const [yamlErr, setYamlErr] = useState(null);
  const [error, setError] = useState(null);
  // A new rule re-opens as "edit <id>" after saving; it keeps the confirmation.
  const [saved, setSaved] = useState(justSaved);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (mode === "form") setYamlText(YAML.stringify(clean(rule)));
  }, [rule, mode]);

  // Ask the server while the user types: the same checks as saving, without saving.
  const draft = useDebounced(rule, 400);
  const [check, setCheck] = useState(null);
  useEffect(() => {
    if (!draft?.name || yamlErr) return setCheck(null);
    const ctl = new AbortController();
    const id = ruleId(initial);
    api
      .post(`/projects/${enc(project)}/rules/validate`, isNew ? clean(draft) : { ...clean(draft), id }, { signal: ctl.signal })
      .then(setCheck, () => setCheck(null));
    return () => ctl.abort();
  }, [draft, yamlErr]);

  const set = (path, value) => {
    setSaved(false);
    setRule((r) => {
      const next = structuredClone(r);
      let o = next;
      for (const k of path.slice(0, -1)) o = o[k] ??= {};
      o[path[path.length - 1]] = value;
      return next;
    });
  };
  const c = rule.condition || {};
  const t = rule.target || {};
  const targetKind = t.device !== undefined ? "device" : t.devices !== undefined ? "devices" : "device_type";
  // The project's declared device types and metrics, offered as choices (a typo is also named
  // by the server's check below, as a warning).
  const types = useAsync(async () => (project ? items(await api.get(`/projects/${enc(project)}/device-types`)) : []), [project]);
  const typeList = types.data || [];
  const ofType = typeList.find((x) => x.id === t.device_type);
  const metricChoices = [...new Set((ofType ? [ofType] : typeList).flatMap((x) => (x.metrics || []).map((m) => m.name)))];
  const num = (v) => (v === "" ? "" : Number(v));

  function onYaml(text) {
    setYamlText(text);
    setSaved(false);
    try {
      const doc = YAML.parse(text);
      if (doc && typeof doc === "object" && !Array.isArray(doc)) {
        setRule(doc);
        setYamlErr(null);
      } else setYamlErr("A rule is a YAML mapping (name, target, condition, …).");
    } catch (e) {
      setYamlErr(e.message);
    }
  }

  async function save(e) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const body = mode === "yaml" ? YAML.parse(yamlText) : clean(rule);
      const id = ruleId(initial);
      const r = isNew ? await api.post(`/projects/${enc(project)}/rules`, body) : await api.put(`/projects/${enc(project)}/rules/${enc(id)}`, body);
      setSaved(true);
      onSaved(r && r.condition ? r : body);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    if (!confirm(`Delete rule ${ruleId(initial)}?`)) return;
    try {
      await api.del(`/projects/${enc(project)}/rules/${enc(ruleId(initial))}`);
      onDeleted();
    } catch (err) {
      setError(err);
    }
  }

  const composite = c.type === "all" || c.type === "any";
  return (
    <form class="panel pad rule-editor" onSubmit={save} data-testid="rule-editor">
      <div class="panel-head">
        <strong>{isNew ? "New rule" : `Edit ${ruleId(initial)}`}</strong>
        <span class="grow" />
        <div class="tabs small">
          <button type="button" class={mode === "form" ? "active" : ""} onClick={() => setMode("form")} disabled={!!yamlErr}>
            Form
          </button>
          <button type="button" class={mode === "yaml" ? "active" : ""} onClick={() => setMode("yaml")} data-testid="rule-yaml-tab">
            YAML
          </button>
        </div>
        <button type="button" class="btn small ghost" onClick={onClose}>
          ✕
        </button>
      </div>
      {mode === "form" ? (
        <div class="form-grid">
          <label class="span2">
            Name
            <input value={rule.name || ""} onInput={(e) => set(["name"], e.currentTarget.value)} required data-testid="rule-name" />
          </label>
          <label>
            Severity
            <select value={rule.severity || "major"} onChange={(e) => set(["severity"], e.currentTarget.value)} data-testid="rule-severity">
              {["critical", "major", "minor", "warning", "info"].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label class="check">
            <input type="checkbox" checked={rule.enabled !== false} onChange={(e) => set(["enabled"], e.currentTarget.checked)} /> Enabled
          </label>
          <label>
            Applies to
            <select
              value={targetKind}
              onChange={(e) => set(["target"], { [e.currentTarget.value]: e.currentTarget.value === "devices" ? [] : "" })}
              data-testid="rule-target-kind"
            >
              <option value="device">one device</option>
              <option value="devices">a list of devices</option>
              <option value="device_type">every device of a type</option>
            </select>
          </label>
          <label>
            {targetKind === "devices" ? "Devices (comma-separated)" : targetKind === "device" ? "Device id" : "Device type"}
            <input
              value={targetKind === "devices" ? (t.devices || []).join(", ") : t[targetKind] || ""}
              onInput={(e) => {
                const v = e.currentTarget.value;
                set(["target"], { [targetKind]: targetKind === "devices" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v });
              }}
              data-testid="rule-target"
              list={targetKind === "device_type" ? "rule-type-choices" : undefined}
            />
            <datalist id="rule-type-choices">
              {typeList.map((x) => (
                <option key={x.id} value={x.id}>
                  {x.name}
                </option>
              ))}
            </datalist>
          </label>
          <label>
            Condition
            <select
              value={c.type}
              onChange={(e) => {
                const type = e.currentTarget.value;
                const base = { threshold: { op: ">", value: 0 }, rate: { op: ">", value: 0, per: "1s" }, anomaly: { value: 0.8 }, no_data: { timeout: "5m" }, forecast: { above: 0, within: "1h", every: "5m", confirm: 2 }, all: { conditions: [c] }, any: { conditions: [c] } }[type];
                set(["condition"], { type, ...(c.metric && !["all", "any"].includes(type) ? { metric: c.metric } : {}), ...base });
              }}
              data-testid="rule-condition-type"
            >
              <option value="threshold">threshold</option>
              <option value="rate">rate of change</option>
              <option value="anomaly">anomaly score</option>
              <option value="no_data">no data (heartbeat)</option>
              <option value="forecast">forecast crosses a line</option>
              <option value="all">ALL of (composite)</option>
              <option value="any">ANY of (composite)</option>
            </select>
          </label>
          {!composite && (
            <label>
              Metric{c.type === "anomaly" || c.type === "no_data" ? " (optional)" : ""}
              <input value={c.metric || ""} onInput={(e) => set(["condition", "metric"], e.currentTarget.value)} list="rule-metric-choices" data-testid="rule-metric" />
              <datalist id="rule-metric-choices" data-testid="rule-metric-choices">
                {metricChoices.map((m) => (
                  <option key={m} value={m} />
                ))}
              </datalist>
            </label>
          )}
          {(c.type === "threshold" || c.type === "rate") && (
            <label>
              Operator
              <select value={c.op || ">"} onChange={(e) => set(["condition", "op"], e.currentTarget.value)} data-testid="rule-op">
                {[">", ">=", "<", "<="].map((o) => (
                  <option key={o}>{o}</option>
                ))}
              </select>
            </label>
          )}
          {(c.type === "threshold" || c.type === "rate" || c.type === "anomaly") && (
            <>
              <label>
                {c.type === "anomaly" ? "Score ≥ (0–1)" : "Value"}
                <input type="number" step="any" value={c.value ?? ""} onInput={(e) => set(["condition", "value"], num(e.currentTarget.value))} data-testid="rule-value" />
              </label>
              <label>
                Clear at (hysteresis)
                <input type="number" step="any" value={c.clear ?? ""} onInput={(e) => set(["condition", "clear"], num(e.currentTarget.value))} data-testid="rule-clear" />
              </label>
            </>
          )}
          {c.type === "rate" && (
            <>
              <label>
                Per
                <input value={c.per ?? "1s"} onInput={(e) => set(["condition", "per"], e.currentTarget.value)} />
              </label>
              <label class="check">
                <input type="checkbox" checked={!!c.absolute} onChange={(e) => set(["condition", "absolute"], e.currentTarget.checked)} /> either direction
              </label>
            </>
          )}
          {c.type === "no_data" && (
            <label>
              Timeout
              <input value={c.timeout ?? ""} onInput={(e) => set(["condition", "timeout"], e.currentTarget.value)} data-testid="rule-timeout" />
            </label>
          )}
          {c.type === "forecast" && (
            <>
              <label>
                Crosses
                <select
                  value={c.below !== null && c.below !== undefined ? "below" : "above"}
                  onChange={(e) => {
                    const { above, below, ...rest } = c;
                    set(["condition"], { ...rest, [e.currentTarget.value]: above ?? below ?? 0 });
                  }}
                  data-testid="rule-forecast-side"
                >
                  <option value="above">going above</option>
                  <option value="below">going below</option>
                </select>
              </label>
              <label>
                Line
                <input
                  type="number"
                  step="any"
                  value={c.below ?? c.above ?? ""}
                  onInput={(e) => set(["condition", c.below !== null && c.below !== undefined ? "below" : "above"], num(e.currentTarget.value))}
                  data-testid="rule-forecast-line"
                />
              </label>
              <label>
                Within (horizon)
                <input value={c.within ?? ""} placeholder="e.g. 40m, 2h" onInput={(e) => set(["condition", "within"], e.currentTarget.value)} data-testid="rule-forecast-within" />
              </label>
              <label>
                Forecast every
                <input value={c.every ?? ""} placeholder="5m" onInput={(e) => set(["condition", "every"], e.currentTarget.value)} />
              </label>
              <label>
                Evaluations in a row to raise or clear
                <input type="number" min="1" max="20" value={c.confirm ?? 2} onInput={(e) => set(["condition", "confirm"], num(e.currentTarget.value))} />
              </label>
            </>
          )}
          {!composite && c.type !== "no_data" && c.type !== "forecast" && (
            <label>
              For (hold time)
              <input value={c.for ?? ""} placeholder="e.g. 30s, 5m" onInput={(e) => set(["condition", "for"], e.currentTarget.value)} data-testid="rule-for" />
            </label>
          )}
          {composite && <p class="muted small span2">Composite conditions are edited in YAML: {describe(c)}</p>}
          <label class="span2">
            Notify channels (comma-separated)
            <input
              value={(rule.notify?.channels || []).join(", ")}
              onInput={(e) => set(["notify", "channels"], e.currentTarget.value.split(",").map((s) => s.trim()).filter(Boolean))}
            />
          </label>
          <label class="span2">
            Description
            <input value={rule.description || ""} onInput={(e) => set(["description"], e.currentTarget.value)} />
          </label>
        </div>
      ) : (
        <div>
          <textarea class="mono yaml" rows={18} value={yamlText} onInput={(e) => onYaml(e.currentTarget.value)} spellcheck={false} data-testid="rule-yaml" />
          {yamlErr && <div class="error-box small">YAML: {yamlErr}</div>}
          <p class="muted small">Schedules, escalation and composite conditions: see docs/RULES.md.</p>
        </div>
      )}
      {check && !error && (check.valid ? (
        check.warnings?.length ? (
          <div class="warn-box small" data-testid="rule-warnings">
            {check.warnings.map((w) => (
              <div key={w}>⚠ {w}</div>
            ))}
          </div>
        ) : (
          <p class="ok small" data-testid="rule-valid">✓ valid</p>
        )
      ) : (
        <ErrorBox error={check.error} testid="rule-invalid" />
      ))}
      <ErrorBox error={error} testid="rule-error" />
      {saved && (
        <p class="ok small" data-testid="rule-saved">
          Saved. The platform evaluates it on every new reading.
        </p>
      )}
      {operator && (
      <div class="btn-row">
        <button class="btn primary" type="submit" disabled={busy} data-testid="rule-save">
          {busy ? "Saving…" : isNew ? "Create rule" : "Save"}
        </button>
        {!isNew && (
          <button type="button" class="btn danger" onClick={remove}>
            Delete
          </button>
        )}
      </div>
      )}
    </form>
  );
}
