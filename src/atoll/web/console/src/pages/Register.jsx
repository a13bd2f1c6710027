// Device registration: the secret is in the API's answer and nowhere else, so this page shows
// it once, with copy-paste examples that work as they are.
import { useState } from "preact/hooks";
import { api, enc, items } from "../api.js";
import { Link } from "../router.jsx";
import { currentProject, useAsync } from "../util.js";
import { CopyBlock, Empty, ErrorBox } from "../components/common.jsx";
import { can, useMe } from "../me.js";

export function examples({ device, secret, mqttHost, mqttPort, httpBase, metric = "temperature" }) {
  const topic = `atoll/v1/devices/${device}/telemetry`;
  const body = `{"values": {"${metric}": 21.5}}`;
  return {
    mqtt: `mosquitto_pub -h ${mqttHost} -p ${mqttPort} -q 1 \\\n  -i ${device} -u ${device} -P '${secret}' \\\n  -t ${topic} \\\n  -m '${body}'`,
    curl: `curl -u '${device}:${secret}' \\\n  -H 'Content-Type: application/json' \\\n  -d '${body}' \\\n  ${httpBase}/api/v1/ingest/telemetry`,
    python: `import atoll\n\ndevice = atoll.DeviceClient("${httpBase}", "${device}", "${secret}")\ndevice.send({"${metric}": 21.5})\n`,
    paho: `import json\nimport paho.mqtt.client as mqtt\n\nc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="${device}")\nc.username_pw_set("${device}", "${secret}")\nc.connect("${mqttHost}", ${mqttPort})\nc.loop_start()\nc.publish("${topic}", json.dumps({"values": {"${metric}": 21.5}}), qos=1).wait_for_publish()\n`,
  };
}

export function Register() {
  const project = currentProject.use();
  const types = useAsync(async () => (project ? items(await api.get(`/projects/${enc(project)}/device-types`)) : []), [project]);
  const info = useAsync(() => api.get("/console/info").catch(() => ({})), []);
  const [form, setForm] = useState({ id: "", name: "", type: "", gateway: false });
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const [busy, setBusy] = useState(false);
  const me = useMe();

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { id: form.id || undefined, name: form.name || undefined, device_type: form.type || undefined, kind: form.gateway ? "gateway" : undefined };
      const r = await api.post(`/projects/${enc(project)}/devices`, body);
      const device = r.device?.id ?? r.id ?? r.device_id ?? form.id;
      const secret = r.secret ?? r.credentials?.secret;
      setCreated({ device, secret, gateway: (r.device?.kind ?? body.kind) === "gateway" });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (created) {
    const i = info.data || {};
    const mqtt = i.mqtt || {};
    // A broker bound to every interface is reached the way the browser reached the API.
    const metric = (types.data || []).find((t) => (t.id ?? t.type_id) === form.type)?.metrics?.[0]?.name;
    const ex = examples({
      device: created.device,
      secret: created.secret,
      mqttHost: mqtt.host && !["0.0.0.0", "::"].includes(mqtt.host) ? mqtt.host : location.hostname,
      mqttPort: mqtt.port ?? 1883,
      httpBase: location.origin,
      metric,
    });
    return (
      <div class="page register">
        <div class="page-head">
          <h1>Device registered</h1>
        </div>
        <div class="panel pad creds" data-testid="credentials">
          <p class="warn-line">
            Copy the secret now. Atoll stores only its hash and will not show it again (you can rotate it on the device page).
          </p>
          <div class="kv">
            <span>Device id</span>
            <code data-testid="cred-device">{created.device}</code>
            <span>Secret</span>
            <code data-testid="cred-secret">{created.secret}</code>
          </div>
          {created.gateway && (
            <p class="muted small" data-testid="gateway-note">
              A gateway: it sends its child devices' readings on <code>atoll/v1/devices/{created.device}/gateway/telemetry</code> as <code>{'{"child-id": {"values": {...}}}'}</code>, and declares new children on <code>…/gateway/connect</code> (docs/DEVICES.md, "Gateways"). The examples below send its own readings.
            </p>
          )}
          <CopyBlock label="MQTT (mosquitto_pub)" text={ex.mqtt} testid="ex-mqtt" />
          <CopyBlock label="HTTP (curl)" text={ex.curl} testid="ex-curl" />
          <CopyBlock label="Python SDK" text={ex.python} testid="ex-python" />
          <CopyBlock label="Python (paho-mqtt)" text={ex.paho} testid="ex-paho" />
          <div class="btn-row">
            <Link class="btn primary" href={`/devices/${enc(created.device)}`} data-testid="goto-device">
              Open device page →
            </Link>
            <button
              class="btn"
              onClick={() => {
                setCreated(null);
                setForm({ id: "", name: "", type: form.type, gateway: false });
              }}
            >
              Register another
            </button>
          </div>
        </div>
      </div>
    );
  }

  if (me && !can(me, "operator"))
    return (
      <div class="page register">
        <Empty>Registering devices needs the operator role; yours is {me.role}.</Empty>
      </div>
    );
  return (
    <div class="page register">
      <div class="page-head">
        <h1>Register a device</h1>
        <span class="muted">in project {project}</span>
      </div>
      <form class="panel pad narrow" onSubmit={submit} data-testid="register-form">
        <label>
          Device id
          <input value={form.id} placeholder="e.g. boiler-17 (blank: generated)" pattern="[A-Za-z0-9][A-Za-z0-9_.\-]*" onInput={(e) => setForm({ ...form, id: e.currentTarget.value })} data-testid="reg-id" />
        </label>
        <label>
          Name
          <input value={form.name} placeholder="optional" onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} data-testid="reg-name" />
        </label>
        <label>
          Device type
          <select value={form.type} onChange={(e) => setForm({ ...form, type: e.currentTarget.value })} data-testid="reg-type">
            <option value="">(none: accept any metric)</option>
            {(types.data || []).map((t) => (
              <option key={t.id} value={t.id}>
                {t.name || t.id}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={form.gateway} onChange={(e) => setForm({ ...form, gateway: e.currentTarget.checked })} data-testid="reg-gateway" /> Gateway: it speaks for child devices behind it
        </label>
        <ErrorBox error={error} />
        <button class="btn primary" type="submit" disabled={busy || !project} data-testid="reg-submit">
          {busy ? "Registering…" : "Register"}
        </button>
      </form>
    </div>
  );
}
