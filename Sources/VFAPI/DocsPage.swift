import Foundation
import VFNet

/// `/docs`: a self-contained page (no CDN, no external script) that reads `/openapi.json` and
/// renders every operation with a try-it form.
enum DocsPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Vector Flow API — docs</title>
        <style>
        body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
        header{background:#1d2330;color:#fff;padding:14px 24px}
        header h1{margin:0;font-size:20px}
        main{max-width:1000px;margin:0 auto;padding:16px}
        .auth{margin:8px 0 16px}
        .op{background:#fff;border:1px solid #d8dce3;border-radius:6px;margin:10px 0}
        .op summary{cursor:pointer;padding:10px 12px;display:flex;gap:12px;align-items:center}
        .m{font-weight:700;width:64px;text-align:center;border-radius:4px;color:#fff;padding:2px 0;font-size:12px}
        .GET{background:#2f80ed}.POST{background:#27ae60}.PUT{background:#f2994a}.DELETE{background:#eb5757}
        .path{font-family:monospace;font-size:14px}
        .body{padding:8px 14px 14px;border-top:1px solid #eceef2}
        label{display:block;margin:6px 0 2px;font-weight:600}
        input,textarea{width:100%;box-sizing:border-box;font-family:monospace;font-size:13px;padding:5px}
        textarea{min-height:120px}
        button{margin-top:8px;padding:6px 14px;cursor:pointer}
        pre{background:#0f1420;color:#d6e2ff;padding:10px;overflow:auto;max-height:360px;white-space:pre-wrap;word-break:break-all}
        .codes{color:#555;font-size:12px}
        </style>
        </head>
        <body>
        <header><h1 id="title">Vector Flow API</h1><div id="desc"></div></header>
        <main>
        <div class="auth"><label for="token">Bearer token (only needed when the server sets VF_API_TOKEN)</label>
        <input id="token" placeholder="token"></div>
        <div id="ops">Loading /openapi.json…</div>
        </main>
        <script>
        "use strict";
        function el(tag, attrs, ...kids) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) { if (k === "class") e.className = v; else e.setAttribute(k, v); }
          for (const k of kids) e.append(k);
          return e;
        }
        function resolve(spec, s) {
          while (s && s.$ref) s = s.$ref.split("/").slice(1).reduce((o, k) => o[k], spec);
          return s;
        }
        function example(spec, schema) {
          schema = resolve(spec, schema);
          const out = {};
          for (const [k, p] of Object.entries(schema.properties || {})) {
            if ("default" in p) out[k] = p.default;
            else if (k === "name") out[k] = "Demo Feed";
            else if (k === "rtsp_url") out[k] = "rtsp://camera.local:8554/stream";
          }
          return JSON.stringify(out, null, 2);
        }
        async function send(method, path, form, out, hasBody) {
          let url = path;
          for (const inp of form.querySelectorAll("input[data-param]")) {
            url = url.replace("{" + inp.dataset.param + "}", encodeURIComponent(inp.value));
          }
          const headers = {};
          const token = document.getElementById("token").value.trim();
          if (token) headers["Authorization"] = "Bearer " + token;
          const init = {method, headers};
          if (hasBody) { headers["Content-Type"] = "application/json"; init.body = form.querySelector("textarea").value; }
          out.textContent = method + " " + url + " …";
          try {
            const t0 = performance.now();
            const r = await fetch(url, init);
            const text = await r.text();
            let shown = text;
            try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
            out.textContent = r.status + " " + r.statusText + "  (" + Math.round(performance.now() - t0) + " ms)\n" +
              (r.headers.get("content-type") || "") + "\n\n" + shown;
          } catch (e) { out.textContent = "request failed: " + e; }
        }
        function render(spec) {
          document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
          document.getElementById("desc").textContent = spec.info.description || "";
          const ops = document.getElementById("ops");
          ops.textContent = "";
          for (const [path, item] of Object.entries(spec.paths)) {
            for (const [method, op] of Object.entries(item)) {
              const M = method.toUpperCase();
              const form = el("form", {"data-op": op.operationId});
              for (const p of op.parameters || []) {
                form.append(el("label", {}, p.name + " (" + p.in + ")"),
                  el("input", {"data-param": p.name, placeholder: (p.schema && p.schema.format) || "", required: ""}));
              }
              const hasBody = !!op.requestBody;
              if (hasBody) {
                const schema = op.requestBody.content["application/json"].schema;
                const ta = el("textarea", {name: "body"});
                ta.value = example(spec, schema);
                form.append(el("label", {}, "JSON body"), ta);
              }
              const out = el("pre", {"class": "out"}, "");
              form.append(el("button", {type: "submit"}, "Send " + M + " " + path));
              form.addEventListener("submit", (ev) => { ev.preventDefault(); send(M, path, form, out, hasBody); });
              const codes = Object.entries(op.responses).map(([c, r]) => c + " " + r.description).join(" · ");
              ops.append(el("details", {"class": "op", id: op.operationId},
                el("summary", {}, el("span", {"class": "m " + M}, M), el("span", {"class": "path"}, path), el("span", {}, op.summary || "")),
                el("div", {"class": "body"}, el("div", {"class": "codes"}, "Responses: " + codes), form, out)));
            }
          }
        }
        fetch("/openapi.json").then(r => r.json()).then(render)
          .catch(e => { document.getElementById("ops").textContent = "could not load /openapi.json: " + e; });
        </script>
        </body>
        </html>
        """#
}

/// Swagger UI at `/docs` and ReDoc at `/redoc`, from the files of a registry package the set-up
/// installs (scripts/install-deps.sh: PyPI's drf-spectacular-sidecar, which ships Swagger UI's
/// dist and ReDoc's standalone bundle; nothing of them is committed here). Read once when the
/// router is made, before the server listens, and answered from memory: no file access on an
/// event loop. Without the files, both pages are the built-in `DocsPage`.
struct DocsAssets: Sendable {
    struct File: Sendable {
        let body: [UInt8]
        let contentType: String
    }

    /// Request path (under `/docs/assets/`) → file.
    let files: [String: File]
    /// The Swagger UI page, or nil when its files are missing.
    let swaggerPage: String?
    /// The ReDoc page, or nil when its bundle is missing.
    let redocPage: String?

    static let prefix = "/docs/assets/"
    /// Where scripts/install-deps.sh installs the package (`pip install --target`), relative to the
    /// working directory like VF_STATIC_DIR's default (`make run` and the tests start from the root).
    static let defaultDirectory = ".vf/docs-assets"
    /// The package's own layout inside its install folder.
    static let packageSubdirectory = "drf_spectacular_sidecar/static/drf_spectacular_sidecar"

    /// Loads from `directory`: the package's install folder, or the folder holding `swagger-ui-dist/`
    /// and `redoc/` directly. `log` says what is missing, once.
    static func load(directory: String, log: (String) -> Void) -> DocsAssets {
        let fm = FileManager.default
        let candidates = [directory, (directory as NSString).appendingPathComponent(packageSubdirectory)]
        func has(_ dir: String, _ sub: String) -> Bool {
            fm.fileExists(atPath: (dir as NSString).appendingPathComponent(sub))
        }
        let root = candidates.first { has($0, "swagger-ui-dist") } ?? candidates.first { has($0, "redoc") }
        func read(_ relative: String) -> [UInt8]? {
            guard let root, let data = fm.contents(atPath: (root as NSString).appendingPathComponent(relative)) else {
                return nil
            }
            return [UInt8](data)
        }
        var files: [String: File] = [:]
        let swaggerFiles: [(String, String, String)] = [
            ("swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
            ("swagger-ui-dist/swagger-ui.css", "swagger-ui.css", "text/css; charset=utf-8"),
        ]
        var swagger = true
        for (relative, name, type) in swaggerFiles {
            if let body = read(relative) {
                files[prefix + name] = File(body: body, contentType: type)
            } else {
                swagger = false
            }
        }
        if swagger {
            if let icon = read("swagger-ui-dist/favicon-32x32.png") {
                files[prefix + "favicon-32x32.png"] = File(body: icon, contentType: "image/png")
            }
            // The start-up script as a file of its own rather than inline, so the page needs no
            // inline script. Relative URLs: the pages also work behind a proxy under a prefix.
            files[prefix + "swagger-initializer.js"] = File(
                body: Array(swaggerInitializer.utf8), contentType: "text/javascript; charset=utf-8")
        } else {
            for (_, name, _) in swaggerFiles { files[prefix + name] = nil }
        }
        let redocBundle = read("redoc/bundles/redoc.standalone.js")
        if let redocBundle {
            files[prefix + "redoc.standalone.js"] = File(
                body: redocBundle, contentType: "text/javascript; charset=utf-8")
        }
        // Said only when something is missing: a start that finds everything prints nothing here
        // (scripts wait for the API's first line, and a failed start must print its reason alone).
        if !swagger || redocBundle == nil {
            let missing = [swagger ? nil : "Swagger UI", redocBundle == nil ? "ReDoc" : nil].compactMap { $0 }
            let served = swagger ? "/redoc" : redocBundle == nil ? "/docs and /redoc" : "/docs"
            log(
                "no \(missing.joined(separator: "/")) files in \(directory) (VF_DOCS_ASSETS_DIR; "
                    + "scripts/install-deps.sh installs them): the built-in docs page serves \(served)")
        }
        return DocsAssets(
            files: files, swaggerPage: swagger ? swaggerHTML : nil, redocPage: redocBundle != nil ? redocHTML : nil)
    }

    /// A docs page, with a Content-Security-Policy that keeps it to the API's own origin: ReDoc
    /// would otherwise fetch its vendor's logo from the internet on every view (the image simply
    /// stays hidden). Inline styles: both UIs set them; blob: workers: ReDoc's search.
    static func page(_ html: String) -> HTTPResponse {
        var r = HTTPResponse.text(html, contentType: "text/html; charset=utf-8")
        r.headers.add(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' blob:; "
                + "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'")
        return r
    }

    static let swaggerInitializer = """
        "use strict";
        window.ui = SwaggerUIBundle({
          url: "openapi.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          presets: [SwaggerUIBundle.presets.apis],
          layout: "BaseLayout",
          validatorUrl: null,  // no badge fetched from an outside validator
        });

        """

    static let swaggerHTML = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Vector Flow API - Swagger UI</title>
        <link rel="stylesheet" href="docs/assets/swagger-ui.css">
        <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
        </head>
        <body>
        <div id="swagger-ui"></div>
        <script src="docs/assets/swagger-ui-bundle.js"></script>
        <script src="docs/assets/swagger-initializer.js"></script>
        </body>
        </html>

        """

    static let redocHTML = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Vector Flow API - ReDoc</title>
        <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
        <style>body{margin:0;padding:0}</style>
        </head>
        <body>
        <redoc spec-url="openapi.json"></redoc>
        <script src="docs/assets/redoc.standalone.js"></script>
        </body>
        </html>

        """
}
