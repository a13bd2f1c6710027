import { useEffect, useState } from "preact/hooks";
import { alarmSummary, api, getSession, onSession, setSession } from "./api.js";
import { connectLive, disconnectLive, useLive, useLiveState } from "./live.js";
import { Link, match, navigate, useLocation } from "./router.jsx";
import { currentProject, markPrimaryReady, useAsync } from "./util.js";
import { Login } from "./pages/Login.jsx";
import { Overview, projectId, reconcileProject, selectProject, useProjects } from "./pages/Overview.jsx";
import { Device } from "./pages/Device.jsx";
import { Alarms } from "./pages/Alarms.jsx";
import { Register } from "./pages/Register.jsx";
import { can, useMe } from "./me.js";

// Pages off the device and fleet pages' critical path load when first opened: the rule
// editor carries the YAML parser, the others are admin and reporting screens.
function lazy(load, name) {
  let cached = null;
  return function Lazy(props) {
    const [mod, setMod] = useState(cached);
    useEffect(() => {
      if (!cached) load().then((m) => setMod((cached = m)));
    }, []);
    const Page = mod?.[name];
    return Page ? <Page {...props} /> : <div class="page muted">Loading…</div>;
  };
}
const LazyRules = lazy(() => import("./pages/Rules.jsx"), "Rules");
const Dashboard = lazy(() => import("./pages/Dashboard.jsx"), "Dashboard");
const Reports = lazy(() => import("./pages/Reports.jsx"), "Reports");
const Access = lazy(() => import("./pages/Access.jsx"), "Access");
const Models = lazy(() => import("./pages/Models.jsx"), "Models");
const Audit = lazy(() => import("./pages/Audit.jsx"), "Audit");
const Maintenance = lazy(() => import("./pages/Maintenance.jsx"), "Maintenance");
// A lab page opened directly fetches its code at once, not after the first render.
const loadLab = () => import("./pages/Lab.jsx");
if (location.pathname.startsWith("/lab")) loadLab();
const LabHome = lazy(loadLab, "LabHome");
const LabEnterprise = lazy(loadLab, "LabEnterprise");
const LabAlarms = lazy(loadLab, "LabAlarms");
const loadOnboarding = () => import("./pages/Onboarding.jsx");
const AcceptInvite = lazy(loadOnboarding, "AcceptInvite");
const Account = lazy(loadOnboarding, "Account");

export function App() {
  const [session, set] = useState(getSession());
  useEffect(
    () =>
      onSession((s) => {
        // Signed out (or the key expired): the next user starts without this one's project.
        if (!s) currentProject.set(null);
        set(s);
      }),
    [],
  );
  // An invite link opens with or without a session: the invitee becomes a new user.
  if (location.pathname === "/invite") return <AcceptInvite />;
  if (!session) return <Login />;
  return <Shell session={session} />;
}

function Shell({ session }) {
  const { path } = useLocation();
  const project = currentProject.use();
  const tree = useProjects({ defer: !!currentProject.get() || location.pathname.startsWith("/lab") });
  const live = useLiveState();
  const me = useMe();

  useEffect(() => {
    if (project) connectLive(project);
    return () => {};
  }, [project, session.token, session.actAs]);
  useEffect(() => () => disconnectLive(), []);
  useEffect(() => reconcileProject(tree.data, currentProject.get()), [tree.data]);

  const active = useAsync(async () => (project && project === currentProject.get() ? (await alarmSummary(project)).active : 0), [project], { defer: true });
  useLive((m) => m.type === "alarm" || (m.type === "hello" && m.resync), () => active.reload(), [project]);

  let page;
  let m;
  // The fleet, device and lab pages have a main request worth putting first.
  if (!(path === "/" || path.startsWith("/devices/") || path.startsWith("/lab"))) markPrimaryReady();
  if ((m = match("/devices/:id", path))) page = <Device id={m.id} key={`${m.id}|${session.actAs || ""}`} />;
  else if (path === "/alarms") page = <Alarms />;
  else if (path === "/rules") page = <LazyRules />;
  else if (path === "/register") page = <Register />;
  else if (path === "/dashboard") page = <Dashboard />;
  else if (path === "/reports") page = <Reports />;
  else if (path === "/access") page = <Access />;
  else if (path === "/models") page = <Models />;
  else if (path === "/audit") page = <Audit />;
  else if (path === "/maintenance") page = <Maintenance />;
  else if (path === "/account") page = <Account />;
  else if (path === "/lab") page = <LabHome />;
  else if (path === "/lab/alarms") page = <LabAlarms />;
  else if ((m = match("/lab/enterprises/:t", path))) page = <LabEnterprise tenant={m.t} key={m.t} />;
  else page = <Overview />;

  const nav = (href, label, extra) => (
    <Link href={href} class={`nav ${path === href || (href === "/" && path.startsWith("/devices/")) || (href === "/lab" && path.startsWith("/lab/")) ? "active" : ""}`} data-testid={`nav-${label.toLowerCase()}`}>
      {label}
      {extra}
    </Link>
  );

  return (
    <div class="shell">
      <header class="topbar">
        <div class="brand">
          <span class="logo" /> Atoll
        </div>
        <select class="project-select" value={project || ""} onChange={(e) => selectProject(tree.data, e.currentTarget.value)} data-testid="project-select">
          {(tree.data?.projects || []).map((p) => (
            <option key={projectId(p)} value={projectId(p)}>
              {p.name ?? projectId(p)}
            </option>
          ))}
        </select>
        <nav>
          {nav("/lab", "Lab")}
          {nav("/", "Fleet")}
          {nav("/dashboard", "Dashboard")}
          {nav("/alarms", "Alarms", active.data ? <span class="badge bad" data-testid="active-alarm-badge">{active.data}</span> : null)}
          {nav("/rules", "Rules")}
          {nav("/reports", "Reports")}
          {nav("/models", "Models")}
          {nav("/maintenance", "Maintenance")}
          {can(me, "operator") && nav("/register", "Register")}
          {can(me, "admin") && nav("/access", "Access")}
          {can(me, "admin") && nav("/audit", "Audit")}
        </nav>
        <span class="grow" />
        <span class={`live-state ${live}`} data-testid="live-state" title="Live updates over WebSocket">
          <span class="dot" /> {live === "live" ? "live" : live}
        </span>
        <Link href="/account" class="muted small user-menu" title="Your account: change password" data-testid="user-menu">
          {session.user}
        </Link>
        <button
          class="btn small ghost"
          onClick={() => {
            api.post("/auth/logout").catch(() => {});
            disconnectLive();
            setSession(null);
            navigate("/");
          }}
          data-testid="logout"
        >
          Log out
        </button>
      </header>
      <main>{page}</main>
    </div>
  );
}
