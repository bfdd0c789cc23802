// validate.mjs - render every kustomization under k8s/ and check what an SRE would apply.
//
//   node tests/k8s/validate.mjs --source . [--server build/trilemmad]
//
// For each kustomization (the overlays, the load test, the secret template, and the prod overlay
// with the io_uring seccomp component):
//   1. render it with tests/k8s/kustomize.mjs and, where kubectl exists, with `kubectl kustomize`:
//      both must give the same objects in the same order;
//   2. validate every object against the Kubernetes API schemas of the kubernetes-models
//      packages (types, formats, required fields; versions pinned by package-lock.json), and
//      refuse unknown fields (strict.mjs), as `kubectl apply --validate=strict` would;
//   3. the project's rules: every container has requests and limits (cpu, memory), long-running
//      containers have liveness and readiness probes (the gateway a startup probe too), every
//      pod runs as non-root with a read-only root file system, no privilege escalation, all
//      capabilities dropped and a seccomp profile, no service-account token, no host
//      namespaces or paths; image references are pinned (a version tag or a digest, never
//      latest); no Secret carries data; the gateway's preStop sleep, drain_timeout_ms and
//      close_timeout_ms fit in terminationGracePeriodSeconds; the probes use the admin port; references resolve (ConfigMaps,
//      Services, HPA and PDB targets, ServiceMonitor ports, Ingress backends); the HPA's
//      session metric and the probe paths exist in the server's source; with --server, the
//      INI file in the ConfigMap passes `trilemmad --check-config` with the Deployment's
//      environment.
// Prints one line per check and ends with "N passed, N failed"; exits 1 on any failure.

import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = path.join(HERE, "node_modules");
for (const m of ["yaml", "kubernetes-models", "@kubernetes-models/prometheus-operator"])
    if (!fs.existsSync(path.join(NODE_MODULES, m, "package.json"))) {
        console.log(`FAIL tests/k8s/node_modules/${m} is missing: run scripts/deps.sh (npm ci in tests/k8s)`);
        console.log("0 passed, 1 failed");
        process.exit(1);
    }
const { kustomize } = await import("./kustomize.mjs");
const { unknownFields } = await import("./strict.mjs");
const require = createRequire(import.meta.url);
const YAML = require("yaml");

// ---- arguments

const args = { source: null, server: null };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === "--source") args.source = path.resolve(process.argv[++i]);
    else if (a === "--server") args.server = path.resolve(process.argv[++i]);
    else {
        console.error("usage: node validate.mjs --source DIR [--server TRILEMMAD]");
        process.exit(2);
    }
}
if (!args.source) args.source = path.resolve(HERE, "../..");

// ---- reporting

let passed = 0;
let failed = 0;
function check(name, fn) {
    let problems;
    try {
        problems = fn() || [];
    } catch (e) {
        problems = [e.stack || String(e)];
    }
    if (problems.length === 0) {
        passed++;
        console.log(`ok   ${name}`);
    } else {
        failed++;
        console.log(`FAIL ${name}`);
        for (const p of problems) console.log(`     - ${p}`);
    }
}

// ---- helpers

const LONG_RUNNING = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]);
const WORKLOADS = new Set([...LONG_RUNNING, "Job", "CronJob", "Pod"]);
const id = (o) => `${o.kind}/${o.metadata?.namespace ? o.metadata.namespace + "/" : ""}${o.metadata?.name}`;
const canon = (v) =>
    JSON.stringify(v, (k, x) =>
        x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((kk) => [kk, x[kk]])) : x
    );

function podTemplate(o) {
    if (o.kind === "Pod") return { metadata: o.metadata, spec: o.spec };
    if (o.kind === "CronJob") return o.spec?.jobTemplate?.spec?.template;
    return o.spec?.template;
}

function containersOf(spec) {
    return [...(spec?.initContainers || []).map((c) => ({ c, init: true })), ...(spec?.containers || []).map((c) => ({ c, init: false }))];
}

function quantity(q) {
    if (q === undefined || q === null) return NaN;
    const s = String(q);
    const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(s);
    if (!m) return NaN;
    const mult = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5, Ei: 1024 ** 6 };
    return parseFloat(m[1]) * (m[2] ? mult[m[2]] : 1);
}

