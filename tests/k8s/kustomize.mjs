// kustomize.mjs - a renderer for the subset of kustomize that k8s/ uses, for machines without
// kubectl (Debian 12 packages no kubectl recent enough: kubernetes-client 1.20 embeds kustomize
// 2.0, which predates `patches`, `labels` and components).
//
//   node tests/k8s/kustomize.mjs k8s/overlays/prod      # prints the objects as YAML
//
// validate.mjs renders every kustomization with this AND, where kubectl exists, with
// `kubectl kustomize`, and fails unless both give the same objects, so the two never drift.
// Supported (anything else in a kustomization is an error, never silently ignored):
//   resources (files, directories), components (kind: Component), namespace,
//   labels (pairs, includeSelectors: false), configMapGenerator (files, literals; the name gets
//   kustomize's content hash and references in pod specs follow), images (newName, newTag,
//   digest), patches (path or inline; strategic merge or JSON 6902; target by group, version,
//   kind, name, namespace, labelSelector).

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const YAML = require("yaml");

const KNOWN_FIELDS = new Set([
    "apiVersion", "kind", "resources", "components", "namespace", "labels",
    "configMapGenerator", "images", "patches",
]);

const CLUSTER_SCOPED = new Set([
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass", "RuntimeClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "PodSecurityPolicy", "CSIDriver", "VolumeAttachment",
]);

// kustomize's "legacy" output order: these kinds first, in this order; then the rest by
// group/version/kind; these last.
const ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
    "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap",
    "Secret", "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume",
    "PersistentVolumeClaim", "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
];
const ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

// strategic-merge keys of the lists we patch (k8s.io/api patchMergeKey tags)
const MERGE_KEYS = {
    containers: "name",
    initContainers: "name",
    ephemeralContainers: "name",
    env: "name",
    volumes: "name",
    volumeMounts: "mountPath",
    imagePullSecrets: "name",
    hostAliases: "ip",
};

const clone = (x) => (x === undefined ? undefined : JSON.parse(JSON.stringify(x)));
const isMap = (x) => x !== null && typeof x === "object" && !Array.isArray(x);

function fail(msg) {
    throw new Error("kustomize.mjs: " + msg);
}

function parseYamlDocs(text, file) {
    const docs = YAML.parseAllDocuments(text);
    const out = [];
    for (const d of docs) {
        if (d.errors.length) fail(`${file}: ${d.errors[0].message}`);
        const v = d.toJS();
        if (v !== null && v !== undefined) out.push(v);
    }
    return out;
}

function group(apiVersion) {
    return apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
}
function version(apiVersion) {
    return apiVersion.includes("/") ? apiVersion.split("/")[1] : apiVersion;
}

// ---- Go's encoding/json, for kustomize's name hash

function goJson(v) {
    if (Array.isArray(v)) return "[" + v.map(goJson).join(",") + "]";
    if (isMap(v))
        return "{" + Object.keys(v).sort().map((k) => goJson(k) + ":" + goJson(v[k])).join(",") + "}";
    if (typeof v === "string")
        return JSON.stringify(v)
            .replace(/</g, "\\u003c")
            .replace(/>/g, "\\u003e")
            .replace(/&/g, "\\u0026")
            .replace(/\u2028/g, "\\u2028")
            .replace(/\u2029/g, "\\u2029");
    return JSON.stringify(v);
}

/** kustomize's ConfigMap name suffix (api/hasher): sha256 of Go's JSON of kind, data and an
 * empty name (kustomize v5 hashes the node before it is named), first 10 hex digits with
 * 0 1 3 a e mapped to g h k m t. */
export function configMapHash(cm) {
    const m = { kind: "ConfigMap", name: "", data: cm.data || {} };
    if (cm.binaryData && Object.keys(cm.binaryData).length) m.binaryData = cm.binaryData;
    if (cm.immutable !== undefined) m.immutable = cm.immutable;
    const hex = crypto.createHash("sha256").update(goJson(m)).digest("hex");
    const map = { 0: "g", 1: "h", 3: "k", a: "m", e: "t" };
    return [...hex.slice(0, 10)].map((c) => map[c] || c).join("");
}

// ---- strategic merge patch

