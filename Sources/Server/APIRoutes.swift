import Hub

/// Every route of the JSON API: method, path, the surface it is authorized against (the table in
/// Protocol/PROTOCOL.md) and its handler. `Router` matches a request against it, resolves and checks
/// the credential, then calls the handler; `collabhub routes` prints it, and a test compares it with
/// Protocol/openapi.json.
extension SessionAPI {
    static let table = RouteTable(routes: [
        Route("GET", "/api/mode", .anyone) { api, _ in api.mode() },

        // Sessions.
        Route("POST", "/api/sessions", .surface { _ in .createSession }) { api, r in api.create(r.body, r) },
        Route("GET", "/api/sessions", .surface { _ in .listSessions }) { api, r in api.list(r) },
        Route("GET", "/api/sessions/{code}", .surface { .describeSession($0.code!) }) { api, r in
            api.describe(r["code"], r)
        },
        Route("PATCH", "/api/sessions/{code}", .surface { .changeSession($0.code!) }) { api, r in
            api.patch(r["code"], r.head, r.body, r)
        },
        Route("POST", "/api/sessions/{code}/end", .surface { .endSession($0.code!) }, hostKeyInBody: true) { api, r in
            api.end(r["code"], r.head, r.body, r)
        },
        Route("POST", "/api/sessions/{code}/messages", .surface { .changeSession($0.code!) }) { api, r in
            api.postMessage(r.code, r.head, r.body, r, actor: r.client)
        },
        Route("GET", "/api/sessions/{code}/members", .surface { .describeSession($0.code!) }) { api, r in
            api.members(r.code, r)
        },
        Route("DELETE", "/api/sessions/{code}/members/{id}", .surface { .changeSession($0.code!) }) { api, r in
            api.removeMember(r.code, r["id"], r, actor: r.client)
        },
        Route("GET", "/api/sessions/{code}/transcript", .surface { .readTranscript($0.code!) }) { api, r in
            api.readTranscript(r)
        },
        Route("HEAD", "/api/sessions/{code}/transcript", .surface { .readTranscript($0.code!) }) { api, r in
            api.readTranscript(r)
        },
        Route("POST", "/api/sessions/{code}/share", .surface { .shareSession($0.code!) }) { api, r in
            api.share(r.code, r.body, actor: r.access.keyId.map { "key \($0)" } ?? "api", r.client)
        },
        Route("DELETE", "/api/sessions/{code}/share/{id}", .surface { .shareSession($0.code!) }) { api, r in
            api.revokeShare(r.code, r["id"], r, actor: r.access.keyId.map { "key \($0)" } ?? "api", r.client)
        },

        // Runs (they live on loop 0).
        Route("POST", "/api/runs/{id}/events", .surface { .publishRun($0["id"]) }) { api, r in
            api.publishRunEvents(r)
        },
        Route("GET", "/api/runs/{id}", .surface { .readRun($0["id"]) }) { api, r in api.readRun(r) },
        Route("GET", "/api/runs", .surface { _ in .readRuns }) { api, r in api.listRuns(r) },

        Route("GET", "/api/activity", .surface { _ in .readActivity }) { api, r in api.activity(r.head, r) },

        // API keys.
        Route("POST", "/api/keys", .surface { _ in .manageKeys }) { api, r in api.createKey(r.body, r, r.access) },
        Route("GET", "/api/keys", .surface { _ in .manageKeys }) { api, r in api.listKeys(r) },
        Route("DELETE", "/api/keys/{id}", .surface { _ in .manageKeys }) { api, r in
            api.revokeKey(r["id"], r, r.access)
        },
        Route("GET", "/api/keys/{id}/usage", .surfaceOrOwnKey(parameter: "id") { _ in .manageKeys }) { api, r in
            api.keyUsage(r["id"], r)
        },

        // Webhooks.
        Route("POST", "/api/webhooks", .surface { _ in .manageWebhooks }) { api, r in api.webhookRoute(r, .create) },
        Route("GET", "/api/webhooks", .surface { _ in .manageWebhooks }) { api, r in api.webhookRoute(r, .list) },
        Route("GET", "/api/webhooks/{id}", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .read)
        },
        Route("PATCH", "/api/webhooks/{id}", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .change)
        },
        Route("DELETE", "/api/webhooks/{id}", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .delete)
        },
        Route("POST", "/api/webhooks/{id}/rotate-secret", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .rotateSecret)
        },
        Route("POST", "/api/webhooks/{id}/test", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .test)
        },
        Route("GET", "/api/webhooks/{id}/deliveries", .surface { _ in .manageWebhooks }) { api, r in
            api.webhookRoute(r, .deliveries)
        },
        Route("POST", "/api/webhooks/{id}/deliveries/{delivery}/retry", .surface { _ in .manageWebhooks }) {
            api, r in api.webhookRoute(r, .retryDelivery)
        },
    ])
}

/// The API's route table as `collabhub routes` prints it: `METHOD PATH SURFACE`, one route a line.
public enum RouteListing {
    public static var lines: [String] { SessionAPI.table.lines }
}