function selects(selector, labels) {
    if (!selector) return false;
    labels = labels || {};
    const ml = selector.matchLabels || (selector.matchExpressions ? {} : selector);
    for (const [k, v] of Object.entries(ml)) if (labels[k] !== v) return false;
    for (const e of selector.matchExpressions || []) {
        const has = Object.prototype.hasOwnProperty.call(labels, e.key);
        if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
        if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
        if (e.operator === "Exists" && !has) return false;
        if (e.operator === "DoesNotExist" && has) return false;
    }
    return true;
}

// the INI parser the checks need: section -> key -> value (comments: lines starting ; or #,
// and " ;" inline, as docs/config.md describes)
function parseIni(text) {
    const out = {};
    let sec = null;
    for (const raw of text.split(/\r?\n/)) {
        const line = raw.replace(/\s;.*$/, "").trim();
        if (!line || line.startsWith(";") || line.startsWith("#")) continue;
        const h = /^\[([^\]]+)\]$/.exec(line);
        if (h) {
            sec = h[1];
            out[sec] = out[sec] || {};
            continue;
        }
        const eq = line.indexOf("=");
        if (sec && eq > 0) out[sec][line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return out;
}

// ---- schema validation

function modelFor(o) {
    const [g, v] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
    let mod;
    let dts;
    if (g === "monitoring.coreos.com") {
        mod = `@kubernetes-models/prometheus-operator/${g}/${v}`;
        dts = path.join(NODE_MODULES, "@kubernetes-models/prometheus-operator", g, v, `${o.kind}.d.ts`);
    } else {
        const p = g ? `${g}/${v}` : v;
        mod = `kubernetes-models/${p}`;
        dts = path.join(NODE_MODULES, "kubernetes-models", p, `${o.kind}.d.ts`);
    }
    const m = require(mod);
    if (!m[o.kind]) throw new Error(`no model for ${o.apiVersion} ${o.kind}`);
    return { Model: m[o.kind], dts };
}

function schemaProblems(o) {
    const { Model, dts } = modelFor(o);
    const problems = [];
    try {
        new Model(JSON.parse(JSON.stringify(o))).validate();
    } catch (e) {
        problems.push(`schema: ${e.message}`);
    }
    for (const u of unknownFields(o, dts, o.kind, NODE_MODULES)) problems.push(u);
    return problems;
}

// ---- project rules

function containerRules(objs) {
    const problems = [];
    for (const o of objs) {
        if (!WORKLOADS.has(o.kind)) continue;
        const t = podTemplate(o);
        const ps = t?.spec || {};
        const podSc = ps.securityContext || {};
        if (ps.hostNetwork || ps.hostPID || ps.hostIPC) problems.push(`${id(o)}: uses a host namespace`);
        for (const v of ps.volumes || []) if (v.hostPath) problems.push(`${id(o)}: hostPath volume ${v.name}`);
        if (ps.automountServiceAccountToken !== false) problems.push(`${id(o)}: automountServiceAccountToken is not false`);
        for (const { c, init } of containersOf(ps)) {
            const where = `${id(o)} container ${c.name}`;
            const sc = c.securityContext || {};
            // resources
            for (const kind of ["requests", "limits"])
                for (const r of ["cpu", "memory"])
                    if (c.resources?.[kind]?.[r] === undefined) problems.push(`${where}: no resources.${kind}.${r}`);
            for (const r of ["cpu", "memory"]) {
                const rq = quantity(c.resources?.requests?.[r]);
                const lm = quantity(c.resources?.limits?.[r]);
                if (rq > lm) problems.push(`${where}: requests.${r} above limits.${r}`);
            }
            // probes
            if (LONG_RUNNING.has(o.kind) && !init) {
                if (!c.livenessProbe) problems.push(`${where}: no livenessProbe`);
                if (!c.readinessProbe) problems.push(`${where}: no readinessProbe`);
            }
            // security
            const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
            const runAsUser = sc.runAsUser ?? podSc.runAsUser;
            if (runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
            if (runAsUser === 0) problems.push(`${where}: runAsUser 0`);
            if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
            if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
            if (sc.privileged) problems.push(`${where}: privileged`);
            if (!(sc.capabilities?.drop || []).includes("ALL")) problems.push(`${where}: capabilities not all dropped`);
            if ((sc.capabilities?.add || []).length) problems.push(`${where}: adds capabilities ${sc.capabilities.add}`);
            const seccomp = (sc.seccompProfile || podSc.seccompProfile)?.type;
            if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") problems.push(`${where}: seccompProfile is ${seccomp || "unset"}`);
            // image
            const img = c.image || "";
            const m = /^([^@\s]+?)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(img);
            if (!m) problems.push(`${where}: unparsable image '${img}'`);
            else if (!m[3] && !m[2]) problems.push(`${where}: image '${img}' has neither tag nor digest`);
            else if (m[2] === "latest") problems.push(`${where}: image '${img}' uses :latest`);
            else if (!m[3] && !/\d/.test(m[2])) problems.push(`${where}: image tag '${m[2]}' is not a version`);
        }
    }
    return problems;
}

function secretRules(objs) {
    const problems = [];
    for (const o of objs)
        if (o.kind === "Secret")
            for (const f of ["data", "stringData"])
                if (o[f] && Object.keys(o[f]).length) problems.push(`${id(o)} carries ${f} (${Object.keys(o[f]).join(", ")})`);
    return problems;
}

function preStopSeconds(c) {
    const p = c.lifecycle?.preStop;
    if (!p) return 0;
    if (p.sleep?.seconds !== undefined) return Number(p.sleep.seconds);
    const cmd = p.exec?.command || [];
    if (cmd.length === 2 && /(^|\/)sleep$/.test(cmd[0]) && /^\d+(\.\d+)?$/.test(cmd[1])) return Number(cmd[1]);
    throw new Error(`preStop of ${c.name} is not a plain sleep: ${JSON.stringify(p)}`);
}

// the gateway container and its INI file (from the ConfigMap mounted where --config points)
function gateway(objs) {
    const dep = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "trilemma");
    if (!dep) return null;
    const ps = dep.spec.template.spec;
    const c = ps.containers.find((x) => x.name === "trilemmad");
    const cfgArg = (c.args || [])[(c.args || []).indexOf("--config") + 1];
    const mount = (c.volumeMounts || []).find((m) => cfgArg && cfgArg.startsWith(m.mountPath + "/"));
    const vol = mount && (ps.volumes || []).find((v) => v.name === mount.name);
    const cm = vol?.configMap && objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === vol.configMap.name);
    const key = cfgArg && mount ? cfgArg.slice(mount.mountPath.length + 1) : null;
    const iniText = cm?.data?.[key];
    return { dep, ps, c, cfgArg, iniText, ini: iniText ? parseIni(iniText) : null };
}