function smpMerge(base, patch, key) {
    if (!isMap(patch)) return clone(patch);
    if (!isMap(base)) base = {};
    if (patch.$patch === "replace") {
        const p = clone(patch);
        delete p.$patch;
        return p;
    }
    const out = clone(base);
    for (const [k, v] of Object.entries(patch)) {
        if (k === "$patch") continue;
        if (v === null) {
            delete out[k];
        } else if (Array.isArray(v)) {
            out[k] = smpList(Array.isArray(out[k]) ? out[k] : [], v, MERGE_KEYS[k]);
        } else if (isMap(v)) {
            out[k] = smpMerge(out[k], v, k);
        } else {
            out[k] = clone(v);
        }
    }
    return out;
}

function smpList(base, patch, mergeKey) {
    if (!mergeKey || !patch.every(isMap)) return clone(patch.filter((x) => !(isMap(x) && x.$patch)));
    // as kustomize (kyaml) orders them: the patch's items first (merged with the matching base
    // items), then the base items the patch did not name
    const out = [];
    const named = new Set();
    for (const item of patch) {
        const id = item[mergeKey];
        named.add(id);
        const orig = base.find((b) => isMap(b) && b[mergeKey] === id);
        if (item.$patch === "delete") continue;
        out.push(orig ? smpMerge(orig, item) : smpMerge({}, item));
    }
    for (const b of base) if (!(isMap(b) && named.has(b[mergeKey]))) out.push(clone(b));
    return out;
}

// ---- JSON 6902

