// strict.mjs - unknown-field check for Kubernetes objects, from the type declarations that the
// kubernetes-models packages ship (.d.ts files).
//
// The packages' JSON-schema validators (used by validate.mjs) check types, formats and required
// fields but accept any unknown property, as the API server does by default: a misspelt field
// (`readOnlyRootFileSystem`) would be dropped silently at apply time. kubectl's
// `--validate=strict` refuses them; this does the same offline. Each model's .d.ts declares its
// interface with every property; nested types are imported interfaces (core models) or inline
// object types (CRD models such as ServiceMonitor). A small parser of that TypeScript subset
// (object type literals, index signatures, Array<T>, unions, literals, references) gives a tree
// to walk the object against.

import fs from "node:fs";
import path from "node:path";

// ---- a tokenizer and parser for the type subset the generated declarations use

function stripComments(src) {
    return src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/^\s*\/\/.*$/gm, " ");
}

function tokenize(src) {
    const toks = [];
    const re = /\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$]*|-?\d+(?:\.\d+)?|\[|\]|\{|\}|<|>|\(|\)|\||;|:|\?|,|=|&|\.)/y;
    let m;
    re.lastIndex = 0;
    while (re.lastIndex < src.length) {
        const at = re.lastIndex;
        m = re.exec(src);
        if (!m) {
            if (/^\s*$/.test(src.slice(at))) break;
            throw new Error("cannot tokenize type near: " + src.slice(at, at + 40));
        }
        toks.push(m[1]);
    }
    return toks;
}