function drainRules(objs) {
    const g = gateway(objs);
    if (!g) return [];
    const problems = [];
    if (!g.iniText) return [`the gateway's --config file is not found in a mounted ConfigMap`];
    const grace = g.ps.terminationGracePeriodSeconds ?? 30;
    const pre = preStopSeconds(g.c);
    const drain = Number(g.ini.server?.drain_timeout_ms ?? 25000) / 1000;
    const close = Number(g.ini.websocket?.close_timeout_ms ?? 5000) / 1000;
    if (!(pre > 0)) problems.push("the gateway has no preStop sleep");
    if (!(pre < grace)) problems.push(`preStop sleep ${pre} s is not below terminationGracePeriodSeconds ${grace}`);
    if (!(drain < grace)) problems.push(`drain_timeout_ms ${drain * 1000} is not below terminationGracePeriodSeconds ${grace} s`);
    if (!(pre + drain + close < grace))
        problems.push(`preStop ${pre} s + drain ${drain} s + close ${close} s >= terminationGracePeriodSeconds ${grace}`);
    // the probes and the Service point at the port the server listens on
    const listen = g.ini.server?.listen || "0.0.0.0:8080";
    const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
    const cport = (g.c.ports || []).find((p) => p.name === "http");
    if (!cport || cport.containerPort !== port) problems.push(`containerPort http is not the listen port ${port}`);
    // the probes use the admin port (admin_listen), which no client connection limit touches
    const admin = g.ini.server?.admin_listen;
    const aport = admin && admin !== "off" ? Number(admin.slice(admin.lastIndexOf(":") + 1)) : null;
    const cadmin = (g.c.ports || []).find((p) => p.name === "admin");
    if (!aport) problems.push("admin_listen is not set in the ConfigMap's INI: the probes would compete with clients");
    else if (!cadmin || cadmin.containerPort !== aport) problems.push(`containerPort admin is not the admin_listen port ${aport}`);
    for (const k of ["startupProbe", "livenessProbe", "readinessProbe"])
        if (g.c[k] && g.c[k].httpGet?.port !== "admin" && g.c[k].httpGet?.port !== aport) problems.push(`${k} is not on the admin port`);
    if (!g.c.startupProbe) problems.push("the gateway has no startupProbe");
    if (g.c.livenessProbe?.httpGet?.path !== "/healthz") problems.push("liveness is not GET /healthz");
    if (g.c.readinessProbe?.httpGet?.path !== "/readyz") problems.push("readiness is not GET /readyz");
    // a kubelet that kept probing a draining pod must not restart it before the drain ends
    const lp = g.c.livenessProbe || {};
    if (!(drain < (lp.periodSeconds ?? 10) * (lp.failureThreshold ?? 3)))
        problems.push(`drain ${drain} s is not below the liveness probe's failure window`);
    const workers = (g.c.env || []).find((e) => e.name === "TRILEMMA_WORKERS");
    if (!workers && !(Number(g.ini.server?.workers) > 0))
        problems.push("TRILEMMA_WORKERS is not set: 0 would start one worker per CPU of the node");
    return problems;
}