function pointer(p) {
    if (p === "") return [];
    if (!p.startsWith("/")) fail("bad JSON pointer " + p);
    return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function json6902(doc, ops) {
    doc = clone(doc);
    for (const op of ops) {
        const parts = pointer(op.path);
        const last = parts.pop();
        let parent = doc;
        for (const p of parts) {
            parent = Array.isArray(parent) ? parent[Number(p)] : parent?.[p];
            if (parent === undefined) fail(`JSON patch path ${op.path}: missing ${p}`);
        }
        const idx = Array.isArray(parent) ? (last === "-" ? parent.length : Number(last)) : last;
        switch (op.op) {
            case "add":
                if (Array.isArray(parent)) parent.splice(idx, 0, clone(op.value));
                else parent[idx] = clone(op.value);
                break;
            case "replace":
                if (parent[idx] === undefined) fail(`JSON patch replace ${op.path}: no such value`);
                parent[idx] = clone(op.value);
                break;
            case "remove":
                if (parent[idx] === undefined) fail(`JSON patch remove ${op.path}: no such value`);
                if (Array.isArray(parent)) parent.splice(idx, 1);
                else delete parent[idx];
                break;
            case "test":
                if (JSON.stringify(parent[idx]) !== JSON.stringify(op.value)) fail(`JSON patch test ${op.path} failed`);
                break;
            default:
                fail("unsupported JSON patch op " + op.op);
        }
    }
    return doc;
}

// ---- transformers

function podSpecs(obj) {
    const s = obj.spec || {};
    const out = [];
    if (obj.kind === "Pod") out.push(s);
    if (s.template?.spec) out.push(s.template.spec);
    if (s.jobTemplate?.spec?.template?.spec) out.push(s.jobTemplate.spec.template.spec);
    return out;
}

function walkContainers(node, fn) {
    if (Array.isArray(node)) node.forEach((n) => walkContainers(n, fn));
    else if (isMap(node))
        for (const [k, v] of Object.entries(node)) {
            if ((k === "containers" || k === "initContainers") && Array.isArray(v)) v.forEach((c) => isMap(c) && fn(c));
            walkContainers(v, fn);
        }
}

function splitImage(image) {
    let name = image;
    let tag = null;
    let digest = null;
    const at = name.indexOf("@");
    if (at >= 0) {
        digest = name.slice(at + 1);
        name = name.slice(0, at);
    }
    const colon = name.lastIndexOf(":");
    if (colon > name.lastIndexOf("/")) {
        tag = name.slice(colon + 1);
        name = name.slice(0, colon);
    }
    return { name, tag, digest };
}

function applyImages(objs, images) {
    for (const o of objs)
        walkContainers(o, (c) => {
            if (typeof c.image !== "string") return;
            const cur = splitImage(c.image);
            const rule = images.find((r) => r.name === cur.name);
            if (!rule) return;
            for (const k of Object.keys(rule))
                if (!["name", "newName", "newTag", "digest"].includes(k)) fail("images: unsupported field " + k);
            const name = rule.newName || cur.name;
            if (rule.digest) c.image = `${name}@${rule.digest}`;
            else if (rule.newTag) c.image = `${name}:${rule.newTag}`;
            else c.image = name + (cur.tag ? ":" + cur.tag : "") + (cur.digest ? "@" + cur.digest : "");
        });
}

function matchesTarget(o, t) {
    for (const k of Object.keys(t))
        if (!["group", "version", "kind", "name", "namespace", "labelSelector"].includes(k)) fail("patch target: unsupported " + k);
    const full = (re, s) => new RegExp("^(?:" + re + ")$").test(s ?? "");
    if (t.group !== undefined && group(o.apiVersion) !== t.group) return false;
    if (t.version !== undefined && version(o.apiVersion) !== t.version) return false;
    if (t.kind !== undefined && !full(t.kind, o.kind)) return false;
    if (t.name !== undefined && !full(t.name, o.metadata?.name)) return false;
    if (t.namespace !== undefined && !full(t.namespace, o.metadata?.namespace)) return false;
    if (t.labelSelector !== undefined) {
        const labels = o.metadata?.labels || {};
        for (const term of t.labelSelector.split(",")) {
            const [k, v] = term.split("=").map((s) => s.trim());
            if (labels[k] !== v) return false;
        }
    }
    return true;
}

function applyPatch(objs, spec, dir) {
    for (const k of Object.keys(spec)) if (!["path", "patch", "target"].includes(k)) fail("patches: unsupported " + k);
    const text = spec.path ? fs.readFileSync(path.join(dir, spec.path), "utf8") : spec.patch;
    const docs = parseYamlDocs(text, spec.path || "inline patch");
    if (docs.length !== 1) fail("a patch must be one document");
    const p = docs[0];
    const isJson = Array.isArray(p);
    let targets;
    if (spec.target) targets = objs.filter((o) => matchesTarget(o, spec.target));
    else {
        if (isJson) fail("a JSON 6902 patch needs a target");
        targets = objs.filter(
            (o) => o.kind === p.kind && o.metadata?.name === p.metadata?.name && group(o.apiVersion) === group(p.apiVersion) &&
                (!p.metadata?.namespace || p.metadata.namespace === o.metadata?.namespace)
        );
    }
    if (targets.length === 0) fail(`patch ${spec.path || "(inline)"} matches no resource`);
    for (const t of targets) {
        const i = objs.indexOf(t);
        if (isJson) objs[i] = json6902(t, p);
        else {
            const patch = clone(p);
            if (spec.target) {
                // the patch's own identity is ignored when a target selects
                delete patch.apiVersion;
                delete patch.kind;
                if (patch.metadata) {
                    delete patch.metadata.name;
                    delete patch.metadata.namespace;
                }
            }
            objs[i] = smpMerge(t, patch);
        }
    }
}

function applyLabels(objs, labels) {
    for (const l of labels) {
        for (const k of Object.keys(l)) if (!["pairs", "includeSelectors", "includeTemplates"].includes(k)) fail("labels: unsupported " + k);
        if (l.includeSelectors || l.includeTemplates) fail("labels: only includeSelectors: false is supported");
        for (const o of objs) {
            o.metadata = o.metadata || {};
            o.metadata.labels = { ...(o.metadata.labels || {}), ...l.pairs };
        }
    }
}

function generateConfigMaps(gens, dir) {
    const out = [];
    for (const g of gens) {
        for (const k of Object.keys(g)) if (!["name", "files", "literals", "behavior"].includes(k)) fail("configMapGenerator: unsupported " + k);
        if (g.behavior && g.behavior !== "create") fail("configMapGenerator: only behavior create");
        const data = {};
        for (const f of g.files || []) {
            const [key, file] = f.includes("=") ? f.split("=", 2) : [path.basename(f), f];
            data[key] = fs.readFileSync(path.join(dir, file), "utf8");
        }
        for (const lit of g.literals || []) {
            const eq = lit.indexOf("=");
            data[lit.slice(0, eq)] = lit.slice(eq + 1);
        }
        out.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data, __generated: g.name });
    }
    return out;
}