class Parser {
    constructor(toks) {
        this.t = toks;
        this.i = 0;
    }
    peek() {
        return this.t[this.i];
    }
    next() {
        return this.t[this.i++];
    }
    expect(s) {
        const n = this.next();
        if (n !== s) throw new Error(`expected '${s}', got '${n}'`);
    }
    // T := U ('|' U)*
    type() {
        if (this.peek() === "|") this.next();
        const alts = [this.postfix()];
        while (this.peek() === "|") {
            this.next();
            alts.push(this.postfix());
        }
        return alts.length === 1 ? alts[0] : { kind: "union", alts };
    }
    postfix() {
        let t = this.primary();
        while (this.peek() === "[" && this.t[this.i + 1] === "]") {
            this.i += 2;
            t = { kind: "array", of: t };
        }
        return t;
    }
    primary() {
        const tok = this.next();
        if (tok === "{") return this.objectBody();
        if (tok === "(") {
            const t = this.type();
            this.expect(")");
            return t;
        }
        if (/^["']/.test(tok) || /^-?\d/.test(tok) || tok === "true" || tok === "false" || tok === "null")
            return { kind: "prim" };
        if (["string", "number", "boolean", "any", "unknown", "object", "never", "undefined"].includes(tok))
            return { kind: tok === "any" || tok === "unknown" || tok === "object" ? "any" : "prim" };
        if (/^[A-Za-z_$]/.test(tok)) {
            let name = tok;
            while (this.peek() === ".") {
                this.next();
                name += "." + this.next();
            }
            if (this.peek() === "<") {
                this.next();
                const args = [this.type()];
                while (this.peek() === ",") {
                    this.next();
                    args.push(this.type());
                }
                this.expect(">");
                if (name === "Array" || name === "ReadonlyArray") return { kind: "array", of: args[0] };
                if (name === "Record") return { kind: "object", props: {}, index: args[1] };
                return { kind: "any" };
            }
            return { kind: "ref", name };
        }
        throw new Error("unexpected token in type: " + tok);
    }
    // after '{': members until '}'
    objectBody() {
        const props = {};
        let index = null;
        while (this.peek() !== "}") {
            if (this.peek() === "[") {
                // [key: string]: T
                this.next();
                this.next();
                this.expect(":");
                this.type();
                this.expect("]");
                this.expect(":");
                index = this.type();
            } else {
                let name = this.next();
                if (/^["']/.test(name)) name = JSON.parse(name.replace(/^'|'$/g, '"'));
                if (this.peek() === "?") this.next();
                if (this.peek() === "(") {
                    // a method (the model classes): skip to the end of the member
                    let depth = 0;
                    while (!(depth === 0 && (this.peek() === ";" || this.peek() === "}"))) {
                        const x = this.next();
                        if (x === "(" || x === "{" || x === "<") depth++;
                        if (x === ")" || x === "}" || x === ">") depth--;
                    }
                } else {
                    this.expect(":");
                    props[name] = this.type();
                }
            }
            if (this.peek() === ";" || this.peek() === ",") this.next();
        }
        this.expect("}");
        return { kind: "object", props, index };
    }
}

// ---- declaration files

const fileCache = new Map();

function resolveImport(fromFile, spec, nodeModules) {
    const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(nodeModules, spec);
    for (const cand of [base + ".d.ts", path.join(base, "index.d.ts")]) if (fs.existsSync(cand)) return cand;
    throw new Error(`cannot resolve ${spec} from ${fromFile}`);
}

function loadDecl(file, nodeModules) {
    if (fileCache.has(file)) return fileCache.get(file);
    const src = stripComments(fs.readFileSync(file, "utf8"));
    const imports = {};
    for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
        for (const part of m[1].split(",")) {
            const [orig, alias] = part.trim().split(/\s+as\s+/);
            if (orig) imports[(alias || orig).trim()] = { spec: m[2], name: orig.trim() };
        }
    }
    const aliases = {};
    for (const m of src.matchAll(/export\s*\{([^}]*)\}/g)) {
        for (const part of m[1].split(",")) {
            const [orig, alias] = part.trim().split(/\s+as\s+/);
            if (orig && alias) aliases[alias.trim()] = orig.trim();
        }
    }
    const decls = {};
    for (const m of src.matchAll(/export\s+(?:declare\s+)?interface\s+(\w+)(?:<[^>]*>)?(?:\s+extends\s+[^{]+)?\s*\{/g)) {
        const p = new Parser(tokenize(src.slice(m.index + m[0].length - 1)));
        p.next(); // {
        decls[m[1]] = p.objectBody();
    }
    for (const m of src.matchAll(/export\s+(?:declare\s+)?type\s+(\w+)\s*=\s*([^;]+);/g)) {
        try {
            decls[m[1]] = new Parser(tokenize(m[2])).type();
        } catch {
            decls[m[1]] = { kind: "any" };
        }
    }
    const info = { file, imports, aliases, decls };
    fileCache.set(file, info);
    return info;
}

function resolveRef(info, name, nodeModules, seen = 0) {
    if (seen > 20) throw new Error("reference loop at " + name);
    const local = info.aliases[name] || name;
    if (info.decls[local]) return { type: info.decls[local], info };
    const imp = info.imports[local];
    if (imp) {
        const other = loadDecl(resolveImport(info.file, imp.spec, nodeModules), nodeModules);
        return resolveRef(other, imp.name, nodeModules, seen + 1);
    }
    return { type: { kind: "any" }, info };
}

// ---- the walk

function check(value, type, info, where, nodeModules, errors) {
    if (value === null || value === undefined) return;
    switch (type.kind) {
        case "any":
        case "prim":
            return;
        case "ref": {
            const r = resolveRef(info, type.name, nodeModules);
            return check(value, r.type, r.info, where, nodeModules, errors);
        }
        case "array":
            if (Array.isArray(value)) value.forEach((v, i) => check(v, type.of, info, `${where}[${i}]`, nodeModules, errors));
            return;
        case "union": {
            // accept if any alternative accepts; report the errors of the closest one
            let best = null;
            for (const alt of type.alts) {
                const errs = [];
                check(value, alt, info, where, nodeModules, errs);
                if (errs.length === 0) return;
                if (!best || errs.length < best.length) best = errs;
            }
            if (best) errors.push(...best);
            return;
        }
        case "object":
            if (typeof value !== "object" || Array.isArray(value)) return; // types: the schema check
            for (const [k, v] of Object.entries(value)) {
                if (Object.prototype.hasOwnProperty.call(type.props, k)) check(v, type.props[k], info, `${where}.${k}`, nodeModules, errors);
                else if (type.index) check(v, type.index, info, `${where}.${k}`, nodeModules, errors);
                else errors.push(`${where}.${k}: unknown field`);
            }
            return;
    }
}

/** Unknown fields of obj per the model declared in dtsFile (its interface I<kind>). */
export function unknownFields(obj, dtsFile, kind, nodeModules) {
    const info = loadDecl(dtsFile, nodeModules);
    const t = info.decls["I" + kind];
    if (!t) throw new Error(`no interface I${kind} in ${dtsFile}`);
    const errors = [];
    check(obj, t, info, kind, nodeModules, errors);
    return errors;
}