function referenceRules(objs, { externalSecrets }) {
    const problems = [];
    const byKind = (k) => objs.filter((o) => o.kind === k);
    const ns = (o) => o.metadata?.namespace || "";
    const find = (k, name, n) => objs.find((o) => o.kind === k && o.metadata.name === name && ns(o) === n);
    for (const o of objs) {
        if (!WORKLOADS.has(o.kind)) continue;
        const t = podTemplate(o);
        const ps = t.spec;
        if (o.spec?.selector && o.kind !== "Job" && !selects(o.spec.selector, t.metadata?.labels))
            problems.push(`${id(o)}: selector does not match its template`);
        const cmRefs = [];
        const secRefs = [];
        for (const v of ps.volumes || []) {
            if (v.configMap) cmRefs.push([v.configMap.name, v.configMap.optional]);
            if (v.secret) secRefs.push([v.secret.secretName, v.secret.optional]);
        }
        for (const { c } of containersOf(ps)) {
            for (const e of c.env || []) {
                if (e.valueFrom?.configMapKeyRef) cmRefs.push([e.valueFrom.configMapKeyRef.name, e.valueFrom.configMapKeyRef.optional]);
                if (e.valueFrom?.secretKeyRef) secRefs.push([e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.optional]);
            }
            for (const e of c.envFrom || []) {
                if (e.configMapRef) cmRefs.push([e.configMapRef.name, e.configMapRef.optional]);
                if (e.secretRef) secRefs.push([e.secretRef.name, e.secretRef.optional]);
            }
            const mounts = new Set((ps.volumes || []).map((v) => v.name));
            for (const m of c.volumeMounts || []) if (!mounts.has(m.name) && !(o.spec.volumeClaimTemplates || []).some((v) => v.metadata.name === m.name)) problems.push(`${id(o)}: mount of unknown volume ${m.name}`);
            if (c.env) {
                const names = c.env.map((e) => e.name);
                const dup = names.filter((n, i) => names.indexOf(n) !== i);
                if (dup.length) problems.push(`${id(o)} ${c.name}: env ${dup} set twice`);
                for (const e of c.env) if (e.value !== undefined && e.valueFrom !== undefined) problems.push(`${id(o)} ${c.name}: env ${e.name} has value and valueFrom`);
            }
        }
        for (const [n, opt] of cmRefs) if (!find("ConfigMap", n, ns(o)) && !opt) problems.push(`${id(o)}: ConfigMap ${n} is not rendered`);
        for (const [n, opt] of secRefs) if (!find("Secret", n, ns(o)) && !opt && !externalSecrets.includes(n)) problems.push(`${id(o)}: Secret ${n} is not rendered nor a known external Secret`);
        if (ps.serviceAccountName && !find("ServiceAccount", ps.serviceAccountName, ns(o))) problems.push(`${id(o)}: ServiceAccount ${ps.serviceAccountName} missing`);
    }
    const templates = objs.filter((o) => LONG_RUNNING.has(o.kind)).map((o) => ({ o, t: podTemplate(o) }));
    for (const s of byKind("Service")) {
        const hits = templates.filter(({ o, t }) => ns(o) === ns(s) && selects(s.spec.selector, t.metadata?.labels));
        if (!hits.length) problems.push(`${id(s)}: selects no workload`);
        for (const p of s.spec.ports || [])
            if (typeof p.targetPort === "string" && !hits.some(({ t }) => t.spec.containers.some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort))))
                problems.push(`${id(s)}: targetPort ${p.targetPort} is no container port`);
    }
    for (const p of byKind("PodDisruptionBudget"))
        if (!templates.some(({ o, t }) => ns(o) === ns(p) && selects(p.spec.selector, t.metadata?.labels))) problems.push(`${id(p)}: selects no workload`);
    for (const h of byKind("HorizontalPodAutoscaler")) {
        const r = h.spec.scaleTargetRef;
        if (!find(r.kind, r.name, ns(h))) problems.push(`${id(h)}: target ${r.kind}/${r.name} missing`);
    }
    for (const sm of byKind("ServiceMonitor")) {
        const svcs = byKind("Service").filter((s) => ns(s) === ns(sm) && selects(sm.spec.selector, s.metadata.labels));
        if (!svcs.length) problems.push(`${id(sm)}: selects no Service`);
        for (const e of sm.spec.endpoints || [])
            if (!svcs.some((s) => s.spec.ports.some((p) => p.name === e.port))) problems.push(`${id(sm)}: port ${e.port} on no selected Service`);
    }
    for (const ing of byKind("Ingress"))
        for (const r of ing.spec.rules || [])
            for (const p of r.http?.paths || []) {
                const b = p.backend.service;
                const s = find("Service", b.name, ns(ing));
                if (!s) problems.push(`${id(ing)}: backend Service ${b.name} missing`);
                else if (!s.spec.ports.some((sp) => (b.port.name ? sp.name === b.port.name : sp.port === b.port.number)))
                    problems.push(`${id(ing)}: backend port ${JSON.stringify(b.port)} not on ${b.name}`);
            }
    return problems;
}