// hash the generated ConfigMaps' names (after all transformers, as kustomize does) and point
// the pod specs' references at the new names
function fixConfigMapNames(objs) {
    const renamed = new Map(); // namespace/name -> new name
    for (const o of objs) {
        if (!o.__generated) continue;
        delete o.__generated;
        const newName = `${o.metadata.name}-${configMapHash(o)}`;
        renamed.set(`${o.metadata.namespace || ""}/${o.metadata.name}`, newName);
        o.metadata.name = newName;
    }
    const ref = (ns, name) => renamed.get(`${ns || ""}/${name}`) || name;
    for (const o of objs)
        for (const ps of podSpecs(o)) {
            const ns = o.metadata?.namespace;
            for (const v of ps.volumes || []) {
                if (v.configMap?.name) v.configMap.name = ref(ns, v.configMap.name);
                for (const s of v.projected?.sources || []) if (s.configMap?.name) s.configMap.name = ref(ns, s.configMap.name);
            }
            for (const c of [...(ps.containers || []), ...(ps.initContainers || [])]) {
                for (const e of c.env || []) if (e.valueFrom?.configMapKeyRef?.name) e.valueFrom.configMapKeyRef.name = ref(ns, e.valueFrom.configMapKeyRef.name);
                for (const e of c.envFrom || []) if (e.configMapRef?.name) e.configMapRef.name = ref(ns, e.configMapRef.name);
            }
        }
}

// ---- the build

function readKustomization(dir) {
    for (const n of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
        const f = path.join(dir, n);
        if (fs.existsSync(f)) {
            const k = parseYamlDocs(fs.readFileSync(f, "utf8"), f)[0] || {};
            for (const key of Object.keys(k)) if (!KNOWN_FIELDS.has(key)) fail(`${f}: unsupported field '${key}'`);
            return k;
        }
    }
    fail("no kustomization in " + dir);
}

function build(dir, expectKind, root) {
    const k = readKustomization(dir);
    const kind = k.kind || "Kustomization";
    if (kind !== expectKind) fail(`${dir}: expected a ${expectKind}, found a ${kind}`);
    let objs = [];
    for (const r of k.resources || []) {
        const p = path.join(dir, r);
        if (fs.statSync(p).isDirectory()) objs.push(...build(p, "Kustomization", root));
        else objs.push(...parseYamlDocs(fs.readFileSync(p, "utf8"), p));
    }
    return transform(objs, k, dir, root);
}

function transform(objs, k, dir, root) {
    for (const c of k.components || []) {
        const cdir = path.join(dir, c);
        const ck = readKustomization(cdir);
        if (ck.kind !== "Component") fail(`${cdir} is not a Component`);
        const own = [];
        for (const r of ck.resources || []) {
            const p = path.join(cdir, r);
            if (fs.statSync(p).isDirectory()) own.push(...build(p, "Kustomization", root));
            else own.push(...parseYamlDocs(fs.readFileSync(p, "utf8"), p));
        }
        objs = transform([...objs, ...own], { ...ck, resources: [] }, cdir, root);
    }
    objs.push(...generateConfigMaps(k.configMapGenerator || [], dir));
    for (const p of k.patches || []) applyPatch(objs, p, dir);
    if (k.namespace)
        for (const o of objs)
            if (!CLUSTER_SCOPED.has(o.kind)) (o.metadata = o.metadata || {}).namespace = k.namespace;
    applyLabels(objs, k.labels || []);
    applyImages(objs, k.images || []);
    if (root === dir) fixConfigMapNames(objs);
    return objs;
}

function orderKey(o) {
    const first = ORDER_FIRST.indexOf(o.kind);
    const last = ORDER_LAST.indexOf(o.kind);
    const band = first >= 0 ? first : last >= 0 ? 1000 + last : 500;
    const gvk = `${group(o.apiVersion)}_${version(o.apiVersion)}_${o.kind}`;
    return [band, band === 500 ? gvk : "", o.metadata?.namespace || "", o.metadata?.name || ""];
}

/** Render the kustomization in dir: a list of plain objects. */
export function kustomize(dir) {
    const abs = path.resolve(dir);
    const objs = build(abs, "Kustomization", abs);
    // generated ConfigMaps of bases were hashed when those bases were built; references to
    // them from the overlay's own resources are fixed here too
    return objs
        .map((o, i) => ({ o, i, key: orderKey(o) }))
        .sort((a, b) => {
            for (let j = 0; j < a.key.length; j++) {
                if (a.key[j] < b.key[j]) return -1;
                if (a.key[j] > b.key[j]) return 1;
            }
            return a.i - b.i;
        })
        .map((x) => x.o);
}

function sortKeys(v) {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (isMap(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
    return v;
}

export function toYaml(objs) {
    return objs.map((o) => YAML.stringify(sortKeys(o), { lineWidth: 0 })).join("---\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    if (process.argv.length !== 3) {
        console.error("usage: node kustomize.mjs DIR");
        process.exit(2);
    }
    try {
        process.stdout.write(toYaml(kustomize(process.argv[2])));
    } catch (e) {
        console.error(e.message);
        process.exit(1);
    }
}
