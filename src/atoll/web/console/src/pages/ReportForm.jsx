// Define or change a scheduled report (PUT /projects/{p}/reports/{id}). The server checks the
// definition (cron, time zone, durations, channels) and its message is shown as is.
import { useState } from "preact/hooks";
import { api, enc, items } from "../api.js";
import { useAsync } from "../util.js";
import { ErrorBox } from "../components/common.jsx";

const AGGS = ["min", "avg", "max", "count", "first", "last"];

function slug(name) {
  return name.toLowerCase().replace(/[^a-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "");
}

// Durations come back in seconds; the form speaks the API's own "1d" / "1h" / "15m".
function dur(sec) {
  for (const [unit, n] of [["d", 86400], ["h", 3600], ["m", 60]]) if (sec % n === 0) return `${sec / n}${unit}`;
  return `${sec}s`;
}

export function emptyReport() {
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  return { id: "", name: "", format: "csv", cron: "0 7 * * *", timezone: tz, period: "1d", bucket: "1h", aggs: ["min", "avg", "max"], series: [], include_alarms: true, channels: [], enabled: true };
}

export function fromSpec(r) {
  return { ...r, period: dur(r.period), bucket: dur(r.bucket) };
}

export function ReportForm({ project, initial, onSaved, onCancel }) {
  const [f, setF] = useState(initial);
  const [error, setError] = useState(null);
  const editing = !!initial.id;
  // What can be reported: every series holding data, and the project's channels.
  const series = useAsync(async () => (await api.get(`/projects/${enc(project)}/latest`)).map((r) => `${r.device}/${r.metric}`), [project]);
  const channels = useAsync(async () => items(await api.get(`/projects/${enc(project)}/channels`)).map((c) => c.name), [project]);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const toggle = (k, v) => setF({ ...f, [k]: f[k].includes(v) ? f[k].filter((x) => x !== v) : [...f[k], v] });
  const picked = f.series.map((s) => `${s.device}/${s.metric}`);
  // Hundreds of series: a filter (every word must appear) and "pick all that match".
  const [seriesQ, setSeriesQ] = useState("");
  const words = seriesQ.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = (series.data || []).filter((s) => words.every((w) => s.toLowerCase().includes(w)));
  const pickAll = (list, on) => {
    const rest = f.series.filter((x) => !list.includes(`${x.device}/${x.metric}`));
    const add = on ? list.map((s) => ({ device: s.split("/")[0], metric: s.split("/").slice(1).join("/") })) : [];
    setF({ ...f, series: [...rest, ...add] });
  };

  async function save(e) {
    e.preventDefault();
    setError(null);
    const id = f.id || slug(f.name);
    const { id: _drop, project: _p, ...body } = f;
    try {
      const saved = await api.put(`/projects/${enc(project)}/reports/${enc(id)}`, body);
      onSaved(saved);
    } catch (err) {
      setError(err);
    }
  }

  return (
    <form class="panel pad report-form form-grid" onSubmit={save} data-testid="report-form">
      <div class="panel-head span2">
        <strong>{editing ? `Edit report ${f.id}` : "New report"}</strong>
      </div>
      <label>
        Name
        <input value={f.name} onInput={set("name")} required maxLength={200} data-testid="rf-name" />
      </label>
      <label>
        Format
        <select value={f.format} onChange={set("format")} data-testid="rf-format">
          <option value="csv">CSV</option>
          <option value="pdf">PDF (tables and charts)</option>
        </select>
      </label>
      <label>
        Schedule (cron)
        <input value={f.cron} onInput={set("cron")} required class="mono" data-testid="rf-cron" />
      </label>
      <label>
        Time zone
        <input value={f.timezone} onInput={set("timezone")} required data-testid="rf-timezone" />
      </label>
      <label>
        Window (ends at run time)
        <input value={f.period} onInput={set("period")} required class="mono" placeholder="1d" data-testid="rf-period" />
      </label>
      <label>
        Bucket
        <input value={f.bucket} onInput={set("bucket")} required class="mono" placeholder="1h" data-testid="rf-bucket" />
      </label>
      <fieldset class="span2">
        <legend>Series</legend>
        <div class="series-pick">
          <input placeholder="Filter device/metric…" value={seriesQ} onInput={(e) => setSeriesQ(e.currentTarget.value)} data-testid="rf-series-filter" />
          <span class="muted small" data-testid="rf-series-count">
            {picked.length} of {(series.data || []).length} picked{seriesQ ? `, ${shown.length} match` : ""}
          </span>
          {seriesQ && shown.length > 0 && (
            <button type="button" class="btn small" onClick={() => pickAll(shown, !shown.every((s) => picked.includes(s)))} data-testid="rf-series-all">
              {shown.every((s) => picked.includes(s)) ? "Unpick" : "Pick"} all {shown.length}
            </button>
          )}
        </div>
        <div class="series-list">
        {shown.slice(0, 200).map((s) => (
          <label class="check" key={s}>
            <input
              type="checkbox"
              checked={picked.includes(s)}
              onChange={() => {
                const [device, ...rest] = s.split("/");
                const metric = rest.join("/");
                setF({ ...f, series: picked.includes(s) ? f.series.filter((x) => `${x.device}/${x.metric}` !== s) : [...f.series, { device, metric }] });
              }}
              data-series={s}
            />
            <span class="mono small">{s}</span>
          </label>
        ))}
        </div>
        {shown.length > 200 && <span class="muted small">{shown.length - 200} more: narrow the filter.</span>}
        {series.data && !series.data.length && <span class="muted small">No series hold data yet.</span>}
      </fieldset>
      <fieldset>
        <legend>Aggregates per bucket</legend>
        {AGGS.map((a) => (
          <label class="check" key={a}>
            <input type="checkbox" checked={f.aggs.includes(a)} onChange={() => toggle("aggs", a)} /> {a}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>Send to</legend>
        {(channels.data || []).map((c) => (
          <label class="check" key={c}>
            <input type="checkbox" checked={f.channels.includes(c)} onChange={() => toggle("channels", c)} data-channel={c} /> <span class="mono">{c}</span>
          </label>
        ))}
        {channels.data && !channels.data.length && <span class="muted small">No channels: the report is run and downloaded here; add a channel on the Rules page to have it sent.</span>}
      </fieldset>
      <label class="check">
        <input type="checkbox" checked={f.include_alarms} onChange={set("include_alarms")} data-testid="rf-alarms" /> Alarms of the period
      </label>
      <label class="check">
        <input type="checkbox" checked={f.enabled} onChange={set("enabled")} /> Enabled (runs on schedule)
      </label>
      <div class="span2">
        <ErrorBox error={error} testid="rf-error" />
      </div>
      <div class="btn-row span2">
        <button class="btn primary" type="submit" data-testid="rf-save">
          {editing ? "Save report" : "Create report"}
        </button>
        <button class="btn ghost" type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