function namespaceRules(objs, { expectNamespace }) {
    const problems = [];
    const nsObj = objs.find((o) => o.kind === "Namespace");
    if (!nsObj) return [`no Namespace object`];
    if (nsObj.metadata.name !== expectNamespace) problems.push(`Namespace is ${nsObj.metadata.name}, expected ${expectNamespace}`);
    if (nsObj.metadata.labels?.["pod-security.kubernetes.io/enforce"] !== "restricted")
        problems.push(`Namespace ${nsObj.metadata.name} does not enforce the restricted Pod Security Standard`);
    for (const o of objs) if (o.kind !== "Namespace" && o.metadata.namespace !== expectNamespace) problems.push(`${id(o)} is not in ${expectNamespace}`);
    const deny = objs.find((o) => o.kind === "NetworkPolicy" && canon(o.spec.podSelector) === "{}" && (o.spec.policyTypes || []).includes("Ingress") && (o.spec.policyTypes || []).includes("Egress") && !o.spec.ingress && !o.spec.egress);
    if (!deny) problems.push("no default-deny NetworkPolicy (ingress and egress)");
    // every workload has an egress and ingress story: some policy other than the default deny selects it
    for (const o of objs) {
        if (!WORKLOADS.has(o.kind)) continue;
        const labels = podTemplate(o).metadata?.labels;
        const pols = objs.filter((p) => p.kind === "NetworkPolicy" && p !== deny && selects(p.spec.podSelector, labels));
        if (!pols.length) problems.push(`${id(o)}: no NetworkPolicy allows it anything`);
    }
    return problems;
}

function hpaRules(objs, source) {
    const problems = [];
    for (const h of objs.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
        const ms = h.spec.metrics || [];
        if (!ms.some((m) => m.type === "Resource" && m.resource.name === "cpu")) problems.push(`${id(h)}: no CPU metric`);
        const pm = ms.find((m) => m.type === "Pods");
        if (!pm || pm.pods.metric.name !== "trilemma_sessions_open") problems.push(`${id(h)}: no Pods metric trilemma_sessions_open`);
        if (!(h.spec.minReplicas >= 1 && h.spec.maxReplicas >= h.spec.minReplicas)) problems.push(`${id(h)}: bad replica bounds`);
    }
    // the names the manifests rely on exist in the server
    const grepDir = (dirs, needle) =>
        dirs.some((d) => {
            const dir = path.join(source, d);
            return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith(".c") && fs.readFileSync(path.join(dir, f), "utf8").includes(needle));
        });
    if (!grepDir(["session", "net"], '"# TYPE trilemma_sessions_open gauge') && !grepDir(["session", "net"], "trilemma_sessions_open"))
        problems.push("metric trilemma_sessions_open not found in session/ or net/");
    for (const p of ['"/healthz"', '"/readyz"', '"/metrics"', '"/ws"'])
        if (!grepDir(["net"], p)) problems.push(`path ${p} not found in net/`);
    return problems;
}

// `trilemmad --check-config` with the rendered INI and the Deployment's literal environment;
// secrets get placeholders, /opt/trilemma paths point into the source tree
function checkConfig(objs, server, source) {
    const g = gateway(objs);
    if (!g) return [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trilemma-k8s-"));
    try {
        const ini = path.join(dir, "trilemma.ini");
        fs.writeFileSync(ini, g.iniText.replaceAll("/opt/trilemma/", source + "/"));
        const env = { PATH: process.env.PATH };
        for (const e of g.c.env || []) {
            if (e.value !== undefined) env[e.name] = e.value;
            else if (e.valueFrom?.secretKeyRef) env[e.name] = "placeholder-secret-value-for-the-config-check-0123456789";
            else if (e.valueFrom?.resourceFieldRef?.resource === "limits.cpu") env[e.name] = String(Math.ceil(quantity(g.c.resources.limits.cpu)));
        }
        // the providers the route and fallbacks name get a placeholder key
        for (const r of [env.TRILEMMA_MODEL, ...(env.TRILEMMA_FALLBACKS || "").split(",")]) {
            const p = (r || "").trim().split("/")[0];
            if (["openai", "anthropic", "gemini"].includes(p)) env[`${p.toUpperCase()}_API_KEY`] = env[`${p.toUpperCase()}_API_KEY`] || "placeholder";
        }
        env.TRILEMMA_JOURNAL_DIR = path.join(dir, "journal");
        const r = spawnSync(server, ["--check-config", "--config", ini], { env, encoding: "utf8", cwd: dir });
        if (r.status !== 0) return [`trilemmad --check-config exited ${r.status}: ${(r.stderr || "").trim()}`];
        return [];
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

// The server's C sources (not tests, builds or dependencies) as one text, to look metric names up.
let sourceText = null;
function serverSource(root) {
    if (sourceText !== null) return sourceText;
    const sources = [];
    const walk = (d) => {
        for (const f of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, f.name);
            if (f.isDirectory() && !["tests", "node_modules", ".git"].includes(f.name) && !f.name.startsWith("build")) walk(p);
            else if (f.isFile() && /\.(c|h)$/.test(f.name)) sources.push(fs.readFileSync(p, "utf8"));
        }
    };
    walk(root);
    sourceText = sources.join("\n");
    return sourceText;
}

// Metric names in PromQL that the server's source does not print.
function unknownMetrics(exprs, root) {
    const text = serverSource(root);
    const problems = [];
    for (const m of new Set(exprs.flatMap((e) => e.match(/trilemma_[a-z0-9_]+/g) || []))) {
        const base = m.replace(/_(bucket|sum|count)$/, "");
        if (!text.includes(`"${base}`) && !text.includes(`${base} `) && !text.includes(`${base}{`)) problems.push(`${m} is not in the server's source`);
    }
    return problems;
}

// ---- the targets

function kubectlRender(dir) {
    const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
    if (r.error && r.error.code === "ENOENT") return null;
    if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
    return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean);
}

const TARGETS = [
    { dir: "k8s/overlays/prod", namespace: "trilemma", gatewayRules: true },
    { dir: "k8s/overlays/dev", namespace: "trilemma-dev", gatewayRules: true },
    { dir: "tests/k8s/fixtures/prod-io-uring", namespace: "trilemma", gatewayRules: true, seccomp: "Localhost" },
    { dir: "k8s/loadtest", namespace: "trilemma-dev", partial: true },
    { dir: "k8s/secrets", partial: true },
];

const haveKubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
console.log(`== k8s manifests (${haveKubectl ? "kubectl kustomize and tests/k8s/kustomize.mjs" : "tests/k8s/kustomize.mjs only: no kubectl here"})`);

for (const t of TARGETS) {
    const dir = path.join(args.source, t.dir);
    let objs = null;
    check(`${t.dir}: renders`, () => {
        objs = kustomize(dir);
        return objs.length ? [] : ["no objects"];
    });
    if (!objs) continue;
    if (haveKubectl)
        check(`${t.dir}: kubectl kustomize renders the same objects`, () => {
            const theirs = kubectlRender(dir);
            const problems = [];
            const a = objs.map(id);
            const b = theirs.map(id);
            if (canon(a) !== canon(b)) problems.push(`objects or order differ:\n       ours   ${a.join(" ")}\n       kubectl ${b.join(" ")}`);
            for (let i = 0; i < Math.min(objs.length, theirs.length); i++)
                if (canon(objs[i]) !== canon(theirs[i])) problems.push(`${id(objs[i])} differs`);
            return problems;
        });
    check(`${t.dir}: ${objs.length} objects pass the Kubernetes schemas, no unknown fields`, () =>
        objs.flatMap((o) => schemaProblems(o).map((p) => `${id(o)}: ${p}`))
    );
    check(`${t.dir}: containers have resources, probes, non-root, read-only root, no capabilities, seccomp, pinned images`, () => containerRules(objs));
    check(`${t.dir}: no Secret carries data`, () => secretRules(objs));
    check(`${t.dir}: references resolve`, () => referenceRules(objs, { externalSecrets: ["trilemma-secrets", "trilemma-tls"] }));
    if (t.namespace && !t.partial) check(`${t.dir}: namespace, restricted Pod Security, default-deny network policy`, () => namespaceRules(objs, { expectNamespace: t.namespace }));
    if (t.gatewayRules) {
        check(`${t.dir}: preStop < grace, drain_timeout_ms + close < grace, probes on /healthz /readyz of the admin port`, () => drainRules(objs));
        check(`${t.dir}: HPA on CPU and trilemma_sessions_open; metric and probe paths exist in the server`, () => hpaRules(objs, args.source));
        if (args.server) check(`${t.dir}: trilemmad --check-config accepts the ConfigMap's INI with the Deployment's environment`, () => checkConfig(objs, args.server, args.source));
    }
    if (objs.some((o) => o.kind === "PrometheusRule"))
        check(`${t.dir}: every metric an alert reads is exported by the server (no invented names)`, () => {
            const text = serverSource(args.source);
            const problems = [];
            for (const r of objs.filter((o) => o.kind === "PrometheusRule").flatMap((o) => o.spec.groups.flatMap((g) => g.rules)))
                for (const m of new Set(r.expr.match(/trilemma_[a-z0-9_]+/g) || [])) {
                    const base = m.replace(/_(bucket|sum|count)$/, "");
                    if (!text.includes(`"${base}`) && !text.includes(`${base} `) && !text.includes(`${base}{`)) problems.push(`${r.alert}: ${m} is not in the server's source`);
                }
            return problems;
        });
    if (objs.some((o) => o.kind === "Ingress"))
        check(`${t.dir}: the Ingress routes /ws and every file of web/, and not /metrics, /v1 or the probes`, () => {
            const paths = objs.filter((o) => o.kind === "Ingress").flatMap((i) => i.spec.rules.flatMap((r) => r.http.paths));
            const routed = (p) => paths.some((x) => (x.pathType === "Exact" ? x.path === p : p.startsWith(x.path)));
            const problems = [];
            const web = fs.readdirSync(path.join(args.source, "web")).filter((f) => fs.statSync(path.join(args.source, "web", f)).isFile());
            for (const p of ["/ws", "/", ...web.map((f) => "/" + f)]) if (!routed(p)) problems.push(`${p} is not routed`);
            for (const p of ["/metrics", "/healthz", "/readyz", "/v1/conversations"]) if (routed(p)) problems.push(`${p} is public`);
            return problems;
        });
    if (t.seccomp)
        check(`${t.dir}: every io_uring Deployment runs under the ${t.seccomp} seccomp profile`, () =>
            objs
                .filter((o) => o.kind === "Deployment")
                .filter((o) => o.spec.template.spec.securityContext?.seccompProfile?.type !== t.seccomp)
                .map((o) => `${id(o)}: ${JSON.stringify(o.spec.template.spec.securityContext?.seccompProfile)}`)
        );
    if (t.dir === "k8s/secrets")
        check(`${t.dir}: the template names every secret key the pods read`, () => {
            const s = objs.find((o) => o.kind === "Secret");
            const names = `${s.metadata.annotations["trilemma.io/required-keys"]},${s.metadata.annotations["trilemma.io/optional-keys"]}`.split(",");
            const want = ["DATABASE_URL", "TRILEMMA_JWT_SECRET", "TRILEMMA_ADMIN_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"];
            return want.filter((w) => !names.includes(w)).map((w) => `missing ${w}`);
        });
}

// k8s/extras/grafana-dashboard.json: valid JSON, queries on every panel, only exported metrics
check("k8s/extras/grafana-dashboard.json: every metric the dashboard reads is exported by the server (no invented names)", () => {
    const dash = JSON.parse(fs.readFileSync(path.join(args.source, "k8s", "extras", "grafana-dashboard.json"), "utf8"));
    const panels = dash.panels.filter((p) => p.type !== "row");
    const problems = panels.filter((p) => !(p.targets || []).length).map((p) => `panel "${p.title}" has no query`);
    return problems.concat(unknownMetrics(panels.flatMap((p) => p.targets.map((x) => x.expr)), args.source));
});

// the rules catch what they claim to: break a rendered prod object per rule and expect a finding
check("rules detect broken objects (self-test)", () => {
    const base = kustomize(path.join(args.source, "k8s/overlays/prod"));
    const problems = [];
    const mutate = (what, fn, rule) => {
        const objs = JSON.parse(JSON.stringify(base));
        fn(objs);
        if (rule(objs).length === 0) problems.push(`not detected: ${what}`);
    };
    const dep = (objs) => objs.find((o) => o.kind === "Deployment");
    const ctr = (objs) => dep(objs).spec.template.spec.containers[0];
    mutate("no memory limit", (o) => delete ctr(o).resources.limits.memory, containerRules);
    mutate("no readiness probe", (o) => delete ctr(o).readinessProbe, containerRules);
    mutate("runAsNonRoot false", (o) => { ctr(o).securityContext.runAsNonRoot = false; }, containerRules);
    mutate("writable root", (o) => { ctr(o).securityContext.readOnlyRootFilesystem = false; }, containerRules);
    mutate("a capability kept", (o) => { ctr(o).securityContext.capabilities.drop = ["NET_RAW"]; }, containerRules);
    mutate(":latest image", (o) => { ctr(o).image = "registry.example.com/trilemma/trilemma:latest"; }, containerRules);
    mutate("untagged image", (o) => { ctr(o).image = "registry.example.com/trilemma/trilemma"; }, containerRules);
    mutate("Secret with data", (o) => o.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "x" }, data: { K: "dg==" } }), secretRules);
    mutate("grace below the drain", (o) => { dep(o).spec.template.spec.terminationGracePeriodSeconds = 20; }, drainRules);
    mutate("liveness on the client port", (o) => { ctr(o).livenessProbe.httpGet.port = "http"; }, drainRules);
    mutate("preStop above the grace", (o) => { ctr(o).lifecycle.preStop.exec.command = ["/bin/sleep", "60"]; }, drainRules);
    mutate("unknown field", (o) => { ctr(o).securityContext.readOnlyRootFileSystem = true; }, (objs) => schemaProblems(dep(objs)));
    mutate("schema type error", (o) => { dep(o).spec.replicas = "3"; }, (objs) => schemaProblems(dep(objs)));
    mutate("Service selecting nothing", (o) => { o.find((x) => x.kind === "Service").spec.selector = { app: "nope" }; }, (objs) => referenceRules(objs, { externalSecrets: ["trilemma-secrets"] }));
    return problems;
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
